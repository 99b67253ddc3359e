"""Baselines beside an evolved program on the same tasks (paper §4.2).

* The hand-written linear (logistic regression by SGD: the classification
  path squashes s1 with a sigmoid before Learn) and 2-layer neural-net
  programs, their learning rate / init scales tuned by a small random search
  on T_select, then scored on T_final, as the paper tuned its baselines.
* The evolved program re-tuned the same way: every scalar const-set constant
  (learning rates and the like) and every random-set scale is multiplied by
  its own log-uniform factor in [1/10, 10] per trial (trial 0 = as evolved).
* Logistic regression and a 2-layer MLP trained conventionally (minibatch
  Adam, optax), learning rate picked on T_select: the ordinary-ML reference
  point (on multiclass tasks: softmax regression and the MLP with C outputs,
  `optax_baselines(..., num_classes=C)`).

All program evaluations go through `azero_jax.evaluation` on the given
backend ("reference", or "xla": all trials in one batch), in float64.
Every fitness here is the mean validation accuracy over the tasks (the
driver's select/final fitness); `*_test` figures score the same trained
models on each task's held-out test split instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azero_jax import evaluation, serialization
from azero_jax import fitness as fitness_lib
from azero_jax import programs as programs_lib
from azero_jax.analysis import ablation
from azero_jax.analysis.ablation import log_uniform
from azero_jax.program import Algorithm, MemoryShape
from azero_jax.tasks import Task

BACKENDS = evaluation.BACKENDS

# Random-search ranges (log-uniform) for the hand-written programs.
LEARNING_RATE_RANGE = (1e-4, 1.0)
INIT_SCALE_RANGE = (1e-3, 1.0)
RETUNE_FACTOR_RANGE = ablation.RETUNE_FACTOR_RANGE


@dataclasses.dataclass
class BaselineResult:
    """One tuned method: its fitness on T_select (where it was tuned) and
    T_final, optionally T_final's test splits, and the chosen settings."""

    name: str
    select_fitness: float
    final_fitness: float
    params: dict[str, Any]
    trials: int
    final_test: float | None = None
    program: Algorithm | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "select_fitness": self.select_fitness,
                               "final_fitness": self.final_fitness, "final_test_accuracy": self.final_test,
                               "params": self.params, "trials": self.trials}
        if self.program is not None:
            out["program_text"] = serialization.format_algorithm(self.program)
        return out


def with_test_as_valid(tasks: Sequence[Task], x_test: np.ndarray, y_test: np.ndarray) -> list[Task]:
    """Copies of `tasks` whose validation split is the test split (T, n, F),
    so the same train-then-predict run is scored on unseen test examples."""
    return [dataclasses.replace(t, x_valid=x_test[i], y_valid=y_test[i]) for i, t in enumerate(tasks)]


# ---------------------------------------------------------- evaluation --

def evaluate_programs(programs: Sequence[Algorithm], tasks: Sequence[Task], memory: MemoryShape, *,
                      backend: str = "reference", seed: int = 0) -> np.ndarray:
    """Mean fitness over `tasks` of each program (select/final evaluation:
    MEAN, no FEC, no train budget; float64 on every backend)."""
    try:
        backend = evaluation.resolve_backend(backend)
    except ValueError as e:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}") from e
    memory = memory.with_features(tasks[0].features)
    fit = evaluation.task_results(list(programs), list(tasks), memory, seed=seed, backend=backend,
                                  dtype="float64").fitness
    return np.array([fitness_lib.combine(row, fitness_lib.MEAN) for row in fit.tolist()])


def _pick(name: str, candidates: list[tuple[Algorithm, dict[str, Any]]], select_tasks: Sequence[Task],
          final_tasks: Sequence[Task], memory: MemoryShape, backend: str, seed: int,
          test_tasks: Sequence[Task] | None) -> BaselineResult:
    """Best candidate on T_select (first wins ties, so the untuned default
    does), then its T_final (and test) fitness."""
    select = evaluate_programs([c[0] for c in candidates], select_tasks, memory, backend=backend, seed=seed)
    best = int(np.argmax(select))
    program, params = candidates[best]
    final = float(evaluate_programs([program], final_tasks, memory, backend=backend, seed=seed)[0])
    test = None
    if test_tasks is not None:
        test = float(evaluate_programs([program], test_tasks, memory, backend=backend, seed=seed)[0])
    return BaselineResult(name, float(select[best]), final, params, len(candidates), test, program)


