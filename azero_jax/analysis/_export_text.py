"""The fixed text of the modules `azero_jax.analysis.export` writes: their
header and docstring, the `Memory` class, the helpers a program may call
(the package's quirks and its random stream, inlined so the module needs no
azero_jax) and the `fit` / `score` evaluation loops per target and layout.
Templates only (placeholders `@NAME@` and `xp.`), kept apart from the code
that assembles them; the export's tests run the assembled modules against
the oracle."""

from __future__ import annotations

_HEADER_TEXT = '''"""An evolved AutoML-Zero program, exported by azero_jax as a standalone @TARGET@ module.

Needs only @NEEDS@. Memory (float64, zero at the start): s[0..S-1] scalars@LAYOUT@
m[i] F x F matrices. The program as the reference prints it (@WHICH@):

@PROGRAM@

@FIT@ ``setup``/``predict``/``learn`` are the
program itself.@USE@

Random-set ops draw from a counter-based stream: each draw is a pure function
of (seed, task index, phase, example, component, instruction position, element,
stream) hashed with 32-bit integer arithmetic (``_stream``, a copy of
azero_jax.rng), so with the same ``seed`` and ``task`` they equal azero_jax's
draws bit for bit.@EXACT@
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

'''

_HEADER = {
    "numpy": _HEADER_TEXT.replace("@TARGET@", "NumPy").replace("@NEEDS@", "NumPy").replace("@USE@", "").replace(
        "@EXACT@", " Results equal azero_jax's NumPy interpreter bit for bit.") + "import numpy as np\n\n",
    "jax": _HEADER_TEXT.replace("@TARGET@", "JAX").replace("@NEEDS@", "JAX (and NumPy for the shuffle of epochs\n"
                                                           "after the first)").replace(
        "@USE@", " They are pure and\njax.jit / jax.vmap-able (e.g. "
                 "``jax.vmap(predict, in_axes=(None, 0))(mem, xs)``);\n``fit`` too, with "
                 "@STATIC@, epochs and data_seed static.").replace(
        "@EXACT@", "\n\nFloat64 like the oracle: importing this module enables jax_enable_x64. XLA's\n"
                   "transcendental functions and summation order differ from NumPy's by an ulp,\n"
                   "so results agree with azero_jax to rounding, not bit for bit.")
    + "import jax\nimport jax.numpy as jnp\n\njax.config.update(\"jax_enable_x64\", True)  # float64, like the oracle\n\n",
}
_LAYOUT = ("\n(s0 = label, s1 = prediction), v[i] vectors of F features (v0 = the example),",
           ",\nv[i] vectors of F features (v0 = the example, v1 = the one-hot label during\n"
           "Learn and 0 during Predict, v2 = the prediction: its first C entries are the\n"
           "logits of the C classes),")
_FIT = ("""Use: ``result = fit(x_train, y_train, x_valid, y_valid)`` evaluates it on one
task exactly like azero_jax.reference.evaluate_task (Setup on zeroed memory;
per train example Predict, sigmoid of s1 on classification, early stop when
|y - s1| is NaN or > max_abs_error, Learn; validation after each epoch;
fitness = max over epochs of 1 - 2/pi atan(RMS error), or accuracy; 0 on a
first-epoch or validation early stop).""",
        """Use: ``result = fit(x_train, y_train, x_valid, y_valid, num_classes=C)``
(class labels 0..C-1, 2 <= C <= F) evaluates it on one multiclass task exactly
like azero_jax.reference.evaluate_task (Setup on zeroed memory; per train
example Predict, then v2 = the softmax of its first C entries, the others set
to 0; early stop when 1 - p[y] is NaN or > max_abs_error; Learn; validation
after each epoch, Predict only: the predicted class is the argmax of the C
logits (the first on ties), and a logit that leaves the softmax undefined
(NaN, +inf, or all -inf) stops it; fitness = max over epochs of the accuracy;
0 on a first-epoch or validation early stop).""")


def _header(target: str, multiclass: bool) -> str:
    return (_HEADER[target].replace("@LAYOUT@", _LAYOUT[multiclass]).replace("@FIT@", _FIT[multiclass])
            .replace("@STATIC@", "num_classes" if multiclass else "classification"))

