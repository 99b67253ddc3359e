"""Hand-written programs of the reference Generator (spec §13)."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax import ops as ops_lib
from azero_jax import programs
from azero_jax import tasks as tasks_lib
from azero_jax.program import NO_OP, Instruction, MemoryShape, ProgramError, validate_algorithm

LINEAR_MEMORY = MemoryShape(4, 3, 1, 4)
NN_MEMORY = MemoryShape(5, 9, 2, 4)


def instr(name: str, **kw) -> Instruction:
    return Instruction(ops_lib.get_op(name).id, **kw)


def test_noop_algorithm_sizes():
    algo = programs.noop_algorithm((3, 1, 2))
    assert algo.sizes == (3, 1, 2)
    assert algo.ops_used() == {ops_lib.NO_OP_ID}
    assert programs.noop_algorithm().sizes == (0, 0, 0)


def test_linear_algorithm_exact_instructions():
    algo = programs.linear_algorithm()
    assert algo.setup == (instr("SCALAR_CONST_SET", out=2, d=0.01),)
    assert algo.predict == (instr("VECTOR_INNER_PRODUCT", in1=1, in2=0, out=1),)
    assert algo.learn == (
        instr("SCALAR_DIFF", in1=0, in2=1, out=3),
        instr("SCALAR_PRODUCT", in1=2, in2=3, out=3),
        instr("SCALAR_VECTOR_PRODUCT", in1=3, in2=0, out=2),
        instr("VECTOR_SUM", in1=1, in2=2, out=1),
    )
    validate_algorithm(algo, LINEAR_MEMORY)
    assert programs.linear_algorithm(learning_rate=0.25).setup[0].d == 0.25


def test_linear_algorithm_does_not_fit_smaller_memory():
    with pytest.raises(ProgramError):
        validate_algorithm(programs.linear_algorithm(), MemoryShape(3, 3, 1, 4))


def test_padding_appends_noops_and_keeps_longer_components():
    algo = programs.linear_algorithm((10, 2, 8))
    assert algo.sizes == (10, 2, 8)
    assert algo.setup[1:] == (NO_OP,) * 9
    assert algo.predict[1] == NO_OP and algo.learn[4:] == (NO_OP,) * 4
    assert algo.learn[:4] == programs.linear_algorithm().learn
    # demo sizes are 10/2/8; the integration test's 5/1/4 needs no padding beyond setup
    assert programs.linear_algorithm((5, 1, 4)).sizes == (5, 1, 4)
    # init sizes smaller than the hand-written code: keep it whole
    assert programs.neural_net_algorithm((1, 1, 1)).sizes == (3, 5, 11)
    assert programs.neural_net_algorithm((6, 3, 9)).sizes == (6, 5, 11)


def test_neural_net_exact_instructions():
    algo = programs.neural_net_algorithm()
    assert algo.setup == (
        instr("VECTOR_GAUSSIAN_SET", out=2, f0=0.0, f1=0.1),
        instr("MATRIX_GAUSSIAN_SET", out=0, f0=0.0, f1=0.1),
        instr("SCALAR_CONST_SET", out=3, d=0.01),
    )
    assert algo.predict == (
        instr("MATRIX_VECTOR_PRODUCT", in1=0, in2=0, out=3),
        instr("VECTOR_SUM", in1=3, in2=1, out=3),
        instr("VECTOR_MAX", in1=3, in2=5, out=4),
        instr("VECTOR_INNER_PRODUCT", in1=4, in2=2, out=1),
        instr("SCALAR_SUM", in1=1, in2=2, out=1),
    )
    assert algo.learn == (
        instr("SCALAR_DIFF", in1=0, in2=1, out=4),
        instr("SCALAR_PRODUCT", in1=3, in2=4, out=4),
        instr("SCALAR_SUM", in1=2, in2=4, out=2),
        instr("SCALAR_VECTOR_PRODUCT", in1=4, in2=4, out=6),
        instr("VECTOR_SUM", in1=2, in2=6, out=2),
        instr("SCALAR_VECTOR_PRODUCT", in1=4, in2=2, out=7),
        instr("VECTOR_HEAVYSIDE", in1=3, out=8),
        instr("VECTOR_PRODUCT", in1=8, in2=7, out=7),
        instr("VECTOR_SUM", in1=1, in2=7, out=1),
        instr("VECTOR_OUTER_PRODUCT", in1=7, in2=0, out=1),
        instr("MATRIX_SUM", in1=0, in2=1, out=0),
    )
    validate_algorithm(algo, NN_MEMORY)
    # the hidden gradient v7 = s4 * v2 comes after the v2 update
    learn_outs = [(ins.op, ins.out) for ins in algo.learn]
    assert learn_outs.index((ops_lib.get_op("VECTOR_SUM").id, 2)) < learn_outs.index(
        (ops_lib.get_op("SCALAR_VECTOR_PRODUCT").id, 7))
    # v5 (the ReLU's zeros) is never written
    assert all(not (ins.spec.out == "v" and ins.out == 5) for c in ("setup", "predict", "learn")
               for ins in algo.component(c))


def test_neural_net_parameters_and_memory_requirement():
    algo = programs.neural_net_algorithm(learning_rate=0.5, first_init_scale=0.2, second_init_scale=0.3)
    assert (algo.setup[0].f0, algo.setup[0].f1) == (0.0, np.float32(0.3))
    assert (algo.setup[1].f0, algo.setup[1].f1) == (0.0, np.float32(0.2))
    assert algo.setup[2].d == 0.5
    for too_small in (MemoryShape(4, 9, 2, 4), MemoryShape(5, 8, 2, 4), MemoryShape(5, 9, 1, 4)):
        with pytest.raises(ProgramError):
            validate_algorithm(algo, too_small)


def test_damaged_neural_net_lacks_gaussians():
    nn = programs.neural_net_algorithm()
    damaged = programs.damaged_neural_net_algorithm()
    assert damaged.setup == (instr("SCALAR_CONST_SET", out=3, d=0.01),)
    assert damaged.predict == nn.predict and damaged.learn == nn.learn
    assert not damaged.ops_used() & {ops_lib.get_op("VECTOR_GAUSSIAN_SET").id, ops_lib.get_op("MATRIX_GAUSSIAN_SET").id}
    validate_algorithm(damaged, NN_MEMORY)
    # removal after padding (reference order): setup 6 -> 4, nonlinear test's setup 2 -> 1
    assert programs.damaged_neural_net_algorithm((6, 3, 9)).sizes == (4, 5, 11)
    assert programs.damaged_neural_net_algorithm((2, 1, 4)).sizes == (1, 5, 11)


def test_random_algorithm_wrapper():
    memory = MemoryShape(4, 3, 1, 4)
    a = programs.random_algorithm(np.random.default_rng(3), memory, ops_lib.DEMO_OPS, (10, 2, 8))
    b = programs.random_algorithm(np.random.default_rng(3), memory, ops_lib.DEMO_OPS, (10, 2, 8))
    assert a == b and a.sizes == (10, 2, 8)
    assert a.ops_used() <= set(ops_lib.DEMO_OPS)
    validate_algorithm(a, memory)
    per = programs.random_algorithm(np.random.default_rng(0), memory,
                                    {"setup": [56], "predict": [27], "learn": [2, 3]}, (2, 1, 3))
    assert {i.op for i in per.setup} == {56} and {i.op for i in per.predict} == {27}
    with pytest.raises(ValueError, match="learn"):
        programs.random_algorithm(np.random.default_rng(0), memory, {"setup": [56], "predict": [27]}, (1, 1, 1))
    with pytest.raises(ValueError, match="three non-negative"):
        programs.random_algorithm(np.random.default_rng(0), memory, [56], (1, 1))


def test_hand_written_registry():
    assert set(programs.HAND_WRITTEN) == {"noop", "linear", "neural_net", "damaged_neural_net"}
    for name, factory in programs.HAND_WRITTEN.items():
        algo = factory((4, 2, 3))
        assert algo == programs.hand_written(name, (4, 2, 3))
        validate_algorithm(algo, NN_MEMORY)
    assert programs.hand_written("NEURAL_NET_ALGORITHM") == programs.neural_net_algorithm()
    assert programs.hand_written("linear", learning_rate=0.1).setup[0].d == 0.1
    with pytest.raises(ValueError, match="unknown hand-written program"):
        programs.hand_written("mlp")


# ---------------------------------------- behaviour (reference interpreter) --

from azero_jax import reference  # noqa: E402


def test_linear_program_solves_linear_tasks():
    tasks = tasks_lib.make_tasks(tasks_lib.get_preset("demo_select", num_tasks=3))
    result = reference.evaluate(programs.linear_algorithm(learning_rate=0.05), tasks, LINEAR_MEMORY)
    assert result.fitness >= 0.999
    # the reference's default lr 0.01 also nearly solves 1000-example tasks
    assert reference.evaluate(programs.linear_algorithm(), tasks, LINEAR_MEMORY).fitness >= 0.999


def test_neural_net_beats_linear_on_nn_teacher():
    tasks = tasks_lib.make_tasks("nn_teacher")
    nn_fit = reference.evaluate(programs.neural_net_algorithm(), tasks, NN_MEMORY).fitness
    lin_fit = reference.evaluate(programs.linear_algorithm(), tasks, NN_MEMORY).fitness
    damaged_fit = reference.evaluate(programs.damaged_neural_net_algorithm(), tasks, NN_MEMORY).fitness
    assert nn_fit > lin_fit + 0.2
    assert nn_fit > damaged_fit  # zero weights: no gradient reaches the hidden layer
