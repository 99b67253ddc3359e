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


# ------------------------------------------------------ generated text --

_HEADER_TEXT = '''"""An evolved AutoML-Zero program, exported by azero_jax as a standalone @TARGET@ module.

Needs only @NEEDS@. Memory (float64, zero at the start): s[0..S-1] scalars@LAYOUT@
m[i] F x F matrices. The program as the reference prints it (@WHICH@):

@PROGRAM@

@FIT@ ``setup``/``predict``/``learn`` are the
program itself.@USE@

Random-set ops draw from a counter-based stream: each draw is a pure function
of (seed, task index, phase, example, component, instruction position, element,
stream) hashed with 32-bit integer arithmetic (``_stream``, a copy of
azero_jax.rng), so with the same ``seed`` and ``task`` they equal azero_jax's
draws bit for bit.@EXACT@
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

'''

_HEADER = {
    "numpy": _HEADER_TEXT.replace("@TARGET@", "NumPy").replace("@NEEDS@", "NumPy").replace("@USE@", "").replace(
        "@EXACT@", " Results equal azero_jax's NumPy interpreter bit for bit.") + "import numpy as np\n\n",
    "jax": _HEADER_TEXT.replace("@TARGET@", "JAX").replace("@NEEDS@", "JAX (and NumPy for the shuffle of epochs\n"
                                                           "after the first)").replace(
        "@USE@", " They are pure and\njax.jit / jax.vmap-able (e.g. "
                 "``jax.vmap(predict, in_axes=(None, 0))(mem, xs)``);\n``fit`` too, with "
                 "@STATIC@, epochs and data_seed static.").replace(
        "@EXACT@", "\n\nFloat64 like the oracle: importing this module enables jax_enable_x64. XLA's\n"
                   "transcendental functions and summation order differ from NumPy's by an ulp,\n"
                   "so results agree with azero_jax to rounding, not bit for bit.")
    + "import jax\nimport jax.numpy as jnp\n\njax.config.update(\"jax_enable_x64\", True)  # float64, like the oracle\n\n",
}
_LAYOUT = ("\n(s0 = label, s1 = prediction), v[i] vectors of F features (v0 = the example),",
           ",\nv[i] vectors of F features (v0 = the example, v1 = the one-hot label during\n"
           "Learn and 0 during Predict, v2 = the prediction: its first C entries are the\n"
           "logits of the C classes),")
_FIT = ("""Use: ``result = fit(x_train, y_train, x_valid, y_valid)`` evaluates it on one
task exactly like azero_jax.reference.evaluate_task (Setup on zeroed memory;
per train example Predict, sigmoid of s1 on classification, early stop when
|y - s1| is NaN or > max_abs_error, Learn; validation after each epoch;
fitness = max over epochs of 1 - 2/pi atan(RMS error), or accuracy; 0 on a
first-epoch or validation early stop).""",
        """Use: ``result = fit(x_train, y_train, x_valid, y_valid, num_classes=C)``
(class labels 0..C-1, 2 <= C <= F) evaluates it on one multiclass task exactly
like azero_jax.reference.evaluate_task (Setup on zeroed memory; per train
example Predict, then v2 = the softmax of its first C entries, the others set
to 0; early stop when 1 - p[y] is NaN or > max_abs_error; Learn; validation
after each epoch, Predict only: the predicted class is the argmax of the C
logits (the first on ties), and a logit that leaves the softmax undefined
(NaN, +inf, or all -inf) stops it; fitness = max over epochs of the accuracy;
0 on a first-epoch or validation early stop).""")


def _header(target: str, multiclass: bool) -> str:
    return (_HEADER[target].replace("@LAYOUT@", _LAYOUT[multiclass]).replace("@FIT@", _FIT[multiclass])
            .replace("@STATIC@", "num_classes" if multiclass else "classification"))

