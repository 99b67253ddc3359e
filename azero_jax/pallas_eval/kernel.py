"""The Pallas evaluation kernel: one `pallas_call` per batch, one program (on
all its tasks, or on a block of them past Triton's tensor cap:
`KernelConfig.task_block`) per kernel instance (see the package docstring
for the mapping and its reasons).

Host side (NumPy): `prepare` packs a `CompiledBatch` and a `TaskArrays` into
the kernel's arrays (op ids remapped to `lax.switch` branch indices per
component, programs major, tasks padded to a power of two). Device side:
`build_call` returns the jitted `pallas_call` for a `KernelConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax.jax_eval.compile import CompiledBatch
from azero_jax.jax_eval.kernels import XP
from azero_jax.pallas_eval.example_rules import ExampleRules
from azero_jax.program import COMPONENTS

_trace_count = 0


def trace_count() -> int:
    """How many times the kernel body has been traced (retrace detector)."""
    return _trace_count


def pow2(n: int) -> int:
    """Next power of two >= max(n, 1) (Triton wants power-of-two tensor shapes)."""
    b = 1
    while b < n:
        b *= 2
    return b


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Everything the kernel is specialized on (hashable)."""

    scalars: int
    vectors: int
    matrices: int
    features: int
    dtype: str
    op_subsets: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # per component, NO_OP first
    num_epochs: int
    num_train: int  # examples per epoch
    num_valid: int
    num_tasks: int  # padded (power of two)
    lengths: tuple[int, int, int]  # length buckets of the packed components
    batch: int
    max_abs_error: float
    details: bool = False  # also write per-step train errors and validation predictions
    interpret: bool = True
    backend: str | None = None  # "triton": Triton compiler params (the CUDA lowering); None = Pallas's default
    num_warps: int | None = None
    max_task_block: int | None = None  # cap on tasks per instance (rounded down to a power of two); None: no cap
    num_classes: int = 0  # C > 0: multiclass tasks (label v1, logits v2: `pallas_eval.example_rules`)

    @property
    def epochs_padded(self) -> int:
        return pow2(self.num_epochs)

    @property
    def task_block(self) -> int:
        """Tasks per kernel instance (a power of two dividing `num_tasks`):
        all of them (one instance per program) when every tensor the
        instance holds fits Triton's cap, else halved until it does, down
        to 1 (then `pallas_eval.triton_problem` refuses it off interpret
        mode). The same rule in interpret mode, so it runs the CUDA layout."""
        return task_block(self)


TRITON_MAX_TENSOR_NUMEL = 2**20  # triton.language's cap on one tensor's elements (its frontend checks it;
# Pallas emits Triton IR directly and does not, so the lowering itself accepts larger tensors)


def _pow2_floor(n: int) -> int:
    b = 1
    while b * 2 <= n:
        b *= 2
    return b


def triton_tensors(cfg: KernelConfig, block: int) -> list[tuple[int, str]]:
    """(elements, what) of the values one instance of `block` tasks holds
    as single Triton tensors, from the shapes: the zero-initialised banks
    and detail outputs, one op's (block, F, F) matrix value, (block, F, F,
    F) for a cubic op (the matrix-matrix product)."""
    tb, f = block, cfg.features
    task = "task" if tb == 1 else "tasks"
    m = pow2(max(cfg.matrices, 1))
    sizes = [(pow2(cfg.scalars) * tb, "the scalar bank"), (pow2(cfg.vectors) * tb * f, "the vector bank"),
             (m * tb * f * f, f"the matrix bank ({m} x {tb} {task} x {f} x {f})")]
    ops = {o for subset in cfg.op_subsets for o in subset}
    if cfg.matrices and any(ops_lib.MATRIX in (op.in1, op.in2, op.out) for op in (ops_lib.OPS[o] for o in ops)):
        sizes.append((tb * f * f, f"a matrix op's value ({tb} {task} x {f} x {f})"))
    if cfg.matrices and any(ops_lib.OPS[o].cubic for o in ops):
        sizes.append((tb * f ** 3, f"the matrix product's ({tb} {task} x {f} x {f} x {f})"))
    if cfg.details:
        sizes += [(pow2(cfg.num_epochs * cfg.num_train) * tb, "the per-step train errors"),
                  (cfg.epochs_padded * pow2(cfg.num_valid) * tb, "the validation predictions")]
    return sizes


