"""Program model: construction and validation errors name where and what."""

from __future__ import annotations

import math

import numpy as np
import pytest

from azero_jax.program import (
    Algorithm,
    Instruction,
    MemoryShape,
    ProgramError,
    make_instruction,
    required_memory,
    validate_algorithm,
)

MEM = MemoryShape(4, 3, 1, 4)


def test_validation_names_component_index_and_field():
    algo = Algorithm(learn=(make_instruction("SCALAR_SUM", in1=1, in2=2, out=3),
                            make_instruction("VECTOR_SUM", in1=1, in2=7, out=2)))
    with pytest.raises(ProgramError, match=r"^Learn instruction 1: field in2=v7 is out of range .* 3 vector"):
        validate_algorithm(algo, MEM)


@pytest.mark.parametrize("kwargs,message", [
    (dict(op=99), "field op: unknown op id 99"),
    (dict(op="SCALAR_FROB"), "unknown op name 'SCALAR_FROB'"),
    (dict(op=1, in1=-1), "field in1 must be a non-negative integer"),
    (dict(op=1, in1=1.5), "field in1 must be a non-negative integer"),
    (dict(op=56, d="x"), "field d must be a number"),
    (dict(op=57, f0=1e39), "does not fit a float32"),
])
def test_bad_instruction_fields_raise_program_error(kwargs, message):
    with pytest.raises(ProgramError, match=message):
        Instruction(**kwargs)


def test_unused_constant_or_address_is_a_wrong_constant_count():
    with pytest.raises(ProgramError, match=r"Setup instruction 0: constant d=0.5 is not used by SCALAR_SUM_OP"):
        validate_algorithm(Algorithm(setup=(Instruction(1, d=0.5),)), MEM)
    with pytest.raises(ProgramError, match=r"Predict instruction 0: field in2=1 is not used by SCALAR_ABS_OP"):
        validate_algorithm(Algorithm(predict=(Instruction(5, in1=1, in2=1, out=2),)), MEM)


def test_element_index_fraction_must_lie_in_unit_interval():
    with pytest.raises(ProgramError, match="element index f0=1.5"):
        validate_algorithm(Algorithm(setup=(make_instruction("VECTOR_CONST_SET", out=1, f0=1.5, f1=0.0),)), MEM)
    validate_algorithm(Algorithm(setup=(make_instruction("VECTOR_CONST_SET", out=1, f0=1.0, f1=0.0),)), MEM)


def test_float_data_is_stored_as_float32_and_d_as_double():
    instr = make_instruction("VECTOR_CONST_SET", out=1, f0=0.1, f1=1 / 3)
    assert instr.f0 == float(np.float32(0.1)) and instr.f1 == float(np.float32(1 / 3))
    assert make_instruction("SCALAR_CONST_SET", out=2, d=0.1).d == 0.1


def test_memory_shape_is_run_time_and_any_feature_size_works():
    for f in (1, 3, 7, 100, 3072):
        assert MemoryShape(2, 1, 0, f).features == f
    with pytest.raises(ProgramError, match="scalars must be an integer >= 2"):
        MemoryShape(1, 1, 1, 4)
    with pytest.raises(ProgramError, match="features must be an integer >= 1"):
        MemoryShape(4, 3, 1, 0)


def test_required_memory_and_instruction_equality():
    algo = Algorithm(setup=(make_instruction("MATRIX_CONST_SET", out=2, f0=0.5, f1=0.5, f2=1.0),),
                     predict=(make_instruction("VECTOR_NORM", in1=5, out=9),))
    need = required_memory(algo)
    assert (need.scalars, need.vectors, need.matrices) == (10, 6, 3)
    a = make_instruction("SCALAR_CONST_SET", out=2, d=0.5)
    assert a.same_as(make_instruction("SCALAR_CONST_SET", out=2, d=0.5 + 1e-6))
    assert not a.same_as(make_instruction("SCALAR_CONST_SET", out=2, d=0.5 + 1e-4))
    assert make_instruction("SCALAR_CONST_SET", out=2, d=math.nan).same_as(
        make_instruction("SCALAR_CONST_SET", out=2, d=math.nan))
