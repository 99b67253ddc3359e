"""Island evolution across processes (and hosts) on `jax.distributed`.

  # two processes on one machine (start both; process 0 runs the coordinator)
  azero-search-distributed --config=tiny --islands=2 --migration_every=5 --steps=50 \\
      --coordinator_address=127.0.0.1:12345 --num_processes=2 --process_id=0 --output_dir=/tmp/d &
  azero-search-distributed --config=tiny --islands=2 --migration_every=5 --steps=50 \\
      --coordinator_address=127.0.0.1:12345 --num_processes=2 --process_id=1 --output_dir=/tmp/d
  # one process holding every island (no JAX collectives at all)
  azero-search-distributed --config=tiny --islands=2 --migration_every=5 --steps=50 --output_dir=/tmp/d1

(or `python experiments/search_distributed.py ...`). Global island g lives on
process g mod N; each island is its own searcher with streams seeded from
(--seed, g), and every --migration_every steps each island's best replaces the
oldest individual of island g+1 (mod the island count), through
`process_allgather` across the processes (see azero_jax.search.distributed,
which also states the determinism guarantee: the same islands whatever N).
All processes must get the same flags except --process_id. The search runs
--steps evolution steps on the config's search tasks, or fewer under
--max_minutes (below). Every process logs lines prefixed `[process P]`.

Select and final (process 0 only, after the search): every island's best
program is evaluated on the config's select tasks (`task_specs("select")`
as they are; with randomize_task_seeds their seeds are redrawn from a
generator seeded with phase_seed(--seed, "select_tasks")) with seed
phase_seed(--seed, "select"); the island whose best has the highest select
fitness (ties: the lowest island index) is chosen, and its program is
evaluated on the final tasks (`task_specs("final")` as they are) with seed
phase_seed(--seed, "final") -- both like the single-process driver's
evaluate_program (MEAN, no FEC, no train budget). These seeds depend on
--seed only, so the select/final numbers do not depend on the process count.
Process 0 then writes results.json (the search's best program and fitness,
every island's best and select fitness, select_fitness, final_fitness,
chosen_island and chosen_program, per-process individuals, migrations, the
steps done and stopped_by) into --output_dir. The other processes wait in
`jax.distributed.shutdown` meanwhile (bounded by --shutdown_timeout).

Wall-clock budget: --max_minutes=M (0: none) -- after every step, every
process all-gathers one flag "my clock passed M minutes since I started";
as soon as any process's flag is set, all processes stop after that same
step (so no process is left waiting in a collective), checkpoint it (with
--checkpoint_every_steps), and the select/final phases run as usual;
results.json then has stopped_by "max_minutes" and steps = the steps done.
Without --max_minutes no such all-gather happens. Rerunning a time-stopped
run with checkpoints continues it from its stop step (with a fresh budget).

Checkpoints: with --checkpoint_every_steps=K, after every K-th step each
process writes OUTPUT_DIR/checkpoint_process_P_step_S.json atomically, the
processes meet, and only then each drops its older checkpoints. Rerunning
the same command (after a kill of any process) resumes every process from
the newest step all of them saved and ends with exactly the results of an
uninterrupted run. The checkpoints record the process count, island count,
seed and config hash: a rerun with any of them different is one `error:`
line (exit 2) before any process connects (with an --output_dir not shared
between hosts, a process that finds no checkpoint of its own fails after
--initialization_timeout instead). A run may be resumed with a larger
--steps.

Progress: every process prints each of its islands' progress line (the
single-process line, at most every progress_every individuals, prefixed
`[process P] island g:`); at the end process 0 writes one merged
OUTPUT_DIR/progress.csv of every island's rows (PROGRESS_COLUMNS, sorted by
island then step; the rows travel in the final all-gather and in the
checkpoints, so a resumed run's file covers the whole run) and fitness.png
from it (one curve per island; needs matplotlib, the `plot` extra).

Multi-process runs use gloo CPU collectives and one JAX device per process.
Every wait is bounded:
- --initialization_timeout: the wait for the coordinator; a wrong address
  or a coordinator that never starts is one `error:` line and exit status 2.
- --collective_timeout: one exchange (migration, stop vote, checkpoint
  barrier, the end); a peer that died (gloo reports it at once) or that
  does not answer within this time ends the process with one `error:` line
  and exit status 3, without JAX's shutdown barrier; rerunning the same
  command on every process resumes from the newest common checkpoint.
- --heartbeat_timeout: JAX's coordination service declares a process dead
  after that long without heartbeats and ends the others (JAX's own abort,
  for a process that dies while the others compute between exchanges).
- --shutdown_timeout: how long the processes wait at the end for process
  0's select and final phases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

import numpy as np
from absl import flags

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import cli, experiment, fileio, serialization
from azero_jax import program_arrays as pa
from azero_jax import tasks as tasks_lib
from azero_jax.analysis import plots
from azero_jax.experiment.evaluators import build_search, evaluate_program
from azero_jax.scripts import _distributed_processes as procs
from azero_jax.scripts._distributed_processes import EXIT_PEER_LOST, KILL_ENV  # noqa: F401 (tests, callers)
from azero_jax.search import distributed as dist
from azero_jax.search.evolution import RegularizedEvolution

MAX_INIT_TIMEOUT = 3600
_FLAGS: dict[str, flags.FlagHolder] = {}


def define_flags() -> None:
    if _FLAGS:
        return
    _FLAGS["config"] = flags.DEFINE_string("config", "tiny",
                                           f"preset ({', '.join(experiment.PRESETS)}) or JSON config path")
    _FLAGS["output_dir"] = flags.DEFINE_string("output_dir", None, "directory for results.json (process 0)")
    _FLAGS["steps"] = flags.DEFINE_integer("steps", 20, "evolution steps of every island", lower_bound=0)
    _FLAGS["coordinator_address"] = flags.DEFINE_string(
        "coordinator_address", None, "HOST:PORT of process 0's coordinator (needed with --num_processes > 1)")
    _FLAGS["num_processes"] = flags.DEFINE_integer("num_processes", 1, "processes in the run", lower_bound=1)
    _FLAGS["process_id"] = flags.DEFINE_integer("process_id", 0, "this process's index in [0, num_processes)",
                                                lower_bound=0)
    _FLAGS["initialization_timeout"] = flags.DEFINE_integer(
        "initialization_timeout", 60, "seconds to wait for the coordinator and all processes to connect",
        lower_bound=1, upper_bound=MAX_INIT_TIMEOUT)
    _FLAGS["collective_timeout"] = flags.DEFINE_integer(
        "collective_timeout", 600, "seconds a process waits in one exchange with the others before it ends with "
        "an error (a process died or hangs); it must exceed the longest time one process may run ahead of another "
        "between two exchanges", lower_bound=1)
    _FLAGS["heartbeat_timeout"] = flags.DEFINE_integer(
        "heartbeat_timeout", 100, "seconds without heartbeats after which JAX's coordination service declares a "
        "process dead and ends the others", lower_bound=1)
    _FLAGS["shutdown_timeout"] = flags.DEFINE_integer(
        "shutdown_timeout", 3600, "seconds the processes wait for process 0's select and final phases at the end",
        lower_bound=1)
    _FLAGS["checkpoint_every_steps"] = flags.DEFINE_integer(
        "checkpoint_every_steps", 0, "checkpoint every this many steps (0: never); a rerun resumes", lower_bound=0)
    cli.define_config_flags()


# ------------------------------------------------------------ search --

def build_searchers(config: experiment.ExperimentConfig, islands: list[int], seed: int) -> list[RegularizedEvolution]:
    """One single-island searcher per global island in `islands` (the driver's assembly,
    `experiment.evaluators.build_search`); their progress lines come from `progress_rows`."""
    specs = config.task_specs("search")
    if config.randomize_task_seeds:  # the same draw on every process
        specs = tasks_lib.randomize_collection_seeds(specs, np.random.default_rng(seed))
    search_tasks = tasks_lib.make_tasks(specs)
    return [build_search(config, specs, search_tasks, evaluator_seed=dist.island_seed(seed, g, "evaluator") % 2**31,
                         island=g)[1] for g in islands]


def select_and_final(config: experiment.ExperimentConfig, programs: list, seed: int,
                     log) -> tuple[list[float], int, float]:
    """(every program's select fitness, the chosen index, its final fitness);
    the tasks and seeds are described in the module docstring."""
    specs = config.task_specs("select")
    if config.randomize_task_seeds:
        specs = tasks_lib.randomize_collection_seeds(specs, np.random.default_rng(dist.phase_seed(seed, "select_tasks")))
    select_tasks = tasks_lib.make_tasks(specs)
    memory = config.memory_shape(select_tasks[0].features)
    select_seed = dist.phase_seed(seed, "select")
    fits = [float(evaluate_program(prog, select_tasks, memory, seed=select_seed, max_abs_error=config.max_abs_error,
                                   config=config)) for prog in programs]
    chosen = dist.choose_best(fits)
    for g, f in enumerate(fits):
        log(f"select: island {g}'s best has select fitness {f:.6f}{' (chosen)' if g == chosen else ''}")
    final_tasks = tasks_lib.make_tasks(config.task_specs("final"))
    final = float(evaluate_program(programs[chosen], final_tasks, config.memory_shape(final_tasks[0].features),
                                   seed=dist.phase_seed(seed, "final"), max_abs_error=config.max_abs_error,
                                   config=config))
    return fits, chosen, final


PROGRESS_COLUMNS = ("island", "process", "step", "indivs", "elapsed_secs", "mean", "stdev", "best_fit", "train_steps",
                    "indivs_per_sec", "train_steps_per_sec", "fec_hit_rate")


def progress_rows(search: dist.DistributedIslands, states, step: int, elapsed: float, log) -> list[list[float]]:
    """Each local island's progress line (at most every progress_every
    individuals, the single-process line with its island and process) and
    its progress.csv row (PROGRESS_COLUMNS)."""
    rows = []
    for g, searcher, st in zip(search.islands, search.searchers, states, strict=True):
        c = searcher.evaluator.counters()
        counters = {"individuals": c.individuals, "train_steps": c.train_steps, "fec_hits": c.fec_hits,
                    "fec_misses": c.fec_misses}
        shown = searcher.maybe_log_progress(st, log=lambda line, g=g: log(f"island {g}: {line}"),
                                            elapsed_secs=elapsed, counters=counters)
        if shown is not None:
            rows.append([g, search.process_index, step, shown["indivs"], elapsed, shown["mean"], shown["stdev"],
                         shown["best_fit"], c.train_steps, shown["indivs_per_sec"], shown["train_steps_per_sec"],
                         shown["fec_hit_rate"]])
    return rows


def write_progress_csv(path: str, rows: np.ndarray) -> None:
    """The merged progress.csv of all processes (sorted by island, then step), atomically."""
    order = np.lexsort((rows[:, 2], rows[:, 0])) if len(rows) else np.zeros(0, int)
    ints = {"island", "process", "step", "indivs", "train_steps"}
    lines = [",".join(PROGRESS_COLUMNS)]
    for r in rows[order]:
        lines.append(",".join(str(int(v)) if name in ints else repr(float(v))
                              for name, v in zip(PROGRESS_COLUMNS, r, strict=True)))
    fileio.atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    p = _FLAGS["process_id"].value
    output_dir = _FLAGS["output_dir"].value
    try:
        _main(argv)
    except dist.CollectiveError as e:
        procs.peer_lost(p, str(e), output_dir)


def _main(argv: list[str]) -> None:
    run_start = time.monotonic()
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    n, p = _FLAGS["num_processes"].value, _FLAGS["process_id"].value
    output_dir = _FLAGS["output_dir"].value
    if not output_dir:
        cli.fail("--output_dir is required")
    if p >= n:
        cli.fail(f"--process_id={p} must be below --num_processes={n}")
    config = cli.config_from_flags(experiment.load_config(_FLAGS["config"].value))
    if not config.random_seed:
        cli.fail("give a non-zero --seed: a time-based seed would differ between the processes")
    seed, g_count, steps = config.random_seed, config.num_islands, _FLAGS["steps"].value
    if p == 0:
        experiment.preflight.check_output_dir(output_dir)
    every = _FLAGS["checkpoint_every_steps"].value
    header = procs.checkpoint_header(config, n)
    held = procs.check_checkpoints(output_dir, header).get(p, [])

    def log(line: str) -> None:
        print(f"[process {p}] {line}", flush=True)

    allgather = dist.local_allgather
    if n > 1:
        address = _FLAGS["coordinator_address"].value
        if not address:
            cli.fail("--coordinator_address=HOST:PORT is required with --num_processes > 1")
        timeout = _FLAGS["initialization_timeout"].value
        log(f"connecting to the coordinator at {address} ({n} processes, timeout {timeout} s)")
        procs.initialize(address, n, p, timeout, heartbeat_timeout=_FLAGS["heartbeat_timeout"].value,
                   shutdown_timeout=_FLAGS["shutdown_timeout"].value)
        limit = _FLAGS["collective_timeout"].value
        allgather = dist.guarded_allgather(
            dist.jax_allgather, timeout=limit,
            on_timeout=lambda: procs.peer_lost(p, f"no answer within --collective_timeout={limit} s", output_dir))
    islands = dist.local_islands(p, n, g_count)
    log(f"holds islands {islands} of {g_count} (island g lives on process g mod {n}); seed {seed}, {steps} steps, "
        f"migration every {config.migration_every} steps")
    search = dist.DistributedIslands(build_searchers(config, islands, seed), process_index=p, num_processes=n,
                                     num_islands=g_count, migration_every=config.migration_every,
                                     allgather=allgather, log=log)
    max_seconds = config.max_seconds  # --max_minutes * 60; None: no budget
    # max_seconds joins the flags every process must share: with a budget, every process takes part in the
    # per-step stop all-gather, so all of them must have one.
    resume = procs.agree_on_resume(held, {**header, "max_seconds": max_seconds}, allgather)
    if resume is not None and resume > steps:
        cli.fail(f"the checkpoints are at step {resume}, past --steps={steps}: give --steps={resume} or more")
    for step in held:  # a fresh start drops every file; a resume all but the common step's
        if step != resume:
            with contextlib.suppress(FileNotFoundError):
                os.remove(dist.checkpoint_path(output_dir, p, step))
    start = time.monotonic()
    progress: list[list[float]] = []  # this process's progress.csv rows
    elapsed_before = 0.0  # search seconds of the run before a resume
    if resume is None:
        states = search.init(seed)
        first = 1
        progress += progress_rows(search, states, 0, time.monotonic() - start, log)
    else:
        path = dist.checkpoint_path(output_dir, p, resume)
        try:
            saved = checkpoint_lib.load(path)
            states = search.load_state(saved["search"])
            progress = [list(r) for r in saved.get("progress", [])]
            elapsed_before = float(saved.get("elapsed", 0.0))
        except (checkpoint_lib.CheckpointError, KeyError, TypeError, ValueError) as e:
            cli.fail(f"cannot resume from {path}: {e}")
        log(f"resumed from step {resume} ({search.migrations} migrations done; {path})")
        first = resume + 1
    kill = procs.kill_at()
    done_steps, stopped_by = first - 1, "steps"
    for step in range(first, steps + 1):
        states = search.step(states)
        done_steps = step
        progress += progress_rows(search, states, step, elapsed_before + time.monotonic() - start, log)
        stop = False
        if max_seconds is not None and step < steps:  # the same decision on every process, at the same step
            stop = dist.agree_to_stop(time.monotonic() - run_start >= max_seconds, allgather)
        if every and (step % every == 0 or stop):
            path = dist.checkpoint_path(output_dir, p, step)
            checkpoint_lib.save(path, {"header": header, "step": step, "search": search.to_state(states),
                                       "progress": progress, "elapsed": elapsed_before + time.monotonic() - start},
                                config_digest=header["config_hash"])
            done = allgather(np.asarray([step], np.int32))  # every process saved `step`: older files may go
            if (done != step).any():
                raise RuntimeError(f"the processes checkpointed different steps {done.ravel().tolist()}")
            for old in dist.list_checkpoints(output_dir).get(p, []):
                if old < step:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(dist.checkpoint_path(output_dir, p, old))
            log(f"checkpoint at step {step}: {path}")
        if kill == (p, step):
            os.kill(os.getpid(), signal.SIGKILL)
        if stop:
            stopped_by = "max_minutes"
            log(f"stopped by --max_minutes after step {step} of {steps}")
            break
    for st in states:  # every island's last line and row, whatever progress_every says
        if st.last_progress != st.num_individuals:
            st.last_progress = None
    progress += progress_rows(search, states, done_steps, elapsed_before + time.monotonic() - start, log)
    individuals = sum(st.num_individuals for st in states)
    log(f"done: {done_steps} steps, {individuals} individuals, {search.migrations} migrations, "
        f"{time.monotonic() - start:.1f} s")

    # The end: every island's best, and per-island counts and population digests (collectives: all processes).
    programs, fitnesses = search.gather_bests(states)
    rows = np.zeros((search.slots, 4), np.int32)
    for j, st in enumerate(states):
        rows[j, :2] = np.asarray([st.num_individuals], np.int64).view(np.int32)
        rows[j, 2:] = procs.population_digest(st)
    gathered = allgather(rows)
    merged = dist.gather_float_rows(np.asarray(progress, np.float64).reshape(-1, len(PROGRESS_COLUMNS)), allgather)
    if p == 0:
        algorithms = pa.to_algorithms(programs)
        per_island = []
        for g in range(g_count):
            row = gathered[dist.owner(g, n), g // n]
            per_island.append({
                "island": g, "process": dist.owner(g, n), "best_fitness": float(fitnesses[g]),
                "best_program_digest": dist.program_digest(algorithms[g]),
                "individuals": int(row[:2].copy().view(np.int64)[0]),
                "population_digest": row[2:].astype(np.uint32).tobytes().hex()})
        best = dist.choose_best(fitnesses)
        select_fits, chosen, final_fitness = select_and_final(config, algorithms, seed, log)
        for g, r in enumerate(per_island):
            r["select_fitness"] = select_fits[g]
        per_process = [{"process": q, "islands": dist.local_islands(q, n, g_count),
                        "individuals": sum(r["individuals"] for r in per_island if r["process"] == q)}
                       for q in range(n)]
        data = {"best_program": serialization.algorithm_to_dict(algorithms[best]),
                "best_program_text": serialization.format_algorithm(algorithms[best]),
                "best_fitness": float(fitnesses[best]), "best_island": best,
                "select_fitness": select_fits[chosen], "final_fitness": final_fitness, "chosen_island": chosen,
                "chosen_program": serialization.algorithm_to_dict(algorithms[chosen]),
                "chosen_program_text": serialization.format_algorithm(algorithms[chosen]),
                "islands": per_island, "per_process": per_process, "migrations": search.migrations,
                "num_processes": n, "num_islands": g_count, "steps": done_steps, "stopped_by": stopped_by,
                "seed": seed,
                "config": config.to_dict()}
        os.makedirs(output_dir, exist_ok=True)
        write_progress_csv(os.path.join(output_dir, "progress.csv"), merged)
        plots.plot_progress(os.path.join(output_dir, "progress.csv"), os.path.join(output_dir, "fitness.png"),
                            select_checks=[], log=log)
        path = os.path.join(output_dir, "results.json")
        fileio.atomic_write_json(path, data)
        log(f"best search fitness {data['best_fitness']:.6f} (island {best}); chosen island {chosen}: select "
            f"fitness {select_fits[chosen]:.6f}, final fitness {final_fitness:.6f}; wrote {path}")
    if n > 1:
        import jax

        jax.distributed.shutdown()


def cli_main(argv: list[str] | None = None) -> None:
    """The `azero-search-distributed` console script."""
    define_flags()
    cli.run_app(main, __name__, argv)


if __name__ == "__main__":
    sys.exit(cli_main())