# ----------------------------------------------------- hand-written --

def _candidates(factories: dict[str, Callable[..., Algorithm]], name: str, trials: int,
                rng: np.random.Generator) -> list[tuple[Algorithm, dict[str, Any]]]:
    """Trial 0: the reference defaults; then random draws of the learning
    rate (and, for the net, both init scales, in that order), log-uniform."""
    out: list[tuple[Algorithm, dict[str, Any]]] = []
    for t in range(max(1, trials)):
        params: dict[str, Any] = {"learning_rate": programs_lib.DEFAULT_LEARNING_RATE if t == 0
                                  else log_uniform(rng, LEARNING_RATE_RANGE)}
        if name == "neural_net":
            for key in ("first_init_scale", "second_init_scale"):
                params[key] = programs_lib.DEFAULT_INIT_SCALE if t == 0 else log_uniform(rng, INIT_SCALE_RANGE)
        out.append((factories[name](**params), params))
    return out


def hand_written_candidates(name: str, trials: int, rng: np.random.Generator) -> list[tuple[Algorithm, dict[str, Any]]]:
    """The tuning trials of the hand-written `linear` / `neural_net` program (`_candidates`)."""
    if name not in ("linear", "neural_net"):
        raise ValueError(f"tunable hand-written programs are linear and neural_net, not {name!r}")
    return _candidates(programs_lib.HAND_WRITTEN, name, trials, rng)


def tune_hand_written(name: str, select_tasks: Sequence[Task], final_tasks: Sequence[Task], memory: MemoryShape, *,
                      trials: int = 20, seed: int = 0, backend: str = "reference",
                      test_tasks: Sequence[Task] | None = None) -> BaselineResult:
    """The paper's baseline procedure for one hand-written program."""
    rng = np.random.default_rng([seed, 0 if name == "linear" else 1])
    return _pick(f"{name}_program_tuned", hand_written_candidates(name, trials, rng), select_tasks, final_tasks,
                 memory, backend, seed, test_tasks)


# -------------------------------------------------------- evolved, re-tuned --

# The core (sites, scaling, the random search) is `analysis.ablation`'s,
# shared with tools/analyze_program.py; these names stay for existing callers.
tunable_constants = ablation.tunable_constants
scale_constants = ablation.scale_constants


def retune_program(program: Algorithm, select_tasks: Sequence[Task], final_tasks: Sequence[Task],
                   memory: MemoryShape, *, trials: int = 20, seed: int = 0, backend: str = "reference",
                   test_tasks: Sequence[Task] | None = None, name: str = "evolved_retuned") -> BaselineResult:
    """Random search over log-scale factors of the program's constants (trial
    0 = unchanged; `analysis.ablation.retune_constants`, in float64); a
    program without such constants is scored as is."""
    try:
        evaluation.resolve_backend(backend)
    except ValueError as e:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}") from e
    r = ablation.retune_constants(program, select_tasks, memory, trials=trials, seed=seed, final_tasks=final_tasks,
                                  backend=backend, dtype="float64", combination=fitness_lib.MEAN,
                                  factor_range=RETUNE_FACTOR_RANGE)
    test = None
    if test_tasks is not None:
        test = float(evaluate_programs([r.program], test_tasks, memory, backend=backend, seed=seed)[0])
    params = {"factors": list(r.factors), "sites": ablation.site_labels(r.sites)}
    return BaselineResult(name, r.select_fitness, r.final_fitness, params, r.trials, test, r.program)


# ------------------------------------------------------------ optax --

