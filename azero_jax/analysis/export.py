"""Export an evolved program as a standalone, runnable Python module.

`export_source(program, memory, "numpy" | "jax")` returns the text of a module
that needs no azero_jax: a `Memory` NamedTuple (``s`` (S,), ``v`` (V, F), ``m``
(M, F, F)), the program as ``setup`` / ``predict`` / ``learn`` functions with
one line per (live) instruction, each commented with the reference's printed
form, and ``fit`` / ``score`` running the evaluation of `azero_jax.reference`
(zero memory, Setup, per train example v0=x, Predict, sigmoid on
classification, s0=y, Learn; epochs; validation; `azero_jax.fitness`'s rules
and early stops). `write_export` writes it as ``evolved_<target>.py``.
With ``multiclass=True`` the module follows `azero_jax.multiclass`'s layout
instead (v1 = one-hot label during Learn, zeroed before every Predict; the
first C entries of v2 the logits, their softmax written back into v2 before
Learn; validation scores the argmax) and its ``fit`` / ``score`` take
``num_classes``; dead code is computed for that layout.

Design:

* **How kernels become text.** `OP_EXPRESSIONS` maps every op name of
  `ops.OPS` to an expression template written against an array namespace
  ``{xp}`` (``np`` or ``jnp``), so one table serves both targets; a test checks
  it covers the op table. `inspect` on the kernels was rejected: they are
  lambdas inside a tuple table behind the `OpArgs` indirection, so their source
  is a table row, not a line a reader wants. The kernels stay the truth: the
  templates are the same NumPy operations in the same order (``sum(a * b)``,
  never ``@``, whose summation order differs), and the tests run hundreds of
  random programs over all ops through the exported code against the oracle.
* **Exactness.** The NumPy module reproduces the oracle bit for bit
  (predictions, fitness, steps, early stops; NaN/inf included): same float64
  operations, the same host-scalar fitness arithmetic (``math.atan``), the same
  epoch shuffle. The JAX module agrees to rounding: XLA's transcendentals and
  reduction order differ from libm/NumPy by ulps (as `azero_jax.jax_eval`).
* **Random-set ops** draw from `azero_jax.rng`'s counter-based stream. The
  module carries a copy of its 32-bit hash (``_stream``), keyed by (seed, task
  index, phase, example, component, instruction position), so with the same
  seed and task index the draws equal the package's bit for bit. Positions
  are those of the full program, so dropping dead code keeps the draws.
* **Quirks** come along in small inlined helpers: float32 element indices
  (``_index``), the std formula without clamping (``_std``), abseil's
  uniform rule (``_uniform``), Box-Muller (``_gaussian``), the C++ min/max
  operand order (in the templates). Only the helpers a program calls are
  written out.
* **The JAX module** is functional: ``s = s.at[3].set(s[0] - s[1])``, a
  NamedTuple memory returned by each function, ``fit`` as `lax.scan`s with
  the early stop as a carried flag (so it jits, and vmaps over tasks; the
  eval type, epochs and data seed are static), NaN predictions where the
  oracle has none. It enables ``jax_enable_x64`` when imported (the oracle's
  float64; a global JAX setting, stated in its docstring). NumPy is used only
  on the host, for the shuffle of epochs after the first (NumPy's generator).
* Adding an op: one entry in `OP_EXPRESSIONS` (the coverage test fails
  without it; the random-program tests then check it against the kernel).
"""

from __future__ import annotations

import math
import os
import pathlib
import re

from azero_jax import fileio
from azero_jax import fitness as fitness_lib
from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax.analysis._export_text import _EVALUATION, _EVALUATION_MC, _HELPER_DEFS, _HELPERS_TITLE, _MEMORY, _header
from azero_jax.liveness import live_instructions, strip_dead_code
from azero_jax.multiclass import MIN_VECTORS
from azero_jax.program import COMPONENTS, Algorithm, MemoryShape, validate_algorithm
from azero_jax.serialization import format_algorithm, format_instruction

TARGETS = ("numpy", "jax")
_XP = {"numpy": "np", "jax": "jnp"}

