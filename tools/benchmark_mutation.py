"""Host cost of making a step's children, object path vs array path, side by side.

One job: measure, in one run, the host CPU time per child of
  reference:  `Mutator.mutate` per child (Algorithm objects) + `compile_programs` (packing)
  arrays:     `ArrayMutator.mutate` over the step's parents (`ProgramArrays`) + `compile_programs`
              of the arrays (the same `CompiledBatch`, a transpose)
on the demo config (population 1000 random programs of sizes 10/2/8, 250 children per step)
and the baseline config (memory 5/9/2, F=16, its op sets and mutation types, sizes up to
7/11/23; population 100 of mid-search sizes drawn uniformly in [min, max - 1]; 1, 10 and 100
children per step). Parents are drawn uniformly from a fixed population (selection is not
timed: it is the same on both paths). Prints a table (mutation and packing us per child, wall
and CPU seconds) and, last, a key=value line. Issue 15's target: <= 20 us of host time per
child for the whole host side; mutation + packing is part of it.

    python tools/benchmark_mutation.py
    python tools/benchmark_mutation.py --configs=demo --children=50000

Measured on a 2-core CPU (us of host CPU per child, reference -> arrays, mutation + packing):
demo x250 36.9 -> 1.95 (18.9x); baseline x1 130 -> 89, x10 39.8 -> 16.2, x100 29.8 -> 3.1. The
array path costs a fixed ~0.1 ms per call plus ~1 us per child: it meets the target from ~10
children per step on.
"""

from __future__ import annotations

import time

import numpy as np
from absl import app, flags

from azero_jax import generators
from azero_jax import program_arrays as pa
from azero_jax.experiment import presets
from azero_jax.jax_eval.compile import compile_programs
from azero_jax.program import COMPONENTS
from azero_jax.search import mutator as mutator_lib
from azero_jax.search.array_mutator import ArrayMutator

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["demo", "baseline"], "configs to measure")
flags.DEFINE_list("demo_children", ["250"], "demo: children per step (the preset's children_per_step is 250)")
flags.DEFINE_list("baseline_children", ["1", "10", "100"], "baseline: children per step")
flags.DEFINE_integer("children", 10000, "children per measurement and side")
flags.DEFINE_integer("repeats", 3, "measurements per side (the best is reported; the machine may be shared)")
flags.DEFINE_integer("seed", 0, "random seed of populations, selections and mutations")
TARGET_US = 20.0
FEATURES = {"demo": 4, "baseline": 16}


def population(name: str, rng: np.random.Generator) -> tuple[mutator_lib.MutatorConfig, list]:
    experiment = presets.get_preset(name)
    config = experiment.mutator_config(FEATURES[name])
    if name == "demo":
        make = mutator_lib.InitialPopulation.from_config("random", experiment.init_sizes, config)
        return config, [make(rng) for _ in range(experiment.population_size)]
    ops = {c: config.ops(c) for c in COMPONENTS}
    programs = []
    for _ in range(experiment.population_size):
        sizes = {c: int(rng.integers(lo, hi)) for c, lo, hi in zip(COMPONENTS, config.size_min, config.size_max,
                                                                     strict=True)}
        programs.append(generators.random_algorithm(rng, config.memory, ops, sizes))
    return config, programs


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure(step, selections: np.ndarray, seed: int) -> dict:
    """Runs `step(rng, winners)` -> (mutate (wall, cpu), pack (wall, cpu)) over all selections."""
    best = None
    for _ in range(FLAGS.repeats):
        rng = np.random.default_rng(seed)
        step(rng, selections[0])  # warm-up (caches, first-call imports)
        totals = np.zeros(4)
        for winners in selections:
            totals += step(rng, winners)
        if best is None or totals[1] + totals[3] < best[1] + best[3]:
            best = totals
    n = selections.size
    return dict(mutate_us=1e6 * best[1] / n, pack_us=1e6 * best[3] / n, us=1e6 * (best[1] + best[3]) / n,
                wall_us=1e6 * (best[0] + best[2]) / n, wall_s=best[0] + best[2], cpu_s=best[1] + best[3], children=n)


def reference_step(mutator: mutator_lib.Mutator, programs: list, memory):
    def step(rng, winners):
        t0 = _clock()
        children = [mutator.mutate(rng, programs[w]) for w in winners]
        t1 = _clock()
        compile_programs(children, memory)
        t2 = _clock()
        return np.array([t1[0] - t0[0], t1[1] - t0[1], t2[0] - t1[0], t2[1] - t1[1]])
    return step


def array_step(mutator: ArrayMutator, arrays: pa.ProgramArrays):
    def step(rng, winners):
        t0 = _clock()
        children = mutator.mutate(rng, arrays, winners)
        t1 = _clock()
        compile_programs(children, mutator.config.memory)
        t2 = _clock()
        return np.array([t1[0] - t0[0], t1[1] - t0[1], t2[0] - t1[0], t2[1] - t1[1]])
    return step


def main(argv):
    del argv
    rows, summary = [], {}
    print(f"{'config':9s} {'per step':>8s} {'side':9s} {'mutate':>9s} {'pack':>9s} {'total':>9s} {'wall':>9s} "
          f"{'wall_s':>7s} {'cpu_s':>7s} {'children':>8s}   (us of host CPU per child; wall us per child)")
    for name in FLAGS.configs:
        rng = np.random.default_rng(FLAGS.seed)
        config, programs = population(name, rng)
        reference, arrays_mutator = mutator_lib.Mutator(config), ArrayMutator(config)
        arrays = pa.from_algorithms(programs, arrays_mutator.capacity)
        for per_step in (int(c) for c in getattr(FLAGS, f"{name}_children")):
            steps = max(1, FLAGS.children // per_step)
            selections = rng.integers(0, len(programs), size=(steps, per_step))
            results = {"reference": measure(reference_step(reference, programs, config.memory), selections, 1),
                       "arrays": measure(array_step(arrays_mutator, arrays), selections, 1)}
            for side, r in results.items():
                print(f"{name:9s} {per_step:8d} {side:9s} {r['mutate_us']:9.2f} {r['pack_us']:9.2f} {r['us']:9.2f} "
                      f"{r['wall_us']:9.2f} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['children']:8d}")
                summary[f"{name}_{per_step}_{side}_us"] = round(r["us"], 2)
            speedup = results["reference"]["us"] / results["arrays"]["us"]
            print(f"{'':9s} {'':8s} {'speedup':9s} {speedup:9.1f}x")
            summary[f"{name}_{per_step}_speedup"] = round(speedup, 1)
            rows.append((name, per_step, results["arrays"]["us"]))
    met = ",".join(f"{n}_{k}:{'yes' if us <= TARGET_US else 'no'}" for n, k, us in rows)
    print("; ".join(f"{n} x{k}: {us:.2f} us/child" for n, k, us in rows), f"(target <= {TARGET_US:g} us for the whole "
          "host side)")
    print(" ".join(f"{k}={v}" for k, v in summary.items()), f"target_us={TARGET_US:g}", f"arrays_within_target={met}")


if __name__ == "__main__":
    app.run(main)
