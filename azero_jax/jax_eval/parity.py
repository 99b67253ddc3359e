"""Differential parity check: JAX interpreter vs the NumPy reference.

Random programs over all 65 ops (random addresses and lengths, constants
including NaN/inf/huge values), tiny regression and classification tasks
whose inputs provoke overflow; every program is run by JAX on all tasks and by
the reference on one task (program i on task i mod T, so the slow side stays
cheap). Used by tests/test_jax_parity*.py and runnable for large counts:

    python -m azero_jax.jax_eval.parity --programs=100000 --features=4
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import generators, reference
from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS, Algorithm, Instruction, MemoryShape
from azero_jax.tasks import Task

SPECIAL = (np.nan, np.inf, -np.inf, 1e300, -1e300, 1e30, -1e30, 0.0, -0.0, 1e-300, 3.4e38, -3.4e38)
SPECIAL_F32 = tuple(v for v in SPECIAL if not np.isfinite(v) or v == 0.0 or 1e-38 < abs(v) < 3.4e38)


def random_tasks(rng: np.random.Generator, features: int, num_tasks: int = 6, num_train: int = 8,
                 num_valid: int = 4) -> list[Task]:
    """Linear tasks (x ~ N(0,1) times a per-task scale, y = x @ w), alternating
    regression / classification, 1-2 epochs; some scales provoke overflow."""
    tasks = []
    scales = (1.0, 10.0, 1e3, 1e-3, 1e20, 1.0)
    for i in range(num_tasks):
        scale = scales[i % len(scales)]
        x = rng.normal(size=(num_train + num_valid, features)) * scale
        y = x @ rng.normal(size=features)
        classification = i % 2 == 1
        if classification:
            y = (y > 0).astype(np.float64)
        tasks.append(Task(x[:num_train], y[:num_train], x[num_train:], y[num_train:],
                          eval_type="accuracy" if classification else "rms",
                          num_train_epochs=1 + (i % 3 == 2), data_seed=100 + i, index=i))
    return tasks


def _spice(rng: np.random.Generator, instr: Instruction) -> Instruction:
    """With some probability replace constants by special values (indices of
    the element-set ops stay valid fractions in [0, 1))."""
    if rng.random() > 0.3:
        return instr
    fields = {}
    spec = instr.spec
    for name in spec.consts[spec.index_consts:]:
        if rng.random() < 0.6:
            pool = SPECIAL if name == "d" else SPECIAL_F32
            fields[name] = float(pool[rng.integers(len(pool))])
    return dataclasses.replace(instr, **fields) if fields else instr


def random_programs(rng: np.random.Generator, memory: MemoryShape, count: int, max_size: int = 12,
                    op_ids: Sequence[int] = ops_lib.ALL_OPS, special: bool = True) -> list[Algorithm]:
    ops = {c: tuple(op_ids) for c in COMPONENTS}
    out = []
    for _ in range(count):
        sizes = {c: int(rng.integers(0, max_size + 1)) for c in COMPONENTS}
        algo = generators.random_algorithm(rng, memory, ops, sizes)
        if special:
            algo = Algorithm(**{c: tuple(_spice(rng, i) for i in algo.component(c)) for c in COMPONENTS})
        out.append(algo)
    return out


@dataclasses.dataclass
class ParityResult:
    programs: int
    pairs: int
    fitness_mismatches: int
    step_mismatches: int
    max_abs_diff: float
    nonzero_fitness: int
    early_stops: int
    jax_seconds: float
    reference_seconds: float
    examples: list

    def ok(self) -> bool:
        return self.fitness_mismatches == 0 and self.step_mismatches == 0


def run_parity(num_programs: int, features: int = 4, memory: MemoryShape | None = None, *, seed: int = 0,
               dtype: str = "float64", tol: float = 1e-9, chunk: int = 4096, max_size: int = 12,
               op_ids: Sequence[int] = ops_lib.ALL_OPS, special: bool = True,
               tasks: list[Task] | None = None) -> ParityResult:
    """Evaluates `num_programs` random programs both ways; see module doc."""
    from azero_jax import jax_eval

    rng = np.random.default_rng(seed)
    memory = (memory or MemoryShape(4, 3, 1, features)).with_features(features)
    tasks = tasks or random_tasks(rng, features)
    arrays = jax_eval.TaskArrays(tasks)
    subsets = {c: tuple(op_ids) for c in COMPONENTS}
    mism = steps_bad = nonzero = stops = 0
    max_diff = 0.0
    t_jax = t_ref = 0.0
    examples = []
    done = 0
    while done < num_programs:
        n = min(chunk, num_programs - done)
        programs = random_programs(rng, memory, n, max_size, op_ids, special)
        t0 = time.perf_counter()
        fit, det = jax_eval.evaluate_batch(programs, arrays, memory, op_subsets=subsets, dtype=dtype,
                                           seed=seed, return_details=True, batch_size=chunk)
        t_jax += time.perf_counter() - t0
        t0 = time.perf_counter()
        for i, prog in enumerate(programs):
            t = (done + i) % len(tasks)
            r = reference.evaluate_task(prog, tasks[t], memory, seed=seed)
            diff = abs(fit[i, t] - r.fitness)
            if not diff <= tol:
                mism += 1
                if len(examples) < 5:
                    examples.append((done + i, t, float(fit[i, t]), r.fitness, prog))
            if not np.isnan(diff):
                max_diff = max(max_diff, float(diff))
            if det.train_steps[i, t] != r.train_steps or bool(det.stopped_early[i, t]) != r.stopped_early:
                steps_bad += 1
            nonzero += r.fitness > fitness_lib.MIN_FITNESS
            stops += r.stopped_early
        t_ref += time.perf_counter() - t0
        done += n
    return ParityResult(num_programs, num_programs, mism, steps_bad, max_diff, nonzero, stops, t_jax, t_ref,
                        examples)


def main(argv: Sequence[str]) -> None:
    del argv
    from absl import flags

    f = flags.FLAGS
    memory = MemoryShape(*[int(v) for v in f.memory.split(",")], features=f.features)
    res = run_parity(f.programs, f.features, memory, seed=f.seed, dtype=f.dtype, tol=f.tol, chunk=f.chunk)
    for ex in res.examples:
        print("MISMATCH program", ex[0], "task", ex[1], "jax", ex[2], "ref", ex[3])
        print(ex[4])
    print(f"programs={res.programs} fitness_mismatches={res.fitness_mismatches} "
          f"step_mismatches={res.step_mismatches} max_abs_diff={res.max_abs_diff:.3g} "
          f"nonzero_fitness={res.nonzero_fitness} early_stops={res.early_stops} "
          f"jax_s={res.jax_seconds:.1f} reference_s={res.reference_seconds:.1f} ok={res.ok()}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_integer("programs", 10000, "number of random programs")
    flags.DEFINE_integer("features", 4, "feature size F")
    flags.DEFINE_string("memory", "4,3,1", "scalars,vectors,matrices")
    flags.DEFINE_integer("seed", 0, "seed for programs, tasks and the random-op stream")
    flags.DEFINE_string("dtype", "float64", "float64 or float32")
    flags.DEFINE_float("tol", 1e-9, "fitness tolerance")
    flags.DEFINE_integer("chunk", 4096, "programs per JAX batch")
    app.run(main)
