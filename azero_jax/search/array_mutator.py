"""The reference Mutator's rules, vectorized over a whole batch of children.

One job: `ArrayMutator(config).mutate(rng, parents)` turns a `ProgramArrays`
batch of parents into a batch of children, child i from parent i, with the
distributions of `mutator.Mutator.mutate(rng, parent)` (spec §4, §12): with
probability `mutate_prob` one mutation of a type drawn uniformly from
`config.mutation_types`, else an exact copy; the component uniform over the
mutable components; insert only while size < max - 1, remove only while
size > min, trade = insert then remove; random instructions with ops uniform
over the component's list, inputs uniform over [0, size), outputs over
[RANDOM_OUT_ADDRESS_MIN, size), constants per the op table's `randomize`
ranges (f0-f2 stored as float32); AlterParam per the op's family and the
`alter` rules, with `sort_after_alter` and float32 storage.

How: all three components of the batch sit side by side in one (B, L_s + L_p
+ L_l, 8) float64 workspace (op, in1, in2, out, d, f0, f1, f2; addresses are
exact), so every step is a few NumPy operations over the whole batch whatever
the mix of types: one gather for all inserts / removes / trades (a per-child
source-index map), one mask of slots that get fresh random instructions
(inserted slots, RANDOMIZE_INSTRUCTION / COMPONENT / ALGORITHM) filled by one
vectorized draw, and one vectorized AlterParam. Per-op metadata are lookup
arrays built once from the op table. Draws are made per batch (not in the
reference's per-child order), so children are not draw-for-draw those of
`Mutator`; the same seed gives the same children.

Why (tools/benchmark_mutation.py, 2-core CPU, us of host CPU per child):
`Mutator.mutate` costs 15-20 (demo 19.5, baseline 15; ~22 us per random
`Instruction`); this costs 1.7 at the demo's 250 children per step, 2.7 /
13 / 64 at 100 / 10 / 1 baseline children per step: a fixed ~0.1 ms per call
(~100 NumPy operations) plus well under 1 us per child.
"""

from __future__ import annotations

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax.program import COMPONENTS
from azero_jax.program_arrays import ComponentCode, ProgramArrays
from azero_jax.search import mutator as mutator_lib

# Mutation type ids: indices into `mutator.MUTATION_TYPES` (the reference's enum).
(ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_COMPONENT_FUNCTION, IDENTITY, INSERT_INSTRUCTION,
 REMOVE_INSTRUCTION, TRADE_INSTRUCTION, RANDOMIZE_ALGORITHM) = (
    mutator_lib.MUTATION_TYPES.index(t) for t in (
        mutator_lib.ALTER_PARAM, mutator_lib.RANDOMIZE_INSTRUCTION, mutator_lib.RANDOMIZE_COMPONENT_FUNCTION,
        mutator_lib.IDENTITY, mutator_lib.INSERT_INSTRUCTION, mutator_lib.REMOVE_INSTRUCTION,
        mutator_lib.TRADE_INSTRUCTION, mutator_lib.RANDOMIZE_ALGORITHM))

_UNIFORM01, _LOG_SCALE, _LOG_SCALE_OR_FLIP = 0, 1, 2
_RULE = {"uniform01": _UNIFORM01, "log_scale": _LOG_SCALE, "log_scale_or_flip": _LOG_SCALE_OR_FLIP}
_NO_LIMIT = 1 << 30  # "no insert limit" and "no insert / remove position"
_GROW = 8  # capacities grow to a multiple of this


def _index(u: np.ndarray, n) -> np.ndarray:
    """`uniform_int(0, n)`: floor(u * n), u in [0, 1) (< n exactly in float64; 0 for n = 0)."""
    return (u * n).astype(np.intp)


