"""experiments/cifar_binary.py on the built-in digits: a short run writes every
output, --resume after an interruption continues it, bad data dirs fail clearly."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "cifar_binary.py")


@pytest.fixture(scope="module")
def script():
    from azero_jax.scripts import cifar_binary

    return cifar_binary


# Config fields the tests set (Options.config_overrides, as the config flags would); the reference backend,
# not the script's default batched one, which compiles for minutes at this size on CPU.
_CONFIG = dict(population_size=8, tournament_size=3, max_train_steps=30_000, progress_every=8,
               checkpoint_every_seconds=0.0, backend="reference")
_CONFIG_FIELDS = ("num_islands",) + tuple(_CONFIG)


def _options(script, tmp_path, **changes):
    base = dict(output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), features=8,
                num_search_tasks=2, num_final_tasks=3, baseline_trials=2, optax_epochs=2, baselines=False)
    overrides = dict(_CONFIG)
    for key in list(changes):
        if key in _CONFIG_FIELDS:
            overrides[key] = changes.pop(key)
    base.update(changes)
    return script.Options(**base, config_overrides=overrides)


def test_short_run_writes_every_output(script, tmp_path):
    lines: list[str] = []
    opts = _options(script, tmp_path, baselines=True)
    results = script.run(opts, log=lines.append)
    out = opts.output_dir
    files = set(os.listdir(out))
    assert {"progress.csv", "best_program.json", "best_program.txt", "results.json", "baselines.json",
            "checkpoint.json"} <= files
    try:
        import matplotlib  # noqa: F401

        assert "fitness.png" in files
    except ImportError:
        assert any("fitness.png skipped" in n for n in results["notes"])
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    for key in ("search_fitness", "select_fitness", "final_fitness", "individuals_per_second",
                "train_steps_per_second", "baselines", "data"):
        assert key in saved, key
    assert saved["data"]["sizes"] == {"train": 278, "valid": 35, "test": 35}
    assert saved["config"]["population_size"] == 8 and saved["config"]["fec"] is None
    assert saved["config"]["train_budget"] == {"baseline": "neural_net", "factor": 2.0}
    names = [r["name"] for r in saved["baselines"]]
    assert names == ["evolved", "linear_program_tuned", "neural_net_program_tuned", "evolved_retuned",
                     "logistic_regression_optax", "mlp_32_optax"]
    nn = saved["baselines"][2]
    assert nn["final_fitness"] > 0.75 and nn["final_test_accuracy"] > 0.75
    assert any("individuals/s" in line for line in lines)
    assert any("T_final" in line for line in lines)  # the comparison table
    with open(os.path.join(out, "progress.csv")) as f:
        assert len(list(csv.DictReader(f))) >= 2


def test_resume_after_interruption_continues(script, tmp_path):
    class Killed(Exception):
        pass

    def kill(_experiment, step):
        if step >= 12:
            raise Killed

    opts = _options(script, tmp_path)
    with pytest.raises(Killed):
        script.run(opts, log=lambda _line: None, step_hook=kill)
    assert not os.path.exists(os.path.join(opts.output_dir, "results.json"))
    with open(os.path.join(opts.output_dir, "checkpoint.json")) as f:
        state = json.load(f)["state"]
    assert state["current"] is not None and state["experiment_index"] == 0  # killed mid-search
    lines: list[str] = []
    resumed = script.run(dataclasses.replace(opts, resume=True), log=lines.append)
    assert any("resumed" in line for line in lines)
    fresh = script.run(_options(script, tmp_path, output_dir=str(tmp_path / "fresh")), log=lambda _line: None)
    assert resumed["best_program_text"] == fresh["best_program_text"]
    assert resumed["final_fitness"] == fresh["final_fitness"]
    assert resumed["counters"]["individuals"] == fresh["counters"]["individuals"]


def test_cli_missing_cifar_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--dataset=cifar10", f"--data_dir={tmp_path / 'none'}",
                           f"--output_dir={tmp_path / 'out'}", f"--cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "error: CIFAR-10 not found" in proc.stderr and "cifar-10-python.tar.gz" in proc.stderr


def test_mixed_by_island_config(script, tmp_path):
    """The paper's mixed setting: half the islands per dataset."""
    opts = _options(script, tmp_path, num_search_tasks=4, mix_dataset="digits", num_islands=2)
    config, data = script.build_config(opts, log=lambda _line: None)
    search = config.task_specs("search")
    assert [s.num_tasks for s in search] == [4, 4] and config.island_task_groups == (0, 1)
    assert config.island_tasks(search)[1] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert data["mix_mode"] == "islands" and len(data["mix_search_tasks"]) == 4
    with pytest.raises(script.experiment.ConfigError, match="needs --islands >= 2"):
        script.build_config(_options(script, tmp_path, mix_dataset="digits"), log=lambda _line: None)


