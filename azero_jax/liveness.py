"""Dead-code analysis: which instructions can influence a prediction.

Evaluation only ever observes `s1` right after Predict (the train error, the
early-stop test, the validation score). An instruction whose output is
overwritten or never read on any path to such an observation cannot change
any result, so two programs that differ only in dead instructions compute
exactly the same thing. Evolved programs carry a lot of such code (most of
the demo's 10 Setup instructions, say); `strip_dead_code` shows what a found
program actually does, and `live_code_keys` keys the search's FEC probe memo
(a child whose live code was probed before skips its probe; see
`evaluation.cached`). The analysis runs on `Algorithm`s (one at a time) and
on packed batches (`live_instructions_batch`: the same dataflow as NumPy
operations over all programs; with objects the key had cost as much as the
probes it saved).

Control flow of an evaluation (spec §6): Setup -> Predict -> (Learn -> Predict)*
with extra Predicts for validation; before every Predict and Learn the
evaluator writes `v0` (features) and `s0` (0 or the label), so those two
addresses are dead across component boundaries. Liveness is the usual
backward dataflow over that loop, iterated to its fixed point.

Multiclass tasks (`azero_jax.multiclass`) observe `v2` instead of `s1`, and
the evaluator writes `v0` and `v1` (not `s0`): every function here takes
`multiclass=True` for that layout.

Random-set ops draw from a counter stream keyed by the instruction's position,
not from shared state, so a dead random op is dead too; replacing dead
instructions by NO_OPs keeps positions, so live random ops keep their draws.
"""

from __future__ import annotations

import numpy as np

from azero_jax import multiclass as mc
from azero_jax import ops as ops_lib
from azero_jax.hashing import GOLDEN, mix64
from azero_jax.program import Algorithm, Instruction
from azero_jax.program_arrays import ComponentCode, ProgramArrays

_KIND_INDEX = {ops_lib.SCALAR: 0, ops_lib.VECTOR: 1, ops_lib.MATRIX: 2}


def _bit(kind: str, address: int) -> int:
    """One memory location as a bit of a Python int (kinds interleaved, so no
    memory shape is needed)."""
    return 1 << (3 * address + _KIND_INDEX[kind])


_PREDICTION = _bit(ops_lib.SCALAR, ops_lib.PREDICTION_ADDRESS)
# Written by the evaluator before every Predict and Learn.
_INPUTS = _bit(ops_lib.SCALAR, ops_lib.LABEL_ADDRESS) | _bit(ops_lib.VECTOR, ops_lib.FEATURES_ADDRESS)
# The multiclass layout: prediction v2; v0 and v1 (label) written by the evaluator.
_MC_PREDICTION = _bit(ops_lib.VECTOR, mc.PREDICTION_VECTOR_ADDRESS)
_MC_INPUTS = _bit(ops_lib.VECTOR, ops_lib.FEATURES_ADDRESS) | _bit(ops_lib.VECTOR, mc.LABEL_VECTOR_ADDRESS)


def _targets(multiclass: bool) -> tuple[int, int]:
    """(prediction, inputs) bit masks of the task layout."""
    return (_MC_PREDICTION, _MC_INPUTS) if multiclass else (_PREDICTION, _INPUTS)


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


def live_instructions(algorithm: Algorithm, *,
                      multiclass: bool = False) -> tuple[tuple[bool, ...], tuple[bool, ...], tuple[bool, ...]]:
    """Per component (setup, predict, learn), which instructions are live."""
    prediction, inputs = _targets(multiclass)
    live_predict = live_learn = 0
    while True:  # fixed point of the Predict/Learn loop (sets only grow)
        out_predict = prediction | ((live_learn | live_predict) & ~inputs)
        new_predict = _live_in(algorithm.predict, out_predict)
        new_learn = _live_in(algorithm.learn, new_predict & ~inputs)
        if new_predict == live_predict and new_learn == live_learn:
            break
        live_predict, live_learn = new_predict, new_learn
    out_predict = prediction | ((live_learn | live_predict) & ~inputs)
    return (tuple(_live_mask(algorithm.setup, live_predict & ~inputs)),
            tuple(_live_mask(algorithm.predict, out_predict)),
            tuple(_live_mask(algorithm.learn, live_predict & ~inputs)))


def strip_dead_code(algorithm: Algorithm, *, keep_positions: bool = True, multiclass: bool = False) -> Algorithm:
    """The program without its dead instructions: replaced by NO_OPs (same
    results, bit for bit), or with `keep_positions=False` removed (shorter and
    easier to read; also the same results unless the program has random-set
    ops, whose streams are keyed by instruction position)."""
    noop = Instruction(ops_lib.NO_OP_ID)
    parts = []
    for code, mask in zip((algorithm.setup, algorithm.predict, algorithm.learn),
                          live_instructions(algorithm, multiclass=multiclass), strict=True):
        if keep_positions:
            parts.append(tuple(instr if alive else noop for instr, alive in zip(code, mask, strict=True)))
        else:
            parts.append(tuple(instr for instr, alive in zip(code, mask, strict=True) if alive))
    return Algorithm(*parts)


# ------------------------------------------------- packed programs --
# The same analysis over a `ProgramArrays` batch (the search's form), as
# NumPy operations over all programs at once, and a key of each program's
# live code.

