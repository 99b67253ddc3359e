"""Experiment config schema, driver outputs, determinism and checkpoint/resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from azero_jax import checkpoint, evaluation, experiment, fileio, serialization
from azero_jax.experiment import ConfigError, ExperimentConfig
from azero_jax.search.fec import FECSpec
from azero_jax.search.train_budget import TrainBudgetSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(**changes) -> ExperimentConfig:
    # Smaller than the preset so the whole file stays within a few seconds.
    base = dict(max_train_steps=4000, max_experiments=2, checkpoint_every_seconds=0.0)
    base.update(changes)
    return experiment.get_preset("tiny").replace(**base)


# ------------------------------------------------------------------ config --

@pytest.mark.parametrize("name", list(experiment.PRESETS))
def test_presets_load_and_round_trip(name, tmp_path):
    config = experiment.get_preset(name)
    path = tmp_path / "c.json"
    config.to_json(path)
    assert ExperimentConfig.from_json(path) == config
    assert ExperimentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_demo_preset_mirrors_reference():
    c = experiment.get_preset("demo")
    assert (c.population_size, c.tournament_size, c.max_train_steps) == (1000, 10, 200_000_000)
    assert c.memory == (4, 3, 1) and c.fec.cache_size == 100000 and c.fec.forget_every == 100
    assert c.randomize_task_seeds and c.max_experiments == 0 and c.sufficient_fitness == 0.9999
    assert ExperimentConfig(search_tasks=["demo_search"], setup_ops=["SCALAR_SUM"]).max_train_steps == 8e10


def test_fec_and_train_budget_are_specs_with_the_json_form_of_dicts():
    c = ExperimentConfig.from_dict({"preset": "tiny", "fec": {"num_train_examples": 5.0},
                                    "train_budget": {"baseline": "NEURAL_NET_ALGORITHM", "factor": 3}})
    assert c.fec == FECSpec(num_train_examples=5) and c.train_budget == TrainBudgetSpec("neural_net", 3.0)
    assert c.replace(fec=FECSpec(5), train_budget=TrainBudgetSpec(factor=3)) == c  # specs are accepted as such
    # to_dict gives the dict forms (all FECSpec keys, in field order), so configs,
    # results.json and the checkpoint's config hash read as before.
    d = c.to_dict()
    assert d["fec"] == {"num_train_examples": 5, "num_valid_examples": 10, "cache_size": 100000, "forget_every": 100}
    assert list(d["fec"]) == ["num_train_examples", "num_valid_examples", "cache_size", "forget_every"]
    assert d["train_budget"] == {"baseline": "neural_net", "factor": 3.0}
    assert ExperimentConfig.from_dict(json.loads(json.dumps(d))) == c
    hashed = {k: v for k, v in d.items() if k not in experiment.RUN_CONTROL_FIELDS}
    assert c.search_hash() == checkpoint.config_hash(json.loads(json.dumps(hashed)))
    for name, data in experiment.PRESETS.items():
        config = experiment.get_preset(name)
        for key, spec_type in (("fec", FECSpec), ("train_budget", TrainBudgetSpec)):
            value = getattr(config, key)
            assert (value is None) if data.get(key) is None else isinstance(value, spec_type)
            if data.get(key) is not None:
                assert config.to_dict()[key] == {**json.loads(json.dumps(value.__dict__)), **data[key]}
    assert c.train_budget.build(c.init_sizes).threshold_factor == 3.0
    with pytest.raises(ValueError, match="TrainBudgetSpec.baseline"):
        TrainBudgetSpec("xx")


def test_from_dict_preset_override_and_op_ids():
    c = ExperimentConfig.from_dict({"preset": "tiny", "population_size": 7, "setup_ops": [56, "VECTOR_SUM"]})
    assert c.population_size == 7 and c.setup_ops == ("SCALAR_CONST_SET_OP", "VECTOR_SUM_OP")


@pytest.mark.parametrize("data, message", [
    ({"populaton_size": 5}, "unknown config key(s) 'populaton_size'; valid keys: preset, search_tasks"),
    ({"population_size": 0}, "population_size must be >= 1"),
    ({"mutate_prob": 1.5}, "mutate_prob must be <= 1.0"),
    ({"fitness_combination": "max"}, "fitness_combination must be one of mean, median"),
    ({"initial_population": "zzz"}, "unknown initial population"),
    ({"fec": {"num_train": 3}}, "fec: unknown key(s) 'num_train'"),
    ({"train_budget": {"baseline": "xx"}}, "train_budget.baseline"),
    ({"search_tasks": [{"kind": "linear", "feature": 4}]}, "unknown TaskSpec key(s) 'feature'"),
    ({"search_tasks": ["no_such_preset"]}, "unknown task preset"),
    ({"setup_ops": ["NOT_AN_OP"]}, "unknown op name"),
    ({"backend": "torch"}, "backend must be one of auto, reference, xla, pallas"),
    ({"children_per_step": 100}, "cannot exceed population_size"),
])
def test_bad_config_errors(data, message):
    with pytest.raises(ConfigError, match=None) as info:
        ExperimentConfig.from_dict({"preset": "tiny", **data})
    assert message in str(info.value)


def test_bad_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        ExperimentConfig.from_json(path)


def test_backend_and_dtype_rules(tmp_path):
    with pytest.raises(ConfigError, match="needs backend 'xla'"):
        experiment.run_experiments(_tiny(dtype="float32"), output_dir=str(tmp_path), log=None)
    with pytest.raises(ConfigError, match="the native backend computes in float64; dtype 'float32' needs backend 'xla'"):
        experiment.run_experiments(_tiny(dtype="float32", backend="native"), output_dir=str(tmp_path), log=None)
    demo = experiment.get_preset("demo")
    assert (demo.backend, demo.dtype, demo.children_per_step) == ("auto", "float64", 250)
    assert demo.replace(backend="reference", children_per_step=1).backend == "reference"
    # "auto" is the default backend (native on a CPU with Numba, which the tests install; "jax" is
    # xla's old name) and dtype (float64 on a CPU); float32 on a CPU is xla's.
    default = experiment.get_preset("baseline")  # sets neither backend nor dtype
    assert (default.backend, default.dtype, default.compute_dtype()) == ("auto", "auto", "float64")
    import jax

    on_cpu = jax.default_backend() == "cpu"
    assert not on_cpu or evaluation.resolve_backend(default.backend, 16) == evaluation.resolve_backend("auto") == "native"
    assert not on_cpu or evaluation.resolve_backend("auto", 16, "float32") == "xla"
    assert default.replace(backend="jax").backend == "xla"
    assert default.replace(backend="reference").compute_dtype() == "float64"
    with pytest.raises(ConfigError, match="backend must be one of auto, reference, xla, pallas"):
        default.replace(backend="gpu")


def test_search_sufficient_fitness_ends_a_search_early(tmp_path):
    base = _tiny(max_experiments=1, max_train_steps=8000)
    full = experiment.run_experiments(base, output_dir=str(tmp_path / "a"), log=None)
    early = experiment.run_experiments(base.replace(search_sufficient_fitness=0.0), output_dir=str(tmp_path / "b"),
                                       log=None)
    # The initial population already beats 0: the search stops right after it.
    assert early.counters["individuals"] == base.population_size < full.counters["individuals"]
    # A best that fails the select test does not end the search: same run as without the early stop.
    checked = experiment.run_experiments(base.replace(search_sufficient_fitness=0.0, sufficient_fitness=0.9999999),
                                         output_dir=str(tmp_path / "c"), log=None)
    assert checked.counters == full.counters and checked.best_program == full.best_program
    assert checked.select_fitness == full.select_fitness < 0.9999999


def test_baseline_needs_data(tmp_path):
    with pytest.raises(ConfigError, match="CIFAR-10"):
        experiment.run_experiments(experiment.get_preset("baseline"), output_dir=str(tmp_path), log=None)


# ------------------------------------------------------------------ driver --

def _results(path) -> dict:
    with open(os.path.join(path, "results.json")) as f:
        data = json.load(f)
    return {k: data[k] for k in ("search_fitness", "select_fitness", "final_fitness", "best_program", "experiments",
                                 "counters", "best_experiment")}


def test_tiny_run_writes_outputs_and_is_deterministic(tmp_path):
    lines: list[str] = []
    a, b = tmp_path / "a", tmp_path / "b"
    result = experiment.run_experiments(_tiny(), output_dir=str(a), log=lines.append)
    for name in ("progress.csv", "best_program.json", "best_program.txt", "results.json", "checkpoint.json"):
        assert (a / name).exists(), name
    assert result.num_experiments == 2
    assert 0.0 < result.select_fitness <= 1.0 and 0.0 < result.final_fitness <= 1.0
    progress = [ln for ln in lines if ln.startswith("indivs=")]
    assert progress and "best fit=" in progress[0] and "fec_hit_rate=" in progress[0]
    assert any(ln.startswith("Final evaluation fitness (on unseen data) = ") for ln in lines)
    assert serialization.load_algorithm(a / "best_program.json") == result.best_program
    # The printed text form rounds constants (like the reference), so compare printed forms.
    assert (a / "best_program.txt").read_text() == serialization.format_algorithm(result.best_program)
    rows = (a / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("experiment,indivs,elapsed_secs") and len(rows) > 2
    # Every experiment spends its train-step budget (init counts) and stops at a sweep boundary.
    for record in _results(a)["experiments"]:
        assert record["counters"]["train_steps"] >= 4000 and record["counters"]["individuals"] % 20 == 0
    experiment.run_experiments(_tiny(), output_dir=str(b), log=None)
    assert _results(a) == _results(b)


class _Kill(Exception):
    pass


@pytest.mark.parametrize("kill_at", [(0, 7), (0, 17), (1, 5)])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, kill_at):
    config = _tiny(children_per_step=3, num_islands=2, migration_every=4)
    full, killed = tmp_path / "full", tmp_path / "killed"
    experiment.run_experiments(config, output_dir=str(full), log=None)

    def hook(experiment_index: int, step: int) -> None:
        if (experiment_index, step) == kill_at:
            raise _Kill

    with pytest.raises(_Kill):
        experiment.run_experiments(config, output_dir=str(killed), log=None, step_hook=hook)
    assert not (killed / "results.json").exists()
    lines: list[str] = []
    experiment.run_experiments(config, output_dir=str(killed), resume=True, log=lines.append)
    assert any(ln.startswith("experiment ") and "resumed at indivs=" in ln for ln in lines)  # mid-search resume
    assert _results(killed) == _results(full)
    csv_full = [r.split(",")[:2] for r in (full / "progress.csv").read_text().splitlines()]
    csv_resumed = [r.split(",")[:2] for r in (killed / "progress.csv").read_text().splitlines()]
    assert csv_resumed == csv_full  # no duplicated rows after the resume


def test_resume_extends_finished_run(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    experiment.run_experiments(_tiny(), output_dir=str(two), log=None)
    experiment.run_experiments(_tiny(max_experiments=1), output_dir=str(one), log=None)
    experiment.run_experiments(_tiny(max_experiments=2), output_dir=str(one), resume=True, log=None)
    assert _results(one) == _results(two)


def test_existing_checkpoint_needs_resume(tmp_path):
    experiment.run_experiments(_tiny(max_experiments=1), output_dir=str(tmp_path), log=None)
    with pytest.raises(ConfigError, match="already exists; pass resume"):
        experiment.run_experiments(_tiny(max_experiments=1), output_dir=str(tmp_path), log=None)


def test_corrupt_or_mismatched_checkpoint(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        experiment.run_experiments(_tiny(), output_dir=str(tmp_path / "none"), resume=True, log=None)
    experiment.run_experiments(_tiny(max_experiments=1), output_dir=str(tmp_path), log=None)
    with pytest.raises(checkpoint.CheckpointError, match="different search config"):
        experiment.run_experiments(_tiny(population_size=10), output_dir=str(tmp_path), resume=True, log=None)
    path = tmp_path / "checkpoint.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        experiment.run_experiments(_tiny(), output_dir=str(tmp_path), resume=True, log=None)


def test_checkpoint_save_is_atomic(tmp_path):
    path = tmp_path / "ck.json"
    checkpoint.save(path, {"a": 1}, config_digest="x")
    assert checkpoint.load(path, config_digest="x") == {"a": 1}
    assert os.listdir(tmp_path) == ["ck.json"]  # no temp file left behind


def test_atomic_writes_leave_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "r.json"
    fileio.atomic_write_json(path, {"a": [1, 2]})  # creates the directory
    assert path.read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"
    with pytest.raises(RuntimeError):
        with fileio.atomic_open(path) as f:
            f.write("partial")
            raise RuntimeError("killed mid-write")
    with pytest.raises(TypeError):
        fileio.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert os.listdir(path.parent) == ["r.json"]  # temp files removed
    fileio.atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and os.listdir(path.parent) == ["r.json"]
    with pytest.raises(OSError):
        fileio.atomic_write_text(tmp_path / "missing" / "x.txt", "x", make_dirs=False)


# --------------------------------------------------------------------- CLI --

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "search.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_runs_and_reports_errors(tmp_path):
    out = tmp_path / "cli"
    r = _cli("--config=tiny", f"--output_dir={out}", "--max_experiments=1", "--max_train_steps=2000")
    assert r.returncode == 0, r.stderr
    assert "Final evaluation fitness" in r.stdout and (out / "results.json").exists()
    for args, message in [(("--config=nope", f"--output_dir={out}x"), "neither a preset"),
                          (("--config=tiny", f"--output_dir={out}y", "--islands=0"), "num_islands must be >= 1"),
                          (("--config=tiny", f"--output_dir={out}z", "--bogus=1"), "Unknown command line flag")]:
        r = _cli(*args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_time_spent_before_the_search_counts_against_the_budget(tmp_path):
    """elapsed_offset (e.g. cifar_binary's data build) is part of the run's
    elapsed time; a fresh run that already spent its budget refuses to start."""
    config = _tiny(max_seconds=1.0)
    with pytest.raises(ConfigError, match="already spent before the search"):
        experiment.run_experiments(config, output_dir=str(tmp_path / "a"), log=None, elapsed_offset=2.0)
    assert not (tmp_path / "a" / "checkpoint.json").exists()
    result = experiment.run_experiments(_tiny(max_seconds=600.0), output_dir=str(tmp_path / "b"), log=None,
                                        elapsed_offset=30.0)
    assert result.elapsed_seconds >= 30.0


def test_results_report_the_search_against_its_interpreter(tmp_path):
    """results.json `interpreter_use` (batched backends): the search's train
    steps/s, the interpreter's own rate on full batches of its programs,
    their ratio and the host time per individual; None on the reference."""
    xla = experiment.run_experiments(_tiny(backend="xla", children_per_step=10, max_experiments=1),
                                     output_dir=str(tmp_path / "xla"), log=None).to_dict()["interpreter_use"]
    assert set(xla) == {"search_train_steps_per_second", "interpreter_train_steps_per_second", "fraction",
                        "host_us_per_individual"}
    assert xla["search_train_steps_per_second"] > 0 and xla["interpreter_train_steps_per_second"] > 0
    assert xla["fraction"] == pytest.approx(xla["search_train_steps_per_second"]
                                            / xla["interpreter_train_steps_per_second"])
    assert xla["host_us_per_individual"] > 0
    with open(tmp_path / "xla" / "results.json") as f:
        assert json.load(f)["interpreter_use"] == xla
    reference_run = experiment.run_experiments(_tiny(max_experiments=1), output_dir=str(tmp_path / "ref"), log=None)
    assert reference_run.to_dict()["interpreter_use"] is None
