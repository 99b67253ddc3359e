"""Named experiment configs (spec §16-§18 and a smoke run), as data.

`PRESETS` maps a name to the keyword arguments of an `ExperimentConfig`
(the JSON form of its fields); `get_preset` builds and validates one.
`PRESET_NOTES` says what a preset needs that the package does not ship.
"""

from __future__ import annotations

from typing import Any

from azero_jax import ops as ops_lib
from azero_jax.experiment.config import ConfigError, ExperimentConfig
from azero_jax.search import mutator as mutator_lib

_DEMO_OPS = [ops_lib.OPS[i].name for i in ops_lib.DEMO_OPS]
_DEMO_TYPES = list(mutator_lib.DEMO_MUTATION_TYPES)

# run_baseline.sh (spec §17). Its tasks are projected binary CIFAR-10
# (F 16, 8000 train, 1000 valid, accuracy) in the .npz files below;
# experiments/cifar_binary.py builds such collections and points this
# config at them.
_BASELINE: dict[str, Any] = dict(
    search_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                   "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
    select_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                   "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
    final_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/final.npz", "features": 16,
                  "num_train": 8000, "num_valid": 1000, "num_tasks": 100, "eval_type": "accuracy"}],
    setup_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_SETUP_OPS],
    predict_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_PREDICT_OPS],
    learn_ops=[ops_lib.OPS[i].name for i in ops_lib.BASELINE_LEARN_OPS],
    setup_size_init=1, predict_size_init=1, learn_size_init=1,
    mutate_setup_size_min=1, mutate_setup_size_max=7, mutate_predict_size_min=1, mutate_predict_size_max=11,
    mutate_learn_size_min=1, mutate_learn_size_max=23,
    train_budget={"baseline": "neural_net", "factor": 2.0}, population_size=100, tournament_size=10,
    initial_population="noop", max_train_steps=100_000_000_000,
    allowed_mutation_types=["ALTER_PARAM", "RANDOMIZE_COMPONENT_FUNCTION", "INSERT_INSTRUCTION",
                            "REMOVE_INSTRUCTION"],
    mutate_prob=0.9, progress_every=10000, memory=[5, 9, 2], max_experiments=1, random_seed=1000060)

