"""Recurrent mechanistic models (RMMs) of single neurons (Burghi, Ivanova, Morozova, Wang, Marder &
O'Leary, PNAS 122(32) e2426916122, 2025; training methods: Burghi, Schapiro et al., Front. Comput.
Neurosci. 19:1515194, 2025). Units: ms, mV, nA, nF, µS.

- Filter banks: :func:`filter_bank` (diagonal or orthonormal), :func:`geometric_taus`,
  :func:`filter_signal` (fast), :func:`filter_step`, :func:`dc_gain`, :func:`frequency_response`,
  :func:`gramian`, :func:`rest_state`.
- Currents: :class:`Leak`, :class:`LumpedCurrent`, :class:`ConductanceCurrent` (monotone gates).
- The model: :class:`RMM`, :func:`init_rmm`, :func:`rmm_step`, :func:`simulate` (closed loop),
  :func:`teacher_forced` (read-out from a measured voltage), ``RMM.ablate``.
- Training: :func:`fit` (weighted teacher forcing on the :func:`centred_voltage`, then short
  closed-loop rollouts, then optional multiple shooting), :func:`fit_shooting`, :func:`rollout_loss`,
  :func:`derivative_weights`, :class:`RolloutSettings`.
- Validation: :func:`evaluate`, :func:`predict`, metrics; interpretation: :func:`iv_curves`,
  :func:`gate_curves`.
- Settings: :class:`RMMConfig` and its parts, :func:`config_from_dict`; files: :func:`save_model`,
  :func:`load_model`. Plots: :func:`plot_prediction`, :func:`plot_iv`, :func:`plot_gates`.
- Circuits: :class:`Circuit` (neurons, exogenous voltages, :class:`Synapse`, :class:`Gap`),
  :class:`CircuitSettings`, :func:`init_circuit`, :func:`circuit_step`, :func:`simulate_circuit`,
  :func:`fit_circuit` (teacher forcing, multiple shooting, generalised teacher forcing),
  :func:`circuit_readout`, :func:`predict_circuit` and :func:`evaluate_circuit` (free-run metrics per
  neuron and synapse, :func:`burst_rhythm`: burst period and phase), :func:`circuit_selection_score`,
  :func:`synapse_profile` (teacher forcing's loss along each synapse's size, by default at
  :data:`PROFILE_SCALES`);
  settings of ``neuromech fit`` with a ``[circuit]`` table:
  :class:`CircuitConfig`, :class:`CircuitDescription`, :func:`circuit_config_from_dict`; files:
  :func:`save_circuit`, :func:`load_circuit`; data: :class:`CircuitRecording`,
  :func:`read_circuit_recording`, :func:`write_circuit_npz`, :func:`synthetic_circuit`.
- Online use: :func:`online` (causal streaming ``step``, RLS read-out), :func:`rls_update`, :func:`replay`.
"""

