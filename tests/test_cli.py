"""The config flags generated from ExperimentConfig (azero_jax.cli) and the
entry points that use them: one flag per field, --set, the aliases, and bad
input as one `error:` line with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from absl import flags

from azero_jax import cli, experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH = os.path.join(ROOT, "experiments", "search.py")
LINEAR_REGRESSION = os.path.join(ROOT, "experiments", "linear_regression.py")
FIELDS = experiment.ExperimentConfig.field_names()


def _parse(*args: str) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    cli.define_config_flags(flag_values)
    flag_values(["prog", *args])
    return flag_values


def _config(*args: str, preset: str = "tiny") -> experiment.ExperimentConfig:
    return cli.config_from_flags(experiment.get_preset(preset), _parse(*args))


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_a_flag_for_every_config_field_defaulting_to_the_config():
    flag_values = _parse()
    assert set(cli.FIELD_HELP) == set(FIELDS)  # a description for every field
    for name in FIELDS:
        assert name in flag_values, name
        assert flag_values[name].default is None and flag_values[name].value is None, name
        assert cli.FIELD_HELP[name] in flag_values[name].help
    assert "set" in flag_values
    assert _config() == experiment.get_preset("tiny")
    cli.define_config_flags(flag_values)  # again: nothing new, no duplicate-flag error


def test_flag_and_set_give_the_same_value_and_set_comes_last():
    assert _config("--population_size=7").population_size == 7
    assert _config("--set", "population_size=7").population_size == 7
    assert _config("--set=population_size=7").population_size == 7
    assert _config("--population_size=7", "--set", "population_size=9").population_size == 9
    assert _config("--set", "population_size=7", "--set", "population_size=8").population_size == 8


def test_value_kinds():
    c = _config("--max_train_steps=2e8", "--memory=[5,4,2]", "--random_search", "--backend=reference",
                "--allowed_mutation_types=ALTER_PARAM,INSERT_INSTRUCTION", "--search_tasks=demo_search",
                "--fec=null", '--train_budget={"baseline": "neural_net", "factor": 3}', "--mutate_prob=0.5")
    assert c.max_train_steps == 200_000_000 and c.memory == (5, 4, 2) and c.random_search
    assert c.allowed_mutation_types == ("ALTER_PARAM", "INSERT_INSTRUCTION")
    assert c.search_tasks == ("demo_search",) and c.fec is None and c.mutate_prob == 0.5
    assert c.to_dict()["train_budget"] == {"baseline": "neural_net", "factor": 3.0}
    assert _config("--memory=5,4,2").memory == (5, 4, 2)
    demo = experiment.get_preset("demo")
    assert demo.sufficient_fitness is not None and demo.randomize_task_seeds
    c = _config("--sufficient_fitness=none", "--norandomize_task_seeds", preset="demo")
    assert c.sufficient_fitness is None and not c.randomize_task_seeds
    c = _config("--set", "backend=reference", "--set", 'fec={"num_train_examples": 5}', "--set", "max_seconds=null")
    assert c.backend == "reference" and c.max_seconds is None
    assert c.to_dict()["fec"]["num_train_examples"] == 5


@pytest.mark.parametrize("arg", ["--population_size=abc", "--population_size=1.5", "--max_seconds=soon",
                                 "--fec={bad", "--random_search=maybe"])
def test_unparsable_values_are_flag_errors(arg):
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(arg)


def test_bad_values_and_unknown_set_keys_are_config_errors():
    with pytest.raises(experiment.ConfigError, match="population_size must be >= 1"):
        _config("--population_size=0")
    with pytest.raises(experiment.ConfigError, match="backend must be one of"):
        _config("--set", "backend=abacus")
    with pytest.raises(experiment.ConfigError, match="unknown config key 'nope'; valid keys: search_tasks, "):
        _config("--set", "nope=1")
    with pytest.raises(experiment.ConfigError, match="KEY=VALUE"):
        _config("--set", "population_size")


def test_aliases():
    c = _config("--seed=5", "--islands=2", "--max_minutes=2")
    assert (c.random_seed, c.num_islands, c.max_seconds) == (5, 2, 120.0)
    assert _config("--max_minutes=0", "--set", "max_seconds=10").max_seconds == 10  # --set comes last
    assert _config("--max_minutes=0").max_seconds is None
    assert _config("--seed=5", "--random_seed=5").random_seed == 5  # the same value twice is fine
    assert _config("--max_minutes=1", "--max_seconds=60").max_seconds == 60.0
    for args in (("--seed=5", "--random_seed=6"), ("--islands=2", "--num_islands=3"),
                 ("--max_minutes=1", "--max_seconds=30")):
        with pytest.raises(experiment.ConfigError, match="is an alias of"):
            _config(*args)
    help_text = _parse()["seed"].help
    assert help_text.startswith("alias of --random_seed")
    assert _parse()["max_minutes"].help.startswith("alias of --max_seconds/60")


def test_alias_conflict_with_max_seconds():
    with pytest.raises(experiment.ConfigError, match="--max_minutes=0.5 and --max_seconds=10"):
        _config("--max_seconds=10", "--max_minutes=0.5")


def test_search_script_flags_and_set():
    out = os.path.join(ROOT, "unused_output_dir")  # never created: every run here fails before writing
    assert "unknown config key 'nope'" in _one_error_line(_run(SEARCH, "--config=tiny", f"--output_dir={out}",
                                                               "--set", "nope=1"))
    assert "--population_size=abc" in _one_error_line(_run(SEARCH, f"--output_dir={out}", "--population_size=abc"))
    assert "population_size must be >= 1" in _one_error_line(_run(SEARCH, f"--output_dir={out}",
                                                                  "--set=population_size=0"))
    assert "is an alias of --random_seed" in _one_error_line(_run(SEARCH, f"--output_dir={out}", "--seed=3",
                                                                  "--random_seed=4"))
    assert not os.path.exists(out)


def test_search_script_runs_with_flags(tmp_path):
    out = tmp_path / "run"
    proc = _run(SEARCH, "--config=tiny", f"--output_dir={out}", "--seed=3", "--max_experiments=1",
                "--set", "population_size=10", "--max_train_steps=3000")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "results.json").read_text())["config"]
    assert (config["random_seed"], config["max_experiments"], config["population_size"],
            config["max_train_steps"]) == (3, 1, 10, 3000)


def test_search_script_help_lists_the_generated_flags():
    proc = _run(SEARCH, "--help")
    assert proc.returncode in (0, 1), proc.stderr  # absl's --help exits with 1
    for name in ("--population_size", "--set", "--config", "--output_dir", "--hurdle_tasks"):
        assert name in proc.stdout, name
    assert "alias of --random_seed" in proc.stdout


def test_linear_regression_bad_flag_is_one_error_line():
    line = _one_error_line(_run(LINEAR_REGRESSION, "--seed=abc"))
    assert "--seed=abc" in line
    assert "contradicts" in _one_error_line(_run(LINEAR_REGRESSION, "--noearly_stop", "--early_stop_fitness=0.9"))
    assert "unknown config key" in _one_error_line(_run(LINEAR_REGRESSION, "--set", "nope=1"))


def test_linear_regression_defaults_and_aliases():
    code = textwrap.dedent("""
        import json, sys
        from absl import flags
        from azero_jax.scripts import linear_regression as lr
        lr.define_flags()
        flags.FLAGS(["prog"] + sys.argv[1:])
        print(json.dumps(lr.config().to_dict()))
    """)

    def config(*args):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    default = config()
    expected = experiment.get_preset("demo").replace(
        random_seed=1, dtype="float64", children_per_step=250, sufficient_fitness=0.9999, max_experiments=20,
        max_train_steps=200_000_000, progress_every=10000, search_sufficient_fitness=0.999, max_seconds=1800.0,
        checkpoint_every_seconds=30.0)
    assert default == expected.to_dict()
    assert default["backend"] != "reference"
    changed = config("--seed=2", "--max_minutes=0", "--noearly_stop", "--backend=reference", "--children_per_step=1")
    assert changed == expected.replace(random_seed=2, max_seconds=None, search_sufficient_fitness=None,
                                       backend="reference", children_per_step=1).to_dict()
    assert config("--early_stop_fitness=0.99")["search_sufficient_fitness"] == 0.99


def test_cifar_binary_defaults(monkeypatch):
    from azero_jax.scripts import cifar_binary

    batched = next(b for b in experiment.BACKENDS if b != "reference")
    defaults = cifar_binary.script_defaults({})
    assert defaults["backend"] == batched == cli.batched_backend()
    assert (defaults["population_size"], defaults["children_per_step"], defaults["progress_every"],
            defaults["checkpoint_every_seconds"], defaults["random_seed"]) == (100, 1, 1000, 300.0, 1000060)
    import jax

    accelerator = jax.default_backend() in ("gpu", "tpu", "cuda", "rocm")
    assert defaults["dtype"] == ("float32" if accelerator else "float64")
    assert "dtype" not in cifar_binary.script_defaults({"dtype": "float32"})  # the user's dtype wins
    assert cifar_binary.script_defaults({"backend": "reference"})["dtype"] == "float64"
    for platform, dtype in (("gpu", "float32"), ("tpu", "float32"), ("cpu", "float64")):
        monkeypatch.setattr(jax, "default_backend", lambda platform=platform: platform)
        assert cifar_binary.script_defaults({})["dtype"] == dtype, platform
        assert cifar_binary.script_defaults({"dtype": "float64"}).get("dtype") is None
    opts = cifar_binary.Options(output_dir="unused", config_overrides={"search_tasks": ["demo_search"]})
    with pytest.raises(experiment.ConfigError, match="--search_tasks: this script builds the tasks"):
        cifar_binary.build_config(opts, log=lambda _line: None)
