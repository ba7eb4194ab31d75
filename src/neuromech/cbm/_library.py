"""The neuron models of SCIENCE.md §1, assembled from shared channel building blocks."""

from __future__ import annotations

import functools
import math

from ._channels import CalciumPool, Gate, GatedChannel, MarkovChannel
from ._kinetics import (
    DoubleExponential,
    Exponential,
    ExpRel,
    Hill,
    InverseRateSum,
    MagnesiumBlock,
    Product,
    RateRatio,
    Sigmoid as S,
)
from ._model import ConductanceBasedModel


def _rate_gate(name, alpha, beta):
    return Gate(name, RateRatio(alpha, beta), InverseRateSum(0.0, (alpha, beta)))


def hh() -> ConductanceBasedModel:
    """Hodgkin & Huxley (1952) squid axon, modern convention (rest ≈ −65 mV, 6.3 °C rates).

    Conductances ``g_Na, g_K, g_leak``; classic values 120, 36, 0.3 mS/cm².

    Example:
        >>> hh().conductance_names
        ('g_Na', 'g_K', 'g_leak')
    """
    am = ExpRel(1.0, -4.0, -0.1)  # 0.1 (V+40) / (1 − exp(−(V+40)/10))
    bm = Exponential(4.0 * math.exp(-65.0 / 18.0), -1.0 / 18.0)
    ah = Exponential(0.07 * math.exp(-65.0 / 20.0), -1.0 / 20.0)
    bh = S(0.0, 1.0, -10.0, 35.0)
    an = ExpRel(0.1, -5.5, -0.1)  # 0.01 (V+55) / (1 − exp(−(V+55)/10))
    bn = Exponential(0.125 * math.exp(-65.0 / 80.0), -1.0 / 80.0)
    return ConductanceBasedModel(
        name="hh",
        channels=(
            GatedChannel("Na", 50.0, (_rate_gate("m", am, bm), _rate_gate("h", ah, bh)), (3, 1)),
            GatedChannel("K", -77.0, (_rate_gate("n", an, bn),), (4,)),
            GatedChannel("leak", -54.387),
        ),
        v_init=-65.0,
        dt=0.01,
        duration=1000.0,
        transient=0.0,
        dic_timescales=("m_Na", "n_K", 100.0),
    )


def stg() -> ConductanceBasedModel:
    """Stomatogastric neuron of Liu et al. (1998, J. Neurosci. 18:2309), DIC variant (E_Ca = 80 mV).

    Conductances ``g_Na, g_Kd, g_CaT, g_CaS, g_KCa, g_A, g_H, g_leak``. Used for DICs by Drion et al.
    (2015) and for spike-time inference by Brandoit et al. (2025).

    Example:
        >>> model = stg()
        >>> model.state_names[:3]
        ('V', 'm_Na', 'h_Na')
    """
    cas_m_tau = DoubleExponential(1.4, 7.0, 27.0, 10.0, 70.0, -13.0)
    cas_h_tau = DoubleExponential(60.0, 150.0, 55.0, 9.0, 65.0, -16.0)
    channels = (
        GatedChannel(
            "Na", 50.0,
            (Gate("m", S(0, 1, -5.29, 25.5), S(1.32, -1.26, -25, 120)),
             Gate("h", S(0, 1, 5.18, 48.9), Product(S(0, 0.67, -10, 62.9), S(1.5, 1, 3.6, 34.9)))),
            (3, 1),
        ),
        GatedChannel("Kd", -80.0, (Gate("m", S(0, 1, -11.8, 12.3), S(7.2, -6.4, -19.2, 28.3)),), (4,)),
        GatedChannel(
            "CaT", 80.0,
            (Gate("m", S(0, 1, -7.2, 27.1), S(21.7, -21.3, -20.5, 68.1)),
             Gate("h", S(0, 1, 5.5, 32.1), S(105, -89.8, -16.9, 55))),
            (3, 1),
        ),
        GatedChannel(
            "CaS", 80.0,
            (Gate("m", S(0, 1, -8.1, 33), cas_m_tau), Gate("h", S(0, 1, 6.2, 60), cas_h_tau)),
            (3, 1),
        ),
        GatedChannel(
            "KCa", -80.0,
            (Gate("m", S(0, 1, -12.6, 28.3), S(90.3, -75.1, -22.7, 46), calcium=Hill(3.0)),),
            (4,),
        ),
        GatedChannel(
            "A", -80.0,
            (Gate("m", S(0, 1, -8.7, 27.2), S(11.6, -10.4, -15.2, 32.9)),
             Gate("h", S(0, 1, 4.9, 56.9), S(38.6, -29.2, -26.5, 38.9))),
            (3, 1),
        ),
        GatedChannel("H", -20.0, (Gate("m", S(0, 1, 6, 70), S(272, 1499, -8.73, 42.2)),), (1,)),
        GatedChannel("leak", -50.0),
    )
    return ConductanceBasedModel(
        name="stg",
        channels=channels,
        calcium=CalciumPool(sources=("CaT", "CaS"), alpha=0.94, beta=0.05, tau=20.0, initial=0.5),
        v_init=-70.0,
        dt=0.025,
        duration=6000.0,
        transient=3000.0,
        v_th=-51.0,
        dic_timescales=("m_Na", "m_Kd", "m_H"),
    )


