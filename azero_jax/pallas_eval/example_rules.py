"""The kernel's per-example rules: where the inputs go, what happens between
Predict and Learn, and how a validation example is scored, on binary /
regression tasks (label s0, prediction s1: `fitness`) and on multiclass
tasks (one-hot label v1, logits v2: `azero_jax.multiclass`), on one kernel
instance's tasks (Tb lanes).

Multiclass under Triton. The shared rules (`multiclass.train_rule`,
`multiclass.valid_rule`) index the class axis (`logits[..., c]`) and stack
it back (`xp.stack`); Pallas's Triton lowering has no `slice` rule and
concatenates only pairs of [..., 1] tensors. So here they run unchanged on
a `ClassList`: C (Tb,) arrays, each loaded from the memory ref (`v[2, :,
c]`, a strided load), standing in for the logits; `_CLASS_XP` stacks into
another `ClassList`, and `to_vector` turns that back into the (Tb, F)
vector written to v2 with a select chain over an iota (exact). The kernel
so runs the very arithmetic of the shared rules (same ops, same order):
float64 interpret mode gives the xla backend's bits
(tests/test_pallas_backend.py).

One lowering difference is handled: Triton lowers `jnp.maximum` to
`maxnumf`, which DROPS a NaN operand where XLA and NumPy propagate it; the
argmax's definedness test (`multiclass.predicted_class`'s NaN-propagating
max) would then call a NaN logit defined. `_CLASS_XP.maximum` propagates a
NaN explicitly (selects; XLA's value elsewhere). The softmax's max needs no
such care (a NaN logit makes the sum, so every probability, NaN anyway).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from azero_jax import fitness as fitness_lib
from azero_jax import multiclass as mc
from azero_jax import ops as ops_lib


class ClassList:
    """The class axis of a (Tb, F) vector as a list of (Tb,) arrays, indexed
    as the shared rules index it (`x[..., c]`; `shape[-1]` is F)."""

    def __init__(self, values, features: int):
        self.values = tuple(values)
        self.shape = (features,)

    def __getitem__(self, key):
        _, c = key  # (..., c)
        return self.values[c]


class _ClassNamespace:
    """`jax.numpy` for the shared rules on `ClassList`s: `stack` over the
    class axis builds a `ClassList`; `maximum` propagates NaN on Triton too."""

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def stack(values, axis=-1):
        if axis != -1:
            raise ValueError("the shared rules stack the class axis (last) only")
        return ClassList(values, len(values))

    @staticmethod
    def maximum(a, b):
        return jnp.where(jnp.isnan(a), a, jnp.where(jnp.isnan(b), b, jnp.maximum(a, b)))


_CLASS_XP = _ClassNamespace()


def to_vector(classes: ClassList, num_classes: int, like):
    """The (Tb, F) vector of a padded `ClassList` (entries C..F-1 are the
    softmax's zero padding: `like`'s shape, zeros)."""
    iota = lax.broadcasted_iota(jnp.int32, like.shape, 1)
    out = jnp.zeros(like.shape, like.dtype)
    for c in range(num_classes):
        out = jnp.where(iota == c, classes[..., c][:, None].astype(like.dtype), out)
    return out


class ExampleRules:
    """One instance's per-example rules. `hidden`: the label Predict sees
    (zeros); `learn_label(y)`: the one Learn sees; `set_inputs`, `train`
    (writes the prediction Learn sees; (error, stop)), `valid` ((prediction
    reported in the details, error, loss term, stop))."""

    def __init__(self, cfg: Any, s_ref, v_ref, classification, max_abs_error):
        self.s_ref, self.v_ref, self.cls, self.max_abs_error = s_ref, v_ref, classification, max_abs_error
        self.num_classes, self.features = cfg.num_classes, cfg.features
        self.dtype = jnp.dtype(cfg.dtype)
        tb = cfg.task_block
        self.hidden = jnp.zeros((tb, self.features) if self.num_classes else (tb,), self.dtype)

    def learn_label(self, y):
        if self.num_classes:
            return mc.one_hot(jnp, y, self.features, self.dtype)
        return y

    def set_inputs(self, x, label, active):
        """v0 = x and the label (s0; multiclass: v1) on the active lanes."""
        fa = ops_lib.FEATURES_ADDRESS
        self.v_ref[fa] = jnp.where(active[:, None], x, self.v_ref[fa])
        if self.num_classes:
            lva = mc.LABEL_VECTOR_ADDRESS
            self.v_ref[lva] = jnp.where(active[:, None], label, self.v_ref[lva])
        else:
            la = ops_lib.LABEL_ADDRESS
            self.s_ref[la] = jnp.where(active, label, self.s_ref[la])

    def _logits(self) -> ClassList:
        pva = mc.PREDICTION_VECTOR_ADDRESS
        return ClassList([self.v_ref[pva, :, c] for c in range(self.num_classes)], self.features)

    def train(self, y, active):
        """After Predict: the prediction Learn sees written back on active
        lanes (sigmoid of s1 on classification tasks; multiclass: the padded
        softmax into v2), and the example's (error, stop)."""
        if self.num_classes:
            pva = mc.PREDICTION_VECTOR_ADDRESS
            probs, error, bad = mc.train_rule(_CLASS_XP, y, self._logits(), self.num_classes, self.max_abs_error)
            raw = self.v_ref[pva]
            self.v_ref[pva] = jnp.where(active[:, None], to_vector(probs, self.num_classes, raw), raw)
            return error, bad
        pa = ops_lib.PREDICTION_ADDRESS
        raw = self.s_ref[pa]
        s1 = fitness_lib.train_prediction(jnp, raw, self.cls)
        self.s_ref[pa] = jnp.where(active, s1, raw)
        return fitness_lib.train_error(jnp, y, s1, self.max_abs_error)

    def valid(self, y):
        """After Predict (memory untouched): (prediction, error, loss term,
        stop); the prediction is s1, or the predicted class (NaN: none)."""
        if self.num_classes:
            pred, error, stop = mc.valid_rule(_CLASS_XP, y, self._logits(), self.num_classes, self.max_abs_error)
            error = error.astype(self.dtype)
            return pred, error, fitness_lib.loss_term(jnp, error, True), stop
        pred = self.s_ref[ops_lib.PREDICTION_ADDRESS]
        error, stop = fitness_lib.valid_error(jnp, y, pred, self.cls, self.max_abs_error)
        return pred, error, fitness_lib.loss_term(jnp, error, self.cls).astype(self.dtype), stop