_MEMORY_TEXT = '''

class Memory(NamedTuple):
    """s: (S,) scalars, v: (V, F) vectors, m: (M, F, F) matrices."""

    s: @ARRAY@
    v: @ARRAY@
    m: @ARRAY@

    @classmethod
    def zeros(cls, n_features: int = N_FEATURES) -> Memory:
        f = n_features
        return cls(@XP@.zeros(SCALARS), @XP@.zeros((VECTORS, f)), @XP@.zeros((MATRICES, f, f)))

'''
_MEMORY = {"numpy": _MEMORY_TEXT.replace("@ARRAY@", "np.ndarray").replace("@XP@", "np"),
           "jax": _MEMORY_TEXT.replace("@ARRAY@", "jax.Array").replace("@XP@", "jnp")}

_HELPERS_TITLE = "# ------------------------------------------------------------------ helpers --"
# Definitions the generated code may call, written against `xp`; name -> text.
_HELPERS = '''
def _index(fraction, n):
    """Element int(n * fraction), the product in float32, at most n - 1 (the reference's FloatToIndex)."""
    scaled = struct.unpack("f", struct.pack("f", fraction * n))[0]
    return int(min(max(scaled, 0.0), n - 1.0)) if scaled == scaled else 0


def _sigmoid(x):
    return 1.0 / (1.0 + xp.exp(-x))


def _softmax(logits, num_classes):
    """Softmax of the first num_classes entries, padded with zeros to F: max-subtracted, the max and the sum
    taken class by class in order (azero_jax.multiclass's arithmetic); NaN everywhere when undefined."""
    z = [logits[..., c] for c in range(num_classes)]
    top = z[0]
    for c in range(1, num_classes):
        top = xp.maximum(top, z[c])
    e = [xp.exp(zc - top) for zc in z]
    total = e[0]
    for c in range(1, num_classes):
        total = total + e[c]
    zero = xp.zeros_like(total)
    return xp.stack([ec / total for ec in e] + [zero] * (logits.shape[-1] - num_classes), axis=-1)


def _predicted_class(logits, num_classes):
    """The argmax of the first num_classes logits (the first on ties) as a float; NaN where their softmax is
    undefined (a NaN or +inf logit, or all -inf)."""
    best, top, nan_max = xp.zeros_like(logits[..., 0]), logits[..., 0], logits[..., 0]
    for c in range(1, num_classes):
        better = logits[..., c] > top
        best = xp.where(better, float(c), best)
        top = xp.where(better, logits[..., c], top)
        nan_max = xp.maximum(nan_max, logits[..., c])  # NaN-propagating
    return xp.where(xp.isfinite(nan_max), best, xp.nan)


def _std(x, axis=None):
    """sqrt(E[x^2] - E[x]^2) like the reference (no clamping: a tiny negative radicand gives NaN)."""
    n = x.size if axis is None else x.shape[axis]
    mean = xp.sum(x, axis=axis) / n
    square = xp.where(xp.isnan(mean), xp.nan, mean * mean)  # keeps XLA from fusing an FMA; same value
    return xp.sqrt(xp.sum(x * x, axis=axis) / n - square)


def _uniform(low, high, u):
    """abseil Uniform(low, high): low + (high - low) * u; low itself if low > high or a bound is NaN."""
    low, high = xp.asarray(low, dtype=u.dtype), xp.asarray(high, dtype=u.dtype)
    return xp.where(low <= high, low + (high - low) * u, low)


def _gaussian(mean, sd, u1, u2):
    """mean + sd * z, z standard normal by Box-Muller from two uniform draws."""
    z = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * 3.141592653589793 * u2)
    return xp.asarray(mean, dtype=u1.dtype) + xp.asarray(sd, dtype=u1.dtype) * z


def _mix(x):
    """lowbias32 (C. Wellons), a 32-bit integer finalizer (uint32 wrap-around intended)."""
    x = x ^ (x >> 16)
    x = x * xp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * xp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _u32(value):
    if isinstance(value, int):
        return xp.asarray(value & 0xFFFFFFFF, dtype=xp.uint32)
    return xp.asarray(value).astype(xp.uint32)


def _stream(seed, task, phase, example, component):
    """rand(position, shape, stream): the uniform (0, 1) draws of the instruction at `position` in one run
    of a component (53 random bits each; stream 0 and 1 are independent)."""
    h = _mix(_u32(seed) ^ xp.uint32(0x9E3779B9))
    for word in (task, phase, example, component):
        h = _mix(h ^ _u32(word))
        h = h * xp.uint32(0x01000193) + xp.uint32(0x6A09E667)

    def rand(position, shape, stream):
        key = _mix(h ^ _u32(position)) * xp.uint32(0x01000193) + xp.uint32(0x6A09E667)
        element = xp.arange(math.prod(shape), dtype=xp.uint32).reshape(shape)
        base = _mix(key ^ xp.uint32((0x85EBCA6B * (stream + 1)) & 0xFFFFFFFF))
        hi = _mix(base ^ (element * xp.uint32(2) + xp.uint32(1)))
        lo = _mix(hi ^ (element * xp.uint32(2)) ^ xp.uint32(0x27D4EB2F))
        k = (hi >> 5).astype(xp.float64) * 67108864.0 + (lo >> 6).astype(xp.float64)
        return (k + 0.5) / 9007199254740992.0

    return rand
'''
_HELPER_DEFS = {text.split("(")[0][len("def "):]: text for text in _HELPERS.strip("\n").split("\n\n\n")}

