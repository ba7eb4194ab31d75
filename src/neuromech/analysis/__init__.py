"""Spike detection, firing patterns and firing features (NumPy; units ms, mV, Hz).

- :func:`detect_spikes`: spike times from voltage traces (threshold crossings with hysteresis,
  interpolated between samples).
- :func:`firing_features`: silent / tonic / bursting and the firing features of one train;
  :func:`features_table` for many trains; :func:`isi_cv` on its own.
"""

from ._patterns import FiringPattern as FiringPattern
from ._patterns import SpikeFeatures as SpikeFeatures
from ._patterns import features_table as features_table
from ._patterns import firing_features as firing_features
from ._patterns import isi_cv as isi_cv
from ._spikes import detect_spikes as detect_spikes
from ._trains import check_train as check_train
from ._trains import looks_like_seconds as looks_like_seconds
from ._patterns import CV_TONIC as CV_TONIC
from ._patterns import FEATURES as FEATURES
