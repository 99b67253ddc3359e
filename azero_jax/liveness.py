"""Dead-code analysis: which instructions can influence a prediction.

Evaluation only ever observes `s1` right after Predict (the train error, the
early-stop test, the validation score). An instruction whose output is
overwritten or never read on any path to such an observation cannot change
any result, so two programs that differ only in dead instructions compute
exactly the same thing. Evolved programs carry a lot of such code (most of
the demo's 10 Setup instructions, say); `strip_dead_code` shows what a found
program actually does. (An FEC probe memo keyed on the live code was tried:
exact, but computing the key cost as much as the probes it saved on the demo.)

Control flow of an evaluation (spec §6): Setup -> Predict -> (Learn -> Predict)*
with extra Predicts for validation; before every Predict and Learn the
evaluator writes `v0` (features) and `s0` (0 or the label), so those two
addresses are dead across component boundaries. Liveness is the usual
backward dataflow over that loop, iterated to its fixed point.

Random-set ops draw from a counter stream keyed by the instruction's position,
not from shared state, so a dead random op is dead too; replacing dead
instructions by NO_OPs keeps positions, so live random ops keep their draws.
"""

from __future__ import annotations

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


def _effect(instr: Instruction) -> tuple[int, int, int]:
    """(reads, writes, kills) bit masks of one instruction."""
    spec = ops_lib.OPS[instr.op]
    if spec.out is None:
        return 0, 0, 0
    reads = 0
    if spec.in1 is not None:
        reads |= _bit(spec.in1, instr.in1)
    if spec.in2 is not None:
        reads |= _bit(spec.in2, instr.in2)
    writes = _bit(spec.out, instr.out)
    # A partial write lets the old value flow through.
    return (reads | writes, writes, 0) if spec.reads_out else (reads, writes, writes)


def _live_in(code: tuple[Instruction, ...], live: int) -> int:
    for instr in reversed(code):
        reads, writes, kills = _effect(instr)
        if live & writes:
            live = (live & ~kills) | reads
    return live


def _live_mask(code: tuple[Instruction, ...], live: int) -> list[bool]:
    mask = []
    for instr in reversed(code):
        reads, writes, kills = _effect(instr)
        alive = bool(live & writes)
        if alive:
            live = (live & ~kills) | reads
        mask.append(alive)
    mask.reverse()
    return mask


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
    return (tuple(_live_mask(algorithm.setup, live_predict & ~_INPUTS)),
            tuple(_live_mask(algorithm.predict, out_predict)),
            tuple(_live_mask(algorithm.learn, live_predict & ~_INPUTS)))


def strip_dead_code(algorithm: Algorithm, *, keep_positions: bool = True) -> Algorithm:
    """The program without its dead instructions: replaced by NO_OPs (same
    results, bit for bit), or with `keep_positions=False` removed (shorter and
    easier to read; also the same results unless the program has random-set
    ops, whose streams are keyed by instruction position)."""
    noop = Instruction(ops_lib.NO_OP_ID)
    parts = []
    for code, mask in zip((algorithm.setup, algorithm.predict, algorithm.learn), live_instructions(algorithm),
                          strict=True):
        if keep_positions:
            parts.append(tuple(instr if alive else noop for instr, alive in zip(code, mask, strict=True)))
        else:
            parts.append(tuple(instr for instr, alive in zip(code, mask, strict=True) if alive))
    return Algorithm(*parts)