_RESULT = '''

# --------------------------------------------------------------- evaluation --


class Result(NamedTuple):
    fitness: float  # max over epochs of the validation fitness; 0 on a first-epoch early stop
    train_steps: int  # train examples run (the stopping one included)
    stopped_early: bool
    valid_predictions: @PREDICTIONS@  # @PREDICTION_DOC@
    memory: Memory  # the trained memory


def epoch_order(n_train: int, epochs: int, data_seed: int = 0):
    """Train example indices of all epochs (the reference's GenerateEpochs): epoch 0 in order, each later one
    a NumPy shuffle of the one before, seeded by data_seed (as azero_jax.tasks.Task.epoch_order)."""@ORDER@
    order = np.arange(n_train)
    parts = [order]
    rng = np.random.default_rng(data_seed + 3274582109)
    for _ in range(1, epochs):
        order = order[rng.permutation(n_train)]
        parts.append(order)
    return @CONCAT@

'''

_EVALUATION = {"numpy": _RESULT.replace("@PREDICTION_DOC@", "raw s1 of the last validation").replace("@PREDICTIONS@", "np.ndarray | None").replace("@ORDER@", "").replace(
    "@CONCAT@", "np.concatenate(parts)") + '''
@np.errstate(all="ignore")
def score(mem: Memory, x_valid, y_valid, *, classification: bool = False, epoch: int = 0, seed: int = 0,
          task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> tuple[float, np.ndarray]:
    """One validation pass (Predict only; it may still change `mem`): (fitness, raw predictions)."""
    n_valid = len(x_valid)
    predictions = np.empty(n_valid)
    loss, stopped = 0.0, False
    for i in range(n_valid):
        predictions[i] = prediction = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        if stopped:
            continue  # the fitness is 0 already; the predictions are still reported
        if classification:
            p = _sigmoid(prediction)
            error = math.inf if p < 0.0 or p > 1.0 else (0.0 if (y_valid[i] > 0.5) == (p > 0.5) else 1.0)
            loss += error
        else:
            error = abs(y_valid[i] - prediction)
            loss += error * error
        stopped = math.isnan(error) or error > max_abs_error
    if stopped:
        return 0.0, predictions
    if classification:
        return 1.0 - loss / n_valid, predictions
    rmse = math.sqrt(loss / n_valid)
    return (0.0 if math.isnan(rmse) or math.isinf(rmse) else 1.0 - (2.0 / math.pi) * math.atan(rmse)), predictions


@np.errstate(all="ignore")
def fit(x_train, y_train, x_valid, y_valid, *, classification: bool = False, epochs: int = 1, data_seed: int = 0,
        seed: int = 0, task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory on (x_train, y_train) and validates after every epoch; see the module docstring."""
    x_train, y_train, x_valid, y_valid = (np.asarray(a, dtype=np.float64) for a in (x_train, y_train, x_valid, y_valid))
    n_train = len(x_train)
    order = epoch_order(n_train, epochs, data_seed)
    mem = Memory.zeros(x_train.shape[1])
    setup(mem, seed, task)
    best, steps, predictions = 0.0, 0, None
    for epoch in range(epochs):
        for step in range(epoch * n_train, (epoch + 1) * n_train):
            x, y = x_train[order[step]], y_train[order[step]]
            steps += 1
            prediction = predict(mem, x, seed, task, PHASE_TRAIN, step)
            if classification:
                prediction = _sigmoid(prediction)
            mem.s[1] = prediction  # Learn sees the sigmoid
            error = abs(y - prediction)
            if math.isnan(error) or error > max_abs_error:  # early stop: this epoch is not validated
                return Result(best, steps, True, predictions, mem)
            learn(mem, x, y, seed, task, step)
        fitness, predictions = score(mem, x_valid, y_valid, classification=classification, epoch=epoch, seed=seed,
                                     task=task, max_abs_error=max_abs_error)
        best = max(best, fitness)
    return Result(best, steps, False, predictions, mem)
''', "jax": _RESULT.replace("@PREDICTION_DOC@", "raw s1 of the last validation").replace(
    "@PREDICTIONS@", "jax.Array").replace(
    "@ORDER@", "\n    if epochs == 1:\n        return jnp.arange(n_train)\n"
               "    import numpy as np  # host side, before tracing\n").replace(
    "@CONCAT@", "jnp.asarray(np.concatenate(parts))") + '''
def _select(flag, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def score(mem: Memory, x_valid, y_valid, *, classification=False, epoch=0, seed=0, task=0,
          max_abs_error=MAX_ABS_ERROR) -> tuple[jax.Array, jax.Array, Memory]:
    """One validation pass (Predict only; it may still change the memory): (fitness, raw predictions, memory)."""
    x_valid, y_valid = jnp.asarray(x_valid), jnp.asarray(y_valid)
    n_valid = x_valid.shape[0]

    def step(carry, i):
        mem, loss, ok = carry
        mem, prediction = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        if classification:
            p = _sigmoid(prediction)
            error = jnp.where((p < 0.0) | (p > 1.0), jnp.inf, jnp.where((y_valid[i] > 0.5) == (p > 0.5), 0.0, 1.0))
            term = error
        else:
            error = jnp.abs(y_valid[i] - prediction)
            term = error * error
        loss = jnp.where(ok, loss + term, loss)  # past an early stop the fitness is 0 anyway
        return (mem, loss, ok & ~(jnp.isnan(error) | (error > max_abs_error))), prediction

    (mem, loss, ok), predictions = jax.lax.scan(step, (mem, jnp.asarray(0.0), jnp.asarray(True)),
                                                jnp.arange(n_valid))
    if classification:
        fitness = 1.0 - loss / n_valid
    else:
        rmse = jnp.sqrt(loss / n_valid)
        fitness = jnp.where(jnp.isfinite(rmse), 1.0 - (2.0 / math.pi) * jnp.arctan(rmse), 0.0)
    return jnp.where(ok, fitness, 0.0), predictions, mem


def fit(x_train, y_train, x_valid, y_valid, *, classification=False, epochs=1, data_seed=0, seed=0, task=0,
        max_abs_error=MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory and validates after every epoch; valid_predictions is NaN where never validated."""
    x_train, y_train, x_valid, y_valid = (jnp.asarray(a) for a in (x_train, y_train, x_valid, y_valid))
    n_train, n_features = x_train.shape
    order = epoch_order(n_train, epochs, data_seed)
    mem = setup(Memory.zeros(n_features), seed, task)

    def train_step(carry, step):
        mem, stopped, steps = carry
        x, y = x_train[order[step]], y_train[order[step]]
        new, prediction = predict(mem, x, seed, task, PHASE_TRAIN, step)
        if classification:
            prediction = _sigmoid(prediction)
        new = new._replace(s=new.s.at[1].set(prediction))  # Learn sees the sigmoid
        error = jnp.abs(y - prediction)
        stop = jnp.isnan(error) | (error > max_abs_error)
        new = _select(stop, new, learn(new, x, y, seed, task, step))
        return (_select(stopped, mem, new), stopped | stop, steps + jnp.where(stopped, 0, 1)), None

    carry = (mem, jnp.asarray(False), jnp.asarray(0))
    best, predictions = jnp.asarray(0.0), jnp.full(x_valid.shape[0], jnp.nan)
    for epoch in range(epochs):  # an early stop freezes everything: later epochs change nothing
        carry, _ = jax.lax.scan(train_step, carry, jnp.arange(epoch * n_train, (epoch + 1) * n_train))
        mem, stopped, steps = carry
        fitness, valid, validated = score(mem, x_valid, y_valid, classification=classification, epoch=epoch,
                                          seed=seed, task=task, max_abs_error=max_abs_error)
        best = jnp.where(stopped, best, jnp.maximum(best, fitness))
        predictions = jnp.where(stopped, predictions, valid)
        carry = (_select(stopped, mem, validated), stopped, steps)
    return Result(best, carry[2], carry[1], predictions, carry[0])
'''}

