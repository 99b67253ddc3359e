"""Fitness definitions (reference §7-§8): squashed RMS, accuracy, aggregation,
and the evaluation rules every evaluator shares (per-example errors, early
stopping, loss terms, loss -> fitness) as `xp` kernels. Multiclass tasks'
per-example rules (softmax, argmax) are `azero_jax.multiclass`'s; their loss
and fitness are accuracy's (`scored_by_accuracy`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RMS_ERROR = "rms"
ACCURACY = "accuracy"
# Multiclass accuracy (label one-hot in v1, softmax of v2, argmax accuracy):
# the rules are `azero_jax.multiclass`'s; the loss and fitness are accuracy's.
MULTICLASS = "multiclass"
EVAL_TYPES = (RMS_ERROR, ACCURACY, MULTICLASS)
_EVAL_TYPE_ALIASES = {
    "rms": RMS_ERROR, "rms_error": RMS_ERROR, "regression": RMS_ERROR,
    "accuracy": ACCURACY, "classification": ACCURACY,
    "multiclass": MULTICLASS, "multi_class": MULTICLASS, "multiclass_accuracy": MULTICLASS,
}

MIN_FITNESS = 0.0
MAX_FITNESS = 1.0
MAX_ABS_ERROR = 100.0  # the reference's default early-stopping threshold

MEAN, MEDIAN = "mean", "median"


def parse_eval_type(value: str) -> str:
    """`rms` / `RMS_ERROR` / `accuracy` / `ACCURACY` -> canonical name."""
    key = str(value).strip().lower()
    if key not in _EVAL_TYPE_ALIASES:
        raise ValueError(f"unknown eval type {value!r}; use one of: rms, accuracy, multiclass")
    return _EVAL_TYPE_ALIASES[key]


def scored_by_accuracy(eval_type: str) -> bool:
    """Whether a task of `eval_type` scores accuracy (binary or multiclass):
    0/1 loss terms and fitness 1 - loss / n."""
    return eval_type in (ACCURACY, MULTICLASS)


def sigmoid(x):
    """1 / (1 + exp(-x)) in the input's precision, as the reference computes it."""
    with np.errstate(over="ignore"):
        return logistic(np, x)


def flip_and_squash(rmse: float) -> float:
    """1 - (2/pi) atan(rmse); NaN/inf -> 0 (reference `FlipAndSquash`)."""
    if math.isnan(rmse) or math.isinf(rmse):
        return MIN_FITNESS
    return 1.0 - (2.0 / math.pi) * math.atan(rmse)


# ------------------------------------------------------ evaluation rules --
# "Predictions -> per-example errors, early stops -> loss -> fitness", written
# once for every evaluator as kernels over an array namespace `xp` (``numpy``
# or ``jax.numpy``), like the op table's kernels. They compute in the
# arguments' dtype and never accumulate: each caller keeps its own loss
# accumulation (order and dtype) and its max over epochs.
#
# `classification` (the task type) is either a Python ``bool``, when every
# element is of that type (only that type's rule is computed), or a bool
# array broadcast against the other arguments (per-element ``xp.where``).
# Where a rule branches, host scalars (Python or NumPy floats: one example at
# a time, the NumPy reference's loop) take plain Python control flow, which
# keeps that per-example path cheap and its values Python/NumPy scalars;
# arrays (NumPy or JAX) take ``xp.where``. Both apply the same rule.
#
# Under NumPy these may overflow (exp of a large negative prediction): callers
# that care wrap them in ``np.errstate``.


def logistic(xp, x):
    """The sigmoid 1 / (1 + exp(-x)) in x's precision (reference `Sigmoid`)."""
    return 1.0 / (1.0 + xp.exp(-x))


def _is_host_scalar(x) -> bool:
    return isinstance(x, float | np.floating)


def early_stop(xp, error, max_abs_error):
    """The early-stop rule on a (non-negative) per-example error: NaN or
    above `max_abs_error` (training and validation alike)."""
    if _is_host_scalar(error):
        return math.isnan(error) or error > max_abs_error
    return xp.isnan(error) | (error > max_abs_error)


def _abs_error(xp, label, prediction):
    """|label - prediction| (the regression and training error)."""
    diff = label - prediction
    return abs(diff) if _is_host_scalar(diff) else xp.abs(diff)


def train_prediction(xp, raw, classification):
    """What s1 becomes after Predict on a training example (written back to
    memory, so Learn sees it): sigmoid(s1) on classification tasks, else s1."""
    if isinstance(classification, bool):
        return logistic(xp, raw) if classification else raw
    return xp.where(classification, logistic(xp, raw), raw)