# Per op name: the new value of the output as an expression, or (element
# subscript, value) for the ops that set one element. Placeholders: {a} {b}
# operands, {d} {f0} {f1} {f2} constants, {u1} {u2} uniform draws of the
# output's shape, {xp} the array namespace; F is the feature count.
OP_EXPRESSIONS: dict[str, str | tuple[str, str] | None] = {
    "NO_OP": None,
    "SCALAR_SUM_OP": "{a} + {b}",
    "SCALAR_DIFF_OP": "{a} - {b}",
    "SCALAR_PRODUCT_OP": "{a} * {b}",
    "SCALAR_DIVISION_OP": "{a} / {b}",
    "SCALAR_ABS_OP": "{xp}.abs({a})",
    "SCALAR_RECIPROCAL_OP": "1.0 / {a}",
    "SCALAR_SIN_OP": "{xp}.sin({a})",
    "SCALAR_COS_OP": "{xp}.cos({a})",
    "SCALAR_TAN_OP": "{xp}.tan({a})",
    "SCALAR_ARCSIN_OP": "{xp}.arcsin({a})",
    "SCALAR_ARCCOS_OP": "{xp}.arccos({a})",
    "SCALAR_ARCTAN_OP": "{xp}.arctan({a})",
    "SCALAR_EXP_OP": "{xp}.exp({a})",
    "SCALAR_LOG_OP": "{xp}.log({a})",
    "SCALAR_HEAVYSIDE_OP": "{xp}.where({a} >= 0.0, 1.0, 0.0)",  # scalar: >= 0; vector, matrix: > 0
    "VECTOR_HEAVYSIDE_OP": "{xp}.where({a} > 0.0, 1.0, 0.0)",
    "MATRIX_HEAVYSIDE_OP": "{xp}.where({a} > 0.0, 1.0, 0.0)",
    "SCALAR_VECTOR_PRODUCT_OP": "{a} * {b}",
    "SCALAR_BROADCAST_OP": "{a} * {xp}.ones(F)",
    "VECTOR_RECIPROCAL_OP": "1.0 / {a}",
    "VECTOR_NORM_OP": "{xp}.sqrt({xp}.sum({a} * {a}))",
    "VECTOR_ABS_OP": "{xp}.abs({a})",
    "VECTOR_SUM_OP": "{a} + {b}",
    "VECTOR_DIFF_OP": "{a} - {b}",
    "VECTOR_PRODUCT_OP": "{a} * {b}",
    "VECTOR_DIVISION_OP": "{a} / {b}",
    "VECTOR_INNER_PRODUCT_OP": "{xp}.sum({a} * {b})",
    "VECTOR_OUTER_PRODUCT_OP": "{a}[:, None] * {b}[None, :]",
    "SCALAR_MATRIX_PRODUCT_OP": "{a} * {b}",
    "MATRIX_RECIPROCAL_OP": "1.0 / {a}",
    "MATRIX_VECTOR_PRODUCT_OP": "{xp}.sum({a} * {b}[None, :], axis=1)",
    "VECTOR_COLUMN_BROADCAST_OP": "{a}[:, None] * {xp}.ones((1, F))",
    "VECTOR_ROW_BROADCAST_OP": "{xp}.ones((F, 1)) * {a}[None, :]",
    "MATRIX_NORM_OP": "{xp}.sqrt({xp}.sum({a} * {a}))",
    "MATRIX_COLUMN_NORM_OP": "{xp}.sqrt({xp}.sum({a} * {a}, axis=0))",
    "MATRIX_ROW_NORM_OP": "{xp}.sqrt({xp}.sum({a} * {a}, axis=1))",
    "MATRIX_TRANSPOSE_OP": "{a}.T",
    "MATRIX_ABS_OP": "{xp}.abs({a})",
    "MATRIX_SUM_OP": "{a} + {b}",
    "MATRIX_DIFF_OP": "{a} - {b}",
    "MATRIX_PRODUCT_OP": "{a} * {b}",
    "MATRIX_DIVISION_OP": "{a} / {b}",
    "MATRIX_MATRIX_PRODUCT_OP": "{xp}.sum({a}[:, :, None] * {b}[None, :, :], axis=1)",
    # C++ std::min(a, b) = b < a ? b : a, std::max(a, b) = a < b ? b : a; matrices: a < b ? a : b, a > b ? a : b.
    "SCALAR_MIN_OP": "{xp}.where({b} < {a}, {b}, {a})",
    "VECTOR_MIN_OP": "{xp}.where({b} < {a}, {b}, {a})",
    "MATRIX_MIN_OP": "{xp}.where({a} < {b}, {a}, {b})",
    "SCALAR_MAX_OP": "{xp}.where({a} < {b}, {b}, {a})",
    "VECTOR_MAX_OP": "{xp}.where({a} < {b}, {b}, {a})",
    "MATRIX_MAX_OP": "{xp}.where({a} > {b}, {a}, {b})",
    "VECTOR_MEAN_OP": "{xp}.sum({a}) / F",
    "MATRIX_MEAN_OP": "{xp}.sum({a}) / (F * F)",
    "MATRIX_ROW_MEAN_OP": "{xp}.sum({a}, axis=1) / F",
    "MATRIX_ROW_ST_DEV_OP": "_std({a}, axis=1)",
    "VECTOR_ST_DEV_OP": "_std({a})",
    "MATRIX_ST_DEV_OP": "_std({a})",
    "SCALAR_CONST_SET_OP": "{d}",
    "VECTOR_CONST_SET_OP": ("_index({f0}, F)", "{f1}"),
    "MATRIX_CONST_SET_OP": ("_index({f0}, F), _index({f1}, F)", "{f2}"),
    "SCALAR_UNIFORM_SET_OP": "_uniform({f0}, {f1}, {u1})",
    "VECTOR_UNIFORM_SET_OP": "_uniform({f0}, {f1}, {u1})",
    "MATRIX_UNIFORM_SET_OP": "_uniform({f0}, {f1}, {u1})",
    "SCALAR_GAUSSIAN_SET_OP": "_gaussian({f0}, {f1}, {u1}, {u2})",
    "VECTOR_GAUSSIAN_SET_OP": "_gaussian({f0}, {f1}, {u1}, {u2})",
    "MATRIX_GAUSSIAN_SET_OP": "_gaussian({f0}, {f1}, {u1}, {u2})",
}

