"""Atomic JSON checkpoints of a search run (resume after a kill).

A checkpoint is one JSON file written atomically (`azero_jax.fileio`: temp
file in the same directory, fsync, os.replace), so a kill mid-write leaves
the previous checkpoint intact. It stores a hash of the search-defining config so a resume
with a different search space fails loudly instead of silently mixing runs.
What goes inside is the driver's business (`azero_jax.experiment`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import numpy as np

from azero_jax import fileio

FORMAT = "azero-jax-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupt, other format or
    version, or written by a run with a different config."""


def config_hash(data: dict[str, Any]) -> str:
    """Stable SHA-256 of a JSON-able dict (sorted keys, exact float repr)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def array_to_json(a: np.ndarray) -> dict[str, Any]:
    """An array inside a checkpoint, bit for bit: dtype (with its byte
    order), shape and base64 bytes; large tables stay small and fast to
    encode (a list of 100,000 number triples took ~0.25 s per checkpoint)."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def array_from_json(d: dict[str, Any]) -> np.ndarray:
    """The array `array_to_json` wrote (a writable copy)."""
    return np.frombuffer(base64.b64decode(d["data"]), dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


def save(path: str | os.PathLike[str], state: dict[str, Any], *, config_digest: str) -> None:
    """Writes `state` (JSON-able) with the format header and config hash,
    atomically: readers see either the old or the new checkpoint, never a mix."""
    payload = {"format": FORMAT, "version": VERSION, "config_hash": config_digest, "state": state}
    text = json.dumps(payload, allow_nan=True, separators=(",", ":"))
    fileio.atomic_write_text(path, text, prefix=".ckpt-")


def load(path: str | os.PathLike[str], *, config_digest: str | None = None) -> dict[str, Any]:
    """The `state` of a checkpoint; CheckpointError with the reason if the
    file is missing, corrupt, of another format/version, or (given
    `config_digest`) written for a different config."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {source!r} does not exist (nothing to resume)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {source!r} cannot be read: {e}") from None
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"checkpoint {source!r} is corrupt (invalid JSON: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {source!r} is not an {FORMAT} file")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {source!r} has version {payload.get('version')!r}; "
                              f"this code reads version {VERSION}")
    if not isinstance(payload.get("state"), dict):
        raise CheckpointError(f"checkpoint {source!r} is corrupt (no state object)")
    if config_digest is not None and payload.get("config_hash") != config_digest:
        raise CheckpointError(
            f"checkpoint {source!r} was written by a run with a different search config "
            f"(config hash {str(payload.get('config_hash'))[:12]}…, this config {config_digest[:12]}…); "
            "resume with the same config or use a fresh output directory")
    return payload["state"]
