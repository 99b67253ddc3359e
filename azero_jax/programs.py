"""Hand-written programs of the reference `Generator` (spec §13, `generator.cc`).

They are the initial populations of the shipped configs (NO_OP, RANDOM,
LINEAR, NEURAL_NET, the integration test's damaged NN), the train-budget
baseline (NEURAL_NET), and known-good programs for tests. Addresses and
instruction order follow the reference exactly; only the random draws of the
Gaussian-set ops differ at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from azero_jax import generators
from azero_jax.program import NO_OP, Algorithm, Instruction, MemoryShape, make_instruction

# The reference's `kDefaultLearningRate`.
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_INIT_SCALE = 0.1

Sizes = Sequence[int]

# Memory each hand-written program needs (S, V, M); F is free.
LINEAR_MEMORY = MemoryShape(4, 3, 1, 1)
NEURAL_NET_MEMORY = MemoryShape(5, 9, 2, 1)


def _check_sizes(sizes: Sizes) -> tuple[int, int, int]:
    values = tuple(sizes)
    if len(values) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in values):
        raise ValueError(f"init sizes must be three non-negative integers (setup, predict, learn), got {sizes!r}")
    return int(values[0]), int(values[1]), int(values[2])


def _pad(component: list[Instruction], size: int) -> tuple[Instruction, ...]:
    """Reference `PadComponentFunctionWithInstruction`: append NO_OPs up to
    `size`; a longer hand-written component is kept whole."""
    return tuple(component) + (NO_OP,) * max(0, size - len(component))


def _algorithm(sizes: Sizes, setup: list[Instruction], predict: list[Instruction],
               learn: list[Instruction]) -> Algorithm:
    s, p, learn_size = _check_sizes(sizes)
    return Algorithm(setup=_pad(setup, s), predict=_pad(predict, p), learn=_pad(learn, learn_size))


def noop_algorithm(sizes: Sizes = (0, 0, 0)) -> Algorithm:
    """NO_OP_ALGORITHM: every component filled with `*_size_init` NO_OPs."""
    return _algorithm(sizes, [], [], [])


def linear_algorithm(sizes: Sizes = (0, 0, 0), learning_rate: float = DEFAULT_LEARNING_RATE) -> Algorithm:
    """LINEAR_ALGORITHM: linear regression by SGD (weights v1, lr s2, error s3,
    correction v2); needs S >= 4, V >= 3."""
    i = make_instruction
    setup = [i("SCALAR_CONST_SET", out=2, d=learning_rate)]
    predict = [i("VECTOR_INNER_PRODUCT", in1=1, in2=0, out=1)]
    learn = [
        i("SCALAR_DIFF", in1=0, in2=1, out=3),  # s3 = s0 - s1
        i("SCALAR_PRODUCT", in1=2, in2=3, out=3),  # s3 = s2 * s3
        i("SCALAR_VECTOR_PRODUCT", in1=3, in2=0, out=2),  # v2 = s3 * v0
        i("VECTOR_SUM", in1=1, in2=2, out=1),  # v1 = v1 + v2
    ]
    return _algorithm(sizes, setup, predict, learn)


def neural_net_algorithm(sizes: Sizes = (0, 0, 0), learning_rate: float = DEFAULT_LEARNING_RATE,
                         first_init_scale: float = DEFAULT_INIT_SCALE,
                         second_init_scale: float = DEFAULT_INIT_SCALE) -> Algorithm:
    """NEURAL_NET_ALGORITHM: a 2-layer ReLU net with biases trained by SGD;
    needs S >= 5, V >= 9, M >= 2.

    Addresses: s2 output bias, s3 lr, s4 error; v1 hidden bias, v2 output
    weights, v3 pre-ReLU, v4 post-ReLU, v5 zeros (never written), v6-v8
    gradients; m0 first-layer weights, m1 its gradient. As in the reference the
    hidden-layer gradient uses the already-updated output weights v2.
    """
    i = make_instruction
    setup = [
        i("VECTOR_GAUSSIAN_SET", out=2, f0=0.0, f1=second_init_scale),  # v2 ~ N(0, scale)
        i("MATRIX_GAUSSIAN_SET", out=0, f0=0.0, f1=first_init_scale),  # m0 ~ N(0, scale)
        i("SCALAR_CONST_SET", out=3, d=learning_rate),  # s3 = lr
    ]
    predict = [
        i("MATRIX_VECTOR_PRODUCT", in1=0, in2=0, out=3),  # v3 = dot(m0, v0)
        i("VECTOR_SUM", in1=3, in2=1, out=3),  # v3 = v3 + v1
        i("VECTOR_MAX", in1=3, in2=5, out=4),  # v4 = maximum(v3, v5) (ReLU)
        i("VECTOR_INNER_PRODUCT", in1=4, in2=2, out=1),  # s1 = dot(v4, v2)
        i("SCALAR_SUM", in1=1, in2=2, out=1),  # s1 = s1 + s2
    ]
    learn = [
        i("SCALAR_DIFF", in1=0, in2=1, out=4),  # s4 = s0 - s1
        i("SCALAR_PRODUCT", in1=3, in2=4, out=4),  # s4 = s3 * s4
        i("SCALAR_SUM", in1=2, in2=4, out=2),  # s2 = s2 + s4
        i("SCALAR_VECTOR_PRODUCT", in1=4, in2=4, out=6),  # v6 = s4 * v4
        i("VECTOR_SUM", in1=2, in2=6, out=2),  # v2 = v2 + v6
        i("SCALAR_VECTOR_PRODUCT", in1=4, in2=2, out=7),  # v7 = s4 * v2 (updated v2)
        i("VECTOR_HEAVYSIDE", in1=3, out=8),  # v8 = heaviside(v3)
        i("VECTOR_PRODUCT", in1=8, in2=7, out=7),  # v7 = v8 * v7
        i("VECTOR_SUM", in1=1, in2=7, out=1),  # v1 = v1 + v7
        i("VECTOR_OUTER_PRODUCT", in1=7, in2=0, out=1),  # m1 = outer(v7, v0)
        i("MATRIX_SUM", in1=0, in2=1, out=0),  # m0 = m0 + m1
    ]
    return _algorithm(sizes, setup, predict, learn)


def damaged_neural_net_algorithm(sizes: Sizes = (0, 0, 0)) -> Algorithm:
    """INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM: the (padded) NN with its
    first two Setup instructions, the Gaussian weight inits, removed. As in the
    reference the removal happens after padding, so Setup has
    max(3, setup_size) - 2 instructions."""
    nn = neural_net_algorithm(sizes)
    return nn.replace(setup=nn.setup[2:])


# Multiclass tasks (`azero_jax.multiclass`): features v0, one-hot label v1
# during Learn, logits in v2 after Predict (Learn sees their softmax there).
MULTICLASS_LINEAR_MEMORY = MemoryShape(3, 5, 2, 1)
MULTICLASS_NEURAL_NET_MEMORY = MemoryShape(3, 11, 4, 1)


def multiclass_linear_algorithm(sizes: Sizes = (0, 0, 0), learning_rate: float = DEFAULT_LEARNING_RATE) -> Algorithm:
    """Softmax regression by SGD on the cross-entropy (not a reference
    program): logits v2 = m0 v0 + v3; with p = softmax (written into v2 by
    the evaluator) the gradient step is g = lr (onehot - p), v3 += g,
    m0 += outer(g, v0). s2 lr, v4 g, m1 the outer product; needs S >= 3,
    V >= 5, M >= 2."""
    i = make_instruction
    setup = [i("SCALAR_CONST_SET", out=2, d=learning_rate)]
    predict = [
        i("MATRIX_VECTOR_PRODUCT", in1=0, in2=0, out=2),  # v2 = dot(m0, v0)
        i("VECTOR_SUM", in1=2, in2=3, out=2),  # v2 = v2 + v3
    ]
    learn = [
        i("VECTOR_DIFF", in1=1, in2=2, out=4),  # v4 = v1 - v2 (onehot - softmax)
        i("SCALAR_VECTOR_PRODUCT", in1=2, in2=4, out=4),  # v4 = s2 * v4
        i("VECTOR_SUM", in1=3, in2=4, out=3),  # v3 = v3 + v4
        i("VECTOR_OUTER_PRODUCT", in1=4, in2=0, out=1),  # m1 = outer(v4, v0)
        i("MATRIX_SUM", in1=0, in2=1, out=0),  # m0 = m0 + m1
    ]
    return _algorithm(sizes, setup, predict, learn)


def multiclass_neural_net_algorithm(sizes: Sizes = (0, 0, 0), learning_rate: float = DEFAULT_LEARNING_RATE,
                                    first_init_scale: float = DEFAULT_INIT_SCALE,
                                    second_init_scale: float = DEFAULT_INIT_SCALE) -> Algorithm:
    """A 2-layer ReLU net with F hidden units and biases, softmax output,
    trained by SGD on the cross-entropy (not a reference program); needs
    S >= 3, V >= 11, M >= 4.

    Addresses: s2 lr; v3 pre-ReLU, v4 hidden bias, v5 post-ReLU, v6 zeros
    (never written), v7 output bias, v8 output delta, v9 hidden delta, v10
    ReLU mask; m0 first-layer weights, m1 second-layer weights, m2 m1's
    transpose, m3 outer products. The hidden delta uses m1 before its update.
    """
    i = make_instruction
    setup = [
        i("MATRIX_GAUSSIAN_SET", out=0, f0=0.0, f1=first_init_scale),  # m0 ~ N(0, scale)
        i("MATRIX_GAUSSIAN_SET", out=1, f0=0.0, f1=second_init_scale),  # m1 ~ N(0, scale)
        i("SCALAR_CONST_SET", out=2, d=learning_rate),  # s2 = lr
    ]
    predict = [
        i("MATRIX_VECTOR_PRODUCT", in1=0, in2=0, out=3),  # v3 = dot(m0, v0)
        i("VECTOR_SUM", in1=3, in2=4, out=3),  # v3 = v3 + v4
        i("VECTOR_MAX", in1=3, in2=6, out=5),  # v5 = maximum(v3, v6) (ReLU)
        i("MATRIX_VECTOR_PRODUCT", in1=1, in2=5, out=2),  # v2 = dot(m1, v5)
        i("VECTOR_SUM", in1=2, in2=7, out=2),  # v2 = v2 + v7
    ]
    learn = [
        i("VECTOR_DIFF", in1=1, in2=2, out=8),  # v8 = v1 - v2 (onehot - softmax)
        i("SCALAR_VECTOR_PRODUCT", in1=2, in2=8, out=8),  # v8 = s2 * v8
        i("VECTOR_SUM", in1=7, in2=8, out=7),  # v7 = v7 + v8
        i("MATRIX_TRANSPOSE", in1=1, out=2),  # m2 = transpose(m1)
        i("MATRIX_VECTOR_PRODUCT", in1=2, in2=8, out=9),  # v9 = dot(m2, v8)
        i("VECTOR_HEAVYSIDE", in1=3, out=10),  # v10 = heaviside(v3)
        i("VECTOR_PRODUCT", in1=10, in2=9, out=9),  # v9 = v10 * v9
        i("VECTOR_SUM", in1=4, in2=9, out=4),  # v4 = v4 + v9
        i("VECTOR_OUTER_PRODUCT", in1=9, in2=0, out=3),  # m3 = outer(v9, v0)
        i("MATRIX_SUM", in1=0, in2=3, out=0),  # m0 = m0 + m3
        i("VECTOR_OUTER_PRODUCT", in1=8, in2=5, out=3),  # m3 = outer(v8, v5)
        i("MATRIX_SUM", in1=1, in2=3, out=1),  # m1 = m1 + m3
    ]
    return _algorithm(sizes, setup, predict, learn)


def random_algorithm(rng: np.random.Generator, memory: MemoryShape, ops: Mapping[str, Sequence[int]] | Sequence[int],
                     sizes: Sizes) -> Algorithm:
    """RANDOM_ALGORITHM: components of the init sizes filled with random
    instructions. `ops` is per component ({"setup": [...], ...}) or one list
    for all three."""
    s, p, learn_size = _check_sizes(sizes)
    if not isinstance(ops, Mapping):
        ops = {"setup": ops, "predict": ops, "learn": ops}
    missing = [c for c in ("setup", "predict", "learn") if c not in ops]
    if missing:
        raise ValueError(f"random_algorithm needs allowed ops for component(s): {', '.join(missing)}")
    return generators.random_algorithm(rng, memory, dict(ops), {"setup": s, "predict": p, "learn": learn_size})


# Name -> factory taking the init sizes, for CLIs and configs (the reference's
# `initial_population` / `train_budget_baseline` values).
HAND_WRITTEN: dict[str, Callable[..., Algorithm]] = {
    "noop": noop_algorithm,
    "linear": linear_algorithm,
    "neural_net": neural_net_algorithm,
    "damaged_neural_net": damaged_neural_net_algorithm,
}

# The multiclass counterparts (features v0, label v1, logits v2), by the
# name of the binary program they extend; kept apart from HAND_WRITTEN (the
# reference's programs, which configs name as initial populations and
# train-budget baselines).
MULTICLASS_HAND_WRITTEN: dict[str, Callable[..., Algorithm]] = {
    "linear": multiclass_linear_algorithm,
    "neural_net": multiclass_neural_net_algorithm,
}

# Reference enum names -> HAND_WRITTEN keys.
REFERENCE_NAMES = {
    "NO_OP_ALGORITHM": "noop",
    "LINEAR_ALGORITHM": "linear",
    "NEURAL_NET_ALGORITHM": "neural_net",
    "INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM": "damaged_neural_net",
}


def hand_written(name: str, sizes: Sizes = (0, 0, 0), **kwargs) -> Algorithm:
    """A hand-written program by short name or reference enum name."""
    key = REFERENCE_NAMES.get(str(name).strip().upper(), str(name).strip().lower())
    if key not in HAND_WRITTEN:
        raise ValueError(
            f"unknown hand-written program {name!r}; use one of: {', '.join(HAND_WRITTEN)} "
            f"(or {', '.join(REFERENCE_NAMES)})"
        )
    return HAND_WRITTEN[key](sizes, **kwargs)