def _optax_train(kind: str, x_train: np.ndarray, y_train: np.ndarray, *, hidden: int, epochs: int, batch_size: int,
                 learning_rates: Sequence[float], seed: int,
                 num_classes: int | None = None) -> Callable[[np.ndarray, slice], np.ndarray]:
    """Trains one model per (learning rate, task) at once (vmapped) and
    returns predict(x (t, n, F), task_slice) -> logits (L, t, n) of the
    models of tasks[task_slice], for every learning rate. With `num_classes`
    C: C outputs, softmax cross-entropy on the integer labels, logits
    (L, t, n, C)."""
    import jax
    import jax.numpy as jnp
    import optax

    num_tasks, n, features = x_train.shape
    batch = max(1, min(batch_size, n))
    steps = n // batch
    x_tr = jnp.asarray(x_train, jnp.float32)
    y_tr = jnp.asarray(y_train, jnp.float32) if num_classes is None else jnp.asarray(y_train, jnp.int32)
    out_shape = () if num_classes is None else (num_classes,)

    def init(key):
        k1, k2 = jax.random.split(key)
        if kind == "logistic":
            return {"w": jnp.zeros((features,) + out_shape), "b": jnp.zeros(out_shape)}
        return {"w1": jax.random.normal(k1, (features, hidden)) * jnp.sqrt(2.0 / features),
                "b1": jnp.zeros((hidden,)),
                "w2": jax.random.normal(k2, (hidden,) + out_shape) * jnp.sqrt(1.0 / hidden),
                "b2": jnp.zeros(out_shape)}

    def logits(params, x):
        if kind == "logistic":
            return x @ params["w"] + params["b"]
        return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]

    def loss(params, x, y):
        if num_classes is not None:
            return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()
        return optax.sigmoid_binary_cross_entropy(logits(params, x), y).mean()

    opt = optax.scale_by_adam()

    def train_one(lr, x, y, key):
        params = init(key)
        state = opt.init(params)

        def epoch(carry, ekey):
            params, state = carry
            order = jax.random.permutation(ekey, n)[: steps * batch].reshape(steps, batch)

            def step(carry, idx):
                params, state = carry
                grads = jax.grad(loss)(params, x[idx], y[idx])
                updates, state = opt.update(grads, state, params)
                params = jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates)
                return (params, state), None

            return jax.lax.scan(step, (params, state), order)[0], None

        return jax.lax.scan(epoch, (params, state), jax.random.split(key, epochs))[0][0]

    keys = jax.random.split(jax.random.PRNGKey(seed), num_tasks)
    per_task = jax.vmap(train_one, in_axes=(None, 0, 0, 0))
    train_all = jax.jit(jax.vmap(per_task, in_axes=(0, None, None, None)))
    params = train_all(jnp.asarray(learning_rates, jnp.float32), x_tr, y_tr, keys)
    predict = jax.jit(jax.vmap(jax.vmap(logits, in_axes=(0, 0)), in_axes=(0, None)))
    return lambda x, tasks: np.asarray(predict(jax.tree_util.tree_map(lambda p: p[:, tasks], params),
                                               jnp.asarray(x, jnp.float32)))


