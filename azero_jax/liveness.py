"""Dead-code analysis: which instructions can influence a prediction.

Evaluation only ever observes `s1` right after Predict (the train error, the
early-stop test, the validation score). An instruction whose output is
overwritten or never read on any path to such an observation cannot change
any result, so two programs that differ only in dead instructions compute
exactly the same thing. The search uses this to skip FEC probes of children
that are functionally identical to something already probed (mutations often
hit dead code): a pure speed-up with bit-identical results.

Control flow of an evaluation (spec §6): Setup -> Predict -> (Learn -> Predict)*
with extra Predicts for validation; before every Predict and Learn the
evaluator writes `v0` (features) and `s0` (0 or the label), so those two
addresses are dead across component boundaries. Liveness is the usual
backward dataflow over that loop, iterated to its fixed point.

Random-set ops draw from a counter stream keyed by the instruction's position,
not from shared state, so a dead random op is dead too; `canonical_key` keeps
positions (dead instructions become None) so live random ops keep their keys.
"""

from __future__ import annotations

import functools
import math

from azero_jax import ops as ops_lib
from azero_jax.program import Algorithm, Instruction

_KIND_INDEX = {ops_lib.SCALAR: 0, ops_lib.VECTOR: 1, ops_lib.MATRIX: 2}


def _bit(kind: str, address: int) -> int:
    """One memory location as a bit of a Python int (kinds interleaved, so no
    memory shape is needed)."""
    return 1 << (3 * address + _KIND_INDEX[kind])


_PREDICTION = _bit(ops_lib.SCALAR, ops_lib.PREDICTION_ADDRESS)
# Written by the evaluator before every Predict and Learn.
_INPUTS = _bit(ops_lib.SCALAR, ops_lib.LABEL_ADDRESS) | _bit(ops_lib.VECTOR, ops_lib.FEATURES_ADDRESS)


@functools.lru_cache(maxsize=1 << 16)
def _effect(op: int, in1: int, in2: int, out: int) -> tuple[int, int, int]:
    """(reads, writes, kills) bit masks of one instruction."""
    spec = ops_lib.OPS[op]
    if spec.out is None:
        return 0, 0, 0
    reads = 0
    if spec.in1 is not None:
        reads |= _bit(spec.in1, in1)
    if spec.in2 is not None:
        reads |= _bit(spec.in2, in2)
    writes = _bit(spec.out, out)
    if spec.reads_out:  # partial write: the old value flows through
        return reads | writes, writes, 0
    return reads, writes, writes


def _live_in(code: tuple[Instruction, ...], live: int) -> int:
    for instr in reversed(code):
        reads, writes, kills = _effect(instr.op, instr.in1, instr.in2, instr.out)
        if live & writes:
            live = (live & ~kills) | reads
    return live


def _live_mask(code: tuple[Instruction, ...], live: int) -> tuple[bool, ...]:
    mask = []
    for instr in reversed(code):
        reads, writes, kills = _effect(instr.op, instr.in1, instr.in2, instr.out)
        alive = bool(live & writes)
        if alive:
            live = (live & ~kills) | reads
        mask.append(alive)
    return tuple(reversed(mask))


def live_instructions(algorithm: Algorithm) -> tuple[tuple[bool, ...], tuple[bool, ...], tuple[bool, ...]]:
    """Per component (setup, predict, learn), which instructions are live."""
    live_predict = live_learn = 0
    while True:  # fixed point of the Predict/Learn loop (sets only grow)
        out_predict = _PREDICTION | ((live_learn | live_predict) & ~_INPUTS)
        new_predict = _live_in(algorithm.predict, out_predict)
        new_learn = _live_in(algorithm.learn, new_predict & ~_INPUTS)
        if new_predict == live_predict and new_learn == live_learn:
            break
        live_predict, live_learn = new_predict, new_learn
    out_predict = _PREDICTION | ((live_learn | live_predict) & ~_INPUTS)
    return (_live_mask(algorithm.setup, live_predict & ~_INPUTS),
            _live_mask(algorithm.predict, out_predict),
            _live_mask(algorithm.learn, live_predict & ~_INPUTS))


def _token(instr: Instruction) -> tuple:
    """The instruction's fields, exact to the bit: unlike `==` on floats, +0.0
    and -0.0 differ (1/x tells them apart). Cached on the (immutable) object:
    parents and children share most instruction objects."""
    token = instr.__dict__.get("_canonical_token")
    if token is None:
        signs = sum(1 << k for k, v in enumerate((instr.d, instr.f0, instr.f1, instr.f2))
                    if v == 0.0 and math.copysign(1.0, v) < 0)
        token = (instr.op, instr.in1, instr.in2, instr.out, instr.d, instr.f0, instr.f1, instr.f2, signs)
        object.__setattr__(instr, "_canonical_token", token)
    return token


def canonical_key(algorithm: Algorithm) -> tuple:
    """Hashable key, equal only for programs that compute exactly the same
    thing because they differ in dead instructions at most (positions kept:
    a dead instruction becomes None; constants compared bit for bit, NaN
    never equal to a different NaN object)."""
    masks = live_instructions(algorithm)
    return tuple(tuple(_token(instr) if alive else None for instr, alive in zip(code, mask, strict=True))
                 for code, mask in zip((algorithm.setup, algorithm.predict, algorithm.learn), masks, strict=True))


def strip_dead_code(algorithm: Algorithm) -> Algorithm:
    """The program with its dead instructions replaced by NO_OPs (same
    results; handy for reading what evolution found)."""
    noop = Instruction(ops_lib.NO_OP_ID)
    setup, predict, learn = (tuple(instr if alive else noop for instr, alive in zip(code, mask, strict=True))
                             for code, mask in zip((algorithm.setup, algorithm.predict, algorithm.learn),
                                                   live_instructions(algorithm), strict=True))
    return Algorithm(setup, predict, learn)