def test_mixed_search_tasks_config(script, tmp_path):
    opts = _options(script, tmp_path, num_search_tasks=4, mix_dataset="digits", mix_mode="tasks")
    config, data = script.build_config(opts, log=lambda _line: None)
    search = config.task_specs("search")
    assert [s.num_tasks for s in search] == [2, 2] and config.task_specs("select") == search
    assert config.island_task_groups is None
    assert data["mix_dataset"] == "digits" and len(data["mix_search_tasks"]) == 2
    assert config.population_size == 8 and config.memory == (5, 9, 2) and config.initial_population == "noop"
    assert (config.mutate_setup_size_max, config.mutate_predict_size_max, config.mutate_learn_size_max) == (7, 11, 23)
    assert config.task_specs("final")[0].num_tasks == 3


def test_paper_full_preset_keeps_its_scale_and_runs_small(script, tmp_path):
    """--preset=paper_full: the preset's islands, hurdles and migration (not this script's one island),
    half the islands per dataset; it needs --mix_dataset; a small version runs end to end."""
    opts = _options(script, tmp_path, num_search_tasks=4, mix_dataset="digits", preset="paper_full")
    opts.config_overrides.pop("num_islands", None)
    config, _ = script.build_config(opts, log=lambda _line: None)
    assert (config.num_islands, config.population_size, config.children_per_step) == (2000, 8, 1)
    assert config.hurdle_tasks == 2 and config.migration_every == 50 and config.island_task_groups == (0, 1)
    assert config.island_tasks(config.task_specs("search"))[1][999:1001] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(script.experiment.ConfigError, match="--preset=paper_full .* give --mix_dataset"):
        script.build_config(_options(script, tmp_path, preset="paper_full"), log=lambda _line: None)
    lines: list[str] = []
    small = _options(script, tmp_path, num_search_tasks=4, mix_dataset="digits", preset="paper_full",
                     num_islands=4, max_train_steps=200_000)
    small.config_overrides["migration_every"] = 2
    small.worker_rate = 50.0
    result = script.run(small, log=lines.append)
    assert result["counters"]["hurdle_stops"] > 0  # the hurdle stopped some children early
    assert result["workers_replaced"] == result["individuals_per_second"] / 50.0
    assert any(line.startswith("this device searched as fast as ") for line in lines)
    assert result["config"]["num_islands"] == 4 and result["config"]["hurdle_tasks"] == 2


# ------------------------------------------------------------ --multiclass --

def _multiclass_options(script, tmp_path, **changes):
    """10-class digits tasks at F=16, sizes small enough for the reference backend."""
    base = dict(multiclass=True, features=16, num_train=200, num_valid=50, num_test=50)
    return _options(script, tmp_path, **{**base, **changes})


