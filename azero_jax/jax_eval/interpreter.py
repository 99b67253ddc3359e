"""Batched JAX interpreter: many (program, task) lanes advance in lock step.

Memory is one array per kind with the lane axes FIRST:

    scalars  (T, P, S)      vectors (T, P, V, F)      matrices (T, P, M, F, F)

T = tasks (shared data, broadcast over programs), P = programs (sharded over
devices). Op semantics are the op table's single-lane kernels
(`azero_jax.ops`), vmapped twice over the leading lane axes (`kernels.py`). (Lanes-last was
measured ~2x slower on CPU: vmap's batching rules then insert transposes.)

Dispatch: a `fori_loop` over instruction positions up to the longest *real*
component in the (per-device) batch; per position, the component's allowed
ops are split into groups by output kind and cost class (for the 65-op table
also by operand kinds). Each group reads only the operand kinds it needs
(select chains: exact, sign of zero kept), computes its ops, selects the
lane's op and writes with a one-hot mask (matrices: an in-place scatter of
one F x F element per lane). Expensive groups (anything touching a matrix,
the F^3 product, random ops; every group of the 65-op table) run under
`lax.cond` only when some lane of the batch needs them at this position (a
(positions, groups) table computed once per call, outside the example loops),
so a 65-op table costs little more than the experiment's subset.
Unrolling the position loop instead (a Python loop over the padded
positions) was measured on the demo (128 programs, float64, 2-core CPU):
XLA fused nothing across positions, 902 kernels per train step instead of
78, 0.82 M instead of 6.7 M train steps/s, 14 s compile instead of 0.9 s.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from azero_jax import fitness as fitness_lib
from azero_jax import multiclass as mc
from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax.jax_eval.kernels import lane_kernel
from azero_jax.program import COMPONENTS

_trace_count = 0


def trace_count() -> int:
    """How many times the evaluation core has been traced (retrace detector)."""
    return _trace_count


@dataclasses.dataclass(frozen=True)
class Static:
    """Everything the compiled evaluator is specialized on (hashable)."""

    scalars: int
    vectors: int
    matrices: int
    features: int
    dtype: str
    op_subsets: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    num_epochs: int
    num_train: int  # examples per epoch
    num_valid: int
    gate: str = "auto"  # "auto" | "all" | "none": which op groups run under lax.cond
    details: bool = False
    num_classes: int = 0  # C > 0: multiclass tasks (label v1, prediction v2; `azero_jax.multiclass`)


class Mem(NamedTuple):
    s: Any  # (T, P, S)
    v: Any  # (T, P, V, F)
    m: Any  # (T, P, M, F, F)


class Group(NamedTuple):
    out: str
    ops: tuple[ops_lib.Op, ...]
    gated: bool


def op_class(op: ops_lib.Op) -> str:
    """Cost class used for grouping: arith < transc (`Op.transcendental`) <
    quad (touches a matrix: F^2) < cubic (`Op.cubic`: F^3), random (`Op.random`;
    checked first, so the Gaussian samplers stay in "random")."""
    if op.random:
        return "random"
    if op.cubic:
        return "cubic"
    if ops_lib.MATRIX in (op.in1, op.in2, op.out):
        return "quad"
    if op.transcendental:
        return "transc"
    return "arith"


def make_groups(op_ids: tuple[int, ...], gate: str = "auto") -> tuple[Group, ...]:
    """Partitions a component's allowed ops by (output kind, cost class).

    "auto": small op sets (<= 16 ops, an experiment's subsets) gate the
    F^2/F^3/random groups; large ones (the 65-op table) also split each
    group by operand kinds and gate every group, so a lane pays only for
    groups that some lane uses at that position (docs/performance.md has the
    figures). "all" gates every group (when there are several); "none"
    computes every allowed op for every lane.
    """
    by_key: dict[tuple, list[ops_lib.Op]] = {}
    large = len(set(op_ids)) > 16
    split = gate == "auto" and large
    for i in sorted(set(op_ids)):
        op = ops_lib.OPS[i]
        if op.out is None:
            continue
        key = (op.out, op_class(op)) + ((str(op.in1), str(op.in2)) if split else ())
        by_key.setdefault(key, []).append(op)
    groups = []
    for (out, cls, *_), group_ops in sorted(by_key.items()):
        if gate == "none" or len(by_key) == 1:
            gated = False
        elif gate == "all" or split:
            gated = True
        else:
            gated = cls in ("quad", "cubic", "random")
        groups.append(Group(out, tuple(group_ops), gated))
    return tuple(groups)


def _lanes(x, ndim):
    """(P,) per-program values -> (1, P, 1, ...) broadcastable to rank `ndim`."""
    return x.reshape((1,) + x.shape + (1,) * (ndim - 2))


def _read(bank, address):
    """bank[:, :, address] per program lane with a select chain (exact; keeps -0.0)."""
    size = bank.shape[2]
    out = bank[:, :, 0]
    for k in range(1, size):
        out = jnp.where(_lanes(address == k, out.ndim), bank[:, :, k], out)
    return out


# Output kinds written with an in-place scatter of one element per lane instead of
# a masked select over the whole bank: for the matrix bank (F x F per address)
# the select pass plus the copy XLA then inserts cost more (baseline, F = 16:
# -26 % time); vectors and scalars are faster with the select (demo: +27 %).
SCATTER_KINDS: frozenset[str] = frozenset({ops_lib.MATRIX})


def _write_scatter(bank, address, value, mask):
    """Like `_write`, as an in-place scatter of one element per lane."""
    old = _read(bank, address)
    new = jnp.where(mask.reshape(mask.shape + (1,) * (value.ndim - 2)), value, old)
    t, p = bank.shape[:2]
    ti = jnp.arange(t)[:, None]
    pi = jnp.arange(p)[None, :]
    return bank.at[ti, pi, address[None, :]].set(new, unique_indices=True, indices_are_sorted=True)


def _write(bank, address, value, mask):
    """bank[:, :, address] = value on lanes where mask (T, P) holds."""
    size = bank.shape[2]
    hit = jnp.arange(size, dtype=address.dtype)[None, :] == address[:, None]  # (P, size)
    hit = hit[None] & mask[:, :, None]  # (T, P, size)
    hit = hit.reshape(hit.shape + (1,) * (bank.ndim - 3))
    return jnp.where(hit, value[:, :, None], bank)


def _bank(mem: Mem, kind: str):
    return {ops_lib.SCALAR: mem.s, ops_lib.VECTOR: mem.v, ops_lib.MATRIX: mem.m}[kind]


def _with_bank(mem: Mem, kind: str, bank) -> Mem:
    return mem._replace(**{kind: bank})


class Context(NamedTuple):
    """Per-execution values shared by every instruction of one component run."""

    task_index: Any  # (T,) uint32
    seed: Any  # (P,) uint32, one per program lane
    phase: int
    example: Any  # () int32
    component: int


def _apply_group(st: Static, group: Group, ints, floats, mem: Mem, active, ctx: Context, position,
                 src: Mem | None = None) -> Mem:
    """Runs `group` for its lanes: operands are read from `src` (the memory
    before this instruction; every lane runs exactly one op, so reading it
    instead of `mem` changes nothing but lets the groups' kernels run
    independently), the output is written into `mem`."""
    src = mem if src is None else src
    op = ints[0]
    in_group = functools.reduce(jnp.logical_or, [op == o.id for o in group.ops])
    lane_shape = active.shape  # (T, P)
    f = st.features
    dtype = mem.s.dtype
    reads1 = {k: _read(_bank(src, k), ints[1]) for k in {o.in1 for o in group.ops} if k is not None}
    reads2 = {k: _read(_bank(src, k), ints[2]) for k in {o.in2 for o in group.ops} if k is not None}
    out_bank = _bank(mem, group.out)
    out_shape = out_bank.shape[:2] + out_bank.shape[3:]
    if any(o.reads_out for o in group.ops):
        old = _read(_bank(src, group.out), ints[3])
    else:
        old = jnp.zeros(out_shape, dtype)  # only its dtype/shape is read; DCE'd
    consts = [jnp.broadcast_to(floats[j][None, :], lane_shape) for j in range(4)]  # (T, P)
    u1 = u2 = None
    if any(o.random for o in group.ops):
        key = rng_lib.instruction_key(jnp, ctx.seed[None, :], ctx.task_index[:, None], ctx.phase, ctx.example,
                                      ctx.component, position)  # (T, P)
        elem_shape = out_shape[2:]

        def draws(stream):
            one = functools.partial(rng_lib.uniforms, jnp, shape=elem_shape, dtype=dtype, stream=stream)
            return jax.vmap(jax.vmap(one))(key)  # (T, P, *e)

        u1, u2 = draws(0), draws(1)
    value = None
    for o in group.ops:
        a = reads1.get(o.in1) if o.in1 else None
        b = reads2.get(o.in2) if o.in2 else None
        r = lane_kernel(o.id, f)(a, b, old, *consts, u1 if o.random else None, u2 if o.random else None)
        r = r.astype(dtype)
        if value is None:
            value = r
        else:
            value = jnp.where(_lanes(op == o.id, r.ndim), r, value)
    write = _write_scatter if group.out in SCATTER_KINDS else _write
    mask = active & in_group[None, :]
    return _with_bank(mem, group.out, write(out_bank, ints[3], value, mask))


def gate_table(st: Static, comp: int, arrays):
    """(L, G) bool: does any lane's instruction at position i use gated group g.
    Computed once per call (outside the example loops) and indexed per step."""
    ints_all = arrays[0]
    gated = [g for g in make_groups(st.op_subsets[comp], st.gate) if g.gated]
    if not gated:
        return None
    op = ints_all[:, 0, :]  # (L, P)
    return jnp.stack([jnp.any(functools.reduce(jnp.logical_or, [op == o.id for o in g.ops]), axis=-1)
                      for g in gated], axis=1)


def run_component(st: Static, comp: int, arrays, mem: Mem, active, ctx: Context, needed=None) -> Mem:
    """Executes component `comp` (0 setup, 1 predict, 2 learn) on every lane;
    lanes where `active` is False are left untouched. `needed`: the component's
    `gate_table` (else computed here)."""
    ints_all, floats_all, n = arrays
    groups = make_groups(st.op_subsets[comp], st.gate)
    if not groups:
        return mem
    if needed is None and any(g.gated for g in groups):
        needed = gate_table(st, comp, arrays)
    dtype = mem.s.dtype

    def body(i, mem):
        ints = lax.dynamic_index_in_dim(ints_all, i, 0, keepdims=False)  # (4, P)
        floats = lax.dynamic_index_in_dim(floats_all, i, 0, keepdims=False).astype(dtype)
        row = None if needed is None else lax.dynamic_index_in_dim(needed, i, 0, keepdims=False)  # (G,)
        gi = 0
        src = mem  # every group reads the memory as it was before the instruction
        for group in groups:
            apply = functools.partial(_apply_group, st, group, ints, floats, active=active, ctx=ctx, position=i,
                                      src=src)
            if group.gated:
                mem = lax.cond(row[gi], apply, lambda m: m, mem)
                gi += 1
            else:
                mem = apply(mem)
        return mem

    return lax.fori_loop(0, n, body, mem)


def evaluate_core(st: Static, setup, predict, learn, x_steps, y_steps, x_valid, y_valid, task_index,
                  classification, n_lane, seed, max_abs_error):
    """The traced evaluation of one (local) batch. Shapes:

      setup/predict/learn: (ints (L, 4, P), floats (L, 4, P), lengths (P,))
      x_steps (E, N, T, F), y_steps (E, N, T): train examples in epoch order
      x_valid (NV, T, F), y_valid (NV, T); task_index (T,) uint32; seed (P,) uint32;
      classification (T,) bool; n_lane (T, P) int32 train examples per lane.

    Returns a dict of per-lane arrays (lane axes (T, P) last).
    """
    global _trace_count
    _trace_count += 1
    dtype = jnp.dtype(st.dtype)
    num_tasks = x_valid.shape[1]
    num_programs = n_lane.shape[-1]
    lanes = (num_tasks, num_programs)
    f = st.features
    comps = []
    for arrays in (setup, predict, learn):
        ints, floats, lengths = arrays
        comps.append((ints, floats, jnp.max(lengths)))
    setup_c, predict_c, learn_c = comps
    x_steps = x_steps.astype(dtype)
    y_steps = y_steps.astype(dtype)
    x_valid = x_valid.astype(dtype)
    y_valid = y_valid.astype(dtype)
    max_abs_error = jnp.asarray(max_abs_error, dtype)
    cls = classification[:, None]  # (T, 1)

    mem = Mem(
        s=jnp.zeros(lanes + (st.scalars,), dtype),
        v=jnp.zeros(lanes + (st.vectors, f), dtype),
        m=jnp.zeros(lanes + (st.matrices, f, f), dtype),
    )
    all_lanes = jnp.ones(lanes, bool)
    c = COMPONENTS.index
    mem = run_component(st, c("setup"), setup_c, mem,
                        all_lanes, Context(task_index, seed, rng_lib.PHASE_SETUP, jnp.int32(0), c("setup")))

    num_classes = st.num_classes
    pva = mc.PREDICTION_VECTOR_ADDRESS

    def set_inputs(mem: Mem, x, label, active):
        """v0 = x and the label (s0 = label (T, 1); multiclass: v1 = label (T, 1, F)) on active lanes."""
        fa, la = ops_lib.FEATURES_ADDRESS, ops_lib.LABEL_ADDRESS
        v0 = jnp.where(active[:, :, None], x[:, None, :], mem.v[:, :, fa])
        if num_classes:
            lva = mc.LABEL_VECTOR_ADDRESS
            v = mem.v.at[:, :, fa].set(v0)
            return mem._replace(v=v.at[:, :, lva].set(jnp.where(active[:, :, None], label, v[:, :, lva])))
        s0 = jnp.where(active, label, mem.s[:, :, la])
        return mem._replace(v=mem.v.at[:, :, fa].set(v0), s=mem.s.at[:, :, la].set(s0))

    def train_rule(mem: Mem, y, active):
        """Memory with the prediction Learn sees written back on active lanes, error and stop flag."""
        if num_classes:
            logits = mem.v[:, :, pva]
            probs, error, bad = mc.train_rule(jnp, y[:, None], logits, num_classes, max_abs_error)
            return mem._replace(v=mem.v.at[:, :, pva].set(jnp.where(active[:, :, None], probs, logits))), error, bad
        pa = ops_lib.PREDICTION_ADDRESS
        raw = mem.s[:, :, pa]
        s1 = fitness_lib.train_prediction(jnp, raw, cls)
        mem = mem._replace(s=mem.s.at[:, :, pa].set(jnp.where(active, s1, raw)))
        error, bad = fitness_lib.train_error(jnp, y[:, None], s1, max_abs_error)
        return mem, error, bad

    def learn_label(y):
        return mc.one_hot(jnp, y, f, dtype)[:, None, :] if num_classes else y[:, None]

    tables = {k: gate_table(st, k, arr) for k, arr in ((1, predict_c), (2, learn_c))}

    def train_step(carry, xs):
        mem, alive, steps = carry
        x, y, step = xs  # (T, F), (T,), ()
        active = alive & (step < n_lane)
        mem = set_inputs(mem, x, jnp.zeros((), dtype), active)
        mem = run_component(st, c("predict"), predict_c, mem, active,
                            Context(task_index, seed, rng_lib.PHASE_TRAIN, step, c("predict")), tables[1])
        mem, error, bad = train_rule(mem, y, active)
        steps = steps + active.astype(jnp.int32)
        learn_active = active & ~bad
        alive = alive & ~(active & bad)
        mem = set_inputs(mem, x, learn_label(y), learn_active)
        mem = run_component(st, c("learn"), learn_c, mem, learn_active,
                            Context(task_index, seed, rng_lib.PHASE_TRAIN, step, c("learn")), tables[2])
        return (mem, alive, steps), (error if st.details else None)

    def valid_step(carry, xs, validated, epoch):
        mem, loss, vstop = carry
        x, y, i = xs
        mem = set_inputs(mem, x, jnp.zeros((), dtype), validated)
        mem = run_component(st, c("predict"), predict_c, mem, validated,
                            Context(task_index, seed, rng_lib.PHASE_VALID, epoch * st.num_valid + i, c("predict")),
                            tables[1])
        if num_classes:
            pred, error, stop = mc.valid_rule(jnp, y[:, None], mem.v[:, :, pva], num_classes, max_abs_error)
            loss = jnp.where(vstop, loss, loss + fitness_lib.loss_term(jnp, error.astype(dtype), True))
        else:
            pred = mem.s[:, :, ops_lib.PREDICTION_ADDRESS]
            error, stop = fitness_lib.valid_error(jnp, y[:, None], pred, cls, max_abs_error)
            loss = jnp.where(vstop, loss, loss + fitness_lib.loss_term(jnp, error, cls))
        vstop = vstop | stop
        return (mem, loss, vstop), (pred if st.details else None)

    def epoch_step(carry, xs):
        mem, alive, steps = carry
        x_e, y_e, epoch = xs
        step_ids = epoch * st.num_train + jnp.arange(st.num_train, dtype=jnp.int32)
        (mem, alive, steps), train_err = lax.scan(train_step, (mem, alive, steps), (x_e, y_e, step_ids))
        validated = alive & (epoch * st.num_train < n_lane)
        vinit = (mem, jnp.zeros(lanes, dtype), jnp.zeros(lanes, bool))
        (mem, loss, vstop), preds = lax.scan(
            functools.partial(valid_step, validated=validated, epoch=epoch), vinit,
            (x_valid, y_valid, jnp.arange(st.num_valid, dtype=jnp.int32)))
        out = dict(loss=loss, vstop=vstop, validated=validated)
        if st.details:
            out.update(train_errors=train_err, valid_predictions=preds)
        return (mem, alive, steps), out

    init = (mem, all_lanes, jnp.zeros(lanes, jnp.int32))
    (mem, alive, steps), per_epoch = lax.scan(epoch_step, init,
                                              (x_steps, y_steps, jnp.arange(st.num_epochs, dtype=jnp.int32)))
    return dict(per_epoch, steps=steps, stopped=~alive)


def _shard_map(fn, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map  # older JAX

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


@functools.lru_cache(maxsize=64)
def build_evaluator(st: Static, devices: tuple[Any, ...]):
    """A jitted evaluator for `st`, sharding the program axis over `devices`."""
    core = functools.partial(evaluate_core, st)
    if len(devices) > 1:
        from jax.sharding import Mesh
        from jax.sharding import PartitionSpec as P

        mesh = Mesh(np.array(devices), ("p",))
        prog = (P(None, None, "p"), P(None, None, "p"), P("p"))
        rep = P()
        in_specs = (prog, prog, prog, rep, rep, rep, rep, rep, rep, P(None, "p"), P("p"), rep)
        lane = P(None, "p")  # (T, P)
        epoch_lane = P(None, None, "p")  # (E, T, P)
        out_specs = dict(loss=epoch_lane, vstop=epoch_lane, validated=epoch_lane, steps=lane, stopped=lane)
        if st.details:
            out_specs.update(train_errors=P(None, None, None, "p"), valid_predictions=P(None, None, None, "p"))
        core = _shard_map(core, mesh, in_specs, out_specs)
    return jax.jit(core)
