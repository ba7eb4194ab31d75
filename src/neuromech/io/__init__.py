"""Reading and writing neuromech's files; every writer is atomic (no half-written output, ever).

- Spike tables: :func:`write_spikes`, :func:`read_spikes`, :func:`read_trains`, and
  :class:`SpikeWriter` for block-by-block output. Long format ``id,spike_time`` or the Spike2Pop
  wide format ``ID,spiking_times``; CSV or Parquet by the file's suffix.
- Population tables (``id`` + one column per conductance): :func:`read_population`,
  :func:`write_population`.
- Traces (``.npz``): :func:`write_traces`, :func:`read_traces`, :class:`Traces`.
- :func:`atomic_path`: the temporary-file-then-``os.replace`` helper the writers share.

Units as everywhere in neuromech: time ms, voltage mV, conductance mS/cm².
"""

from ._atomic import atomic_path as atomic_path
from ._population import read_population as read_population
from ._population import write_population as write_population
from ._spikes import SPIKE_FORMATS as SPIKE_FORMATS
from ._spikes import SpikeWriter as SpikeWriter
from ._spikes import format_train as format_train
from ._spikes import parse_train as parse_train
from ._spikes import read_spikes as read_spikes
from ._spikes import read_trains as read_trains
from ._spikes import write_spikes as write_spikes
from ._tables import table_kind as table_kind
from ._traces import Traces as Traces
from ._traces import read_traces as read_traces
from ._traces import write_traces as write_traces
from ._recorded_trains import read_recorded_trains as read_recorded_trains
