"""Optional figures (matplotlib is imported only when a plot is made)."""

from ._simulation import raster as raster
from ._simulation import voltage_traces as voltage_traces
