"""Use every CPU core: XLA runs one CPU device by default, and a population splits across devices."""

from __future__ import annotations

import os
import re


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