def task_block(cfg: KernelConfig) -> int:
    """See `KernelConfig.task_block`."""
    b = cfg.num_tasks if cfg.max_task_block is None else min(cfg.num_tasks, _pow2_floor(max(cfg.max_task_block, 1)))
    while b > 1 and max(triton_tensors(cfg, b))[0] > TRITON_MAX_TENSOR_NUMEL:
        b //= 2
    return b


class KernelArgs(NamedTuple):
    """The kernel's inputs (NumPy arrays; B = padded batch, Tp = padded tasks)."""

    ints: tuple[np.ndarray, np.ndarray, np.ndarray]  # (B, L_c, 4) int32: branch, in1, in2, out
    floats: tuple[np.ndarray, np.ndarray, np.ndarray]  # (B, L_c, 4) dtype: d, f0, f1, f2
    meta: np.ndarray  # (B, 4) int32: true lengths of setup, predict, learn; 0
    seed: np.ndarray  # (B, 1) uint32
    n_lane: np.ndarray  # (B, Tp) int32 train examples per (program, task)
    x_steps: np.ndarray  # (E, N, Tp, F)
    y_steps: np.ndarray  # (E, N, Tp)
    x_valid: np.ndarray  # (NV, Tp, F)
    y_valid: np.ndarray  # (NV, Tp)
    task_index: np.ndarray  # (Tp,) uint32
    classification: np.ndarray  # (Tp,) int32
    valid_count: np.ndarray  # (Tp,) int32 validation examples per task (< NV only in ragged groups)


def branch_tables(op_subsets) -> tuple[np.ndarray, ...]:
    """Per component, op id -> branch index (-1: not compiled in)."""
    tables = []
    for subset in op_subsets:
        table = np.full(ops_lib.NUM_OPS, -1, dtype=np.int32)
        table[list(subset)] = np.arange(len(subset), dtype=np.int32)
        tables.append(table)
    return tuple(tables)


def normalize_subsets(op_subsets: dict[str, Any] | None) -> tuple[tuple[int, ...], ...]:
    """Per component, sorted op ids with NO_OP (id 0) first: branch 0 does nothing."""
    out = []
    for c in COMPONENTS:
        ids = ops_lib.ALL_OPS if op_subsets is None else (int(o) for o in op_subsets[c])
        out.append(tuple(sorted(set(ids) | {ops_lib.NO_OP_ID})))
    return tuple(out)


def _pad_tasks(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, size - a.shape[axis])
    return np.pad(a, pad)


def prepare(batch: CompiledBatch, arrays, n_lane: np.ndarray, seeds: np.ndarray, subsets, dtype: str) -> KernelArgs:
    """The kernel's arrays (see `KernelArgs`). `n_lane` (T, B) and `seeds`
    (B,) as `jax_eval._batch._lane_train_counts` / `_lane_seeds` give them."""
    tables = branch_tables(subsets)
    ints, floats = [], []
    for c, table in zip(COMPONENTS, tables, strict=True):
        comp = getattr(batch, c)
        i = np.ascontiguousarray(np.transpose(comp.ints, (2, 0, 1)))  # (B, L, 4)
        i[..., 0] = table[i[..., 0]]  # compile_programs has checked every op is in the subset
        ints.append(i)
        floats.append(np.ascontiguousarray(np.transpose(comp.floats, (2, 0, 1))).astype(dtype))
    meta = np.zeros((batch.batch, 4), np.int32)
    for k, c in enumerate(COMPONENTS):
        meta[:, k] = getattr(batch, c).lengths
    t = n_lane.shape[0]
    tp = pow2(t)
    return KernelArgs(
        ints=tuple(ints), floats=tuple(floats), meta=meta,
        seed=np.asarray(seeds, np.uint32).reshape(-1, 1),
        n_lane=_pad_tasks(np.ascontiguousarray(n_lane.T).astype(np.int32), 1, tp),
        x_steps=_pad_tasks(arrays.x_steps.astype(dtype), 2, tp),
        y_steps=_pad_tasks(arrays.y_steps.astype(dtype), 2, tp),
        x_valid=_pad_tasks(arrays.x_valid.astype(dtype), 1, tp),
        y_valid=_pad_tasks(arrays.y_valid.astype(dtype), 1, tp),
        task_index=_pad_tasks(arrays.task_index, 0, tp),
        classification=_pad_tasks(arrays.classification.astype(np.int32), 0, tp),
        valid_count=_pad_tasks(valid_counts(arrays), 0, tp),
    )


