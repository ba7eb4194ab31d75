"""Current-clamp recordings: the :class:`Recording` type, loaders and preprocessing.

Units inside neuromech: time ms, voltage mV, injected current **nA**; loaders convert at the
boundary and record (``metadata["units"]``) what they read or assumed.

- :class:`Recording`: sweeps of voltage and current on one time base, with ``select``, ``window``,
  ``resample``, ``lowpass`` (causal or zero-phase), ``split_time`` and ``split_sweeps``.
- :func:`read_recording` (by suffix) and :func:`read_text`, :func:`read_npz`, :func:`read_mat`,
  :func:`read_abf`, :func:`read_nwb`; :func:`write_npz`.
- :func:`synthetic_recording`: a CBM neuron (HH, STG) driven by an Ornstein–Uhlenbeck current,
  with measurement noise and its true currents.
- Circuits: :class:`CircuitRecording` (one recording per channel), :func:`read_circuit_recording`,
  :func:`write_circuit_npz`, :func:`synthetic_circuit` (a driven neuron or a half-centre
  oscillator with their true synaptic currents).
"""

from ._circuit import CircuitRecording as CircuitRecording
from ._circuit import read_circuit_recording as read_circuit_recording
from ._circuit import write_circuit_npz as write_circuit_npz

from ._load import UnitWarning as UnitWarning
from ._load import read_abf as read_abf
from ._load import read_mat as read_mat
from ._load import read_npz as read_npz
from ._load import read_nwb as read_nwb
from ._load import read_recording as read_recording
from ._load import read_text as read_text
from ._load import write_npz as write_npz
from ._recording import Recording as Recording
from ._recording import concatenate as concatenate
from ._recording import parse_sweeps as parse_sweeps
from ._synthetic import ou_current as ou_current
from ._synthetic import synthetic_recording as synthetic_recording
from ._synthetic_circuit import synthetic_circuit as synthetic_circuit
from ._units import canonical_unit as canonical_unit
from ._units import to_internal as to_internal
