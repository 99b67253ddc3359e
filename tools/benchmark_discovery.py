"""Time to rediscover linear regression: the README demo for several seeds.

Each seed runs `experiments/linear_regression.py` in a fresh subprocess (so
JAX compile time is included, as a user sees it) and is reported with wall
time, CPU time (user + system of the child), individuals, individuals/s and
whether linear regression was discovered (select > 0.9999 and final >=
0.9999). Then a profile of where the time went, from the run's own timers:
mutation + selection, FEC probe evaluation, hashing, cache lookups, full
evaluation, select/final evaluation, and the rest (Python overhead, logging,
checkpoints, JAX start-up).

    python tools/benchmark_discovery.py --seeds=1,2,3
    python tools/benchmark_discovery.py --seeds=1 --extra=--children_per_step=100,--early_stop=false
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SEEDS = flags.DEFINE_list("seeds", ["1", "2", "3"], "seeds to run")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/benchmark_discovery", "one subdirectory per seed")
_MAX_MINUTES = flags.DEFINE_float("max_minutes", 30.0, "wall budget per seed")
_EXTRA = flags.DEFINE_list("extra", [], "extra flags for experiments/linear_regression.py")
_JSON = flags.DEFINE_string("json", "", "also write the table and profile here")

# Profile rows: (label, timer names summed).
PHASES = (("select+mutate", ("select_mutate",)), ("FEC probe eval", ("probe",)), ("FEC hashing", ("hash",)),
          ("FEC cache", ("cache",)), ("full eval", ("full",)), ("select/final eval", ("select", "final")))


def run_seed(seed: int) -> dict:
    out = os.path.join(_OUTPUT_DIR.value, f"seed_{seed}")
    os.makedirs(out, exist_ok=True)
    for name in ("checkpoint.json", "results.json"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "linear_regression.py"), f"--seed={seed}",
           f"--output_dir={out}", "--resume=no", f"--max_minutes={_MAX_MINUTES.value}", *_EXTRA.value]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(os.path.join(out, "log.txt"), "w", encoding="utf-8") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row = {"seed": seed, "rc": rc, "wall_s": wall, "cpu_s": cpu}
    path = os.path.join(out, "results.json")
    if rc == 0 and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
        n = res["counters"]["individuals"]
        row.update(individuals=n, indivs_per_s=n / max(res["elapsed_seconds"], 1e-9),
                   experiments=res["num_experiments"], select=res["select_fitness"], final=res["final_fitness"],
                   discovered=res["select_fitness"] > 0.9999 and res["final_fitness"] >= 0.9999,
                   run_s=res["elapsed_seconds"], profile=res.get("profile", {}))
    return row


def main(argv: list[str]) -> None:
    del argv
    rows = []
    for seed in _SEEDS.value:
        row = run_seed(int(seed))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
    print("\n| seed | discovered | experiments | wall s | CPU s | individuals | indivs/s | select | final |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "individuals" not in r:
            print(f"| {r['seed']} | run failed (rc {r['rc']}) | | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | | | | |")
            continue
        print(f"| {r['seed']} | {'yes' if r['discovered'] else 'no'} | {r['experiments']} | {r['wall_s']:.0f} | "
              f"{r['cpu_s']:.0f} | {r['individuals']} | {r['indivs_per_s']:.0f} | {r['select']:.6f} | "
              f"{r['final']:.6f} |")
    done = [r for r in rows if "individuals" in r]
    if done:
        print(f"\nmedian wall {statistics.median(r['wall_s'] for r in done):.0f} s, median CPU "
              f"{statistics.median(r['cpu_s'] for r in done):.0f} s, discovered "
              f"{sum(r['discovered'] for r in done)}/{len(done)}")
        print("\nwhere the time went (share of the run's wall time, summed over seeds):")
        total = sum(r["run_s"] for r in done)
        accounted = 0.0
        for label, names in PHASES:
            secs = sum(r["profile"].get(n, 0.0) for r in done for n in names)
            accounted += secs
            print(f"  {label:<18} {secs:8.1f} s  {100 * secs / total:5.1f} %")
        print(f"  {'other (Python)':<18} {total - accounted:8.1f} s  {100 * (total - accounted) / total:5.1f} %")
    if _JSON.value:
        with open(_JSON.value, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