_MC_PREDICTION_DOC = "the classes predicted in the last validation (NaN: undefined softmax)"
_CHECK_CLASSES = '''
def _check_classes(num_classes, n_features):
    if not 2 <= num_classes <= n_features:
        raise ValueError(f"num_classes must be in [2, F={n_features}] (the one-hot label and the logits are "
                         f"F-vectors), got {num_classes!r}")
'''

_EVALUATION_MC = {"numpy": _RESULT.replace("@PREDICTION_DOC@", _MC_PREDICTION_DOC).replace(
    "@PREDICTIONS@", "np.ndarray | None").replace("@ORDER@", "").replace("@CONCAT@", "np.concatenate(parts)")
    + _CHECK_CLASSES + '''

@np.errstate(all="ignore")
def score(mem: Memory, x_valid, y_valid, *, num_classes: int, epoch: int = 0, seed: int = 0, task: int = 0,
          max_abs_error: float = MAX_ABS_ERROR) -> tuple[float, np.ndarray]:
    """One validation pass (Predict only; it may still change `mem`): (accuracy, predicted classes)."""
    n_valid = len(x_valid)
    predictions = np.empty(n_valid)
    loss, stopped = 0.0, False
    for i in range(n_valid):
        logits = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        predictions[i] = predicted = float(_predicted_class(logits, num_classes))
        if stopped:
            continue  # the fitness is 0 already; the predictions are still reported
        error = math.inf if math.isnan(predicted) else (0.0 if predicted == y_valid[i] else 1.0)
        loss += error
        stopped = math.isnan(error) or error > max_abs_error
    if stopped:
        return 0.0, predictions
    return 1.0 - loss / n_valid, predictions


@np.errstate(all="ignore")
def fit(x_train, y_train, x_valid, y_valid, *, num_classes: int, epochs: int = 1, data_seed: int = 0, seed: int = 0,
        task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory on (x_train, y_train) (class labels 0..num_classes-1) and validates after every epoch;
    see the module docstring."""
    x_train, y_train, x_valid, y_valid = (np.asarray(a, dtype=np.float64) for a in (x_train, y_train, x_valid, y_valid))
    _check_classes(num_classes, x_train.shape[1])
    for name, labels in (("y_train", y_train), ("y_valid", y_valid)):
        if not np.isin(labels, np.arange(num_classes)).all():
            raise ValueError(f"{name} must hold integer class labels 0..{num_classes - 1}")
    n_train = len(x_train)
    order = epoch_order(n_train, epochs, data_seed)
    mem = Memory.zeros(x_train.shape[1])
    setup(mem, seed, task)
    best, steps, predictions = 0.0, 0, None
    for epoch in range(epochs):
        for step in range(epoch * n_train, (epoch + 1) * n_train):
            x, y = x_train[order[step]], y_train[order[step]]
            steps += 1
            probs = _softmax(predict(mem, x, seed, task, PHASE_TRAIN, step), num_classes)
            mem.v[2] = probs  # Learn sees the softmax (0 past num_classes)
            error = float(1.0 - probs[int(y)])  # NaN when the softmax is undefined
            if math.isnan(error) or error > max_abs_error:  # early stop: this epoch is not validated
                return Result(best, steps, True, predictions, mem)
            learn(mem, x, y, seed, task, step)
        fitness, predictions = score(mem, x_valid, y_valid, num_classes=num_classes, epoch=epoch, seed=seed,
                                     task=task, max_abs_error=max_abs_error)
        best = max(best, fitness)
    return Result(best, steps, False, predictions, mem)
''', "jax": _RESULT.replace("@PREDICTION_DOC@", _MC_PREDICTION_DOC).replace("@PREDICTIONS@", "jax.Array").replace(
    "@ORDER@", "\n    if epochs == 1:\n        return jnp.arange(n_train)\n"
               "    import numpy as np  # host side, before tracing\n").replace(
    "@CONCAT@", "jnp.asarray(np.concatenate(parts))") + _CHECK_CLASSES + '''

def _select(flag, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def score(mem: Memory, x_valid, y_valid, *, num_classes, epoch=0, seed=0, task=0,
          max_abs_error=MAX_ABS_ERROR) -> tuple[jax.Array, jax.Array, Memory]:
    """One validation pass (Predict only; it may still change the memory): (accuracy, predicted classes, memory)."""
    x_valid, y_valid = jnp.asarray(x_valid), jnp.asarray(y_valid)
    n_valid = x_valid.shape[0]

    def step(carry, i):
        mem, loss, ok = carry
        mem, logits = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        predicted = _predicted_class(logits, num_classes)
        error = jnp.where(jnp.isnan(predicted), jnp.inf, jnp.where(predicted == y_valid[i], 0.0, 1.0))
        loss = jnp.where(ok, loss + error, loss)  # past an early stop the fitness is 0 anyway
        return (mem, loss, ok & ~(jnp.isnan(error) | (error > max_abs_error))), predicted

    (mem, loss, ok), predictions = jax.lax.scan(step, (mem, jnp.asarray(0.0), jnp.asarray(True)),
                                                jnp.arange(n_valid))
    return jnp.where(ok, 1.0 - loss / n_valid, 0.0), predictions, mem


def fit(x_train, y_train, x_valid, y_valid, *, num_classes, epochs=1, data_seed=0, seed=0, task=0,
        max_abs_error=MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory (class labels 0..num_classes-1) and validates after every epoch; valid_predictions
    is NaN where never validated."""
    x_train, y_train, x_valid, y_valid = (jnp.asarray(a) for a in (x_train, y_train, x_valid, y_valid))
    n_train, n_features = x_train.shape
    _check_classes(num_classes, n_features)
    order = epoch_order(n_train, epochs, data_seed)
    mem = setup(Memory.zeros(n_features), seed, task)

    def train_step(carry, step):
        mem, stopped, steps = carry
        x, y = x_train[order[step]], y_train[order[step]]
        new, logits = predict(mem, x, seed, task, PHASE_TRAIN, step)
        probs = _softmax(logits, num_classes)
        new = new._replace(v=new.v.at[2].set(probs))  # Learn sees the softmax (0 past num_classes)
        error = 1.0 - probs[y.astype(jnp.int32)]  # NaN when the softmax is undefined
        stop = jnp.isnan(error) | (error > max_abs_error)
        new = _select(stop, new, learn(new, x, y, seed, task, step))
        return (_select(stopped, mem, new), stopped | stop, steps + jnp.where(stopped, 0, 1)), None

    carry = (mem, jnp.asarray(False), jnp.asarray(0))
    best, predictions = jnp.asarray(0.0), jnp.full(x_valid.shape[0], jnp.nan)
    for epoch in range(epochs):  # an early stop freezes everything: later epochs change nothing
        carry, _ = jax.lax.scan(train_step, carry, jnp.arange(epoch * n_train, (epoch + 1) * n_train))
        mem, stopped, steps = carry
        fitness, valid, validated = score(mem, x_valid, y_valid, num_classes=num_classes, epoch=epoch, seed=seed,
                                          task=task, max_abs_error=max_abs_error)
        best = jnp.where(stopped, best, jnp.maximum(best, fitness))
        predictions = jnp.where(stopped, predictions, valid)
        carry = (_select(stopped, mem, validated), stopped, steps)
    return Result(best, carry[2], carry[1], predictions, carry[0])
'''}
