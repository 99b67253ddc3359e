"""`CachedEvaluator`: multi-task evaluation with train budget, FEC, hurdles
and counters (spec §8-§9) on top of any `Backend`.

Everything that is not "run a program on a task" lives here, once: the
train-budget example counts (an untrained job scores the minimum fitness
without running, as in the reference), FEC probes -> hash -> LRU lookup, the
combination of per-task fitnesses, hurdles, the individuals' random streams
and the counters. The backend only runs the jobs it is given.

Batching vs the reference's sequential order: lookups are replayed in
(program, task) order and a miss inserts a placeholder at once, so a later
identical candidate in the same batch is a hit exactly as it would be
sequentially (and an entry forgotten mid-batch triggers a second full
evaluation, as sequentially). Full evaluations are deterministic (counter-based
random stream), so filling the placeholders afterwards gives the same fitness
values, cache contents and train-step counts as one-at-a-time evaluation.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import liveness
from azero_jax import rng as rng_lib
from azero_jax.evaluation.base import Backend, Counters, Jobs, check_search_task_size
from azero_jax.program_arrays import ProgramArrays, Programs, count
from azero_jax.search.fec import FEC_RANDOM_SEED, FECSpec, fec_key, probe_digest
from azero_jax.search.fec_cache import FECCache
from azero_jax.search.train_budget import TrainBudget

PROBE_MEMO_SIZE = 200_000  # programs (~50 MB with 10 tasks); the memo starts over beyond this
_STATE_KEYS = ("num_individuals", "num_train_steps", "num_full_evaluations", "cache")


class CachedEvaluator:
    """The search's `Evaluator` (see `azero_jax.evaluation.base`).

    Random-set ops: every individual's full evaluations draw from a stream of
    their own, keyed by (`seed`, its number among this evaluator's
    individuals), as the reference's shared stream gives every evaluation new
    draws; FEC probes use the reference's fixed probe seed.

    Hurdles (the paper's; off by default, as in the reference): with
    `hurdle_tasks = k`, once `set_population` has given the population's
    fitnesses, every candidate is first evaluated on the first k tasks only;
    one whose combined fitness there is below the `hurdle_percentile`
    percentile of the population's unique fitnesses gets that partial fitness
    and is not evaluated on the remaining tasks (saving their cost).
    """

    def __init__(self, backend: Backend, *, fec_spec: FECSpec | None = None,
                 train_budget: TrainBudget | None = None, combination: str = fitness_lib.MEAN,
                 hurdle_tasks: int = 0, hurdle_percentile: float = 75.0, seed: int = 0,
                 probe_memo: bool | None = None):
        self.backend = backend
        self.tasks = list(backend.tasks)
        if not self.tasks:
            raise ValueError("an evaluator needs at least one task")
        for t in self.tasks:
            check_search_task_size(f"task {t.name or t.index}", t.num_train * t.num_train_epochs, t.num_valid,
                                   fec_spec)
        fitness_lib.combine([0.0], combination)  # validates the mode
        if not 0 <= int(hurdle_tasks) < len(self.tasks) and hurdle_tasks:
            raise ValueError(f"hurdle_tasks must be in [1, {len(self.tasks) - 1}] (or 0 = off), got {hurdle_tasks}")
        if not 0.0 <= float(hurdle_percentile) <= 100.0:
            raise ValueError(f"hurdle_percentile must lie in [0, 100], got {hurdle_percentile}")
        self.combination = combination
        self.seed = int(seed)
        self.fec_spec = fec_spec
        self.cache = FECCache(fec_spec) if fec_spec is not None else None
        # live-code key -> (3, tasks) uint64: probe digest, probe train steps, known; see `probe_keys`.
        # None: the backend's `probe_memo` attribute (whether the memo's keys cost less than the
        # probes they save on that backend), else on.
        if probe_memo is None:
            probe_memo = bool(getattr(backend, "probe_memo", True))
        self.probe_memo: dict[int, np.ndarray] | None = {} if probe_memo and fec_spec is not None else None
        # The live-code key depends on the task layout (binary/regression: s1; multiclass: v2): the memo
        # needs one layout for all tasks.
        layouts = {t.eval_type == fitness_lib.MULTICLASS for t in self.tasks}
        self._multiclass = layouts == {True}
        if len(layouts) > 1:
            self.probe_memo = None
        self.num_probes_skipped = 0
        self.train_budget = train_budget
        self.hurdle_tasks = int(hurdle_tasks)
        self.hurdle_percentile = float(hurdle_percentile)
        self.hurdle_threshold: float | None = None
        self.num_individuals = 0
        self.num_train_steps = 0
        self.num_full_evaluations = 0
        self.num_hurdle_stops = 0
        self._max_train = np.array([t.num_train * t.num_train_epochs for t in self.tasks], dtype=np.int64)
        self._task_index = np.array([t.index for t in self.tasks], dtype=np.int64)
        # Wall seconds per phase (profiling only; never affects results).
        self.timers: dict[str, float] = collections.defaultdict(float)

    # -- counters and state --
    @property
    def fec_hits(self) -> int:
        return self.cache.hits if self.cache is not None else 0

    @property
    def fec_misses(self) -> int:
        return self.cache.misses if self.cache is not None else 0

    def counters(self) -> Counters:
        return Counters(individuals=self.num_individuals, train_steps=self.num_train_steps,
                        full_evaluations=self.num_full_evaluations, fec_hits=self.fec_hits,
                        fec_misses=self.fec_misses, hurdle_stops=self.num_hurdle_stops)

    def to_state(self) -> dict[str, Any]:
        """Counters and the FEC cache (JSON-able): what a resumed search needs
        to continue exactly (the individuals' random streams are numbered by
        `num_individuals`)."""
        return {"num_individuals": self.num_individuals, "num_train_steps": self.num_train_steps,
                "num_full_evaluations": self.num_full_evaluations, "num_hurdle_stops": self.num_hurdle_stops,
                "cache": None if self.cache is None else self.cache.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restores `to_state()`'s snapshot (KeyError/TypeError/ValueError on a
        malformed one). `num_hurdle_stops` may be missing (checkpoints written
        before it was saved): it then restarts at 0."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"evaluator state lacks {', '.join(missing)}")
        if (state["cache"] is None) != (self.cache is None):
            raise ValueError("evaluator state and evaluator disagree on whether FEC is on")
        self.num_individuals = int(state["num_individuals"])
        self.num_train_steps = int(state["num_train_steps"])
        self.num_full_evaluations = int(state["num_full_evaluations"])
        self.num_hurdle_stops = int(state.get("num_hurdle_stops", 0))
        if state["cache"] is not None:
            self.cache = FECCache.from_state(state["cache"])

    # -- hurdles --
    def set_population(self, fitnesses: np.ndarray) -> None:
        """Updates the hurdle from the current population (the evolution loop
        calls this before each batch): the percentile of its unique finite
        fitnesses. No-op when hurdles are off."""
        if not self.hurdle_tasks:
            return
        values = np.unique(np.asarray(fitnesses, dtype=np.float64))
        values = values[np.isfinite(values)]
        self.hurdle_threshold = float(np.percentile(values, self.hurdle_percentile)) if values.size else None

    # -- evaluation --
    def probe_keys(self, programs: Programs, jobs: Jobs) -> tuple[np.ndarray, np.ndarray]:
        """FEC keys (uint64) and probe train steps (int64) per job.

        Probe memo (array batches, `probe_memo` on): a job whose program's
        live code (`liveness.live_code_keys`) was probed on the same task
        before reuses that probe's digest and train steps instead of running
        it: a probe depends on the live code only, so the keys, the cache's
        behaviour and every counter are exactly those of running it (the
        memo is not part of the state: a resumed run refills it)."""
        assert self.fec_spec is not None
        start = time.perf_counter()
        digest = np.zeros(len(jobs), np.uint64)
        steps = np.zeros(len(jobs), np.int64)
        todo = np.arange(len(jobs))
        memo = None
        if self.probe_memo is not None and isinstance(programs, ProgramArrays):
            live = liveness.live_code_keys(programs, multiclass=self._multiclass)
            if live is not None:
                # One memo entry per live code: per task (columns) the digest, train steps, known.
                keys, row = np.unique(live[jobs.program], return_inverse=True)
                keys = keys.tolist()
                entries = [self.probe_memo.get(k) for k in keys]
                t = len(self.tasks)
                memo = np.stack([e if e is not None else np.zeros((3, t), np.uint64) for e in entries])
                known = memo[row, 2, jobs.task] != 0
                digest[known] = memo[row[known], 0, jobs.task[known]]
                steps[known] = memo[row[known], 1, jobs.task[known]]
                todo = np.flatnonzero(~known)
                self.num_probes_skipped += len(jobs) - todo.size
        self.timers["probe_memo"] += time.perf_counter() - start
        if todo.size:
            start = time.perf_counter()
            probe_jobs = jobs.take(todo)
            probe = self.backend.probe(programs, probe_jobs, num_train=self.fec_spec.num_train_examples,
                                       num_valid=self.fec_spec.num_valid_examples, seed=FEC_RANDOM_SEED)
            self.timers["probe"] += time.perf_counter() - start
            start = time.perf_counter()
            digest[todo] = probe_digest(probe.errors, probe.lengths, self._task_index[probe_jobs.task])
            steps[todo] = probe.train_steps
            if memo is not None:
                r, task = row[todo], jobs.task[todo]
                memo[r, 0, task], memo[r, 1, task], memo[r, 2, task] = digest[todo], steps[todo], 1
                if len(self.probe_memo) > PROBE_MEMO_SIZE:
                    self.probe_memo.clear()
                for i in np.unique(r).tolist():
                    self.probe_memo[keys[i]] = memo[i].copy()  # not a view: the batch array is freed
            self.timers["hash"] += time.perf_counter() - start
        return fec_key(digest, jobs.num_train_examples), steps

    def full(self, programs: Programs, jobs: Jobs) -> tuple[np.ndarray, np.ndarray]:
        """Fitness and train steps per job; a job with no train examples (over
        the train budget) is not trained and gets the minimum fitness, as in
        the reference."""
        fitness = np.full(len(jobs), fitness_lib.MIN_FITNESS, dtype=np.float64)
        steps = np.zeros(len(jobs), dtype=np.int64)
        live = np.flatnonzero(jobs.num_train_examples > 0)
        if live.size:
            result = self.backend.full(programs, jobs.take(live))
            fitness[live] = result.fitness
            steps[live] = result.train_steps
        return fitness, steps

    def _evaluate_jobs(self, programs: Programs, jobs: Jobs) -> np.ndarray:
        """Per-job fitness: FEC probe + lookup (if on), then one batched full
        evaluation of the misses; counts train steps."""
        if self.cache is None:
            fitness, steps = self._full_counted(programs, jobs)
            return fitness
        keys, steps = self.probe_keys(programs, jobs)
        start = time.perf_counter()
        self.num_train_steps += int(steps.sum())
        found = self.cache.lookup_batch(keys)
        full_jobs = jobs.take(found.misses)
        self.timers["cache"] += time.perf_counter() - start
        try:
            fitness, steps = self._full_counted(programs, full_jobs)
        except BaseException:
            self.cache.cancel_batch()  # no fitness for the reservations: they go
            raise
        start = time.perf_counter()
        self.cache.fill_batch(fitness)
        out = found.values
        pending = np.flatnonzero(found.jobs >= 0)
        out[pending] = fitness[found.jobs[pending]]
        self.timers["cache"] += time.perf_counter() - start
        return out

    def _full_counted(self, programs: Programs, jobs: Jobs) -> tuple[np.ndarray, np.ndarray]:
        """`full`, timed and counted."""
        start = time.perf_counter()
        fitness, steps = self.full(programs, jobs)
        self.timers["full"] += time.perf_counter() - start
        self.num_full_evaluations += len(jobs)
        self.num_train_steps += int(steps.sum())
        return fitness, steps

    def interpreter_rate(self, programs: Programs, *, repeats: int = 2,
                         repeat_below_seconds: float = 1.0) -> tuple[int, float]:
        """The backend's own speed on `programs`: (train steps, seconds) of the
        fastest of up to `repeats` full evaluations on every task at full
        budget, as one batch (no FEC, no budget, nothing counted); a call
        that took `repeat_below_seconds` or more is not repeated. The
        search's train steps/s divided by steps/seconds is the fraction of
        the interpreter's rate the search achieves (the rest goes to the
        host, small batches and probes)."""
        n, t = count(programs), len(self.tasks)
        jobs = Jobs(np.repeat(np.arange(n), t), np.tile(np.arange(t), n), np.tile(self._max_train, n),
                    np.zeros(n * t, np.int64))
        best = (0, float("inf"))
        for _ in range(max(1, int(repeats))):
            start = time.perf_counter()
            result = self.backend.full(programs, jobs)
            seconds = time.perf_counter() - start
            if seconds < best[1]:
                best = (int(np.asarray(result.train_steps).sum()), seconds)
            if seconds >= repeat_below_seconds:
                break
        return best

    def _budgets(self, programs: Programs) -> np.ndarray:
        """(programs, tasks) train examples of each full evaluation."""
        if self.train_budget is None:
            return np.broadcast_to(self._max_train, (count(programs), len(self.tasks)))
        if isinstance(programs, ProgramArrays):
            return self.train_budget.train_examples_batch(programs, self._max_train)
        return np.array([[self.train_budget.train_examples(p, int(m)) for m in self._max_train.tolist()]
                         for p in programs], dtype=np.int64).reshape(len(programs), len(self.tasks))

    def evaluate(self, programs: Programs,
                 tasks: Sequence[Sequence[int]] | None = None) -> list[float]:
        """Combined fitness of each program (`Algorithm`s or a `ProgramArrays`
        batch) over all tasks, or over `tasks[i]` (indices into this
        evaluator's task list) for program i: islands that search different
        task collections share one evaluator (one batched call, one FEC
        cache: keys include the task index)."""
        if not isinstance(programs, ProgramArrays):
            programs = list(programs)
        num = count(programs)
        n = len(self.tasks)
        if tasks is None:
            task_lists: list[Sequence[int]] = [tuple(range(n))] * num
        else:
            if len(tasks) != num:
                raise ValueError(f"tasks: one task list per program expected ({num}), got {len(tasks)}")
            task_lists = [tuple(int(t) for t in ts) for ts in tasks]
            for ts in task_lists:
                if not ts or min(ts) < 0 or max(ts) >= n:
                    raise ValueError(f"tasks: each program needs a non-empty list of task indices in [0, {n}), "
                                     f"got {list(ts)}")
        budgets = self._budgets(programs)
        # Each individual's full evaluations draw from their own stream, keyed
        # by its number (see `rng.evaluation_seeds`).
        seeds = rng_lib.evaluation_seeds(self.seed, self.num_individuals, num).astype(np.int64)
        self.num_individuals += num

        def evaluate_on(which: Sequence[int], lists: Sequence[Sequence[int]]) -> list[list[float]]:
            """Per-task fitnesses of programs `which` on their task `lists`."""
            prog = np.repeat(np.asarray(which, dtype=np.int64), [len(ts) for ts in lists])
            task = np.fromiter((t for ts in lists for t in ts), dtype=np.int64, count=prog.size)
            values = self._evaluate_jobs(programs, Jobs(prog, task, budgets[prog, task], seeds[prog])).tolist()
            out, i = [], 0
            for ts in lists:
                out.append(values[i:i + len(ts)])
                i += len(ts)
            return out

        everyone = range(num)
        if not self.hurdle_tasks or self.hurdle_threshold is None:
            if tasks is None and self.combination == fitness_lib.MEAN:  # the search's case, in one pass
                prog = np.repeat(np.arange(num, dtype=np.int64), n)
                task = np.tile(np.arange(n, dtype=np.int64), num)
                values = self._evaluate_jobs(programs, Jobs(prog, task, budgets[prog, task], seeds[prog]))
                return fitness_lib.combine_rows(values.reshape(num, n)).tolist()
            return [fitness_lib.combine(v, self.combination) for v in evaluate_on(everyone, task_lists)]
        k = self.hurdle_tasks
        first = evaluate_on(everyone, [ts[:k] for ts in task_lists])
        out = [fitness_lib.combine(f, self.combination) for f in first]
        remaining = [i for i in everyone if len(task_lists[i]) > k]
        passed = [i for i in remaining if not out[i] < self.hurdle_threshold]
        self.num_hurdle_stops += len(remaining) - len(passed)
        if passed:
            rest = evaluate_on(passed, [task_lists[i][k:] for i in passed])
            for i, values in zip(passed, rest, strict=True):
                out[i] = fitness_lib.combine(first[i] + values, self.combination)
        return out

    __call__ = evaluate