_MEMORY_TEXT = '''

class Memory(NamedTuple):
    """s: (S,) scalars, v: (V, F) vectors, m: (M, F, F) matrices."""

    s: @ARRAY@
    v: @ARRAY@
    m: @ARRAY@

    @classmethod
    def zeros(cls, n_features: int = N_FEATURES) -> Memory:
        f = n_features
        return cls(@XP@.zeros(SCALARS), @XP@.zeros((VECTORS, f)), @XP@.zeros((MATRICES, f, f)))

'''
_MEMORY = {"numpy": _MEMORY_TEXT.replace("@ARRAY@", "np.ndarray").replace("@XP@", "np"),
           "jax": _MEMORY_TEXT.replace("@ARRAY@", "jax.Array").replace("@XP@", "jnp")}

_HELPERS_TITLE = "# ------------------------------------------------------------------ helpers --"
# Definitions the generated code may call, written against `xp`; name -> text.
_HELPERS = '''
def _index(fraction, n):
    """Element int(n * fraction), the product in float32, at most n - 1 (the reference's FloatToIndex)."""
    scaled = struct.unpack("f", struct.pack("f", fraction * n))[0]
    return int(min(max(scaled, 0.0), n - 1.0)) if scaled == scaled else 0


def _sigmoid(x):
    return 1.0 / (1.0 + xp.exp(-x))


def _softmax(logits, num_classes):
    """Softmax of the first num_classes entries, padded with zeros to F: max-subtracted, the max and the sum
    taken class by class in order (azero_jax.multiclass's arithmetic); NaN everywhere when undefined."""
    z = [logits[..., c] for c in range(num_classes)]
    top = z[0]
    for c in range(1, num_classes):
        top = xp.maximum(top, z[c])
    e = [xp.exp(zc - top) for zc in z]
    total = e[0]
    for c in range(1, num_classes):
        total = total + e[c]
    zero = xp.zeros_like(total)
    return xp.stack([ec / total for ec in e] + [zero] * (logits.shape[-1] - num_classes), axis=-1)


def _predicted_class(logits, num_classes):
    """The argmax of the first num_classes logits (the first on ties) as a float; NaN where their softmax is
    undefined (a NaN or +inf logit, or all -inf)."""
    best, top, nan_max = xp.zeros_like(logits[..., 0]), logits[..., 0], logits[..., 0]
    for c in range(1, num_classes):
        better = logits[..., c] > top
        best = xp.where(better, float(c), best)
        top = xp.where(better, logits[..., c], top)
        nan_max = xp.maximum(nan_max, logits[..., c])  # NaN-propagating
    return xp.where(xp.isfinite(nan_max), best, xp.nan)


def _std(x, axis=None):
    """sqrt(E[x^2] - E[x]^2) like the reference (no clamping: a tiny negative radicand gives NaN)."""
    n = x.size if axis is None else x.shape[axis]
    mean = xp.sum(x, axis=axis) / n
    square = xp.where(xp.isnan(mean), xp.nan, mean * mean)  # keeps XLA from fusing an FMA; same value
    return xp.sqrt(xp.sum(x * x, axis=axis) / n - square)


def _uniform(low, high, u):
    """abseil Uniform(low, high): low + (high - low) * u; low itself if low > high or a bound is NaN."""
    low, high = xp.asarray(low, dtype=u.dtype), xp.asarray(high, dtype=u.dtype)
    return xp.where(low <= high, low + (high - low) * u, low)


def _gaussian(mean, sd, u1, u2):
    """mean + sd * z, z standard normal by Box-Muller from two uniform draws."""
    z = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * 3.141592653589793 * u2)
    return xp.asarray(mean, dtype=u1.dtype) + xp.asarray(sd, dtype=u1.dtype) * z


def _mix(x):
    """lowbias32 (C. Wellons), a 32-bit integer finalizer (uint32 wrap-around intended)."""
    x = x ^ (x >> 16)
    x = x * xp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * xp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _u32(value):
    if isinstance(value, int):
        return xp.asarray(value & 0xFFFFFFFF, dtype=xp.uint32)
    return xp.asarray(value).astype(xp.uint32)


def _stream(seed, task, phase, example, component):
    """rand(position, shape, stream): the uniform (0, 1) draws of the instruction at `position` in one run
    of a component (53 random bits each; stream 0 and 1 are independent)."""
    h = _mix(_u32(seed) ^ xp.uint32(0x9E3779B9))
    for word in (task, phase, example, component):
        h = _mix(h ^ _u32(word))
        h = h * xp.uint32(0x01000193) + xp.uint32(0x6A09E667)

    def rand(position, shape, stream):
        key = _mix(h ^ _u32(position)) * xp.uint32(0x01000193) + xp.uint32(0x6A09E667)
        element = xp.arange(math.prod(shape), dtype=xp.uint32).reshape(shape)
        base = _mix(key ^ xp.uint32((0x85EBCA6B * (stream + 1)) & 0xFFFFFFFF))
        hi = _mix(base ^ (element * xp.uint32(2) + xp.uint32(1)))
        lo = _mix(hi ^ (element * xp.uint32(2)) ^ xp.uint32(0x27D4EB2F))
        k = (hi >> 5).astype(xp.float64) * 67108864.0 + (lo >> 6).astype(xp.float64)
        return (k + 0.5) / 9007199254740992.0

    return rand
'''
_HELPER_DEFS = {text.split("(")[0][len("def "):]: text for text in _HELPERS.strip("\n").split("\n\n\n")}

