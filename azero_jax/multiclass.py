"""Multiclass tasks (the paper's §4.3 "multiple classes": 10-class projected
CIFAR-10 / MNIST): where the label and the prediction live, how the
prediction is normalised, and the per-example rules every evaluator shares.

Reading and its sources
-----------------------
* Addresses. The authors' released code keeps, beside the binary "scalar
  output branch" (label s0, prediction s1), the constants of a "vector output
  branch" that the open-source release does not execute:
  `kLabelsVectorAddress = 1` and `kPredictionsVectorAddress = 2`
  (google-research `automl_zero/definitions.h`), and its program printer
  (`algorithm.cc`, `Algorithm::ToString`) returns `vector_pred = v[2]` from
  Predict. So here: features in v0 (as for every task), the one-hot label in
  **v1**, the prediction (C logits) read from **v2**. Random programs may
  write v1 and v2, as the reference's `kFirstOutVectorAddress = 1` allows
  (`ops.RANDOM_OUT_ADDRESS_MIN` is unchanged; s0/v0 stay unwritable).
* Label hiding. As s0 is zeroed before every Predict on binary tasks, v1 is
  zeroed before every Predict and holds the one-hot label only during Learn.
  s0 and s1 are ordinary memory on multiclass tasks (the evaluator does not
  touch them).
* Normalisation. The binary branch turns s1 into sigmoid(s1) before Learn
  (written back to memory); the multiclass analogue used here is the softmax
  of the first C entries of v2, written back into v2 with entries C..F-1 set
  to 0, so Learn sees a probability vector laid out like the one-hot label and
  `v1 - v2` is the softmax cross-entropy gradient w.r.t. the logits. (The
  paper's text on this could not be retrieved in this offline environment; the
  softmax is the reading by analogy with the sigmoid, recorded here.)
* Accuracy by argmax. Validation runs Predict only; the predicted class is
  the argmax of the C logits (first index on ties), scored 0/1 against the
  label; fitness is the accuracy, as on binary tasks.
* C <= F: the one-hot label and the logits are F-vectors (checked when a task
  is built); memory needs V >= 3 (v0, v1, v2).

Per-example errors (FEC probe hashes, early stops)
--------------------------------------------------
* training: 1 - p_true (p = the softmax written back), in [0, 1]; NaN when the
  softmax is undefined (a NaN or +inf logit, or all logits -inf), and a NaN
  error stops training, like the binary rule |label - sigmoid(s1)|.
* validation: 0 (right class) / 1 (wrong) / inf when the softmax is undefined
  (the analogue of the binary rule's inf when the sigmoid leaves [0, 1]): an
  inf error stops validation, and that epoch scores the minimum fitness.

The kernels are written over an array namespace `xp` (numpy or jax.numpy)
with the class axis last; the max, the softmax sum and the argmax are
sequential over the C classes (static), so NumPy and XLA compute them in the
same order and agree bit for bit given the same logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from azero_jax import fitness as fitness_lib

if TYPE_CHECKING:
    from azero_jax.tasks import Task

LABEL_VECTOR_ADDRESS = 1  # v1: one-hot label during Learn, zeros during Predict
PREDICTION_VECTOR_ADDRESS = 2  # v2: logits after Predict; softmax (padded) for Learn
MIN_VECTORS = 3  # v0, v1, v2


def check_vectors(vectors: int) -> None:
    """ValueError unless memory with `vectors` vector addresses can hold the
    layout (v0 features, v1 label, v2 prediction)."""
    if vectors < MIN_VECTORS:
        raise ValueError(f"multiclass tasks need at least {MIN_VECTORS} vector addresses (v0 features, v1 label, "
                         f"v2 prediction), got memory with {vectors}")


def one_hot(xp, label, features: int, dtype):
    """(..., F) one-hot rows of integer-valued float labels (...,)."""
    return (xp.arange(features)[None, :] == xp.reshape(label, (-1, 1))).astype(dtype).reshape(
        tuple(xp.shape(label)) + (features,))


def softmax(xp, logits, num_classes: int):
    """Softmax of the first C entries of the last axis, padded with zeros to
    the axis' length (F): the max-subtracted form with a sequential max and
    sum over the classes. NaN everywhere when undefined."""
    z = [logits[..., c] for c in range(num_classes)]
    top = z[0]
    for c in range(1, num_classes):
        top = xp.maximum(top, z[c])
    e = [xp.exp(zc - top) for zc in z]
    total = e[0]
    for c in range(1, num_classes):
        total = total + e[c]
    probs = [ec / total for ec in e]
    features = logits.shape[-1]
    zero = xp.zeros_like(total)
    return xp.stack(probs + [zero] * (features - num_classes), axis=-1)


def _select_class(xp, label, values):
    """values[label] over the class list (a select chain: exact)."""
    out = values[0]
    for c in range(1, len(values)):
        out = xp.where(label == c, values[c], out)
    return out


def train_rule(xp, label, logits, num_classes: int, max_abs_error):
    """(probs, error, stop) of one training example: the padded softmax Learn
    sees, 1 - p_true, and the shared early-stop rule (NaN or > max)."""
    probs = softmax(xp, logits, num_classes)
    p_true = _select_class(xp, label, [probs[..., c] for c in range(num_classes)])
    error = 1.0 - p_true
    if xp is np and np.ndim(error) == 0:  # one example on the host (the NumPy reference)
        error = float(error)
    return probs, error, fitness_lib.early_stop(xp, error, max_abs_error)


def predicted_class(xp, logits, num_classes: int):
    """The argmax of the first C logits (first index on ties) as a float;
    NaN where the softmax is undefined (see the module docstring)."""
    best = xp.zeros_like(logits[..., 0])
    top = logits[..., 0]
    nan_max = logits[..., 0]  # NaN-propagating max: the softmax is undefined iff it is not finite
    for c in range(1, num_classes):
        better = logits[..., c] > top
        best = xp.where(better, float(c), best)
        top = xp.where(better, logits[..., c], top)
        nan_max = xp.maximum(nan_max, logits[..., c])
    return xp.where(xp.isfinite(nan_max), best, xp.nan)


def class_error(xp, label, predicted):
    """Validation error from the predicted class: 0 / 1, inf where NaN."""
    if isinstance(predicted, float):
        if math.isnan(predicted):
            return math.inf
        return 0.0 if predicted == label else 1.0
    return xp.where(xp.isnan(predicted), xp.inf, xp.where(predicted == label, 0.0, 1.0))


def valid_rule(xp, label, logits, num_classes: int, max_abs_error):
    """(predicted class, error, stop) of one validation example (Predict only;
    memory is not written)."""
    predicted = predicted_class(xp, logits, num_classes)
    if xp is np and np.ndim(predicted) == 0:
        predicted = float(predicted)
    error = class_error(xp, label, predicted)
    return predicted, error, fitness_lib.early_stop(xp, error, max_abs_error)


def tasks_are_multiclass(tasks: Sequence[Task]) -> bool:
    """Whether `tasks` use the multiclass layout (all of them multiclass) or
    the binary / regression one (none); a mix is a one-line ValueError (a
    program's live code, and its meaning, depend on the layout; the
    analysis tools and evaluate_program read a program in this layout)."""
    kinds = [t.eval_type == fitness_lib.MULTICLASS for t in tasks]
    if any(kinds) and not all(kinds):
        raise ValueError(f"the tasks mix multiclass ({sum(kinds)}) and other ({len(kinds) - sum(kinds)}) eval types: "
                         "a program reads its prediction from v2 on multiclass tasks, from s1 on the others; "
                         "analyze it on one kind")
    return bool(kinds) and all(kinds)
