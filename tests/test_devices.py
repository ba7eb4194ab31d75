"""The JAX runtime setup: the on-disk compilation cache."""

import os
import subprocess
import sys

PROGRAM = """
import jax, jax.numpy as jnp, neuromech
path = neuromech.use_compilation_cache()
jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.ones(3)).block_until_ready()
print(path)
"""


def _run(env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION", "NEUROMECH_COMPILATION"))}
    # Cache even a program that compiles in milliseconds (JAX's default floor is 1 s).
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", XDG_CACHE_HOME=str(tmp_path / "xdg"), **env_extra)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_compiled_programs_are_kept_on_disk_where_asked(tmp_path):
    folder = tmp_path / "cache"
    assert _run({"NEUROMECH_COMPILATION_CACHE": str(folder)}, tmp_path) == str(folder)
    assert any(folder.iterdir()), "no compiled program was written to the cache"


def test_the_default_folder_is_under_the_user_cache_and_off_turns_it_off(tmp_path):
    assert _run({}, tmp_path) == str(tmp_path / "xdg" / "neuromech" / "jax")
    assert any((tmp_path / "xdg" / "neuromech" / "jax").iterdir())
    assert _run({"NEUROMECH_COMPILATION_CACHE": "off"}, tmp_path / "other") == "None"
    assert not (tmp_path / "other" / "xdg").exists()
