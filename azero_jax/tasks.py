"""Tasks: the data one program is trained and validated on (reference §10).

`Task`, `TaskSpec`, the generators (linear, 2-layer-NN teacher, explicit
.npz), seeds and presets; the checks of the data itself are task_data.py's.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import task_data
from azero_jax.task_data import MAX_FEATURES, NPZ_KEYS, load_npz_arrays
from azero_jax.task_data import check_finite as check_finite  # re-exported: `tasks.check_finite`


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One task: train/valid arrays, eval type and epoch count.

    Arrays are float64: x of shape (n, F), y of shape (n,). `data_seed` keys
    the epoch shuffling (epochs after the first) and `index` is the task's
    position in its collection (it keys the random-op stream and FEC hashes).
    `num_classes` is C of a multiclass task (labels 0..C-1, 2 <= C <= F; 0 =
    inferred as 1 + the largest label; see `azero_jax.multiclass`) and 0 for
    the other eval types.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    eval_type: str = fitness_lib.RMS_ERROR
    num_train_epochs: int = 1
    data_seed: int = 0
    param_seed: int = 0
    index: int = 0
    name: str = ""
    num_classes: int = 0

    def __post_init__(self):
        object.__setattr__(self, "eval_type", fitness_lib.parse_eval_type(self.eval_type))
        if self.eval_type == fitness_lib.MULTICLASS and (self.num_classes is None or self.num_classes == 0):
            object.__setattr__(self, "num_classes", task_data.infer_num_classes(self.y_train, self.y_valid))
        elif self.num_classes is None:
            object.__setattr__(self, "num_classes", 0)
        arrays = task_data.check_arrays(self.x_train, self.y_train, self.x_valid, self.y_valid, self.eval_type,
                                        self.num_classes)
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for name, array in arrays.items():
            object.__setattr__(self, name, array)
        if self.num_train_epochs < 1:
            raise ValueError(f"num_train_epochs must be >= 1, got {self.num_train_epochs}")

    def nonfinite(self) -> str | None:
        """None when every value is finite, else which array holds NaN or
        infinity, how many, and the first index. (The interpreter follows
        the reference's rules for them, so the C++ cases may use them; a
        search on such data is refused: `check_finite`.)"""
        return task_data.nonfinite(self)

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_valid(self) -> int:
        return int(self.x_valid.shape[0])

    def epoch_order(self) -> np.ndarray:
        """Train example indices over all epochs (reference `GenerateEpochs`):
        epoch 0 in natural order, each later epoch a fresh shuffle of the
        previous order seeded by the data seed. NumPy's generator stands in for
        the reference's std::shuffle on mt19937 (same rule, other numbers)."""
        order = np.arange(self.num_train)
        epochs = [order]
        rng = np.random.default_rng(self.data_seed + 3274582109)
        for _ in range(1, self.num_train_epochs):
            order = order[rng.permutation(self.num_train)]
            epochs.append(order)
        return np.concatenate(epochs)


# ------------------------------------------------------------ task specs --
# Generated task collections (reference `TaskSpec`, `task_util.h`, spec §10).
# The reference draws with mt19937 + abseil distributions; here NumPy's
# default generator stands in (same seeding rule and offsets, other numbers).

LINEAR = "scalar_linear_regression"
NN_2LAYER = "scalar_2layer_nn_regression"
EXPLICIT = "explicit"
TASK_KINDS = (LINEAR, NN_2LAYER, EXPLICIT)
_KIND_ALIASES = {
    "scalar_linear_regression": LINEAR, "scalar_linear_regression_task": LINEAR, "linear": LINEAR,
    "scalar_2layer_nn_regression": NN_2LAYER, "scalar_2layer_nn_regression_task": NN_2LAYER,
    "nn": NN_2LAYER, "2layer_nn": NN_2LAYER, "nn_regression": NN_2LAYER,
    "explicit": EXPLICIT, "npz": EXPLICIT,
}
_KIND_NAME_PREFIX = {LINEAR: "linear", NN_2LAYER: "nn"}

# Reference default seeds when a TaskSpec lists none (continuing +1 after the 8th).
DEFAULT_PARAM_SEEDS = (1001, 1012, 1010, 1000, 1006, 1008, 1007, 1003)
DEFAULT_DATA_SEEDS = (11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003)

# Offsets the reference adds to the seeds before seeding each task's RNGs.
LINEAR_DATA_SEED_OFFSET = 939723201
LINEAR_PARAM_SEED_OFFSET = 997958712
NN_DATA_SEED_OFFSET = 865546086
NN_PARAM_SEED_OFFSET = 174299604

MAX_TASK_SEED = 2**32 - 1  # randomized seeds lie in the open interval (1, MAX_TASK_SEED)