def train_error(xp, label, prediction, max_abs_error):
    """(error, stop) of one training example: |label - prediction| with the
    prediction already through `train_prediction`, and `early_stop`."""
    error = _abs_error(xp, label, prediction)
    return error, early_stop(xp, error, max_abs_error)


def _classification_error(xp, label, prediction):
    """0/1 error of sigmoid(raw prediction) > 0.5 against label > 0.5; inf
    when the sigmoid falls outside [0, 1] (the reference's guard; a NaN
    sigmoid counts as "not > 0.5")."""
    p = logistic(xp, prediction)
    if _is_host_scalar(p):
        if p < 0.0 or p > 1.0:
            return math.inf
        return 0.0 if (label > 0.5) == (p > 0.5) else 1.0
    return xp.where((p < 0.0) | (p > 1.0), xp.inf, xp.where((label > 0.5) == (p > 0.5), 0.0, 1.0))


def valid_error(xp, label, prediction, classification, max_abs_error):
    """(error, stop) of one validation example from the RAW prediction s1
    (validation does not write a sigmoid back).

    error: classification tasks: the 0/1 error of the thresholded sigmoid
    (inf if the sigmoid leaves [0, 1]); regression: |label - prediction|.
    stop: `early_stop` (the first stopping example ends validation with
    MIN_FITNESS; its error is still the last one recorded for FEC). The
    classification error's dtype is the weak/default float; ``xp.where`` with
    the regression branch brings it to the prediction's dtype (0, 1 and inf
    are exact in any float dtype).
    """
    if isinstance(classification, bool):
        if classification:
            error = _classification_error(xp, label, prediction)
        else:
            error = _abs_error(xp, label, prediction)
    else:
        error = xp.where(classification, _classification_error(xp, label, prediction),
                         _abs_error(xp, label, prediction))
    return error, early_stop(xp, error, max_abs_error)


def loss_term(xp, error, classification):
    """One validation example's contribution to the loss: the 0/1 error
    (accuracy) or the squared error (RMS). `error` is `valid_error`'s."""
    if isinstance(classification, bool):
        return error if classification else error * error
    return xp.where(classification, error, error * error)


def fitness_from_loss(xp, loss, num_valid, classification, ok):
    """One validation pass's fitness from its summed `loss_term`s over
    `num_valid` examples: accuracy 1 - loss / n; RMS flip-and-squash
    1 - (2/pi) atan(sqrt(loss / n)), MIN_FITNESS when that is not finite;
    MIN_FITNESS where not `ok` (not validated, or validation stopped early).
    The caller takes the max over epochs (floored at MIN_FITNESS).

    A host-scalar `loss` (the reference: `classification` and `ok` then are
    Python bools too) uses `math.atan` (libm, as the C++ reference's
    std::atan) via `flip_and_squash`; arrays use ``xp.arctan`` (NumPy's may
    be a SIMD version that differs from libm by an ulp for some inputs).
    """
    if _is_host_scalar(loss):
        if not ok:
            return MIN_FITNESS
        if classification:
            return 1.0 - loss / num_valid
        return flip_and_squash(math.sqrt(loss / num_valid))
    acc = 1.0 - loss / num_valid
    rmse = xp.sqrt(loss / num_valid)
    rms = xp.where(xp.isfinite(rmse), 1.0 - (2.0 / math.pi) * xp.arctan(rmse), MIN_FITNESS)
    return xp.where(ok, xp.where(classification, acc, rms), MIN_FITNESS)


def combine_rows(fitnesses: np.ndarray) -> np.ndarray:
    """`combine(row, MEAN)` of every row of a (programs, tasks) array, bit for
    bit: the tasks are added left to right from 0 as Python's `sum` does
    (NumPy's `sum` would add 8 or more values pairwise), then divided."""
    fitnesses = np.asarray(fitnesses, dtype=np.float64)
    if fitnesses.shape[1] == 0:
        raise ValueError("cannot combine an empty list of task fitnesses")
    total = np.zeros(fitnesses.shape[0])
    for column in fitnesses.T:
        total = total + column
    return total / fitnesses.shape[1]


def combine(fitnesses: Sequence[float], mode: str = MEAN) -> float:
    """Aggregates per-task fitnesses: arithmetic mean, or the reference's
    median (the element at index n // 2 after sorting: the upper median)."""
    values = [float(f) for f in fitnesses]
    if not values:
        raise ValueError("cannot combine an empty list of task fitnesses")
    if mode == MEAN:
        return float(sum(values) / len(values))
    if mode == MEDIAN:
        return sorted(values)[len(values) // 2]
    raise ValueError(f"unknown fitness combination {mode!r}; use 'mean' or 'median'")
