"""Dynamic input conductances (DICs) and degenerate populations with prescribed DICs.

- :func:`dics`, :func:`sensitivity`, :func:`threshold_voltage`: DICs of models and populations
  (Drion et al. 2015), by automatic differentiation, in float64.
- :func:`compensate`: set some conductances so that every model has target DICs (Fyon et al. 2024).
- :func:`reference_population`, :func:`generate_population`: the published two-stage generators for
  the STG and DA models (Brandoit et al. 2025); :func:`modulate`: move a population to new targets.
- :class:`Population`: conductances with their target and achieved DICs; saves to CSV/Parquet.

The pure per-model functions :func:`dics_at`, :func:`sensitivity_at` and :func:`compensate_one` are
jit/vmap/grad-able and follow the caller's precision.
"""

from ._compensate import UnreachableTargetError as UnreachableTargetError
from ._compensate import compensate as compensate
from ._compensate import compensate_one as compensate_one
from ._dics import DICs as DICs
from ._dics import dics as dics
from ._dics import sensitivity as sensitivity
from ._dics import threshold_voltage as threshold_voltage
from ._generate import DA_RECIPE as DA_RECIPE
from ._generate import STG_RECIPE as STG_RECIPE
from ._generate import Recipe as Recipe
from ._generate import generate_population as generate_population
from ._generate import modulate as modulate
from ._generate import recipe_for as recipe_for
from ._generate import reference_population as reference_population
from ._population import Population as Population
from ._population import load_population as load_population
from ._population import population_from_frame as population_from_frame
from ._sensitivity import dics_at as dics_at
from ._sensitivity import sensitivity_at as sensitivity_at
from ._plots import plot_dics as plot_dics
from ._plots import plot_population as plot_population
from ._fit_network import train_dic_network as train_dic_network
from ._inference import LoadedNetwork as LoadedNetwork
from ._inference import WeightsError as WeightsError
from ._inference import infer_dics as infer_dics
from ._inference import load_network as load_network
from ._inference import save_network as save_network
from ._network import DICNet as DICNet
from ._network import NetworkConfig as NetworkConfig
from ._training import TrainingConfig as TrainingConfig
from ._populate import PROTOCOLS as PROTOCOLS
from ._populate import populate as populate
