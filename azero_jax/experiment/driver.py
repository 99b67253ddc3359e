"""The search -> select -> final driver with checkpoint/resume (spec §14-§18).

`run_experiments` is the reference driver loop:

  repeat: search (regularized evolution on T_search) -> best of the final
          population -> evaluate on T_select (fresh seed, MEAN, no FEC, no
          budget) -> keep it if select fitness >= best so far
  until best select fitness > sufficient_fitness or max_experiments done;
  then evaluate the kept program once on T_final.

Determinism and resume: every random draw comes from serialized state (the
main NumPy generator, drawn only at experiment boundaries, and the evolution
state's own generator), checkpoints are taken only at sweep boundaries, and
all evaluations are deterministic functions of (program, task, seed). So a run
resumed from any checkpoint ends with exactly the result of an uninterrupted
run when train-step budgets and experiment counts decide the stop. A
wall-clock budget (`max_seconds`, checked after every evolution step) stops
wherever the clock says, so there a resumed run is identical to the earlier
run up to where that run stopped, and no two runs need agree beyond that.

Checkpoints come every `checkpoint_interval()` seconds: `max(5 s, 10 % of the
elapsed time)`, capped by `checkpoint_every_seconds`, so a kill loses at most
about a tenth of the elapsed time (and no more than the cap). A finished run
resumed with the same config reprints its results.json without recomputing.

The checkpoint state and its restore are resume.py's, the checks before any
work preflight.py's, and the result and its files report.py's.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import evaluation, serialization
from azero_jax import program_arrays as pa
from azero_jax import tasks as tasks_lib
from azero_jax.evaluation import Evaluator
from azero_jax.experiment import preflight, report
from azero_jax.experiment import resume as resume_lib
from azero_jax.experiment.config import ConfigError, ExperimentConfig, _listify
from azero_jax.experiment.evaluators import build_search, evaluate_program
from azero_jax.experiment.report import ExperimentResult
from azero_jax.experiment.resume import COUNTER_KEYS
from azero_jax.program import Algorithm
from azero_jax.search import evolution as evolution_lib

# The interpreter-rate calibration after each search (`CachedEvaluator.interpreter_rate`):
# a full evaluation of this many of the final population's programs (best of 2 when short).
CALIBRATION_PROGRAMS = 128
MIN_CHECKPOINT_SECONDS = 5.0  # the shortest periodic-checkpoint interval
CHECKPOINT_FRACTION = 0.1  # ... else this fraction of the elapsed time, up to checkpoint_every_seconds
OUTPUT_FILES = ("checkpoint.json", "progress.csv", "results.json", "best_program.json", "best_program.txt",
                "select_checks.csv", "fitness.png")


def _resolve_seed(seed: int) -> int:
    """Reference rule: seed 0 means a time-based seed."""
    return seed if seed else int(time.time_ns() % (2**31 - 2)) + 1


class _Run:
    """Mutable state of one run; everything in it is checkpointed."""

    def __init__(self, config: ExperimentConfig, output_dir: str, log: Callable[[str], None] | None,
                 step_hook: Callable[[int, int], None] | None):
        self.config = config
        self.output_dir = output_dir
        self.log = log or (lambda _line: None)
        self.step_hook = step_hook
        self.ckpt_path = config.checkpoint_path or os.path.join(output_dir, "checkpoint.json")
        self.csv_path = os.path.join(output_dir, "progress.csv")
        self.checks_path = os.path.join(output_dir, "select_checks.csv")  # a plot annotation (report.py)
        self.digest = config.search_hash()
        self.session_start = time.monotonic()
        self.elapsed_before = 0.0
        self.last_checkpoint = time.monotonic()
        self.random_seed = 0
        self.main_rng: np.random.Generator | None = None
        self.experiment_index = 0  # completed experiments
        self.experiments: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.totals = {k: 0 for k in COUNTER_KEYS}
        self.progress_rows = 0
        self.current: dict[str, Any] | None = None  # {"plan", "evolution", "evaluator"} mid-experiment
        self.profile: dict[str, float] = collections.defaultdict(float)  # this session only
        # Early stop of the current search (search_sufficient_fitness); not
        # checkpointed: a failed check changes nothing, a passed one ends the search.
        self.select_checked = -math.inf
        self.stop_search = False
        self._select_tasks: list[tasks_lib.Task] | None = None  # the current experiment's
        self.cpu_start = time.process_time()

    # -- time / counters --
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.session_start

    def out_of_time(self) -> bool:
        return self.config.max_seconds is not None and self.elapsed() >= self.config.max_seconds

    # -- checkpoints --
    def to_state(self, evolution_state: evolution_lib.EvolutionState | None = None,
                 evaluator: Evaluator | None = None, plan: dict[str, Any] | None = None) -> dict[str, Any]:
        return resume_lib.run_state(self, evolution_state, evaluator, plan)

    def save(self, **kwargs: Any) -> None:
        checkpoint_lib.save(self.ckpt_path, self.to_state(**kwargs), config_digest=self.digest)
        self.last_checkpoint = time.monotonic()

    def restore(self) -> None:
        resume_lib.restore_run(self)

    # -- one experiment --
    def draw_plan(self) -> dict[str, Any]:
        """All random choices of one experiment, drawn from the main generator
        at its start (so a mid-experiment checkpoint only needs the plan)."""
        assert self.main_rng is not None
        rng = self.main_rng
        search = self.config.task_specs("search")
        select = self.config.task_specs("select")
        if self.config.randomize_task_seeds:
            search = tasks_lib.randomize_collection_seeds(search, rng)
        evaluator_seed = int(rng.integers(0, 2**31))
        evolution_seed = int(rng.integers(0, 2**63))
        if self.config.randomize_task_seeds:
            select = tasks_lib.randomize_collection_seeds(select, rng)
        select_seed = int(rng.integers(0, 2**31))
        return {"search_tasks": [_listify(dataclasses.asdict(s)) for s in search],
                "select_tasks": [_listify(dataclasses.asdict(s)) for s in select],
                "evaluator_seed": evaluator_seed, "evolution_seed": evolution_seed, "select_seed": select_seed}

    def build(self, plan: dict[str, Any]) -> tuple[Evaluator, evolution_lib.RegularizedEvolution]:
        specs = [tasks_lib.TaskSpec(**s) for s in plan["search_tasks"]]
        return build_search(self.config, specs, tasks_lib.make_tasks(specs), evaluator_seed=plan["evaluator_seed"])

    def search_done(self, evaluator: Evaluator, state: evolution_lib.EvolutionState,
                    plan: dict[str, Any]) -> bool:
        """Reference: the train-step budget (or time). Optionally also once the
        best program passes the select test (see search_sufficient_fitness)."""
        if self.stop_search:
            return True
        target = self.config.search_sufficient_fitness
        if target is not None:
            program, fit = evolution_lib.result(state, self.config.evolution_config())
            if fit > target and fit > self.select_checked:
                self.select_checked = fit
                sufficient = self.config.sufficient_fitness
                if sufficient is None:
                    self.stop_search = True
                    return True
                select = self.select_fitness(program, plan)
                report.log_select_check(self.checks_path, experiment=self.experiment_index + 1,
                                        indivs=state.num_individuals, search_fitness=fit, select_fitness=select,
                                        kind="early")
                if select > sufficient:
                    self.stop_search = True
                    return True
        return evaluator.counters().train_steps >= self.config.max_train_steps or self.out_of_time()

    def select_fitness(self, program: Algorithm, plan: dict[str, Any]) -> float:
        """Fitness on this experiment's select tasks (fresh RNG: the plan's seed)."""
        start = time.perf_counter()
        if self._select_tasks is None:
            self._select_tasks = tasks_lib.make_tasks([tasks_lib.TaskSpec(**s) for s in plan["select_tasks"]])
        select_tasks = self._select_tasks
        memory = self.config.memory_shape(select_tasks[0].features)
        value = evaluate_program(program, select_tasks, memory, seed=plan["select_seed"],
                                 max_abs_error=self.config.max_abs_error, config=self.config)
        self.profile["select"] += time.perf_counter() - start
        return value

    def checkpoint_interval(self) -> float | None:
        """Seconds between periodic checkpoints: checkpoint_every_seconds
        (None: none; 0: every sweep) as a cap, and before that
        max(MIN_CHECKPOINT_SECONDS, CHECKPOINT_FRACTION * elapsed), so a kill
        early in a run loses little."""
        every = self.config.checkpoint_every_seconds
        if not every:
            return every
        return min(every, max(MIN_CHECKPOINT_SECONDS, CHECKPOINT_FRACTION * self.elapsed()))

    def maybe_checkpoint(self, **kwargs: Any) -> None:
        every = self.checkpoint_interval()
        if every is not None and time.monotonic() - self.last_checkpoint >= every:
            self.save(**kwargs)

    def run_experiment(self) -> None:
        def should_stop(state: evolution_lib.EvolutionState) -> bool:
            return self.search_done(evaluator, state, plan)

        def on_step(state: evolution_lib.EvolutionState) -> None:
            if self.step_hook is not None:
                self.step_hook(self.experiment_index, state.num_steps)

        def on_sweep(state: evolution_lib.EvolutionState) -> None:
            """After init and after each completed sweep: progress, then a
            checkpoint if one is due and the search goes on."""
            if report.log_progress(evo, state, evaluator, log=self.log, csv_path=self.csv_path,
                                   experiment=self.experiment_index + 1, elapsed_secs=self.elapsed(),
                                   totals=self.totals):
                self.progress_rows += 1
            if not self.search_done(evaluator, state, plan):
                self.maybe_checkpoint(evolution_state=state, evaluator=evaluator, plan=plan)

        if self.current is None:
            plan = self.draw_plan()
            evaluator, evo = self.build(plan)
            self.log(f"experiment {self.experiment_index + 1}: search on {len(evaluator.tasks)} task(s), "
                     f"population {self.config.population_size} x {self.config.num_islands} island(s)")
            state = evo.init(plan["evolution_seed"])
            on_sweep(state)
        else:
            plan, evaluator, evo, state = resume_lib.resume_experiment(self)
        # Reference Run(): stop tests only between full sweeps; the wall-clock
        # budget is also tested after every step (it may cut a sweep short).
        backend = getattr(evaluator, "backend", None)  # the batched backends time their calls
        before, interpreter_before = evaluator.counters(), getattr(backend, "interpreter_seconds", None)
        start = time.perf_counter()
        state = evo.run(state, should_stop=should_stop, on_step=on_step, on_sweep=on_sweep,
                        interrupt=self.out_of_time)
        self.profile["search"] += time.perf_counter() - start
        self.profile["search_train_steps"] += evaluator.counters().train_steps - before.train_steps
        self.profile["search_individuals"] += evaluator.counters().individuals - before.individuals
        program, search_fitness = evolution_lib.result(state, evo.config)
        for timers in (evo.timers, evaluator.timers):
            for name, seconds in timers.items():
                self.profile[name] += seconds
        if interpreter_before is not None:
            self.profile["interpreter"] += backend.interpreter_seconds - interpreter_before
        if interpreter_before is not None and not getattr(backend, "interpret", False):
            # The batched interpreter's own rate on this search's programs (not for the NumPy
            # reference or Pallas's interpret mode: slow, and not what the figure is about).
            island = state.islands[0]
            steps, seconds = evaluator.interpreter_rate(
                pa.take(island.programs, np.arange(min(island.size, CALIBRATION_PROGRAMS))))
            self.profile["calibration_train_steps"] += steps
            self.profile["calibration_seconds"] += seconds
        select_fitness = self.select_fitness(program, plan)
        report.log_select_check(self.checks_path, experiment=self.experiment_index + 1,
                                indivs=state.num_individuals, search_fitness=search_fitness,
                                select_fitness=select_fitness, kind="end")
        self.select_checked, self.stop_search, self._select_tasks = -math.inf, False, None
        kept = self.best is None or select_fitness >= self.best["select_fitness"]
        counters = {k: getattr(evaluator.counters(), k) for k in COUNTER_KEYS}
        record = {"experiment": self.experiment_index + 1, "search_fitness": search_fitness,
                  "select_fitness": select_fitness, "kept": kept, "counters": counters}
        self.experiments.append(record)
        for k in COUNTER_KEYS:
            self.totals[k] += counters[k]
        if kept:
            self.best = {"program": serialization.algorithm_to_dict(program), "search_fitness": search_fitness,
                         "select_fitness": select_fitness, "experiment": self.experiment_index + 1}
        self.experiment_index += 1
        self.log(f"experiment {self.experiment_index}: search fitness={search_fitness:.6f}, "
                 f"select fitness={select_fitness:.6f}{' (kept)' if kept else ''}")
        self.save()

    def finished(self) -> bool:
        """Reference stop test, checked after each experiment."""
        cfg = self.config
        if self.experiment_index == 0:
            return False
        if cfg.sufficient_fitness is not None and self.best is not None \
                and self.best["select_fitness"] > cfg.sufficient_fitness:
            return True
        if cfg.max_experiments and self.experiment_index >= cfg.max_experiments:
            return True
        return self.out_of_time()


def run_experiments(config: ExperimentConfig, *, output_dir: str, resume: bool = False, overwrite: bool = False,
                    log: Callable[[str], None] | None = print,
                    step_hook: Callable[[int, int], None] | None = None,
                    elapsed_offset: float = 0.0) -> ExperimentResult:
    """Runs search experiments until done (see the module docstring) and
    writes progress.csv, select_checks.csv, checkpoint.json,
    best_program.json/.txt, results.json and fitness.png (when matplotlib is
    installed) into `output_dir`.

    resume: continue from the checkpoint (same search config required); a
      finished run (same config) returns its results.json's result without
      recomputing anything.
    overwrite: (not with resume) start afresh even if `output_dir` holds a
      run: its checkpoint, progress and results are removed first.
    step_hook(experiment_index, step): called after every evolution step;
      tests raise from it to simulate a kill.
    elapsed_offset: seconds this run already spent before the call (e.g.
      building its task data); a fresh start counts them against
      `max_seconds` (and refuses to start when they exceed it).
    """
    if resume and overwrite:
        raise ConfigError("resume and overwrite contradict each other: give one of them")
    preflight.check_output_dir(output_dir)
    preflight.check_runnable(config)
    os.makedirs(output_dir, exist_ok=True)
    run = _Run(config, output_dir, log, step_hook)
    note = evaluation.backend_note(config.backend, config.compute_dtype())
    if note:
        run.log(note)
    if resume:
        run.restore()
        report.reset_checks(run.checks_path, run.experiment_index)
        if run.finished():
            finished = resume_lib.finished_result(run, config, output_dir)
            if finished is not None:
                return finished
        run.log(f"resumed from {run.ckpt_path}: {run.experiment_index} experiment(s) done, "
                f"random_seed={run.random_seed}")
    else:
        if overwrite:
            for path in {run.ckpt_path, *(os.path.join(output_dir, name) for name in OUTPUT_FILES)}:
                if os.path.isfile(path):
                    os.remove(path)
        if os.path.exists(run.ckpt_path):
            raise ConfigError(f"{run.ckpt_path} already exists; pass resume to continue that run, overwrite "
                              "(--overwrite) to start afresh, or use another output directory")
        if config.max_seconds is not None and elapsed_offset >= config.max_seconds:
            raise ConfigError(f"{elapsed_offset:.1f} s were already spent before the search (building its data), "
                              f"the whole wall-clock budget of {config.max_seconds:g} s: raise the budget "
                              "(--max_minutes / max_seconds); cached data makes the next start faster")
        run.elapsed_before = float(elapsed_offset)
        run.random_seed = _resolve_seed(config.random_seed)
        run.main_rng = np.random.default_rng(run.random_seed)
        report.reset_csv(run.csv_path, run.progress_rows)
        report.reset_checks(run.checks_path, 0)
        run.log(f"random_seed={run.random_seed}")
        run.save()  # so a run killed before its first periodic checkpoint can resume too
    while not run.finished():
        run.run_experiment()
    assert run.best is not None and run.main_rng is not None
    # The final seed comes from a copy of the main generator, so a resumed
    # finished run (or one extended later) draws it identically.
    final_rng = evolution_lib.make_rng(evolution_lib.copy_rng_state(run.main_rng.bit_generator.state))
    final_seed = int(final_rng.integers(0, 2**31))
    best_program = serialization.algorithm_from_dict(run.best["program"])
    final_tasks = tasks_lib.make_tasks(config.task_specs("final"))
    memory = config.memory_shape(final_tasks[0].features)
    start = time.perf_counter()
    final_fitness = evaluate_program(best_program, final_tasks, memory, seed=final_seed,
                                     max_abs_error=config.max_abs_error, config=config)
    run.profile["final"] += time.perf_counter() - start
    run.profile["cpu_seconds"] = time.process_time() - run.cpu_start
    result = ExperimentResult(
        best_program=best_program, search_fitness=run.best["search_fitness"],
        select_fitness=run.best["select_fitness"], final_fitness=final_fitness,
        best_experiment=run.best["experiment"], num_experiments=run.experiment_index, experiments=run.experiments,
        counters=dict(run.totals), elapsed_seconds=run.elapsed(), random_seed=run.random_seed, memory=memory,
        profile=dict(run.profile), multiclass=config.multiclass())
    data = result.to_dict()
    data["config"] = config.to_dict()
    use = data["interpreter_use"]
    if use is not None:
        run.log(f"the search ran at {use['search_train_steps_per_second']:,.0f} train steps/s, "
                f"{use['fraction']:.0%} of its interpreter's own {use['interpreter_train_steps_per_second']:,.0f} "
                f"on full batches of {CALIBRATION_PROGRAMS} of its programs (results.json: interpreter_use)")
    report.write_outputs(output_dir, best_program, memory, final_fitness, data, log=run.log)
    return result