def parse_task_kind(kind: str) -> str:
    """Canonical task kind from a name or alias (`linear`, `nn`, `npz`, or the
    reference's `*_task` field names)."""
    key = str(kind).strip().lower()
    if key not in _KIND_ALIASES:
        raise ValueError(f"unknown task kind {kind!r}; use one of: {', '.join(TASK_KINDS)}")
    return _KIND_ALIASES[key]


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"TaskSpec.{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_seeds(name: str, seeds) -> tuple[int, ...]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = (seeds,)
    try:
        values = tuple(seeds)
    except TypeError:
        raise ValueError(f"TaskSpec.{name} must be a sequence of integers, got {seeds!r}") from None
    out = []
    for i, s in enumerate(values):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"TaskSpec.{name}[{i}] must be a non-negative integer seed, got {s!r}")
        out.append(int(s))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A family of `num_tasks` tasks of one kind (reference `TaskSpec`).

    For generated kinds `features`, `num_train` and `num_valid` are required.
    For `explicit` tasks they are optional: None uses the whole file, a number
    takes the first rows (the file must have at least that many; `features`
    must match). An explicit .npz holds x_train (n, F), y_train (n,), x_valid,
    y_valid for one task, or stacked arrays (T, n, F) / (T, n) for T tasks.
    `num_classes`: C of multiclass explicit tasks (None: 1 + the largest label
    in the file, the same C for all its tasks).
    """

    kind: str = LINEAR
    features: int | None = None
    num_train: int | None = None
    num_valid: int | None = None
    num_tasks: int = 1
    num_train_epochs: int = 1
    data_seeds: tuple[int, ...] = ()
    param_seeds: tuple[int, ...] = ()
    eval_type: str = fitness_lib.RMS_ERROR
    path: str | None = None
    num_classes: int | None = None

    def __post_init__(self):
        kind = parse_task_kind(self.kind)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "eval_type", fitness_lib.parse_eval_type(self.eval_type))
        object.__setattr__(self, "num_tasks", _check_int("num_tasks", self.num_tasks, 1))
        object.__setattr__(self, "num_train_epochs", _check_int("num_train_epochs", self.num_train_epochs, 1))
        for name in ("features", "num_train", "num_valid"):
            value = getattr(self, name)
            if value is None:
                if kind != EXPLICIT:
                    raise ValueError(f"TaskSpec.{name} is required for {kind} tasks")
                continue
            object.__setattr__(self, name, _check_int(name, value, 1))
        if self.features is not None and self.features > MAX_FEATURES:
            raise ValueError(f"TaskSpec.features must be <= {MAX_FEATURES} (the documented cap), got {self.features}")
        for name in ("data_seeds", "param_seeds"):
            seeds = _check_seeds(name, getattr(self, name))
            if len(seeds) > self.num_tasks:
                raise ValueError(
                    f"TaskSpec.{name} has {len(seeds)} seeds but num_tasks is {self.num_tasks}"
                )
            object.__setattr__(self, name, seeds)
        if kind in (LINEAR, NN_2LAYER) and self.eval_type != fitness_lib.RMS_ERROR:
            raise ValueError(f"{kind} tasks are regression tasks: eval_type must be rms, got {self.eval_type!r}")
        if self.num_classes is not None:
            if self.eval_type != fitness_lib.MULTICLASS:
                raise ValueError(f"TaskSpec.num_classes is only used by multiclass tasks, not {self.eval_type}")
            object.__setattr__(self, "num_classes", task_data.check_num_classes(
                self.num_classes, self.features if self.features is not None else MAX_FEATURES))
        if kind == NN_2LAYER and self.features < 3:
            raise ValueError(
                f"{kind} tasks need features >= 3 (the teacher zeroes hidden units 0 and 2), got {self.features}"
            )
        if kind == EXPLICIT:
            if not self.path:
                raise ValueError("explicit tasks need TaskSpec.path (an .npz file with keys " + ", ".join(NPZ_KEYS) + ")")
            object.__setattr__(self, "path", str(self.path))
        elif self.path is not None:
            raise ValueError(f"TaskSpec.path is only used by explicit tasks, not {kind}")

    def replace(self, **changes) -> TaskSpec:
        return dataclasses.replace(self, **changes)


def _seed_at(seeds: tuple[int, ...], i: int) -> int:
    """Reference rule: seeds[i] if given, else last given + (i - last index)."""
    if i < len(seeds):
        return seeds[i]
    return seeds[-1] + (i - (len(seeds) - 1))


def task_seeds(spec: TaskSpec) -> list[tuple[int, int]]:
    """(data_seed, param_seed) of each task in `spec`, with the defaults
    applied independently to whichever list is empty."""
    data = spec.data_seeds or DEFAULT_DATA_SEEDS
    param = spec.param_seeds or DEFAULT_PARAM_SEEDS
    return [(_seed_at(data, i), _seed_at(param, i)) for i in range(spec.num_tasks)]


def randomize_task_seeds(spec: TaskSpec, rng: np.random.Generator) -> TaskSpec:
    """A copy of `spec` with num_tasks fresh data and param seeds, uniform over
    the integers in the open interval (1, 2**32 - 1) (reference
    `RandomizeTaskSeeds`; the draw is NumPy's, not mt19937's). Param seeds are
    drawn first, then data seeds."""
    param = rng.integers(2, MAX_TASK_SEED, size=spec.num_tasks)
    data = rng.integers(2, MAX_TASK_SEED, size=spec.num_tasks)
    return spec.replace(data_seeds=tuple(int(s) for s in data), param_seeds=tuple(int(s) for s in param))


def randomize_collection_seeds(specs, rng: np.random.Generator) -> list[TaskSpec]:
    """`randomize_task_seeds` over a whole collection, in order."""
    return [randomize_task_seeds(s, rng) for s in _as_spec_list(specs)]


def _gaussian_features(rng: np.random.Generator, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Train features, then valid features, each entry iid N(0, 1)."""
    x_train = rng.standard_normal((spec.num_train, spec.features))
    x_valid = rng.standard_normal((spec.num_valid, spec.features))
    return x_train, x_valid


