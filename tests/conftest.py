"""Test configuration: use both CPU cores as JAX devices (set before any JAX computation); no
on-disk compilation cache for the CLI commands run in-process (each test run compiles afresh,
as on a clean machine; test_devices checks the cache itself)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("NEUROMECH_COMPILATION_CACHE", "off")