_RESULT = '''

# --------------------------------------------------------------- evaluation --


class Result(NamedTuple):
    fitness: float  # max over epochs of the validation fitness; 0 on a first-epoch early stop
    train_steps: int  # train examples run (the stopping one included)
    stopped_early: bool
    valid_predictions: @PREDICTIONS@  # @PREDICTION_DOC@
    memory: Memory  # the trained memory


def epoch_order(n_train: int, epochs: int, data_seed: int = 0):
    """Train example indices of all epochs (the reference's GenerateEpochs): epoch 0 in order, each later one
    a NumPy shuffle of the one before, seeded by data_seed (as azero_jax.tasks.Task.epoch_order)."""@ORDER@
    order = np.arange(n_train)
    parts = [order]
    rng = np.random.default_rng(data_seed + 3274582109)
    for _ in range(1, epochs):
        order = order[rng.permutation(n_train)]
        parts.append(order)
    return @CONCAT@

'''

_EVALUATION = {"numpy": _RESULT.replace("@PREDICTION_DOC@", "raw s1 of the last validation").replace("@PREDICTIONS@", "np.ndarray | None").replace("@ORDER@", "").replace(
    "@CONCAT@", "np.concatenate(parts)") + '''
@np.errstate(all="ignore")
def score(mem: Memory, x_valid, y_valid, *, classification: bool = False, epoch: int = 0, seed: int = 0,
          task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> tuple[float, np.ndarray]:
    """One validation pass (Predict only; it may still change `mem`): (fitness, raw predictions)."""
    n_valid = len(x_valid)
    predictions = np.empty(n_valid)
    loss, stopped = 0.0, False
    for i in range(n_valid):
        predictions[i] = prediction = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        if stopped:
            continue  # the fitness is 0 already; the predictions are still reported
        if classification:
            p = _sigmoid(prediction)
            error = math.inf if p < 0.0 or p > 1.0 else (0.0 if (y_valid[i] > 0.5) == (p > 0.5) else 1.0)
            loss += error
        else:
            error = abs(y_valid[i] - prediction)
            loss += error * error
        stopped = math.isnan(error) or error > max_abs_error
    if stopped:
        return 0.0, predictions
    if classification:
        return 1.0 - loss / n_valid, predictions
    rmse = math.sqrt(loss / n_valid)
    return (0.0 if math.isnan(rmse) or math.isinf(rmse) else 1.0 - (2.0 / math.pi) * math.atan(rmse)), predictions


@np.errstate(all="ignore")
def fit(x_train, y_train, x_valid, y_valid, *, classification: bool = False, epochs: int = 1, data_seed: int = 0,
        seed: int = 0, task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory on (x_train, y_train) and validates after every epoch; see the module docstring."""
    x_train, y_train, x_valid, y_valid = (np.asarray(a, dtype=np.float64) for a in (x_train, y_train, x_valid, y_valid))
    n_train = len(x_train)
    order = epoch_order(n_train, epochs, data_seed)
    mem = Memory.zeros(x_train.shape[1])
    setup(mem, seed, task)
    best, steps, predictions = 0.0, 0, None
    for epoch in range(epochs):
        for step in range(epoch * n_train, (epoch + 1) * n_train):
            x, y = x_train[order[step]], y_train[order[step]]
            steps += 1
            prediction = predict(mem, x, seed, task, PHASE_TRAIN, step)
            if classification:
                prediction = _sigmoid(prediction)
            mem.s[1] = prediction  # Learn sees the sigmoid
            error = abs(y - prediction)
            if math.isnan(error) or error > max_abs_error:  # early stop: this epoch is not validated
                return Result(best, steps, True, predictions, mem)
            learn(mem, x, y, seed, task, step)
        fitness, predictions = score(mem, x_valid, y_valid, classification=classification, epoch=epoch, seed=seed,
                                     task=task, max_abs_error=max_abs_error)
        best = max(best, fitness)
    return Result(best, steps, False, predictions, mem)
''', "jax": _RESULT.replace("@PREDICTION_DOC@", "raw s1 of the last validation").replace(
    "@PREDICTIONS@", "jax.Array").replace(
    "@ORDER@", "\n    if epochs == 1:\n        return jnp.arange(n_train)\n"
               "    import numpy as np  # host side, before tracing\n").replace(
    "@CONCAT@", "jnp.asarray(np.concatenate(parts))") + '''
def _select(flag, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def score(mem: Memory, x_valid, y_valid, *, classification=False, epoch=0, seed=0, task=0,
          max_abs_error=MAX_ABS_ERROR) -> tuple[jax.Array, jax.Array, Memory]:
    """One validation pass (Predict only; it may still change the memory): (fitness, raw predictions, memory)."""
    x_valid, y_valid = jnp.asarray(x_valid), jnp.asarray(y_valid)
    n_valid = x_valid.shape[0]

    def step(carry, i):
        mem, loss, ok = carry
        mem, prediction = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        if classification:
            p = _sigmoid(prediction)
            error = jnp.where((p < 0.0) | (p > 1.0), jnp.inf, jnp.where((y_valid[i] > 0.5) == (p > 0.5), 0.0, 1.0))
            term = error
        else:
            error = jnp.abs(y_valid[i] - prediction)
            term = error * error
        loss = jnp.where(ok, loss + term, loss)  # past an early stop the fitness is 0 anyway
        return (mem, loss, ok & ~(jnp.isnan(error) | (error > max_abs_error))), prediction

    (mem, loss, ok), predictions = jax.lax.scan(step, (mem, jnp.asarray(0.0), jnp.asarray(True)),
                                                jnp.arange(n_valid))
    if classification:
        fitness = 1.0 - loss / n_valid
    else:
        rmse = jnp.sqrt(loss / n_valid)
        fitness = jnp.where(jnp.isfinite(rmse), 1.0 - (2.0 / math.pi) * jnp.arctan(rmse), 0.0)
    return jnp.where(ok, fitness, 0.0), predictions, mem


def fit(x_train, y_train, x_valid, y_valid, *, classification=False, epochs=1, data_seed=0, seed=0, task=0,
        max_abs_error=MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory and validates after every epoch; valid_predictions is NaN where never validated."""
    x_train, y_train, x_valid, y_valid = (jnp.asarray(a) for a in (x_train, y_train, x_valid, y_valid))
    n_train, n_features = x_train.shape
    order = epoch_order(n_train, epochs, data_seed)
    mem = setup(Memory.zeros(n_features), seed, task)

    def train_step(carry, step):
        mem, stopped, steps = carry
        x, y = x_train[order[step]], y_train[order[step]]
        new, prediction = predict(mem, x, seed, task, PHASE_TRAIN, step)
        if classification:
            prediction = _sigmoid(prediction)
        new = new._replace(s=new.s.at[1].set(prediction))  # Learn sees the sigmoid
        error = jnp.abs(y - prediction)
        stop = jnp.isnan(error) | (error > max_abs_error)
        new = _select(stop, new, learn(new, x, y, seed, task, step))
        return (_select(stopped, mem, new), stopped | stop, steps + jnp.where(stopped, 0, 1)), None

    carry = (mem, jnp.asarray(False), jnp.asarray(0))
    best, predictions = jnp.asarray(0.0), jnp.full(x_valid.shape[0], jnp.nan)
    for epoch in range(epochs):  # an early stop freezes everything: later epochs change nothing
        carry, _ = jax.lax.scan(train_step, carry, jnp.arange(epoch * n_train, (epoch + 1) * n_train))
        mem, stopped, steps = carry
        fitness, valid, validated = score(mem, x_valid, y_valid, classification=classification, epoch=epoch,
                                          seed=seed, task=task, max_abs_error=max_abs_error)
        best = jnp.where(stopped, best, jnp.maximum(best, fitness))
        predictions = jnp.where(stopped, predictions, valid)
        carry = (_select(stopped, mem, validated), stopped, steps)
    return Result(best, carry[2], carry[1], predictions, carry[0])
'''}

