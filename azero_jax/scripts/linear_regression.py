"""The README's main job: rediscover linear regression from scratch.

The reference's 5-minute demo (`run_demo.sh`, spec §16): 10 linear tasks
(F=4, 100 train / 100 valid), the demo ops (const-set, dot, -, *, scalar x
vector, vector +), program sizes 10 / 2 / 8 from random programs, FEC on,
population 1000, tournament 10; each search's best is checked on 100 fresh
tasks x 1000 examples (select), and searches repeat with new task seeds until
select fitness > 0.9999; the winner is then scored on 100 unseen tasks (final).

Differences from the reference script, all flags (this script's defaults on
top of the `demo` preset; every config field is a flag of its own name and
`--set KEY=VALUE` sets any, see azero_jax.cli):
  --seed 1 (alias of --random_seed; fixed, so the command is reproducible;
    0 = time-based like the reference),
  --backend auto (on a CPU the native interpreter when Numba is installed,
    the `cpu` extra; else the batched xla one) with --children_per_step 250
    and --dtype float64,
  --early_stop: whenever a search's best search fitness rises past
    --early_stop_fitness (0.999; alias of --search_sufficient_fitness), that
    program takes the select test, and the search ends if it passes, instead
    of always spending its 2e8 train steps (the 100-example search tasks cap
    the fitness of a good learner a little below what it reaches on the
    1000-example select tasks),
  --max_experiments 20 (the reference: unlimited) and --max_minutes 30
    (alias of --max_seconds/60; 0 = no budget), checkpoints every
    max(5 s, 10 % of the elapsed time), at most every 30 s, so a kill loses
    little.

  azero-linear-regression                      # ~minutes on a laptop CPU
  azero-linear-regression --seed=2 --output_dir=runs/lr2
  azero-linear-regression --backend=reference --children_per_step=1   # the sequential reference (slow)

(or `python experiments/linear_regression.py ...` from a checkout). Writes
progress.csv, select_checks.csv, checkpoint.json, best_program.json/.txt,
results.json and fitness.png (with the `plot` extra) in --output_dir; a
rerun with the same flags resumes (or, for a finished run, reprints its
results.json without recomputing); --resume=no --overwrite
starts afresh over an existing run. With the train-step budgets the resumed
result is exactly the uninterrupted one; a wall-clock stop (--max_minutes)
is reproduced up to where the earlier run stopped. Bad input is one
`error:` line and exit status 2.
"""

from __future__ import annotations

import os

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from absl import flags  # noqa: E402

from azero_jax import cli, evaluation, experiment, liveness, serialization  # noqa: E402

PRESET = "demo"
# This script's config defaults on top of the demo preset (the user's flags
# come after them); the backend is the preset's batched one.
DEFAULTS: dict = dict(random_seed=1, dtype="float64", children_per_step=250, sufficient_fitness=0.9999,
                      max_experiments=20, max_train_steps=200_000_000, progress_every=10000,
                      search_sufficient_fitness=0.999, max_seconds=30 * 60.0, checkpoint_every_seconds=30.0)

_FLAGS: dict[str, flags.FlagHolder] = {}


def define_flags() -> None:
    """This script's flags (once): --output_dir, --resume, --early_stop, the
    generated config flags with this script's defaults in their help, and
    the alias --early_stop_fitness."""
    if _FLAGS:
        return
    _FLAGS["output_dir"] = flags.DEFINE_string("output_dir", "runs/linear_regression", "where progress and results go")
    _FLAGS["resume"] = flags.DEFINE_enum("resume", "auto", ["auto", "yes", "no"],
                                         "continue from --output_dir's checkpoint: auto = if there is one (and "
                                         "--overwrite is not given)")
    _FLAGS["overwrite"] = flags.DEFINE_bool("overwrite", False, "start afresh even if --output_dir holds a run "
                                            "(its checkpoint and results are replaced); not with --resume=yes")
    _FLAGS["early_stop"] = flags.DEFINE_bool(
        "early_stop", True, "end a search once its best program passes the select test (checked when its search "
        "fitness exceeds --early_stop_fitness; the reference always spends max_train_steps); --noearly_stop = "
        "--search_sufficient_fitness=none")
    cli.define_config_flags()
    cli.define_alias("early_stop_fitness", "search_sufficient_fitness",
                     "search fitness that triggers a select check (this script's default: 0.999)")
    cli.document_defaults({"backend": f"{cli.batched_backend()} (the {PRESET} preset's batched backend)",
                           **DEFAULTS, "random_seed": "1 (--seed)", "max_seconds": "1800.0 (--max_minutes=30)"})


def config() -> experiment.ExperimentConfig:
    """The demo preset with this script's defaults, then the flags."""
    base = experiment.get_preset(PRESET).replace(**DEFAULTS)
    overrides = cli.flag_overrides()
    if not _FLAGS["early_stop"].value:
        if overrides.get("search_sufficient_fitness") is not None:
            raise experiment.ConfigError("--noearly_stop contradicts --early_stop_fitness / "
                                         "--search_sufficient_fitness; give one of them")
        base = base.replace(search_sufficient_fitness=None)
    return base.replace(**overrides)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    out = _FLAGS["output_dir"].value
    overwrite = _FLAGS["overwrite"].value
    if overwrite and _FLAGS["resume"].value == "yes":
        cli.fail("--resume=yes and --overwrite contradict each other: give one of them")
    resume = {"yes": True, "no": False}.get(_FLAGS["resume"].value,
                                            not overwrite and os.path.exists(os.path.join(out, "checkpoint.json")))
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    cfg = config()
    backend = evaluation.resolve_backend(cfg.backend, None, cfg.compute_dtype())
    shown = backend if backend == cfg.backend else f"{cfg.backend} ({backend})"
    print(f"Searching for a linear-regression learner: {shown} backend ({cfg.compute_dtype()}), "
          f"population {cfg.population_size}, {cfg.children_per_step} children per step, seed {cfg.random_seed}; "
          f"output in {out}", flush=True)
    result = experiment.run_experiments(cfg, output_dir=out, resume=resume, overwrite=overwrite,
                                        log=lambda line: print(line, flush=True))
    found = result.select_fitness > cfg.sufficient_fitness and result.final_fitness >= cfg.sufficient_fitness
    secs = result.elapsed_seconds
    print(f"\nBest program (from search {result.best_experiment} of {result.num_experiments}):")
    print(serialization.format_algorithm(result.best_program), end="")
    print("The same program without its dead code (instructions that cannot affect a prediction):")
    print(serialization.format_algorithm(liveness.strip_dead_code(result.best_program, keep_positions=False)), end="")
    print(f"search fitness={result.search_fitness:.6f}  select fitness={result.select_fitness:.6f}  "
          f"final fitness (unseen tasks)={result.final_fitness:.6f}")
    print(f"{result.counters['individuals']} individuals in {secs:.0f} s "
          f"({result.counters['individuals'] / max(secs, 1e-9):.0f} individuals/s)")
    if found:
        print("Linear regression discovered (select > 0.9999, final >= 0.9999).")
    else:
        stop = ("max_experiments" if cfg.max_experiments and result.num_experiments >= cfg.max_experiments
                else "the time budget")
        print(f"Not discovered within {stop}; rerun with a larger --max_experiments / --max_minutes "
              "(the same --output_dir continues), or another --seed.")


def cli_main(argv: list[str] | None = None) -> None:
    """The `azero-linear-regression` console script."""
    define_flags()
    cli.run_app(main, __name__, argv)


if __name__ == "__main__":
    cli_main()