def valid_counts(arrays) -> np.ndarray:
    """(T,) int32 validation examples per task: `arrays.valid_counts` for a
    ragged group (`pallas_eval.RaggedTaskArrays`), else num_valid for all."""
    counts = getattr(arrays, "valid_counts", None)
    if counts is None:
        return np.full(len(arrays.tasks), arrays.num_valid, np.int32)
    return np.asarray(counts, np.int32)


# ------------------------------------------------------------------ kernel --


def _no_contract(x):
    """`x` unchanged (a NaN stays a NaN), but a select between a product and
    the sum it feeds, so the compiler cannot contract `a * b + acc` into an
    FMA. Measured on XLA:CPU (interpret mode): the fused `sum(a * b)` of
    VECTOR_INNER_PRODUCT contracts, and with products +inf and -inf the FMA
    adds the exact (unrounded) second product to inf and returns +-inf where
    NumPy, the reference and the C++ give NaN (C++ case_0211: prediction inf
    instead of NaN, fitness 0.276 instead of 0.310). `optimization_barrier`
    and a no-op `reduce_precision` are simplified away; this select is not."""
    return jnp.where(jnp.isnan(x), jnp.asarray(jnp.nan, x.dtype), x)


class _InterpretNamespace:
    """`kernels.XP` (the xla backend's ops) with FMA-proof sums (`_no_contract`)."""

    def __getattr__(self, name):
        return getattr(XP, name)

    @staticmethod
    def sum(x, axis=None):
        return XP.sum(_no_contract(x), axis=axis)


class _TritonNamespace:
    """`jax.numpy` with the XLA interpreter's size-independent `arctan`, but
    XLA-reduce sums: `kernels.XP`'s float32 sums are unrolled into element
    slices, and Pallas's Triton lowering has no `slice` rule (its reductions
    are native). float32 sums may so round differently from the xla backend.
    Sums are FMA-proof as in interpret mode (`_no_contract`; Triton contracts
    by default too)."""

    arctan = staticmethod(XP.arctan)

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def sum(x, axis=None):
        return jnp.sum(_no_contract(x), axis=axis)


_INTERPRET_XP = _InterpretNamespace()
_TRITON_XP = _TritonNamespace()


def _op_value(op: ops_lib.Op, features: int, a, b, old, consts, u1, u2, xp):
    """The op table's single-lane kernel, vmapped over the task axis (axis 0
    of a, b, old, u1, u2; the constants are the instruction's, shared)."""
    d, f0, f1, f2 = consts

    def single(a, b, old, u1, u2):
        return op.kernel(xp, ops_lib.OpArgs(a, b, old, d, f0, f1, f2, u1, u2, features))

    return jax.vmap(single)(a, b, old, u1, u2).astype(old.dtype)


class _Refs(NamedTuple):  # one instance's blocks; Tb = its tasks (`KernelConfig.task_block`)
    s: Any  # (S, Tb)
    v: Any  # (V, Tb, F)
    m: Any  # (M, Tb, F, F)

    def bank(self, kind: str):
        return {ops_lib.SCALAR: self.s, ops_lib.VECTOR: self.v, ops_lib.MATRIX: self.m}[kind]


