"""neuromech: predictive, mechanistic models of neurons and small circuits from neural data."""

from . import cbm as cbm
from ._devices import use_compilation_cache as use_compilation_cache
from ._devices import use_cpu_cores as use_cpu_cores

__version__ = "0.1.0"