_MC_PREDICTION_DOC = "the classes predicted in the last validation (NaN: undefined softmax)"
_CHECK_CLASSES = '''
def _check_classes(num_classes, n_features):
    if not 2 <= num_classes <= n_features:
        raise ValueError(f"num_classes must be in [2, F={n_features}] (the one-hot label and the logits are "
                         f"F-vectors), got {num_classes!r}")
'''

_EVALUATION_MC = {"numpy": _RESULT.replace("@PREDICTION_DOC@", _MC_PREDICTION_DOC).replace(
    "@PREDICTIONS@", "np.ndarray | None").replace("@ORDER@", "").replace("@CONCAT@", "np.concatenate(parts)")
    + _CHECK_CLASSES + '''

@np.errstate(all="ignore")
def score(mem: Memory, x_valid, y_valid, *, num_classes: int, epoch: int = 0, seed: int = 0, task: int = 0,
          max_abs_error: float = MAX_ABS_ERROR) -> tuple[float, np.ndarray]:
    """One validation pass (Predict only; it may still change `mem`): (accuracy, predicted classes)."""
    n_valid = len(x_valid)
    predictions = np.empty(n_valid)
    loss, stopped = 0.0, False
    for i in range(n_valid):
        logits = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        predictions[i] = predicted = float(_predicted_class(logits, num_classes))
        if stopped:
            continue  # the fitness is 0 already; the predictions are still reported
        error = math.inf if math.isnan(predicted) else (0.0 if predicted == y_valid[i] else 1.0)
        loss += error
        stopped = math.isnan(error) or error > max_abs_error
    if stopped:
        return 0.0, predictions
    return 1.0 - loss / n_valid, predictions


@np.errstate(all="ignore")
def fit(x_train, y_train, x_valid, y_valid, *, num_classes: int, epochs: int = 1, data_seed: int = 0, seed: int = 0,
        task: int = 0, max_abs_error: float = MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory on (x_train, y_train) (class labels 0..num_classes-1) and validates after every epoch;
    see the module docstring."""
    x_train, y_train, x_valid, y_valid = (np.asarray(a, dtype=np.float64) for a in (x_train, y_train, x_valid, y_valid))
    _check_classes(num_classes, x_train.shape[1])
    for name, labels in (("y_train", y_train), ("y_valid", y_valid)):
        if not np.isin(labels, np.arange(num_classes)).all():
            raise ValueError(f"{name} must hold integer class labels 0..{num_classes - 1}")
    n_train = len(x_train)
    order = epoch_order(n_train, epochs, data_seed)
    mem = Memory.zeros(x_train.shape[1])
    setup(mem, seed, task)
    best, steps, predictions = 0.0, 0, None
    for epoch in range(epochs):
        for step in range(epoch * n_train, (epoch + 1) * n_train):
            x, y = x_train[order[step]], y_train[order[step]]
            steps += 1
            probs = _softmax(predict(mem, x, seed, task, PHASE_TRAIN, step), num_classes)
            mem.v[2] = probs  # Learn sees the softmax (0 past num_classes)
            error = float(1.0 - probs[int(y)])  # NaN when the softmax is undefined
            if math.isnan(error) or error > max_abs_error:  # early stop: this epoch is not validated
                return Result(best, steps, True, predictions, mem)
            learn(mem, x, y, seed, task, step)
        fitness, predictions = score(mem, x_valid, y_valid, num_classes=num_classes, epoch=epoch, seed=seed,
                                     task=task, max_abs_error=max_abs_error)
        best = max(best, fitness)
    return Result(best, steps, False, predictions, mem)
''', "jax": _RESULT.replace("@PREDICTION_DOC@", _MC_PREDICTION_DOC).replace("@PREDICTIONS@", "jax.Array").replace(
    "@ORDER@", "\n    if epochs == 1:\n        return jnp.arange(n_train)\n"
               "    import numpy as np  # host side, before tracing\n").replace(
    "@CONCAT@", "jnp.asarray(np.concatenate(parts))") + _CHECK_CLASSES + '''

def _select(flag, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)


def score(mem: Memory, x_valid, y_valid, *, num_classes, epoch=0, seed=0, task=0,
          max_abs_error=MAX_ABS_ERROR) -> tuple[jax.Array, jax.Array, Memory]:
    """One validation pass (Predict only; it may still change the memory): (accuracy, predicted classes, memory)."""
    x_valid, y_valid = jnp.asarray(x_valid), jnp.asarray(y_valid)
    n_valid = x_valid.shape[0]

    def step(carry, i):
        mem, loss, ok = carry
        mem, logits = predict(mem, x_valid[i], seed, task, PHASE_VALID, epoch * n_valid + i)
        predicted = _predicted_class(logits, num_classes)
        error = jnp.where(jnp.isnan(predicted), jnp.inf, jnp.where(predicted == y_valid[i], 0.0, 1.0))
        loss = jnp.where(ok, loss + error, loss)  # past an early stop the fitness is 0 anyway
        return (mem, loss, ok & ~(jnp.isnan(error) | (error > max_abs_error))), predicted

    (mem, loss, ok), predictions = jax.lax.scan(step, (mem, jnp.asarray(0.0), jnp.asarray(True)),
                                                jnp.arange(n_valid))
    return jnp.where(ok, 1.0 - loss / n_valid, 0.0), predictions, mem


def fit(x_train, y_train, x_valid, y_valid, *, num_classes, epochs=1, data_seed=0, seed=0, task=0,
        max_abs_error=MAX_ABS_ERROR) -> Result:
    """Trains a fresh memory (class labels 0..num_classes-1) and validates after every epoch; valid_predictions
    is NaN where never validated."""
    x_train, y_train, x_valid, y_valid = (jnp.asarray(a) for a in (x_train, y_train, x_valid, y_valid))
    n_train, n_features = x_train.shape
    _check_classes(num_classes, n_features)
    order = epoch_order(n_train, epochs, data_seed)
    mem = setup(Memory.zeros(n_features), seed, task)

    def train_step(carry, step):
        mem, stopped, steps = carry
        x, y = x_train[order[step]], y_train[order[step]]
        new, logits = predict(mem, x, seed, task, PHASE_TRAIN, step)
        probs = _softmax(logits, num_classes)
        new = new._replace(v=new.v.at[2].set(probs))  # Learn sees the softmax (0 past num_classes)
        error = 1.0 - probs[y.astype(jnp.int32)]  # NaN when the softmax is undefined
        stop = jnp.isnan(error) | (error > max_abs_error)
        new = _select(stop, new, learn(new, x, y, seed, task, step))
        return (_select(stopped, mem, new), stopped | stop, steps + jnp.where(stopped, 0, 1)), None

    carry = (mem, jnp.asarray(False), jnp.asarray(0))
    best, predictions = jnp.asarray(0.0), jnp.full(x_valid.shape[0], jnp.nan)
    for epoch in range(epochs):  # an early stop freezes everything: later epochs change nothing
        carry, _ = jax.lax.scan(train_step, carry, jnp.arange(epoch * n_train, (epoch + 1) * n_train))
        mem, stopped, steps = carry
        fitness, valid, validated = score(mem, x_valid, y_valid, num_classes=num_classes, epoch=epoch, seed=seed,
                                          task=task, max_abs_error=max_abs_error)
        best = jnp.where(stopped, best, jnp.maximum(best, fitness))
        predictions = jnp.where(stopped, predictions, valid)
        carry = (_select(stopped, mem, validated), stopped, steps)
    return Result(best, carry[2], carry[1], predictions, carry[0])
'''}

__all__ = ["OP_EXPRESSIONS", "TARGETS", "export_source", "instruction_line", "write_export"]