_SHAPES = {ops_lib.SCALAR: "()", ops_lib.VECTOR: "(F,)", ops_lib.MATRIX: "(F, F)"}

# The header and the memory in/out lines of each component function, per target.
_NP_SIGNATURE = {
    "setup": ("def setup(mem: Memory, seed: int = 0, task: int = 0) -> None:", (), ""),
    "predict": ("def predict(mem: Memory, x, seed: int = 0, task: int = 0, phase: int = PHASE_VALID,\n"
                "            example: int = 0) -> float:", ("v[0] = x", "s[0] = 0.0"), "return float(s[1])"),
    "learn": ("def learn(mem: Memory, x, y, seed: int = 0, task: int = 0, example: int = 0) -> None:",
              ("v[0] = x", "s[0] = y"), ""),
}
_JAX_SIGNATURE = {
    "setup": ("def setup(mem: Memory, seed=0, task=0) -> Memory:", (), "return Memory(s, v, m)"),
    "predict": ("def predict(mem: Memory, x, seed=0, task=0, phase=PHASE_VALID, example=0) -> tuple[Memory, jax.Array]:",
                ("v = v.at[0].set(x)", "s = s.at[0].set(0.0)"), "return Memory(s, v, m), s[1]"),
    "learn": ("def learn(mem: Memory, x, y, seed=0, task=0, example=0) -> Memory:",
              ("v = v.at[0].set(x)", "s = s.at[0].set(y)"), "return Memory(s, v, m)"),
}
_STREAM_KEY = {"setup": "PHASE_SETUP, 0", "predict": "phase, example", "learn": "PHASE_TRAIN, example"}
_DOC = {
    "setup": "Setup(): runs once, on zeroed memory.",
    "predict": "Predict(): v0 = x, s0 = 0, then the program; s1 is the prediction.",
    "learn": "Learn(): v0 = x, s0 = y; s1 holds the prediction (its sigmoid on classification).",
}