def da() -> ConductanceBasedModel:
    """Dopaminergic neuron (Qian et al. 2014; Drion et al. 2011), conductances
    ``g_Na, g_Kd, g_CaL, g_CaN, g_ERG, g_NMDA, g_leak``.

    The sodium activation time constant is written in its removable-singularity form (SCIENCE.md
    §1.2): the published rounded constants put a spurious pole near −38.73 mV.

    Example:
        >>> da().conductance_names[-2:]
        ('g_NMDA', 'g_leak')
    """
    na_m_tau = InverseRateSum(
        0.01, (ExpRel(0.4043 / 0.5052, -19.565, -0.5052), Exponential(3.0212, -0.007463))
    )
    na_h_tau = InverseRateSum(0.4, (Exponential(5.0754e-4, -0.063213), Exponential(9.7529, 0.13442)))
    channels = (
        GatedChannel(
            "Na", 60.0,
            (Gate("m", S(0, 1, -9.7264, 30.0907), na_m_tau), Gate("h", S(0, 1, 10.7665, 54.0289), na_h_tau)),
            (3, 1),
        ),
        GatedChannel("Kd", -85.0, (Gate("n", S(0, 1, -12, 25), S(20, -18, -10, 38)),), (3,)),
        GatedChannel("CaL", 60.0, (Gate("m", S(0, 1, -2, 50), S(30, -28, -3, 45)),), (2,)),
        GatedChannel("CaN", 60.0, (Gate("m", S(0, 1, -7, 30), S(30, -25, -6, 55)),), (1,)),
        MarkovChannel(
            "ERG", -85.0,
            a0=Exponential(0.0036, 0.0759), b0=Exponential(1.2523e-5, -0.0671),
            ai=Exponential(0.1, 0.1189), bi=Exponential(0.003, -0.0733),
        ),
        GatedChannel("NMDA", 0.0, block=MagnesiumBlock(1.4), timescale="fast"),
        GatedChannel("leak", -50.0),
    )
    return ConductanceBasedModel(
        name="da",
        channels=channels,
        v_init=-90.0,
        dt=0.0125,
        duration=12000.0,
        transient=3000.0,
        v_th=-55.5,
        dic_timescales=("m_Na", "n_Kd", 100.0),
    )


MODELS = {"hh": hh, "stg": stg, "da": da}


def get_model(name: str) -> ConductanceBasedModel:
    """The built-in model called ``name`` (``"hh"``, ``"stg"`` or ``"da"``).

    Models are immutable, so one instance per name is shared: the compiled kernels cached for it
    (compensation, DICs) are reused by every caller instead of being compiled again.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return _shared_model(name)


@functools.lru_cache(maxsize=None)
def _shared_model(name: str) -> ConductanceBasedModel:
    return MODELS[name]()
