"""The fingerprint of a simulation job: what must match for finished parts to be reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np

from ..io import atomic_path

MANIFEST_VERSION = 1


def array_digest(array) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def tree_digest(tree) -> str:
    """SHA-256 of a pytree (a model or a stimulus): its structure, static fields and every leaf value.

    Two models built the same way hash the same; any changed constant, channel or static setting
    changes the hash.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    h = hashlib.sha256(str(treedef).encode())
    for leaf in leaves:
        try:
            h.update(array_digest(np.asarray(leaf)).encode())
        except (TypeError, ValueError):
            h.update(repr(leaf).encode())
    return h.hexdigest()


def job_digest(settings: dict) -> str:
    """SHA-256 of the settings (a JSON-serialisable dict), independent of key order."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def write_manifest(path: Path, manifest: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "job" in manifest else None


def describe_differences(old: dict, new: dict) -> str:
    """``duration 500.0 → 1000.0; conductances differ`` for the settings that changed."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key.endswith("_sha256"):
            out.append(f"{key[: -len('_sha256')]} differ")
        else:
            out.append(f"{key} {a!r} → {b!r}")
    return "; ".join(out) or "the manifest format changed"
