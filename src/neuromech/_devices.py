"""JAX runtime setup: every CPU core as a device (a population splits across devices), and the
on-disk cache of compiled programs."""

from __future__ import annotations

import os
import re
from pathlib import Path


def use_cpu_cores(n: int | None = None) -> int:
    """Expose ``n`` CPU cores (default: all) to JAX as separate devices, so that :func:`simulate`
    splits a population across them. Call before the first JAX computation; later it does nothing.

    Returns the device count requested. GPUs are unaffected.

    Example:
        >>> import neuromech
        >>> neuromech.use_cpu_cores(2)
        2
    """
    n = int(n or os.cpu_count() or 1)
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return int(re.search(r"xla_force_host_platform_device_count=(\d+)", flags).group(1))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    return n


CACHE_ENV = "NEUROMECH_COMPILATION_CACHE"


def use_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep XLA's compiled programs on disk (JAX's persistent compilation cache), so that the
    next fit or simulation with the same shapes, in this process or a later one, skips compiling.

    Compiling is a large share of a fit on a CPU: fitting a synthetic HH neuron (60 s at 10 kHz,
    ``benchmarks/bench_rmm.py``, one core) takes 43 s, and 25 s when fitted again with the cache
    filled. ``neuromech`` commands call this before any work.

    Args:
        path: the cache folder; default ``$NEUROMECH_COMPILATION_CACHE``, else
            ``$XDG_CACHE_HOME/neuromech/jax`` (``~/.cache/neuromech/jax``). The variable set to
            ``off`` turns the cache off; a folder already given to JAX
            (``JAX_COMPILATION_CACHE_DIR``) is kept.

    Returns:
        The folder in use, or None when the cache is off or the folder cannot be created (nothing
        changes then: programs are compiled as usual).

    Example:
        >>> import neuromech, tempfile
        >>> neuromech.use_compilation_cache(tempfile.mkdtemp()) is not None
        True
    """
    import jax

    if path is None:
        current = jax.config.jax_compilation_cache_dir
        if current:
            return Path(current)
        setting = os.environ.get(CACHE_ENV, "").strip()
        if setting.lower() in ("off", "0", "false", "no"):
            return None
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = setting or base / "neuromech" / "jax"
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path