_MAX_ADDRESS_BITS = 21  # 3 kinds interleaved in a uint64: addresses < 21


def _op_table(field) -> np.ndarray:
    return np.array([field(op) for op in ops_lib.OPS])


_HAS = {f: _op_table(lambda o, f=f: getattr(o, f) is not None) for f in ("in1", "in2", "out")}
_KIND = {f: _op_table(lambda o, f=f: _KIND_INDEX.get(getattr(o, f), 0)) for f in ("in1", "in2", "out")}
_READS_OUT = _op_table(lambda o: bool(o.reads_out))
_RANDOM = _op_table(lambda o: bool(o.random))


def _effects(code: ComponentCode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reads, writes, kills) uint64 masks (B, L) of every instruction (`_effect`); 0 past each length."""
    op = code.ints[:, :, 0]
    real = np.arange(code.capacity)[None, :] < code.lengths[:, None]

    def bit(field: str, column: int) -> np.ndarray:
        has = _HAS[field][op] & real
        shift = np.where(has, 3 * code.ints[:, :, column] + _KIND[field][op], 0).astype(np.uint64)
        return np.where(has, np.left_shift(np.uint64(1), shift), np.uint64(0))

    writes = bit("out", 3)
    reads = bit("in1", 1) | bit("in2", 2)
    partial = _READS_OUT[op]
    return reads | np.where(partial, writes, np.uint64(0)), writes, np.where(partial, np.uint64(0), writes)


def _backward(effects, live: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """`_live_in` over B programs; fills `mask` (B, L) with `_live_mask` if given."""
    reads, writes, kills = effects
    for k in range(reads.shape[1] - 1, -1, -1):
        alive = (live & writes[:, k]) != 0
        live = np.where(alive, (live & ~kills[:, k]) | reads[:, k], live)
        if mask is not None:
            mask[:, k] = alive
    return live


def live_instructions_batch(arrays: ProgramArrays, *,
                            multiclass: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`live_instructions` of every program of a packed batch: per component
    a bool array (B, L_c), False past each length. None when an address is
    too large for the packed bit masks (>= 21)."""
    if any(int(code.ints[:, :, 1:].max(initial=0)) >= _MAX_ADDRESS_BITS for code in arrays):
        return None
    effects = [_effects(code) for code in arrays]
    prediction, inputs = (np.uint64(b) for b in _targets(multiclass))
    live_predict = live_learn = np.zeros(arrays.batch, np.uint64)
    while True:  # fixed point of the Predict/Learn loop (sets only grow)
        out_predict = prediction | ((live_learn | live_predict) & ~inputs)
        new_predict = _backward(effects[1], out_predict)
        new_learn = _backward(effects[2], new_predict & ~inputs)
        if np.array_equal(new_predict, live_predict) and np.array_equal(new_learn, live_learn):
            break
        live_predict, live_learn = new_predict, new_learn
    out_predict = prediction | ((live_learn | live_predict) & ~inputs)
    masks = tuple(np.zeros((arrays.batch, code.capacity), bool) for code in arrays)
    for eff, live, mask in zip(effects, (live_predict & ~inputs, out_predict, live_predict & ~inputs), masks,
                               strict=True):
        _backward(eff, live, mask)
    return masks  # type: ignore[return-value]


def live_code_keys(arrays: ProgramArrays, *, multiclass: bool = False) -> np.ndarray | None:
    """A 64-bit key (uint64, B) of each program's live code: its live
    instructions in order per component (all fields, constants as exact
    bits), with their positions for random-set ops (whose streams are keyed
    by position). Programs with equal keys compute the same thing on every
    task (bit for bit, the analysis above), whatever their dead code.
    None where `live_instructions_batch` is."""
    masks = live_instructions_batch(arrays, multiclass=multiclass)
    if masks is None:
        return None
    key = np.zeros(arrays.batch, np.uint64)
    with np.errstate(over="ignore"):
        for comp, (code, live) in enumerate(zip(arrays, masks, strict=True)):
            # Four exact 64-bit words per instruction: op and addresses (< 2^8 each, checked above)
            # with f2, f0 with f1 (float32 values: exact as float32 bits), d, and position (random
            # ops only) with rank among the live instructions and component.
            ints = code.ints.astype(np.uint64)
            f32 = code.floats[:, :, 1:].astype(np.float32).view(np.uint32).astype(np.uint64)
            fields = ints[:, :, 0] | (ints[:, :, 1] << np.uint64(8)) | (ints[:, :, 2] << np.uint64(16)) | \
                (ints[:, :, 3] << np.uint64(24)) | (f32[:, :, 2] << np.uint64(32))
            position = np.where(_RANDOM[code.ints[:, :, 0]], np.arange(code.capacity)[None, :] + 1, 0)
            rank = np.cumsum(live, axis=1)  # order among the live instructions
            where = (position.astype(np.uint64) << np.uint64(32)) | (rank.astype(np.uint64) << np.uint64(2)) | \
                np.uint64(comp)
            digest = mix64(fields ^ mix64((f32[:, :, 0] | (f32[:, :, 1] << np.uint64(32))) ^
                                          mix64(code.floats[:, :, 0].view(np.uint64) ^ mix64(where + GOLDEN))))
            key += np.where(live, digest, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return key