def test_multiclass_short_run_writes_results_and_baselines(script, tmp_path):
    lines: list[str] = []
    opts = _multiclass_options(script, tmp_path, baselines=True)
    script.run(opts, log=lines.append)
    with open(os.path.join(opts.output_dir, "results.json")) as f:
        saved = json.load(f)
    for which in ("search_tasks", "select_tasks", "final_tasks"):
        (entry,) = saved["config"][which]
        assert entry["eval_type"] == "multiclass" and entry["num_classes"] == 10, entry
    assert saved["config"]["final_tasks"][0]["num_tasks"] == 3 and saved["config"]["memory"][:3] == [5, 9, 2]
    data = saved["data"]
    assert data["task_type"] == "multiclass" and data["num_classes"] == 10
    assert data["sizes"] == {"train": 200, "valid": 50, "test": 50}
    search_seeds = {t["seed"] for t in data["search_tasks"]}
    assert len(search_seeds) == 2 and not search_seeds & {t["seed"] for t in data["final_tasks"]}
    rows = {r["name"]: r for r in saved["baselines"]}
    assert list(rows) == ["evolved", "multiclass_linear_program_tuned", "multiclass_neural_net_program_tuned",
                          "evolved_retuned", "softmax_regression_optax", "mlp_32_optax"]
    for name in ("multiclass_linear_program_tuned", "multiclass_neural_net_program_tuned",
                 "softmax_regression_optax", "mlp_32_optax"):
        r = rows[name]
        assert min(r["select_fitness"], r["final_fitness"], r["final_test_accuracy"]) > 0.3, r  # chance: 0.1
    assert rows["softmax_regression_optax"]["params"]["num_classes"] == 10
    assert any("10 classes" in line for line in lines) and any("T_final" in line for line in lines)


def test_multiclass_config_backend_and_cache(script, tmp_path):
    opts = _multiclass_options(script, tmp_path)
    opts.config_overrides.pop("backend")
    config, data = script.build_config(opts, log=lambda _line: None)
    assert config.backend == script.cli.batched_backend()  # as for binary tasks
    assert config.memory == (5, 9, 2) and config.initial_population == "noop"
    final = config.task_specs("final")[0]
    assert final.eval_type == "multiclass" and final.num_classes == 10 and final.num_tasks == 3
    mtime = os.path.getmtime(data["final_collection"])
    auto = _multiclass_options(script, tmp_path, backend="auto")
    config, again = script.build_config(auto, log=lambda _line: None)
    assert config.backend == "auto" and again["final_collection"] == data["final_collection"]
    assert os.path.getmtime(data["final_collection"]) == mtime  # reused from the cache
    config, _ = script.build_config(_multiclass_options(script, tmp_path), log=lambda _line: None)
    assert config.backend == "reference"  # an explicit backend other than auto is kept
    # the built-in digits cap the default sizes to what the smallest class holds
    capped = _multiclass_options(script, tmp_path, num_train=8000, num_valid=1000, num_test=1000,
                                 num_search_tasks=1, num_final_tasks=1)
    _, data = script.build_config(capped, log=lambda _line: None)
    assert data["sizes"] == {"train": 1392, "valid": 174, "test": 174}


@pytest.mark.parametrize("changes, match", [
    (dict(mix_dataset="digits", num_islands=2), "drop --mix_dataset"),
    (dict(preset="paper_full", mix_dataset="digits"), "--preset=paper_full mixes two datasets"),
    (dict(features=8), r"--features >= 10"),
])
def test_multiclass_bad_combinations(script, tmp_path, changes, match):
    with pytest.raises(script.experiment.ConfigError, match=match) as e:
        script.build_config(_multiclass_options(script, tmp_path, **changes), log=lambda _line: None)
    assert "\n" not in str(e.value)


def test_multiclass_cli_bad_combination_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--multiclass", "--mix_dataset=digits",
                           f"--output_dir={tmp_path / 'out'}", f"--cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: --multiclass runs on the 10-class tasks of --dataset alone: drop --mix_dataset (the mixed setting "
        "is binary only)"]
    assert not os.path.exists(tmp_path / "out")
