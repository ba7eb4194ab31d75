"""Conductance-based models: channels, the HH/STG/DA models, stimuli and population simulation."""

from ._channels import CalciumPool as CalciumPool
from ._channels import Channel as Channel
from ._channels import Gate as Gate
from ._channels import GatedChannel as GatedChannel
from ._channels import MarkovChannel as MarkovChannel
from ._library import MODELS as MODELS
from ._library import da as da
from ._library import get_model as get_model
from ._library import hh as hh
from ._library import stg as stg
from ._model import ConductanceBasedModel as ConductanceBasedModel
from ._reference import simulate_reference as simulate_reference
from ._simulate import SimulationResult as SimulationResult
from ._simulate import simulate as simulate
from ._stimulus import Constant as Constant
from ._stimulus import Noise as Noise
from ._stimulus import OrnsteinUhlenbeck as OrnsteinUhlenbeck
from ._stimulus import Ramp as Ramp
from ._stimulus import Sampled as Sampled
from ._stimulus import Step as Step
from ._stimulus import Stimulus as Stimulus
from ._equilibria import Equilibria as Equilibria
from ._equilibria import equilibria as equilibria