from ..recordings._circuit import CircuitRecording as CircuitRecording
from ..recordings._circuit import read_circuit_recording as read_circuit_recording
from ..recordings._circuit import write_circuit_npz as write_circuit_npz
from ..recordings._synthetic_circuit import GradedSynapse as GradedSynapse
from ..recordings._synthetic_circuit import synthetic_circuit as synthetic_circuit
from ._build import TrainingData as TrainingData
from ._circuit import Circuit as Circuit
from ._circuit import Gap as Gap
from ._circuit import Synapse as Synapse
from ._circuit import circuit_state as circuit_state
from ._circuit import circuit_step as circuit_step
from ._circuit import simulate_circuit as simulate_circuit
from ._circuit_build import CircuitSettings as CircuitSettings
from ._circuit_build import GapSettings as GapSettings
from ._circuit_build import SynapseSettings as SynapseSettings
from ._circuit_build import init_circuit as init_circuit
from ._circuit_fit import CIRCUIT_ROLLOUT as CIRCUIT_ROLLOUT
from ._circuit_fit import CircuitTrainingSettings as CircuitTrainingSettings
from ._circuit_fit import circuit_readout as circuit_readout
from ._circuit_fit import circuit_teacher_forcing_loss as circuit_teacher_forcing_loss
from ._circuit_fit import overshoot_penalty as overshoot_penalty
from ._circuit_fit import current_penalty as current_penalty
from ._circuit_fit import circuit_warm_start as circuit_warm_start
from ._circuit_fit import fit_circuit as fit_circuit
from ._circuit_serialise import load_circuit as load_circuit
from ._circuit_serialise import save_circuit as save_circuit
from ._circuit_settings import CircuitConfig as CircuitConfig
from ._circuit_settings import CircuitDescription as CircuitDescription
from ._circuit_settings import circuit_config_from_dict as circuit_config_from_dict
from ._rhythm import burst_rhythm as burst_rhythm
from ._circuit_validate import circuit_selection_score as circuit_selection_score
from ._circuit_validate import evaluate_circuit as evaluate_circuit
from ._circuit_validate import synapse_profile as synapse_profile
from ._circuit_validate import PROFILE_SCALES as PROFILE_SCALES
from ._circuit_validate import predict_circuit as predict_circuit
from ._build import init_rmm as init_rmm
from ._build import centred_voltage as centred_voltage
from ._build import sweep_states as sweep_states
from ._build import teacher_forcing_data as teacher_forcing_data
from ._currents import ConductanceCurrent as ConductanceCurrent
from ._currents import Leak as Leak
from ._currents import LumpedCurrent as LumpedCurrent
from ._currents import KineticGate as KineticGate
from ._currents import MonotoneGate as MonotoneGate
from ._filters import FilterBank as FilterBank
from ._filters import dc_gain as dc_gain
from ._filters import filter_bank as filter_bank
from ._filters import filter_signal as filter_signal
from ._filters import filter_signal_scan as filter_signal_scan
from ._filters import filter_step as filter_step
from ._filters import frequency_response as frequency_response
from ._filters import geometric_taus as geometric_taus
from ._filters import gramian as gramian
from ._filters import rest_state as rest_state
from ._fit import derivative_weights as derivative_weights
from ._fit import fit as fit
from ._fit import fit_shooting as fit_shooting
from ._fit import shooting_loss as shooting_loss
from ._fit import teacher_forcing_loss as teacher_forcing_loss
from ._rollout import rollout as rollout
from ._rollout import rollout_loss as rollout_loss
from ._rollout import rollout_windows as rollout_windows
from ._interpret import gate_curves as gate_curves
from ._interpret import iv_curves as iv_curves
from ._metrics import SweepMetrics as SweepMetrics
from ._metrics import coincidence_factor as coincidence_factor
from ._metrics import inner_product_score as inner_product_score
from ._metrics import spike_count_error as spike_count_error
from ._metrics import voltage_rmse as voltage_rmse
from ._model import RMM as RMM
from ._model import DivergenceError as DivergenceError
from ._model import ReadOut as ReadOut
from ._model import derivative as derivative
from ._model import derivatives as derivatives
from ._model import membrane_currents as membrane_currents
from ._model import rmm_step as rmm_step
from ._model import simulate as simulate
from ._model import teacher_forced as teacher_forced
from ._online import OnlineState as OnlineState
from ._online import Streamer as Streamer
from ._online import as_circuit as as_circuit
from ._online import online as online
from ._online import plot_replay as plot_replay
from ._online import replay as replay
from ._online import rls_update as rls_update
from ._params import constrain as constrain
from ._params import unconstrain as unconstrain
from ._plots import plot_gates as plot_gates
from ._plots import plot_iv as plot_iv
from ._plots import plot_prediction as plot_prediction
from ._serialise import load_model as load_model
from ._serialise import save_model as save_model
from ._settings import CurrentSettings as CurrentSettings
from ._settings import DataSettings as DataSettings
from ._settings import FilterSettings as FilterSettings
from ._settings import ModelSettings as ModelSettings
from ._settings import RMMConfig as RMMConfig
from ._settings import RolloutSettings as RolloutSettings
from ._settings import ShootingSettings as ShootingSettings
from ._settings import TrainingSettings as TrainingSettings
from ._settings import config_from_dict as config_from_dict
from ._validate import evaluate as evaluate
from ._validate import predict as predict
from ._validate import selection_score as selection_score
