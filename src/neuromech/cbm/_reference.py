"""Reference solution: scipy's implicit adaptive BDF at tight tolerance, one model at a time.

This is how conductance-based models are usually simulated, and the independent check of the fast
exponential integrator. The right-hand side is the model's own ``derivatives`` (the equations are
shared, the integration is not) and the Jacobian is exact, by forward-mode autodiff, in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate

from ._model import ConductanceBasedModel
from ._simulate import check_run
from ._stimulus import Stimulus


def simulate_reference(
    model: ConductanceBasedModel,
    conductances,
    stimulus: Stimulus | None = None,
    *,
    duration: float,
    transient: float = 0.0,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    spike_threshold: float = 10.0,
    spike_rearm: float = 0.0,
    t_eval=None,
):
    """Simulate one model with ``scipy.integrate.solve_ivp(method="BDF")`` and an exact Jacobian.

    Args:
        model: the model; conductances: (n_channels,) in mS/cm², or a mapping with their names.
        stimulus: a deterministic stimulus (its random part is ignored); ``None`` for none.
        duration, transient: ms. rtol, atol: solver tolerances.
        spike_threshold, spike_rearm: as in :func:`simulate` (mV); crossings are located by the
            solver's event root-finding, to the solver's precision.
        t_eval: optional times (ms) at which to return the state.

    Returns:
        ``(spike_times, solution)``: spike times after the transient (ms) and scipy's ``OdeResult``.

    Raises:
        ValueError: for invalid conductances, more than one model, ``duration`` ≤ 0 or a
            ``transient`` outside [0, duration).

    Example:
        >>> from neuromech.cbm import hh, Constant
        >>> spikes, _ = simulate_reference(hh(), [120.0, 36.0, 0.3], Constant(10.0), duration=50.0)
        >>> len(spikes) >= 3
        True
    """
    g = check_run(model, conductances, duration, transient)
    if g.ndim != 1:
        raise ValueError("the reference solver simulates one model at a time: pass shape (n_channels,)")
    stimulus = stimulus or Stimulus()
    with jax.enable_x64(True):
        gj = jnp.asarray(g, dtype=jnp.float64)

        def rhs(t, y):
            return model.derivatives(y, gj, stimulus.at(jnp.asarray(t, jnp.float64)))

        f = jax.jit(rhs)
        jac = jax.jit(jax.jacfwd(rhs, argnums=1))
        y0 = np.asarray(model.initial_state(gj), dtype=np.float64)

        def up(t, y):
            return y[0] - spike_threshold

        def down(t, y):
            return y[0] - spike_rearm

        up.direction, down.direction = 1.0, -1.0
        sol = scipy.integrate.solve_ivp(
            lambda t, y: np.asarray(f(t, y)),
            (0.0, float(duration)),
            y0,
            method="BDF",
            jac=lambda t, y: np.asarray(jac(t, y)),
            rtol=rtol,
            atol=atol,
            events=(up, down),
            t_eval=t_eval,
        )
    if not sol.success:
        raise RuntimeError(f"the reference BDF solver failed: {sol.message}")
    ups, downs = sol.t_events
    events = sorted([(t, 1) for t in ups] + [(t, 0) for t in downs])
    armed, spikes = y0[0] < spike_threshold, []
    for t, kind in events:
        if kind == 1 and armed:
            spikes.append(t)
            armed = False
        elif kind == 0:
            armed = True
    spikes = np.asarray(spikes)
    return spikes[spikes >= transient], sol
