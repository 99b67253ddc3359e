"""tools/benchmark_throughput.py --backends with the native backend beside xla."""

from __future__ import annotations

import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "tools" / "benchmark_throughput.py"


def test_native_beside_xla_in_one_run():
    """Both configs, tiny, float64: per-backend wall and CPU figures, the
    native/xla ratio, and the native fitness equal to xla's (the demo and
    baseline op sets hold no transcendental op; the baseline's accuracy
    tasks' sigmoid may differ by an ulp, far below the bound)."""
    out = subprocess.run([sys.executable, str(BENCH), "--backends=xla,native", "--programs=8", "--repeats=1",
                          "--dtype=float64", "--baseline_scale=0.01"], capture_output=True, text=True,
                         cwd=BENCH.parents[1], timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = dict(kv.split("=", 1) for kv in out.stdout.strip().splitlines()[-1].split())
    for name in ("demo", "baseline"):
        for backend in ("xla", "native"):
            assert float(summary[f"{name}_{backend}_steps_per_s"]) > 0
            assert float(summary[f"{name}_{backend}_steps_per_cpu_s"]) > 0
        assert float(summary[f"{name}_native_over_xla"]) > 0
        assert float(summary[f"{name}_native_max_fitness_diff"]) < 1e-9
    assert out.stdout.count("native/xla:") == 2