def _make_branch(cfg: KernelConfig, op: ops_lib.Op, mem: _Refs, comp: int):
    """One `lax.switch` branch: op `op` on every task of the instance,
    operands read at the instruction's (dynamic) addresses, output written
    (masked by `active`) at its out address."""
    dtype = jnp.dtype(cfg.dtype)

    def branch(args):
        a1, a2, out, consts, active, ctx = args
        if op.out is None:
            return
        a = mem.bank(op.in1)[a1] if op.in1 else None
        b = mem.bank(op.in2)[a2] if op.in2 else None
        bank = mem.bank(op.out)
        old = bank[out]
        u1 = u2 = None
        if op.random:
            seed, task_index, phase, example, position = ctx
            key = rng_lib.instruction_key(jnp, seed, task_index, phase, example, comp, position)  # (Tb,)

            def draws(stream):
                one = functools.partial(rng_lib.uniforms, jnp, shape=old.shape[1:], dtype=dtype, stream=stream)
                return jax.vmap(one)(key)

            u1, u2 = draws(0), draws(1)
        xp = _TRITON_XP if cfg.backend == "triton" else _INTERPRET_XP
        value = _op_value(op, cfg.features, a, b, old, consts, u1, u2, xp)
        mask = active.reshape(active.shape + (1,) * (old.ndim - 1))
        bank[out] = jnp.where(mask, value, old)

    return branch


def _run_component(cfg: KernelConfig, comp: int, ints_ref, floats_ref, length, mem: _Refs, active, seed, task_index,
                   phase: int, example):
    """Executes component `comp` of this instance's program on the tasks
    where `active` (Tb,) holds; skipped when no task is active."""
    branches = [_make_branch(cfg, ops_lib.OPS[o], mem, comp) for o in cfg.op_subsets[comp]]
    dtype = jnp.dtype(cfg.dtype)

    def body(i, carry):
        op = ints_ref[i, 0]
        consts = tuple(floats_ref[i, j].astype(dtype) for j in range(4))
        ctx = (seed, task_index, phase, example, i)
        lax.switch(op, branches, (ints_ref[i, 1], ints_ref[i, 2], ints_ref[i, 3], consts, active, ctx))
        return carry

    def run():
        lax.fori_loop(0, length, body, 0)

    if len(branches) > 1:
        lax.cond(jnp.max(active.astype(jnp.int32)) > 0, run, lambda: None)  # reduce_or: no Triton rule