def linear_regression_weights(param_seed: int, features: int) -> np.ndarray:
    """The task's true weight vector w ~ N(0, 1)^F."""
    return np.random.default_rng(param_seed + LINEAR_PARAM_SEED_OFFSET).standard_normal(features)


def nn_teacher_weights(param_seed: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher (W1, w2): W1 (F, F) ~ N(0, 1) with rows 0 and 2 zeroed, then
    w2 ~ N(0, 1)^F with entries 0 and 2 zeroed (reference draw order)."""
    if features < 3:
        raise ValueError(f"the 2-layer NN teacher needs features >= 3, got {features}")
    rng = np.random.default_rng(param_seed + NN_PARAM_SEED_OFFSET)
    w1 = rng.standard_normal((features, features))
    w1[[0, 2], :] = 0.0
    w2 = rng.standard_normal(features)
    w2[[0, 2]] = 0.0
    return w1, w2


def nn_teacher_labels(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """y = w2 . relu(W1 x) per row of x (no biases)."""
    return np.maximum(x @ w1.T, 0.0) @ w2


def _generated_task(spec: TaskSpec, data_seed: int, param_seed: int, index: int) -> Task:
    if spec.kind == LINEAR:
        x_train, x_valid = _gaussian_features(np.random.default_rng(data_seed + LINEAR_DATA_SEED_OFFSET), spec)
        w = linear_regression_weights(param_seed, spec.features)
        y_train, y_valid = x_train @ w, x_valid @ w
    else:
        x_train, x_valid = _gaussian_features(np.random.default_rng(data_seed + NN_DATA_SEED_OFFSET), spec)
        w1, w2 = nn_teacher_weights(param_seed, spec.features)
        y_train, y_valid = nn_teacher_labels(x_train, w1, w2), nn_teacher_labels(x_valid, w1, w2)
    return Task(
        x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid, eval_type=spec.eval_type,
        num_train_epochs=spec.num_train_epochs, data_seed=data_seed, param_seed=param_seed, index=index,
        name=f"{_KIND_NAME_PREFIX[spec.kind]}[{index}]",
    )


def _explicit_tasks(spec: TaskSpec, start_index: int) -> list[Task]:
    arrays = load_npz_arrays(spec.path)
    available, n_train, n_valid, features = (
        arrays["x_train"].shape[0], arrays["x_train"].shape[1], arrays["x_valid"].shape[1], arrays["x_train"].shape[2]
    )
    if spec.num_tasks > available:
        raise ValueError(f"task data file {spec.path!r} holds {available} task(s), but num_tasks is {spec.num_tasks}")
    if spec.features is not None and spec.features != features:
        raise ValueError(f"task data file {spec.path!r} has {features} features, but TaskSpec.features is {spec.features}")
    num_train = n_train if spec.num_train is None else spec.num_train
    num_valid = n_valid if spec.num_valid is None else spec.num_valid
    if num_train > n_train or num_valid > n_valid:
        raise ValueError(
            f"task data file {spec.path!r} has {n_train} train / {n_valid} valid examples, "
            f"fewer than the requested {num_train} / {num_valid}"
        )
    stem = os.path.splitext(os.path.basename(spec.path))[0]
    num_classes = 0
    if spec.eval_type == fitness_lib.MULTICLASS:  # one C for the whole file (tasks are batched together)
        num_classes = spec.num_classes or task_data.infer_num_classes(arrays["y_train"], arrays["y_valid"])
    tasks = []
    for i, (data_seed, param_seed) in enumerate(task_seeds(spec)):
        index = start_index + i
        try:
            tasks.append(Task(
                x_train=arrays["x_train"][i, :num_train], y_train=arrays["y_train"][i, :num_train],
                x_valid=arrays["x_valid"][i, :num_valid], y_valid=arrays["y_valid"][i, :num_valid],
                eval_type=spec.eval_type, num_train_epochs=spec.num_train_epochs, data_seed=data_seed,
                param_seed=param_seed, index=index, name=f"{stem}[{index}]", num_classes=num_classes,
            ))
        except ValueError as e:
            which = f" task {i}" if available > 1 else ""
            raise ValueError(f"task data file {spec.path!r}{which}: {e}") from None
    return tasks


def spec_tasks(spec: TaskSpec, start_index: int = 0) -> list[Task]:
    """The tasks of one TaskSpec; task i gets index start_index + i."""
    if spec.kind == EXPLICIT:
        return _explicit_tasks(spec, start_index)
    return [_generated_task(spec, d, p, start_index + i) for i, (d, p) in enumerate(task_seeds(spec))]


def _as_spec_list(spec_or_list) -> list[TaskSpec]:
    if isinstance(spec_or_list, str):
        return [get_preset(spec_or_list)]
    if isinstance(spec_or_list, TaskSpec):
        return [spec_or_list]
    specs = list(spec_or_list)
    for i, s in enumerate(specs):
        if not isinstance(s, TaskSpec):
            raise ValueError(f"task collection entry {i} is not a TaskSpec: {s!r}")
    if not specs:
        raise ValueError("a task collection needs at least one TaskSpec")
    return specs


def make_tasks(spec_or_list, rng: np.random.Generator | None = None) -> list[Task]:
    """Flattens a collection (a TaskSpec, a list of them, or a preset name)
    into tasks; task index = position in the flattened list. With `rng`, every
    spec's seeds are first re-drawn (the driver's --randomize_task_seeds)."""
    specs = _as_spec_list(spec_or_list)
    if rng is not None:
        specs = [randomize_task_seeds(s, rng) for s in specs]
    tasks: list[Task] = []
    for spec in specs:
        tasks.extend(spec_tasks(spec, start_index=len(tasks)))
    return tasks


# -------------------------------------------------------------- presets --
# Collections of the shipped reference configs (spec §16-§18).
#  * demo_*: run_demo.sh search / select / final tasks. demo_select has the
#    default seeds; the demo driver re-randomizes them per experiment.
#  * nn_teacher: run_integration_test_nonlinear.sh search task (no seeds given,
#    so the defaults 11001 / 1001). Its select and final task collections are
#    identical there (param_seeds: [9000], data_seeds: [19000]); that is
#    `nn_teacher_heldout` (the digest's "seeds 9000/19000" means param/data).
#  * integration_linear_select: run_integration_test_linear.sh select (and,
#    identically, final) tasks at full size, 100 tasks x 10000 train (default
#    seeds): about 0.1 s and 32 MB to generate, so not scaled down.
PRESETS: dict[str, TaskSpec] = {
    "demo_search": TaskSpec(LINEAR, features=4, num_train=100, num_valid=100, num_tasks=10),
    "demo_select": TaskSpec(LINEAR, features=4, num_train=1000, num_valid=100, num_tasks=100),
    "demo_final": TaskSpec(LINEAR, features=4, num_train=1000, num_valid=100, num_tasks=100,
                           data_seeds=(1000000,), param_seeds=(2000000,)),
    "nn_teacher": TaskSpec(NN_2LAYER, features=4, num_train=1000, num_valid=100, num_tasks=1),
    "nn_teacher_heldout": TaskSpec(NN_2LAYER, features=4, num_train=1000, num_valid=100, num_tasks=1,
                                   data_seeds=(19000,), param_seeds=(9000,)),
    "integration_linear_search": TaskSpec(LINEAR, features=4, num_train=100, num_valid=100, num_tasks=10),
    "integration_linear_select": TaskSpec(LINEAR, features=4, num_train=10000, num_valid=100, num_tasks=100),
}


def get_preset(name: str, **overrides) -> TaskSpec:
    """A named TaskSpec, with fields replaced by `overrides` (validated again)."""
    if name not in PRESETS:
        raise ValueError(f"unknown task preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    spec = PRESETS[name]
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TaskSpec)})
        if unknown:
            raise ValueError(f"unknown TaskSpec field(s) {', '.join(unknown)} in overrides of preset {name!r}")
        spec = spec.replace(**overrides)
    return spec