# The multiclass layout (azero_jax.multiclass): label one-hot in v1 during Learn only, logits in v2.
_NP_SIGNATURE_MC = {
    "setup": _NP_SIGNATURE["setup"],
    "predict": ("def predict(mem: Memory, x, seed: int = 0, task: int = 0, phase: int = PHASE_VALID,\n"
                "            example: int = 0) -> np.ndarray:", ("v[0] = x", "v[1] = 0.0"), "return v[2].copy()"),
    "learn": ("def learn(mem: Memory, x, y, seed: int = 0, task: int = 0, example: int = 0) -> None:",
              ("v[0] = x", "v[1] = np.where(np.arange(F) == y, 1.0, 0.0)"), ""),
}
_JAX_SIGNATURE_MC = {
    "setup": _JAX_SIGNATURE["setup"],
    "predict": ("def predict(mem: Memory, x, seed=0, task=0, phase=PHASE_VALID, example=0) -> tuple[Memory, jax.Array]:",
                ("v = v.at[0].set(x)", "v = v.at[1].set(0.0)"), "return Memory(s, v, m), v[2]"),
    "learn": ("def learn(mem: Memory, x, y, seed=0, task=0, example=0) -> Memory:",
              ("v = v.at[0].set(x)", "v = v.at[1].set(jnp.where(jnp.arange(F) == y, 1.0, 0.0))"),
              "return Memory(s, v, m)"),
}
_DOC_MC = {
    "setup": _DOC["setup"],
    "predict": "Predict(): v0 = x, v1 = 0, then the program; v2[:C] are the logits.",
    "learn": "Learn(): v0 = x, v1 = one-hot(y); v2 holds the softmax of the logits.",
}


def _literal(value: float, xp: str) -> str:
    """A constant as exact Python source (repr round-trips doubles; float32 data are exact doubles)."""
    if math.isnan(value):
        return f"{xp}.nan"
    if math.isinf(value):
        return f"{xp}.inf" if value > 0 else f"-{xp}.inf"
    return repr(float(value))


def instruction_line(instr, position: int, target: str) -> str:
    """One instruction as a statement of `target`, commented with its printed form."""
    spec = instr.spec
    printed = format_instruction(instr)
    entry = OP_EXPRESSIONS[spec.name]
    if entry is None:
        return f"# {printed}"
    subscript, template = entry if isinstance(entry, tuple) else ("", entry)
    xp = _XP[target]
    shape = _SHAPES[spec.out]
    fields = {"xp": xp, "u1": f"rand({position}, {shape}, 0)", "u2": f"rand({position}, {shape}, 1)",
              "a": f"{spec.in1}[{instr.in1}]" if spec.in1 else "", "b": f"{spec.in2}[{instr.in2}]" if spec.in2 else ""}
    fields.update({c: _literal(getattr(instr, c), xp) for c in ops_lib.CONST_FIELDS})
    expression = template.format(**fields)
    where = f"{instr.out}, {subscript.format(**fields)}" if subscript else str(instr.out)
    kind = spec.out
    code = f"{kind}[{where}] = {expression}" if target == "numpy" else f"{kind} = {kind}.at[{where}].set({expression})"
    return f"{code}  # {printed}"


def _component_function(program: Algorithm, mask, name: str, target: str, live_only: bool,
                        multiclass: bool = False) -> str:
    code = program.component(name)
    kept = [(i, instr) for i, instr in enumerate(code) if mask[i] or not live_only]  # NO_OPs are never live
    if multiclass:
        header, prologue, epilogue = (_NP_SIGNATURE_MC if target == "numpy" else _JAX_SIGNATURE_MC)[name]
    else:
        header, prologue, epilogue = (_NP_SIGNATURE if target == "numpy" else _JAX_SIGNATURE)[name]
    body = [instruction_line(instr, i, target) for i, instr in kept]
    live = sum(mask)
    doc = f'"""{(_DOC_MC if multiclass else _DOC)[name]} {live} of {len(code)} instructions live."""'
    code_text = "\n".join([line.split("  # ")[0] for line in body] + list(prologue))
    uses_f = re.search(r"\bF\b", code_text) is not None
    if target == "jax":
        lines = [doc, "s, v, m = mem"]
    else:  # unpack the banks the code uses
        banks = [b for b in "svm" if re.search(rf"\b{b}\[", code_text) or (b == "v" and uses_f)]
        lines = [doc] + ([f"{', '.join(banks)} = {', '.join('mem.' + b for b in banks)}"] if banks else [])
    if uses_f:
        lines.append("F = v.shape[1]")
    lines.extend(prologue)
    if any(ops_lib.OPS[instr.op].random for _, instr in kept):
        lines.append(f"rand = _stream(seed, task, {_STREAM_KEY[name]}, {rng_lib.COMPONENT_INDEX[name]})")
    lines.extend(body)
    if epilogue:
        lines.append(epilogue)
    decorator = '@np.errstate(all="ignore")  # overflow and NaN are part of the semantics\n' if target == "numpy" else ""
    return decorator + header + "\n" + "".join(f"    {line}\n" for line in lines)