def _kernel(cfg: KernelConfig, *refs):
    global _trace_count
    _trace_count += 1
    (i_setup, i_predict, i_learn, f_setup, f_predict, f_learn, meta_ref, seed_ref, n_lane_ref, x_steps_ref,
     y_steps_ref, x_valid_ref, y_valid_ref, task_index_ref, cls_ref, n_valid_ref, s_ref, v_ref, m_ref, loss_ref, validated_ref,
     vstop_ref, steps_ref, stopped_ref, *detail_refs) = refs
    dtype = jnp.dtype(cfg.dtype)
    mem = _Refs(s_ref, v_ref, m_ref)
    s_ref[...] = jnp.zeros(s_ref.shape, dtype)
    v_ref[...] = jnp.zeros(v_ref.shape, dtype)
    m_ref[...] = jnp.zeros(m_ref.shape, dtype)
    loss_ref[...] = jnp.zeros(loss_ref.shape, dtype)
    validated_ref[...] = jnp.zeros(validated_ref.shape, jnp.int32)
    vstop_ref[...] = jnp.zeros(vstop_ref.shape, jnp.int32)
    for r in detail_refs:
        r[...] = jnp.zeros(r.shape, r.dtype)
    seed = seed_ref[0]
    task_index = task_index_ref[...]
    cls = cls_ref[...] != 0
    n_lane = n_lane_ref[...]
    n_valid_lane = n_valid_ref[...]
    max_abs_error = jnp.asarray(cfg.max_abs_error, dtype)
    tp, n_train, n_valid = cfg.task_block, cfg.num_train, cfg.num_valid  # this instance's tasks
    comps = ((i_setup, f_setup, meta_ref[0]), (i_predict, f_predict, meta_ref[1]), (i_learn, f_learn, meta_ref[2]))

    def run(comp, active, phase, example):
        ints_ref, floats_ref, length = comps[comp]
        _run_component(cfg, comp, ints_ref, floats_ref, length, mem, active, seed, task_index, phase, example)

    rules = ExampleRules(cfg, s_ref, v_ref, cls, max_abs_error)  # binary / multiclass per-example rules
    run(0, jnp.ones((tp,), bool), rng_lib.PHASE_SETUP, jnp.int32(0))
    zero = jnp.zeros((tp,), dtype)

    def epoch_body(epoch, carry):
        def train_body(n, carry):
            alive, steps = carry
            step = epoch * n_train + n
            active = alive & (step < n_lane)
            x = x_steps_ref[epoch, n]  # (Tb, F)
            y = y_steps_ref[epoch, n]  # (Tb,)
            rules.set_inputs(x, rules.hidden, active)
            run(1, active, rng_lib.PHASE_TRAIN, step)
            error, bad = rules.train(y, active)
            steps = steps + active.astype(jnp.int32)
            learn_active = active & ~bad
            alive = alive & ~(active & bad)
            rules.set_inputs(x, rules.learn_label(y), learn_active)
            run(2, learn_active, rng_lib.PHASE_TRAIN, step)
            if cfg.details:
                detail_refs[0][step] = error.astype(dtype)
            return alive, steps

        alive, steps = lax.fori_loop(0, n_train, train_body, carry)
        validated = alive & (epoch * n_train < n_lane)

        def valid_body(i, carry):
            loss, vstop = carry
            here = validated & (i < n_valid_lane)  # a ragged group's shorter validation sets end early
            rules.set_inputs(x_valid_ref[i], rules.hidden, here)
            run(1, here, rng_lib.PHASE_VALID, epoch * n_valid + i)
            pred, _, term, stop = rules.valid(y_valid_ref[i])
            loss = jnp.where(vstop | ~here, loss, loss + term)
            if cfg.details:
                detail_refs[1][epoch, i] = pred
            return loss, vstop | (stop & here)

        loss, vstop = lax.fori_loop(0, n_valid, valid_body, (zero, jnp.zeros((tp,), bool)))
        loss_ref[epoch] = loss
        vstop_ref[epoch] = vstop.astype(jnp.int32)
        validated_ref[epoch] = validated.astype(jnp.int32)
        return alive, steps

    alive, steps = lax.fori_loop(0, cfg.num_epochs, epoch_body,
                                 (jnp.ones((tp,), bool), jnp.zeros((tp,), jnp.int32)))
    steps_ref[...] = steps
    stopped_ref[...] = (~alive).astype(jnp.int32)


def _spec(shape: tuple[int, ...], task_axis: int | None, block: int, per_program: bool):
    """The BlockSpec of one argument / output of per-instance `shape` (the
    batch axis, if `per_program`, not included): row p of the batch axis
    (squeezed) for instance p, and along `task_axis` the instance's block of
    `block` tasks (task block j of the grid's second axis, when there is one;
    none: all tasks, one block); every other axis whole (shared data)."""
    block_shape = tuple(block if a == task_axis else d for a, d in enumerate(shape))

    def index(p, *j):
        idx = tuple((j[0] if j else 0) if a == task_axis else 0 for a in range(len(shape)))
        return (p,) + idx if per_program else idx

    return pl.BlockSpec(((None,) + block_shape) if per_program else block_shape, index)


# Task axis of each input (`KernelArgs` order, flattened; per program without the batch axis) and output.
_INPUT_TASK_AXES = (None,) * 8 + (0, 2, 2, 1, 1, 0, 0, 0)
_OUTPUT_TASK_AXES = (1, 1, 1, 1, 1, 1, 0, 0, 1, 2)


