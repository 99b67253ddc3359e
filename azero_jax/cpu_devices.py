"""Use every CPU core: one XLA host device per core.

XLA:CPU runs each small interpreter kernel on one thread, so a 2-core machine
evaluating on one device leaves a core idle. Split into several host devices,
the batched evaluator shards the program axis over them (`shard_map`, results
bit-identical to one device) and both cores compute: measured 1.8x the demo
train steps/s on the 2-core development machine (3.7 M -> 6.8 M).

XLA reads its flags once, when JAX starts its CPU backend, so the entry
points call `use_cpu_cores()` before anything imports `jax`. This module
itself never imports JAX. It does nothing when the user already set
`--xla_force_host_platform_device_count` in `XLA_FLAGS`, and
`AZERO_JAX_CPU_DEVICES=N` overrides the count (1 = a single device). On a
machine with a GPU/TPU the host devices are unused: JAX evaluates there.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"
ENV = "AZERO_JAX_CPU_DEVICES"
# Per-device shards below ~32 programs cost more in overhead than they gain.
MAX_DEVICES = 8


def default_count() -> int:
    """Usable cores (the process's CPU affinity where the OS reports it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEVICES))


def use_cpu_cores(count: int | None = None) -> int:
    """Asks XLA for `count` host devices (default: env var, else the cores,
    at most MAX_DEVICES). Returns the count set, or 0 when nothing was
    changed (JAX already imported, or the user's XLA_FLAGS already say it)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or _FLAG in flags:
        return 0
    if count is None:
        raw = os.environ.get(ENV, "").strip()
        if raw:
            try:
                count = int(raw)
            except ValueError:
                raise ValueError(f"{ENV} must be a positive integer, got {raw!r}") from None
            if count < 1:
                raise ValueError(f"{ENV} must be a positive integer, got {raw!r}")
        else:
            count = default_count()
    if count <= 1:
        return 0
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={int(count)}".strip()
    return int(count)


def use_cpu_cores_or_exit() -> int:
    """`use_cpu_cores()` for the entry points, which call it before their
    error boundary exists: a bad AZERO_JAX_CPU_DEVICES is one `error:` line
    and exit status 2, like any other bad input."""
    try:
        return use_cpu_cores()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
