"""Large simulation jobs: chunked, resumable, locally or on a Dask cluster.

- :func:`run_simulation`: simulate a population into a spike table (and optional traces), chunk by
  chunk, each chunk's spikes saved as a part file as soon as it completes; a rerun resumes.
- :class:`JobSummary`: what a job did. :class:`JobMismatchError`: an unfinished job with other
  settings is in the way. :class:`JobLockedError`: another process runs a job for the same output.
"""

from ._run import MAX_TRACE_SAMPLES as MAX_TRACE_SAMPLES
from ._run import JobLockedError as JobLockedError
from ._run import JobMismatchError as JobMismatchError
from ._run import JobSummary as JobSummary
from ._run import run_simulation as run_simulation
from ._training_data import TrainingDataSettings as TrainingDataSettings
from ._training_data import TrainingDataSummary as TrainingDataSummary
from ._training_data import generate_training_data as generate_training_data
from ._training_data import read_training_data as read_training_data
