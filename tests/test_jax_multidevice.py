"""Sharding the program axis over 4 (fake CPU) devices == one device, bit for bit
in float64 (fitness and every detail array); float32 to ~1 ulp.

XLA_FLAGS must be set before JAX initializes, so the check runs in a fresh
subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import numpy as np, jax
    from azero_jax import jax_eval, ops
    from azero_jax.jax_eval.compile import batch_bucket
    from azero_jax.jax_eval.parity import random_programs, random_tasks
    from azero_jax.program import MemoryShape
    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    memory = MemoryShape(4, 3, 2, 4)
    tasks = random_tasks(rng, 4, num_tasks=3)
    progs = random_programs(rng, memory, 50, max_size=8, op_ids=ops.ALL_OPS)
    seeds = rng.integers(0, 2**32, 50)  # one random stream per program, sharded with it
    four, d4 = jax_eval.evaluate_batch(progs, tasks, memory, return_details=True, seed=seeds)
    one, d1 = jax_eval.evaluate_batch(progs, tasks, memory, devices=jax.devices()[:1], return_details=True,
                                      batch_size=batch_bucket(50, 4), seed=seeds)
    np.testing.assert_array_equal(four, one)
    for k in d1._fields:
        np.testing.assert_array_equal(getattr(d4, k), getattr(d1, k), err_msg=k)
    f4 = jax_eval.evaluate_batch(progs, tasks, memory, dtype="float32")
    f1 = jax_eval.evaluate_batch(progs, tasks, memory, dtype="float32", devices=jax.devices()[:1])
    # float32: XLA's vectorized f32 exp/log round the last ulp differently in
    # loop tails, so per-device array sizes may move a result by ~1 ulp.
    np.testing.assert_allclose(f4, f1, rtol=1e-5, atol=1e-6)
    print("OK", (four > 0).sum())
""")


def test_four_fake_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout


_CPU_DEVICES_SCRIPT = textwrap.dedent("""
    import os, sys
    from azero_jax import cpu_devices
    n = cpu_devices.use_cpu_cores(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    import jax
    print(n, len(jax.devices("cpu")))
""")


def _cpu_devices(*args, **env_changes) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "AZERO_JAX_CPU_DEVICES")}
    env.update(env_changes, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _CPU_DEVICES_SCRIPT, *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0 or "must be a positive integer" in proc.stderr, proc.stderr[-2000:]
    return proc.stdout.strip() if proc.returncode == 0 else proc.stderr


def test_use_cpu_cores_splits_the_host_and_respects_the_user():
    assert _cpu_devices("3") == "3 3"
    assert _cpu_devices(AZERO_JAX_CPU_DEVICES="2") == "2 2"
    assert _cpu_devices(AZERO_JAX_CPU_DEVICES="1") == "0 1"
    # The user's own XLA flag wins.
    assert _cpu_devices("3", XLA_FLAGS="--xla_force_host_platform_device_count=2") == "0 2"
    assert "AZERO_JAX_CPU_DEVICES must be a positive integer" in _cpu_devices(AZERO_JAX_CPU_DEVICES="x")


_SEARCH_SCRIPT = textwrap.dedent("""
    import numpy as np, jax
    from azero_jax import experiment
    assert len(jax.devices()) == 2, jax.devices()
    cfg = experiment.get_preset("tiny").replace(backend="xla", children_per_step=5, max_experiments=1)
    r = experiment.run_experiments(cfg, output_dir="OUT", log=None)
    print(repr(r.search_fitness), repr(r.select_fitness), r.counters["train_steps"])
""")


def test_search_on_two_host_devices_equals_one(tmp_path):
    """The batched search evaluator sharded over 2 host devices gives the
    same run as on one device (float64)."""
    out = []
    for n in ("1", "2"):
        script = _SEARCH_SCRIPT.replace("OUT", str(tmp_path / n)).replace("== 2", f"== {n}")
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out.append(proc.stdout.strip())
    assert out[0] == out[1]