class ArrayMutator:
    """`mutator.Mutator`'s distributions over a `ProgramArrays` batch."""

    def __init__(self, config: mutator_lib.MutatorConfig):
        self.config = config
        memory = config.memory
        n = ops_lib.NUM_OPS
        size = {None: 0, ops_lib.SCALAR: memory.scalars, ops_lib.VECTOR: memory.vectors,
                ops_lib.MATRIX: memory.matrices}
        # Per op and address field (in1, in2, out): random addresses are low + floor(u * span)
        # (inputs from 0, outputs from RANDOM_OUT_ADDRESS_MIN; unused fields: 0 + 0).
        self._low = np.array([[0, 0, ops_lib.RANDOM_OUT_ADDRESS_MIN[o.out] if o.out else 0] for o in ops_lib.OPS])
        self._span = np.array([[size[o.in1], size[o.in2], size[o.out]] for o in ops_lib.OPS]) - self._low
        # AlterParam's uniform choice per op: compute ops re-draw in1, [in2,] or out; set ops
        # re-draw out or alter data (-1); NO_OP has no choice. Entries: address field 0-2.
        self._alter_choices = np.array([{"noop": 0, "set": 2}.get(o.family, o.num_inputs + 1) for o in ops_lib.OPS])
        self._alter_target = np.zeros((n, 3), np.intp)
        for o in ops_lib.OPS:
            row = [2, -1] if o.family == "set" else [*range(o.num_inputs), 2]
            self._alter_target[o.id, :len(row)] = row
        # A random instruction's 8 fields are lo + floor-or-not(span * u): column 0 the op itself,
        # 1-3 addresses (floored), 4-7 the `randomize` constants (unused: 0 + 0 * u = 0).
        self._rand_lo = np.zeros((n, 8))
        self._rand_span = np.zeros((n, 8))
        self._rand_lo[:, 0], self._rand_lo[:, 1:4], self._rand_span[:, 1:4] = np.arange(n), self._low, self._span
        # `alter`: uniform choice among the op's entries, each (field, rule).
        width = max(len(o.alter) for o in ops_lib.OPS)
        self._num_alter = np.array([len(o.alter) for o in ops_lib.OPS])
        self._alter_field = np.zeros((n, width), np.intp)
        self._alter_rule = np.zeros((n, width), np.intp)
        for o in ops_lib.OPS:
            for field, low, high in o.randomize:
                j = 4 + ops_lib.CONST_FIELDS.index(field)
                self._rand_lo[o.id, j], self._rand_span[o.id, j] = low, high - low
            for k, (field, rule) in enumerate(o.alter):
                self._alter_field[o.id, k] = ops_lib.CONST_FIELDS.index(field)
                self._alter_rule[o.id, k] = _RULE[rule]
        self._sort_after = np.array([o.sort_after_alter for o in ops_lib.OPS], bool)
        # Per component: allowed ops (padded), count, size limits, mutability.
        ops = [config.ops(c) for c in COMPONENTS]
        self._num_ops = np.array([len(o) for o in ops])
        self._ops = np.zeros((3, max(1, *self._num_ops)), np.intp)
        for i, o in enumerate(ops):
            self._ops[i, :len(o)] = o
        self._mutable = self._num_ops > 0
        self._mutable_ids = np.flatnonzero(self._mutable)
        self._size_min = np.array(config.size_min)
        self._insert_limit = np.array([m - 1 if m else _NO_LIMIT for m in config.size_max])
        self._types = np.array([mutator_lib.MUTATION_TYPES.index(t) for t in config.mutation_types])
        self._layouts: dict[tuple[int, ...], tuple] = {}

    @property
    def capacity(self) -> tuple[int, int, int]:
        """Per component, the largest size mutations produce (0 = unbounded: the
        arrays grow as needed); parents longer than this keep their size."""
        return tuple(int(m) if m < _NO_LIMIT else 0 for m in self._insert_limit)  # type: ignore[return-value]

    def _layout(self, caps: list[int]) -> tuple:
        """Column metadata of the (B, sum(caps), 8) workspace, cached per capacities."""
        key = tuple(caps)
        if key not in self._layouts:
            offsets = np.concatenate([[0], np.cumsum(key)])
            col_comp = np.repeat(np.arange(3), key)
            cols = np.arange(offsets[-1])
            self._layouts[key] = (offsets.tolist(), offsets, col_comp, cols - offsets[col_comp], offsets[col_comp],
                                  self._mutable[col_comp], cols)
        return self._layouts[key]

    # ------------------------------------------------------------ draws --
    def _random_instructions(self, rng: np.random.Generator, comp: np.ndarray) -> np.ndarray:
        """(K, 8) fresh random instructions for components `comp` (K,): op uniform
        over the component's list, then addresses and constants (`random_instruction`)."""
        u = rng.random((comp.shape[0], 8))
        op = self._ops[comp, _index(u[:, 0], self._num_ops[comp])]
        out = self._rand_span[op] * u
        out[:, 1:4] = np.floor(out[:, 1:4])  # addresses: low + floor(u * span) < low + span
        out += self._rand_lo[op]  # constants: low + (high - low) * u, as `uniform_float`
        out[:, 5:] = out[:, 5:].astype(np.float32)  # float data is float32 (values in [-1, 1])
        return out

    def _alter_param(self, rng: np.random.Generator, instr: np.ndarray) -> None:
        """`mutator.alter_param` on K instructions ((K, 8) rows, changed in place)."""
        op = instr[:, 0].astype(np.intp)
        u = rng.random((op.shape[0], 4))
        target = self._alter_target[op, _index(u[:, 0], self._alter_choices[op])]
        redraw = np.nonzero(target >= 0)[0]  # (NO_OP: target 0 with span 0 re-draws nothing)
        op_r, field = op[redraw], target[redraw]
        instr[redraw, 1 + field] = self._low[op_r, field] + _index(u[redraw, 1], self._span[op_r, field])
        rows = np.nonzero(target < 0)[0]
        if not rows.size:
            return
        op = op[rows]
        pick = _index(u[rows, 2], self._num_alter[op])
        field, rule = 4 + self._alter_field[op, pick], self._alter_rule[op, pick]
        old, v, z = instr[rows, field], u[rows, 3], rng.standard_normal(rows.size)
        with np.errstate(all="ignore"):  # sign(x) * exp(log|x| + z); x <= 0 and NaN take the negative branch
            scaled = np.where(old > 0.0, np.exp(np.log(old) + z), -np.exp(np.log(-old) + z))
            new = np.where(rule == _UNIFORM01, v,
                           np.where((rule == _LOG_SCALE_OR_FLIP) & (v < mutator_lib.SIGN_FLIP_PROB), -old, scaled))
            instr[rows, field] = np.where(field == 4, new, new.astype(np.float32))  # float32 storage (inf on overflow)
        rows = rows[self._sort_after[op]]
        if rows.size:
            a, b = instr[rows, 5], instr[rows, 6]  # std::min / std::max operand rules
            instr[rows, 5], instr[rows, 6] = np.where(b < a, b, a), np.where(a < b, b, a)

    # ----------------------------------------------------------- mutate --
    def mutate(self, rng: np.random.Generator, parents: ProgramArrays, index=None) -> ProgramArrays:
        """One child per parent, or per entry of `index` (children of
        ``take(parents, index)``, without the copy). Never modifies `parents`;
        the children's components are views into one fresh buffer."""
        codes = tuple(parents)
        index = slice(None) if index is None else np.asarray(index, dtype=np.intp)
        lengths = np.stack([code.lengths[index] for code in codes], axis=1).astype(np.intp)
        batch = lengths.shape[0]
        u = rng.random((batch, 5))
        kind = self._types[_index(u[:, 1], len(self._types))]
        if self.config.mutate_prob < 1.0:
            kind[u[:, 0] >= self.config.mutate_prob] = IDENTITY
        counts = np.bincount(kind, minlength=8).tolist()
        comp = self._mutable_ids[_index(u[:, 2], len(self._mutable_ids))]
        rows = np.arange(batch)
        size = lengths[rows, comp]
        pick = _index(u[:, 3], size)  # alter / randomize / remove position in [0, size)

        new_lengths, edited, caps = lengths, None, [code.capacity for code in codes]
        if counts[INSERT_INSTRUCTION] or counts[REMOVE_INSTRUCTION] or counts[TRADE_INSTRUCTION]:
            trade = kind == TRADE_INSTRUCTION
            insert = trade | ((kind == INSERT_INSTRUCTION) & (size < self._insert_limit[comp]))
            remove = trade | ((kind == REMOVE_INSTRUCTION) & (size > self._size_min[comp]))
            edited = np.nonzero(insert | remove)[0]
            insert_at = np.where(insert, _index(u[:, 3], size + 1), _NO_LIMIT)[edited, None]  # [0, size]
            remove_at = np.where(trade, _index(u[:, 4], size + 1), np.where(remove, pick, _NO_LIMIT))[edited, None]
            new_lengths = lengths.copy()
            new_lengths[rows, comp] += insert.astype(np.intp) - remove
            need = new_lengths.max(axis=0).tolist()
            caps = [c if n <= c else -(-n // _GROW) * _GROW for c, n in zip(caps, need, strict=True)]

        # Workspace: the three components side by side, (op, in1, in2, out, d, f0, f1, f2)
        # as float64 (addresses exact), grown where a child needs it.
        offsets, offsets_arr, col_comp, local, col_offset, col_mutable, cols = self._layout(caps)
        work = np.zeros((batch, cols.shape[0], 8))
        for i, code in enumerate(codes):
            work[:, offsets[i]:offsets[i] + code.capacity, :4] = code.ints[index]
            work[:, offsets[i]:offsets[i] + code.capacity, 4:] = code.floats[index]
        fresh = np.zeros((batch, cols.shape[0]), bool)  # slots that get a new random instruction
        if edited is not None and edited.size:  # one gather: new[j] = old[src[j]] in the edited component
            edited_comp = comp[edited]
            mine = col_comp == edited_comp[:, None]
            virtual = local + (local >= remove_at)  # index after the insert
            src = np.where(mine, np.minimum(col_offset + virtual - (virtual > insert_at), cols.shape[0] - 1), cols)
            beyond = mine & (local >= new_lengths[edited, edited_comp][:, None])  # new padding
            moved = work[edited[:, None], src]
            moved[beyond] = 0.0
            work[edited] = moved
            fresh[edited] = mine & (virtual == insert_at) & ~beyond
        if counts[RANDOMIZE_INSTRUCTION]:
            which = np.nonzero((kind == RANDOMIZE_INSTRUCTION) & (size > 0))[0]
            fresh[which, offsets_arr[comp[which]] + pick[which]] = True
        if counts[RANDOMIZE_COMPONENT_FUNCTION]:
            which = np.nonzero(kind == RANDOMIZE_COMPONENT_FUNCTION)[0]
            fresh[which] |= (col_comp == comp[which, None]) & (local < size[which, None])
        if counts[RANDOMIZE_ALGORITHM]:
            which = np.nonzero(kind == RANDOMIZE_ALGORITHM)[0]
            fresh[which] |= col_mutable & (local < lengths[which][:, col_comp])
        slot_row, slot_col = np.nonzero(fresh)
        if slot_row.size:
            work[slot_row, slot_col] = self._random_instructions(rng, col_comp[slot_col])
        if counts[ALTER_PARAM]:
            which = np.nonzero((kind == ALTER_PARAM) & (size > 0))[0]
            col = offsets_arr[comp[which]] + pick[which]
            instr = work[which, col]
            self._alter_param(rng, instr)
            work[which, col] = instr

        ints, floats, sizes = work[..., :4].astype(np.int32), work[..., 4:], new_lengths.astype(np.int32)
        return ProgramArrays(*(ComponentCode(ints[:, a:b], floats[:, a:b], sizes[:, i])
                               for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True))))
