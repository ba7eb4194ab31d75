"""Test configuration: use both CPU cores as JAX devices (set before any JAX computation)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