def input_shapes(cfg: KernelConfig) -> list[jax.ShapeDtypeStruct]:
    """Shapes and dtypes of the call's arguments, in `KernelArgs` order (flattened)."""
    b, tp, f, dt = cfg.batch, cfg.num_tasks, cfg.features, jnp.dtype(cfg.dtype)
    e, n, nv = cfg.num_epochs, cfg.num_train, cfg.num_valid
    sd = jax.ShapeDtypeStruct
    return ([sd((b, n_len, 4), jnp.int32) for n_len in cfg.lengths] + [sd((b, n_len, 4), dt) for n_len in cfg.lengths]
            + [sd((b, 4), jnp.int32), sd((b, 1), jnp.uint32), sd((b, tp), jnp.int32), sd((e, n, tp, f), dt),
               sd((e, n, tp), dt), sd((nv, tp, f), dt), sd((nv, tp), dt), sd((tp,), jnp.uint32), sd((tp,), jnp.int32),
               sd((tp,), jnp.int32)])


def _output_shapes(cfg: KernelConfig) -> list[tuple[tuple[int, ...], Any]]:
    tp, f, dt = cfg.num_tasks, cfg.features, jnp.dtype(cfg.dtype)
    ep = cfg.epochs_padded
    out = [((pow2(cfg.scalars), tp), dt), ((pow2(cfg.vectors), tp, f), dt), ((pow2(max(cfg.matrices, 1)), tp, f, f), dt),
           ((ep, tp), dt), ((ep, tp), jnp.int32), ((ep, tp), jnp.int32), ((tp,), jnp.int32), ((tp,), jnp.int32)]
    if cfg.details:
        out += [((pow2(cfg.num_epochs * cfg.num_train), tp), dt), ((ep, pow2(cfg.num_valid), tp), dt)]
    return out


OUTPUT_NAMES = ("s", "v", "m", "loss", "validated", "vstop", "steps", "stopped", "train_errors", "valid_predictions")


def make_call(cfg: KernelConfig):
    """The un-jitted `pallas_call` for `cfg`: arguments in `KernelArgs` order
    (flattened), outputs named by `OUTPUT_NAMES` (per program: memory banks,
    then per-epoch loss / flags, train steps, stop flags, [details])."""
    shapes = input_shapes(cfg)
    tb = cfg.task_block
    # One instance per program (today's layout) when all tasks fit, else (programs, task blocks).
    grid = (cfg.batch,) if tb == cfg.num_tasks else (cfg.batch, cfg.num_tasks // tb)
    in_specs = ([_spec(s.shape[1:], ax, tb, True) for s, ax in zip(shapes[:9], _INPUT_TASK_AXES, strict=False)]
                + [_spec(s.shape, ax, tb, False) for s, ax in zip(shapes[9:], _INPUT_TASK_AXES[9:], strict=True)])
    outs = _output_shapes(cfg)
    out_shape = [jax.ShapeDtypeStruct((cfg.batch,) + shape, dt) for shape, dt in outs]
    out_specs = [_spec(shape, ax, tb, True) for (shape, _), ax in zip(outs, _OUTPUT_TASK_AXES, strict=False)]
    kwargs: dict[str, Any] = {}
    if cfg.backend == "triton":
        from jax.experimental.pallas import triton as pl_triton

        kwargs["compiler_params"] = pl_triton.CompilerParams(num_warps=cfg.num_warps or 4, num_stages=1)
    return pl.pallas_call(functools.partial(_kernel, cfg), grid=grid, in_specs=in_specs,
                          out_specs=out_specs, out_shape=out_shape, interpret=cfg.interpret, **kwargs)


@functools.lru_cache(maxsize=64)
def build_call(cfg: KernelConfig):
    """The jitted kernel for `cfg` (cached)."""
    return jax.jit(make_call(cfg))
