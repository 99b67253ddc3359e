"""Batched JAX interpreter: many (program, task) lanes advance in lock step.

Memory is one array per kind with the lane axes FIRST:

    scalars  (T, P, S)      vectors (T, P, V, F)      matrices (T, P, M, F, F)

T = tasks (shared data, broadcast over programs), P = programs (sharded over
devices). Op semantics are the op table's single-lane kernels
(`azero_jax.ops`), vmapped twice over the leading lane axes. (Lanes-last was
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
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax.program import COMPONENTS

_TRANSCENDENTAL = frozenset({7, 8, 9, 10, 11, 12, 13, 14})

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


class Mem(NamedTuple):
    s: Any  # (T, P, S)
    v: Any  # (T, P, V, F)
    m: Any  # (T, P, M, F, F)


class Group(NamedTuple):
    out: str
    ops: tuple[ops_lib.Op, ...]
    gated: bool


def op_class(op: ops_lib.Op) -> str:
    """Cost class used for grouping: arith < transc < quad (F^2) < cubic, random."""
    if op.random:
        return "random"
    if op.id == 43:
        return "cubic"
    if ops_lib.MATRIX in (op.in1, op.in2, op.out):
        return "quad"
    if op.id in _TRANSCENDENTAL:
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


_ATAN_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
           -1.228866684490136173410e2, -6.485021904942025371773e1)
_ATAN_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
           4.853903996359136964868e2, 1.945506571482613964425e2)


def _atan(x):
    """Cephes `atan` in plain arithmetic. XLA's CPU atan takes a different
    code path for small arrays (measured: 1480/4096 values differ by an ulp
    between 16- and 64-element arrays), which would make results depend on
    the per-device batch size; this one is size-independent (<= 1 ulp from
    libm, like XLA's)."""
    ax = jnp.abs(x)
    big = ax > 2.414213562373095
    mid = (ax > 0.66) & ~big
    safe = jnp.where(big, ax, 1.0)
    t = jnp.where(big, -1.0 / safe, jnp.where(mid, (ax - 1.0) / (ax + 1.0), ax))
    base = jnp.where(big, np.pi / 2, jnp.where(mid, np.pi / 4, 0.0))
    z = t * t
    num = functools.reduce(lambda acc, c: acc * z + c, _ATAN_P[1:], jnp.full_like(z, _ATAN_P[0]))
    den = functools.reduce(lambda acc, c: acc * z + c, _ATAN_Q[1:], z + _ATAN_Q[0])
    r = t * (z * num / den) + t
    r = r + jnp.where(big, 6.123233995736765886130e-17, jnp.where(mid, 0.5 * 6.123233995736765886130e-17, 0.0))
    return jnp.copysign((base + r).astype(x.dtype), x)


# ------------------------------------------- float32: unrolled reductions --
# Small reductions spelled out as elementwise adds (in NumPy's order:
# 0.0 + pairwise_sum, sequential for n < 8, eight accumulators up to 128,
# halves above; non-innermost axes add slices sequentially) fuse with their
# operands' reads instead of being a separate reduce kernel: measured -25% CPU
# time per demo evaluation. float32 only: XLA:CPU contracts the resulting
# a*b + c*d into FMAs, which changes float64 rounding vs the NumPy reference
# (measured: 13 instead of 3 fitness mismatches in 10k parity programs), so
# float64 keeps XLA's reduce (no contraction across the kernel boundary).
_UNROLL_SUM_MAX = 64  # larger reductions use XLA's reduce
SHARED_READS = True  # every group reads the memory as it was before the instruction


def _plus_zero(x):
    """0.0 + x exactly (XLA simplifies a literal x + 0 away: -0.0 -> +0.0)."""
    return jnp.where(x == 0, jnp.zeros((), x.dtype), x)


def _pairwise(items):
    n = len(items)
    if n < 8:
        return functools.reduce(lambda a, b: a + b, items)
    if n > 128:
        half = n // 2
        half -= half % 8
        return _pairwise(items[:half]) + _pairwise(items[half:])
    r = list(items[:8])
    i = 8
    while i < n - (n % 8):
        r = [r[j] + items[i + j] for j in range(8)]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for k in range(i, n):
        res = res + items[k]
    return res


def _np_sum(x, axis=None):
    """`np.sum` of a single-lane value (all axes are element axes)."""
    if x.dtype != jnp.float32:
        return jnp.sum(x, axis=axis)
    if axis is None:
        if x.size > _UNROLL_SUM_MAX or x.size == 0:
            return jnp.sum(x)
        flat = x.reshape(-1)
        return _plus_zero(_pairwise([flat[i] for i in range(flat.shape[0])]))
    axis = axis % x.ndim
    if x.shape[axis] > _UNROLL_SUM_MAX or x.shape[axis] == 0:
        return jnp.sum(x, axis=axis)
    parts = [lax.index_in_dim(x, i, axis, keepdims=False) for i in range(x.shape[axis])]
    if axis == x.ndim - 1:
        return _plus_zero(_pairwise(parts))
    return _plus_zero(functools.reduce(lambda a, b: a + b, parts))


class _Namespace:
    """`jax.numpy` as seen by the op kernels, with size-independent overrides."""

    arctan = staticmethod(_atan)
    sum = staticmethod(_np_sum)

    def __getattr__(self, name):
        return getattr(jnp, name)


XP = _Namespace()


@functools.cache
def _lane_kernel(op_id: int, features: int):
    """The op's single-lane kernel vmapped over the leading (T, P) lane axes."""
    op = ops_lib.OPS[op_id]

    def single(a, b, old, d, f0, f1, f2, u1, u2):
        return op.kernel(XP, ops_lib.OpArgs(a, b, old, d, f0, f1, f2, u1, u2, features))

    return jax.vmap(jax.vmap(single))


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
        r = _lane_kernel(o.id, f)(a, b, old, *consts, u1 if o.random else None, u2 if o.random else None)
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
        src = mem if SHARED_READS else None
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


def _sigmoid(x):
    return 1.0 / (1.0 + jnp.exp(-x))


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

    def set_inputs(mem: Mem, x, label, active):
        fa, la = ops_lib.FEATURES_ADDRESS, ops_lib.LABEL_ADDRESS
        v0 = jnp.where(active[:, :, None], x[:, None, :], mem.v[:, :, fa])
        s0 = jnp.where(active, label, mem.s[:, :, la])
        return mem._replace(v=mem.v.at[:, :, fa].set(v0), s=mem.s.at[:, :, la].set(s0))

    tables = {k: gate_table(st, k, arr) for k, arr in ((1, predict_c), (2, learn_c))}

    def train_step(carry, xs):
        mem, alive, steps = carry
        x, y, step = xs  # (T, F), (T,), ()
        active = alive & (step < n_lane)
        mem = set_inputs(mem, x, jnp.zeros((), dtype), active)
        mem = run_component(st, c("predict"), predict_c, mem, active,
                            Context(task_index, seed, rng_lib.PHASE_TRAIN, step, c("predict")), tables[1])
        pa = ops_lib.PREDICTION_ADDRESS
        raw = mem.s[:, :, pa]
        s1 = jnp.where(cls, _sigmoid(raw), raw)
        mem = mem._replace(s=mem.s.at[:, :, pa].set(jnp.where(active, s1, raw)))
        error = jnp.abs(y[:, None] - s1)
        bad = jnp.isnan(error) | (error > max_abs_error)
        steps = steps + active.astype(jnp.int32)
        learn_active = active & ~bad
        alive = alive & ~(active & bad)
        mem = set_inputs(mem, x, y[:, None], learn_active)
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
        pred = mem.s[:, :, ops_lib.PREDICTION_ADDRESS]
        y = y[:, None]
        p = _sigmoid(pred)
        cls_err = jnp.where((p < 0) | (p > 1), jnp.inf,
                            jnp.where((y > 0.5) == (p > 0.5), 0.0, 1.0)).astype(dtype)
        error = jnp.where(cls, cls_err, y - pred)
        contrib = jnp.where(cls, error, error * error)
        loss = jnp.where(vstop, loss, loss + contrib)
        vstop = vstop | jnp.isnan(error) | (jnp.abs(error) > max_abs_error)
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
