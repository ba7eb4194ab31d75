"""neuromech: predictive, mechanistic models of neurons and small circuits from neural data."""

from . import cbm as cbm

__version__ = "0.1.0"
