"""Run a search experiment (the reference's run_search_experiment).

  azero-search --config=tiny --output_dir=/tmp/run
  azero-search --config=demo --output_dir=runs/demo --seed=7
  azero-search --config=my.json --output_dir=runs/x --resume
  azero-search --config=tiny --output_dir=/tmp/run --population_size=50 --set 'fec=null'

(or `python experiments/search.py ...` from a checkout). --config is a preset
name (demo, baseline, integration_linear, integration_nonlinear, tiny) or a
JSON config file (see azero_jax.experiment.ExperimentConfig). Every config
field is also a flag of its own name, and `--set KEY=VALUE` sets any field;
both override the config (see azero_jax.cli). Writes progress.csv,
select_checks.csv, checkpoint.json, best_program.json/.txt, results.json and
fitness.png (with the `plot` extra) into --output_dir;
--resume continues from its checkpoint; --overwrite starts afresh over an
existing run. Bad input is one `error:` line and exit status 2.
"""

from __future__ import annotations

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from absl import flags  # noqa: E402

from azero_jax import cli, experiment  # noqa: E402

_FLAGS: dict[str, flags.FlagHolder] = {}


def define_flags() -> None:
    """This entry point's flags (once): --config, --output_dir, --resume and
    the generated config flags."""
    if _FLAGS:
        return
    _FLAGS["config"] = flags.DEFINE_string("config", "tiny",
                                           f"preset ({', '.join(experiment.PRESETS)}) or JSON config path")
    _FLAGS["output_dir"] = flags.DEFINE_string("output_dir", None, "directory for progress, checkpoint and results")
    _FLAGS["resume"] = flags.DEFINE_bool("resume", False, "continue from the checkpoint in --output_dir")
    _FLAGS["overwrite"] = flags.DEFINE_bool("overwrite", False, "without --resume: start afresh even if "
                                            "--output_dir holds a run (its checkpoint and results are replaced)")
    cli.define_config_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _FLAGS["output_dir"].value:
        cli.fail("--output_dir is required")
    # Errors are the boundary's (cli.run_app): one `error:` line, exit status 2.
    config = cli.config_from_flags(experiment.load_config(_FLAGS["config"].value))
    experiment.run_experiments(config, output_dir=_FLAGS["output_dir"].value, resume=_FLAGS["resume"].value,
                               overwrite=_FLAGS["overwrite"].value)


def cli_main(argv: list[str] | None = None) -> None:
    """The `azero-search` console script."""
    define_flags()
    cli.run_app(main, __name__, argv)


if __name__ == "__main__":
    cli_main()