PRESETS: dict[str, dict[str, Any]] = {
    # run_demo.sh (spec §16); time-seeded like the reference script. Runs on
    # the "auto" backend in float64 (on a CPU the native interpreter when
    # Numba is installed, else the batched JAX one: same values as the
    # reference interpreter up to transcendental ulps), 250 children per step
    # (4 steps per sweep of the population of 1000) to amortize each call;
    # backend="reference", children_per_step=1 is the reference's sequential
    # algorithm on the NumPy interpreter (~100x slower).
    "demo": dict(
        search_tasks=["demo_search"], select_tasks=["demo_select"], final_tasks=["demo_final"],
        setup_ops=_DEMO_OPS, predict_ops=_DEMO_OPS, learn_ops=_DEMO_OPS,
        setup_size_init=10, predict_size_init=2, learn_size_init=8,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=1000, tournament_size=10,
        initial_population="random", max_train_steps=200_000_000, allowed_mutation_types=_DEMO_TYPES,
        mutate_prob=0.9, progress_every=10000, memory=[4, 3, 1], max_experiments=0, randomize_task_seeds=True,
        sufficient_fitness=0.9999, random_seed=0, backend="auto", dtype="float64", children_per_step=250),
    "baseline": _BASELINE,
    # The paper's full method at its scale on one device (issue 17): the
    # paper ran 10,000 workers of population 100 each, half of them on binary
    # CIFAR-10 tasks and half on binary MNIST tasks, exchanging programs by
    # migration. Here every worker is an island of one process: 2,000 islands
    # of population 100 (one child per island and step, so each step's 2,000
    # children go to the evaluator in ONE batched call), islands 0-999 on the
    # CIFAR-10 collection and 1000-1999 on the MNIST one (migrants
    # re-evaluated on arrival), ring migration every 50 steps, hurdles on
    # (a child is first evaluated on 2 of its island's tasks and stops there
    # below the population's 75th percentile), FEC and the baseline's train
    # budget, search space and memory. experiments/cifar_binary.py
    # --preset=paper_full --mix_dataset=mnist builds both collections; on a
    # smaller device lower --islands (the per-step batch shrinks with it).
    "paper_full": dict(
        search_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"},
                      {"kind": "explicit", "path": "binary_mnist_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
        select_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"},
                      {"kind": "explicit", "path": "binary_mnist_data/search.npz", "features": 16,
                       "num_train": 8000, "num_valid": 1000, "num_tasks": 10, "eval_type": "accuracy"}],
        final_tasks=[{"kind": "explicit", "path": "binary_cifar10_data/final.npz", "features": 16,
                      "num_train": 8000, "num_valid": 1000, "num_tasks": 100, "eval_type": "accuracy"}],
        island_task_groups=[0, 1], num_islands=2000, migration_every=50, children_per_step=1,
        hurdle_tasks=2, hurdle_percentile=75.0, fec={"num_train_examples": 10, "num_valid_examples": 10},
        **{k: v for k, v in _BASELINE.items() if k not in ("search_tasks", "select_tasks", "final_tasks")}),
    # run_integration_test_linear.sh (spec §18).
    "integration_linear": dict(
        search_tasks=["integration_linear_search"], select_tasks=["integration_linear_select"],
        final_tasks=["integration_linear_select"],
        setup_ops=["SCALAR_CONST_SET"], predict_ops=["VECTOR_INNER_PRODUCT"],
        learn_ops=["SCALAR_DIFF", "SCALAR_PRODUCT", "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM"],
        setup_size_init=5, predict_size_init=1, learn_size_init=4,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=1000, tournament_size=10,
        initial_population="random", max_train_steps=100_000_000, allowed_mutation_types=_DEMO_TYPES,
        mutate_prob=0.9, memory=[4, 3, 1], random_seed=100021),
    # run_integration_test_nonlinear.sh (spec §18): only Setup evolves.
    "integration_nonlinear": dict(
        search_tasks=["nn_teacher"], select_tasks=["nn_teacher_heldout"], final_tasks=["nn_teacher_heldout"],
        setup_ops=["VECTOR_GAUSSIAN_SET", "MATRIX_GAUSSIAN_SET"], predict_ops=[], learn_ops=[],
        setup_size_init=2, predict_size_init=1, learn_size_init=4,
        mutate_setup_size_min=6, mutate_setup_size_max=7, mutate_predict_size_min=3, mutate_predict_size_max=4,
        mutate_learn_size_min=9, mutate_learn_size_max=10,
        train_budget={"baseline": "neural_net", "factor": 2.0}, population_size=1000, tournament_size=10,
        initial_population="damaged_neural_net", max_train_steps=100_000_000,
        allowed_mutation_types=["ALTER_PARAM", "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION"],
        mutate_prob=1.0, memory=[5, 9, 2], random_seed=100001),
    # Seconds-long smoke run on the reference backend (tests, CI, first try).
    "tiny": dict(
        search_tasks=[{"kind": "linear", "features": 4, "num_train": 20, "num_valid": 10, "num_tasks": 2}],
        select_tasks=[{"kind": "linear", "features": 4, "num_train": 50, "num_valid": 20, "num_tasks": 3,
                       "data_seeds": [5000], "param_seeds": [6000]}],
        final_tasks=[{"kind": "linear", "features": 4, "num_train": 50, "num_valid": 20, "num_tasks": 3,
                      "data_seeds": [7000], "param_seeds": [8000]}],
        setup_ops=_DEMO_OPS, predict_ops=_DEMO_OPS, learn_ops=_DEMO_OPS,
        setup_size_init=3, predict_size_init=1, learn_size_init=4,
        fec={"num_train_examples": 10, "num_valid_examples": 10}, population_size=20, tournament_size=5,
        initial_population="random", max_train_steps=12000, allowed_mutation_types=_DEMO_TYPES,
        progress_every=100, memory=[4, 3, 1], max_experiments=2, random_seed=1, checkpoint_every_seconds=60.0,
        backend="reference"),
}

PRESET_NOTES: dict[str, str] = {
    "baseline": "reads projected binary CIFAR-10 collections (binary_cifar10_data/search.npz, final.npz); "
                "experiments/cifar_binary.py runs this config on collections it builds itself from CIFAR-10, "
                "MNIST, Fashion-MNIST or the built-in digits",
    "paper_full": "reads projected binary CIFAR-10 and MNIST collections (binary_cifar10_data/, "
                  "binary_mnist_data/); experiments/cifar_binary.py --preset=paper_full --mix_dataset=mnist builds "
                  "them from the datasets it reads (or the built-in digits)",
}


def get_preset(name: str) -> ExperimentConfig:
    """The validated config of preset `name` (ConfigError naming the presets if unknown)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown experiment preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return ExperimentConfig(**PRESETS[name])


def missing_data_note(which: str, path: str) -> str:
    """" (preset NAME NOTE)" when a preset with a note reads `path` among its
    `which` ("search", "select", "final") tasks, else "": the hint appended
    to a missing-task-file error."""
    return next((f" (preset {name} {text})" for name, text in PRESET_NOTES.items()
                 if any(e == path or (isinstance(e, dict) and e.get("path") == path)
                        for e in PRESETS[name].get(f"{which}_tasks", []))), "")