def _accuracy(logit: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean accuracy over tasks, per learning rate: (L, T, n) -> (L,)."""
    return ((logit > 0.0) == (y[None] > 0.5)).mean(axis=2).mean(axis=1)


def _multiclass_accuracy(logit: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean argmax accuracy over tasks, per learning rate: logits
    (L, T, n, C), labels (T, n) -> (L,) (first index on ties)."""
    return (np.argmax(logit, axis=-1) == np.rint(y[None]).astype(np.int64)).mean(axis=2).mean(axis=1)


def optax_baselines(select: dict[str, np.ndarray], final: dict[str, np.ndarray], *, hidden: int = 32,
                    epochs: int = 20, batch_size: int = 32,
                    learning_rates: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                    seed: int = 0, num_classes: int | None = None) -> list[BaselineResult]:
    """Logistic regression and a 2-layer ReLU MLP (`hidden` units), trained by
    minibatch Adam on each task's train split; the learning rate with the
    best mean valid accuracy on T_select is used on T_final. `select` and
    `final` hold stacked arrays x_train (T, n, F), y_train, x_valid, y_valid
    and optionally x_test, y_test. With `num_classes` C (multiclass tasks,
    labels 0..C-1): softmax regression and the MLP with C outputs, trained
    on the softmax cross-entropy, scored by the argmax."""
    n_select = select["x_train"].shape[0]
    x_train = np.concatenate([select["x_train"], final["x_train"]])  # one training call for both collections
    y_train = np.concatenate([select["y_train"], final["y_train"]])
    accuracy = _accuracy if num_classes is None else _multiclass_accuracy
    out = []
    for kind in ("logistic", "mlp"):
        predict = _optax_train(kind, x_train, y_train, hidden=hidden, epochs=epochs, batch_size=batch_size,
                               learning_rates=learning_rates, seed=seed, num_classes=num_classes)
        fits = {"select": accuracy(predict(select["x_valid"], slice(0, n_select)), select["y_valid"]),
                "final": accuracy(predict(final["x_valid"], slice(n_select, None)), final["y_valid"])}
        if "x_test" in final:
            fits["test"] = accuracy(predict(final["x_test"], slice(n_select, None)), final["y_test"])
        best = int(np.argmax(fits["select"]))
        if kind == "logistic":
            name = "logistic_regression_optax" if num_classes is None else "softmax_regression_optax"
        else:
            name = f"mlp_{hidden}_optax"
        params = {"learning_rate": float(learning_rates[best]), "epochs": epochs, "batch_size": batch_size,
                  "optimizer": "adam"}
        if kind == "mlp":
            params["hidden"] = hidden
        if num_classes is not None:
            params["num_classes"] = num_classes
        out.append(BaselineResult(name, float(fits["select"][best]), float(fits["final"][best]), params,
                                  len(learning_rates), float(fits["test"][best]) if "test" in fits else None))
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width comparison table (percent accuracies); the method column
    is 32 characters wide, wider when a name is longer."""
    width = max([32] + [len(r["name"]) for r in rows])
    lines = [f"{'method':<{width}} {'T_select':>9} {'T_final':>9} {'final test':>10}"]
    for r in rows:
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        lines.append(f"{r['name']:<{width}} {pct(r.get('select_fitness')):>9} {pct(r.get('final_fitness')):>9} "
                     f"{pct(r.get('final_test_accuracy')):>10}")
    return "\n".join(lines)


# ------------------------------------------------- multiclass hand-written --

def multiclass_hand_written_candidates(name: str, trials: int,
                                       rng: np.random.Generator) -> list[tuple[Algorithm, dict[str, Any]]]:
    """`hand_written_candidates` for the multiclass programs (softmax
    regression, the 2-layer softmax net: `programs.MULTICLASS_HAND_WRITTEN`),
    the same draws and ranges."""
    if name not in programs_lib.MULTICLASS_HAND_WRITTEN:
        raise ValueError(f"tunable multiclass programs are {', '.join(programs_lib.MULTICLASS_HAND_WRITTEN)}, "
                         f"not {name!r}")
    return _candidates(programs_lib.MULTICLASS_HAND_WRITTEN, name, trials, rng)


def tune_multiclass_hand_written(name: str, select_tasks: Sequence[Task], final_tasks: Sequence[Task],
                                 memory: MemoryShape | None = None, *, trials: int = 20, seed: int = 0,
                                 backend: str = "reference",
                                 test_tasks: Sequence[Task] | None = None) -> BaselineResult:
    """`tune_hand_written` on multiclass tasks (memory: the program's own,
    `programs.MULTICLASS_NEURAL_NET_MEMORY`, when None)."""
    rng = np.random.default_rng([seed, 2 if name == "linear" else 3])
    memory = memory or programs_lib.MULTICLASS_NEURAL_NET_MEMORY
    return _pick(f"multiclass_{name}_program_tuned", multiclass_hand_written_candidates(name, trials, rng),
                 select_tasks, final_tasks, memory, backend, seed, test_tasks)