def export_source(program: Algorithm, memory: MemoryShape, target: str, *, live_only: bool = True,
                  multiclass: bool = False) -> str:
    """The text of a standalone module (target "numpy" or "jax") running `program` in `memory`; see the
    module docstring. `live_only`: drop the instructions that cannot affect a prediction. `multiclass`: the
    program is for multiclass tasks (`azero_jax.multiclass`: label one-hot in v1, logits in v2; dead code
    by that layout) and the module's ``fit`` / ``score`` take ``num_classes`` and score argmax accuracy."""
    _check_target(target)
    validate_algorithm(program, memory)
    if multiclass and memory.vectors < MIN_VECTORS:
        raise ValueError(f"a multiclass export needs at least {MIN_VECTORS} vector addresses (v0 features, v1 "
                         f"label, v2 prediction), got memory with {memory.vectors}")
    masks = live_instructions(program, multiclass=multiclass)
    shown = strip_dead_code(program, keep_positions=False, multiclass=multiclass) if live_only else program
    printed = "".join(f"    {line}\n" for line in format_algorithm(shown).splitlines())
    xp = _XP[target]
    parts = [
        _header(target, multiclass).replace("@PROGRAM@", printed.rstrip("\n"))
        .replace("@WHICH@", "live instructions only" if live_only else "all instructions"),
        f"SCALARS, VECTORS, MATRICES, N_FEATURES = {memory.scalars}, {memory.vectors}, {memory.matrices}, "
        f"{memory.features}\nPHASE_SETUP, PHASE_TRAIN, PHASE_VALID = {rng_lib.PHASE_SETUP}, {rng_lib.PHASE_TRAIN}, "
        f"{rng_lib.PHASE_VALID}\nMAX_ABS_ERROR = {fitness_lib.MAX_ABS_ERROR!r}\n",
        _MEMORY[target],
        "\n# ------------------------------------------------------------------ program --\n",
    ]
    functions = [_component_function(program, mask, name, target, live_only, multiclass)
                 for name, mask in zip(COMPONENTS, masks, strict=True)]
    parts.extend("\n\n" + text for text in functions)
    # Only the helpers the program calls (and those fit calls: _sigmoid, or _softmax and _predicted_class).
    calls = "".join(functions) + ("_softmax( _predicted_class(" if multiclass else "_sigmoid(")
    used = [text for helper, text in _HELPER_DEFS.items()
            if f"{helper}(" in calls or (helper in ("_mix", "_u32") and "_stream(" in calls)]
    helpers = "\n\n\n".join([_HELPERS_TITLE] + used)
    parts.append("\n\n" + re.sub(r"\bxp\.", f"{xp}.", helpers) + "\n")
    if "_index(" not in calls:
        parts[0] = parts[0].replace("import struct\n", "")
    parts.append((_EVALUATION_MC if multiclass else _EVALUATION)[target])
    return "".join(parts)


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown export target {target!r}; use one of: {', '.join(TARGETS)}")


def write_export(program: Algorithm, memory: MemoryShape, target: str,
                 output_dir: str | os.PathLike[str], *, multiclass: bool = False) -> pathlib.Path:
    """Writes `export_source(..., multiclass=multiclass)` to ``output_dir/evolved_<target>.py`` atomically
    (creating the folder); returns the path. An unknown target or an unwritable place is a one-line
    ValueError."""
    _check_target(target)
    path = pathlib.Path(output_dir) / f"evolved_{target}.py"
    text = export_source(program, memory, target, multiclass=multiclass)
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"the export's output directory {str(path.parent)!r} is a file; choose a directory")
    try:
        fileio.atomic_write_text(path, text)
    except OSError as e:
        reason = " ".join(str(e.strerror or e).split())
        raise ValueError(f"cannot write the export {str(path)!r}: {reason}; choose a writable output "
                         "directory") from None
    return path


__all__ = ["OP_EXPRESSIONS", "TARGETS", "export_source", "instruction_line", "write_export"]
