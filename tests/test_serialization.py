"""Printer, parser and JSON schema: reference byte-exactness, round trips, and
fuzzing that every malformed input fails as a one-line ProgramError."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import pickle
import random
import re

import numpy as np
import pytest

from azero_jax import ops as ops_lib
from azero_jax import serialization as ser
from azero_jax.generators import random_algorithm, random_instruction
from azero_jax.program import COMPONENTS, NO_OP, Algorithm, Instruction, MemoryShape, ProgramError
from tests import cpp_cases

BIG_MEMORY = MemoryShape(20, 20, 20, 4)


def cpp_cases_dir() -> pathlib.Path:
    return pathlib.Path(cpp_cases.cases_dir())


def reference_programs() -> list[pathlib.Path]:
    folder = cpp_cases_dir()
    programs = sorted(folder.glob("case_*/program.txt"))
    if not programs:
        pytest.fail(
            f"C++ reference cases not found: no case_*/program.txt under {folder} "
            "(they ship in tests/data/cpp_reference_cases.tar.xz; AZERO_CPP_CASES overrides the folder)"
        )
    return programs


def printed(instr: Instruction) -> Instruction:
    """The instruction the printed text denotes: constants rounded to 6 digits."""
    return dataclasses.replace(instr, **{f: float(ser.format_number(getattr(instr, f))) for f in instr.spec.consts})


def printed_algorithm(alg: Algorithm) -> Algorithm:
    return Algorithm(**{c: tuple(printed(i) for i in alg.component(c)) for c in COMPONENTS})


def random_programs(rng: np.random.Generator, n: int, memory: MemoryShape = BIG_MEMORY, max_size: int = 12):
    all_ops = {c: ops_lib.ALL_OPS for c in COMPONENTS}
    for _ in range(n):
        sizes = {c: int(rng.integers(0, max_size + 1)) for c in COMPONENTS}
        yield random_algorithm(rng, memory, all_ops, sizes)


# ---------------------------------------------------------------- numbers --


@pytest.mark.parametrize(
    "value, text",
    [
        (0.0625, "0.0625"), (-0.0, "-0"), (0.0, "0"), (1e-17, "1e-17"), (1.65625, "1.65625"), (1e6, "1e+06"),
        (123456.0, "123456"), (1234567.0, "1.23457e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
        (-0.390625, "-0.390625"), (1e-300, "1e-300"), (0.1, "0.1"), (2.0 / 3.0, "0.666667"),
        (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"), (-math.nan, "-nan"), (5e-324, "4.94066e-324"),
    ],
)
def test_format_number_matches_cpp_stream(value, text):
    assert ser.format_number(value) == text


def test_float32_constants_print_promoted():
    instr = Instruction(57, out=3, f0=0.1, f1=-0.2)
    assert ser.format_instruction(instr) == "v3[0.1] = -0.2"
    assert instr.f0 == float(np.float32(0.1))


# ----------------------------------------------------------- round trips --


@pytest.mark.parametrize("op_id", range(ops_lib.NUM_OPS))
def test_every_op_prints_and_parses_back(op_id):
    rng = np.random.default_rng(op_id)
    for _ in range(5):
        instr = random_instruction(rng, op_id, BIG_MEMORY)
        line = ser.format_instruction(instr)
        parsed = ser.parse_instruction(line)
        assert parsed == printed(instr), line
        assert parsed.op == op_id
        assert ser.format_instruction(parsed) == line


def test_templates_are_unambiguous():
    """Every op is reachable: its printed line parses to that very op."""
    for op in ops_lib.OPS:
        fields = {f: 0.5 for f in op.consts}
        addresses = {f: 3 for f, k in zip(("in1", "in2", "out"), (op.in1, op.in2, op.out), strict=True) if k}
        instr = Instruction(op.id, **addresses, **fields)
        assert ser.parse_instruction(ser.format_instruction(instr)) == instr


def test_random_algorithms_round_trip_text_and_json():
    rng = np.random.default_rng(20240611)
    count = 0
    for alg in random_programs(rng, 3000):
        text = ser.format_algorithm(alg)
        parsed = ser.parse_algorithm(text, source="random.txt")
        assert parsed == printed_algorithm(alg)
        assert ser.format_algorithm(parsed) == text
        dumped = ser.dumps_algorithm(alg, BIG_MEMORY if count % 2 else None)
        assert ser.loads_algorithm(dumped, source="random.json") == alg
        assert ser.algorithm_from_dict(json.loads(dumped)) == alg
        count += 1
    assert count == 3000


def test_json_round_trip_keeps_non_finite_and_signed_zero():
    alg = Algorithm(setup=(
        Instruction(56, out=2, d=-0.0), Instruction(56, out=3, d=math.nan), Instruction(56, out=4, d=-math.nan),
        Instruction(56, out=5, d=math.inf), Instruction(59, out=6, f0=-math.inf, f1=-0.0),
        Instruction(58, out=1, f0=0.5, f1=0.25, f2=math.nan), Instruction(56, out=7, d=1e-300),
    ))
    dumped = ser.dumps_algorithm(alg)
    assert "NaN" not in dumped and "Infinity" not in dumped
    json.loads(dumped, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))
    back = ser.loads_algorithm(dumped)
    assert ser.dumps_algorithm(back) == dumped
    assert ser.format_algorithm(back) == ser.format_algorithm(alg)
    d = [i.d for i in back.setup]
    assert math.copysign(1.0, d[0]) == -1.0 and d[0] == 0.0
    assert math.isnan(d[1]) and math.copysign(1.0, d[1]) == 1.0
    assert math.isnan(d[2]) and math.copysign(1.0, d[2]) == -1.0
    assert d[3] == math.inf and back.setup[4].f0 == -math.inf and d[6] == 1e-300
    assert math.copysign(1.0, back.setup[4].f1) == -1.0


def test_text_non_finite_constants():
    text = "def Setup():\n  s2 = nan\n  s3 = -nan\n  s4 = inf\n  s5 = -inf\n  v1[0.5] = -0\ndef Predict():\ndef Learn():\n"
    alg = ser.parse_algorithm(text)
    assert ser.format_algorithm(alg) == text
    assert math.copysign(1.0, alg.setup[1].d) == -1.0


def test_json_schema_shape_and_op_ids():
    alg = Algorithm(predict=(Instruction(1, in1=2, in2=3, out=1), Instruction(56, out=4, d=0.5)))
    data = ser.algorithm_to_dict(alg, BIG_MEMORY)
    assert data == {
        "format": "azero-jax-program", "version": 1,
        "memory": {"scalars": 20, "vectors": 20, "matrices": 20, "features": 4},
        "setup": [],
        "predict": [{"op": "SCALAR_SUM_OP", "in1": 2, "in2": 3, "out": 1}, {"op": "SCALAR_CONST_SET_OP", "out": 4, "d": 0.5}],
        "learn": [],
    }
    data["predict"][0]["op"] = 1
    data["predict"][1].update(op="SCALAR_CONST_SET", in1=0, in2=0)  # short names and zero unused addresses are fine
    assert ser.algorithm_from_dict(data) == alg
    got, memory = ser.algorithm_and_memory_from_dict(data)
    assert got == alg and memory == BIG_MEMORY


# ------------------------------------------------------ reference programs --


def test_cpp_reference_programs_print_back_byte_for_byte():
    programs = reference_programs()
    manifest = cpp_cases_dir() / "manifest.json"
    if manifest.exists():
        assert len(programs) == json.loads(manifest.read_text())["n"]
    for path in programs:
        text = path.read_bytes().decode("utf-8")
        alg = ser.parse_algorithm(text, source=str(path), memory=MemoryShape(20, 20, 20, 4))
        assert ser.format_algorithm(alg) == text, path
        assert ser.load_algorithm(path) == alg
        assert ser.loads_algorithm(ser.dumps_algorithm(alg)) == alg


# ------------------------------------------------------ tolerant parsing --


def test_parser_tolerates_comments_blank_lines_crlf_and_spacing():
    text = (
        "# a comment\r\n\r\ndef Setup():   \r\n  s2 = 0.0625  # learning rate\r\n\r\n"
        "def  Predict( ):\r\n\ts1=dot( v1 ,v0 )\r\n    NoOp()\r\ndef Learn():"
    )
    alg = ser.parse_algorithm(text)
    assert ser.format_algorithm(alg) == (
        "def Setup():\n  s2 = 0.0625\ndef Predict():\n  s1 = dot(v1, v0)\n  NoOp()\ndef Learn():\n"
    )


def test_empty_components():
    alg = ser.parse_algorithm("def Setup():\ndef Predict():\ndef Learn():\n")
    assert alg == Algorithm()


# ---------------------------------------------------------------- errors --


@pytest.mark.parametrize(
    "text, message",
    [
        ("def Setup():\n\n  s2 = 1\n\n\n\n  v3 = foo(v1)\ndef Predict():\ndef Learn():\n",
         "prog.txt:7: unknown instruction 'v3 = foo(v1)'"),
        ("def Setup():\n  s2 = 1\ndef Predict():\n  s1 = s2\n",
         "prog.txt:4: unknown instruction 's1 = s2'"),
        ("def Setup():\n  s2 = 1\ndef Predict():\n  s1 = s1 * s2\n", "prog.txt:4: missing 'def Learn():' (file truncated?)"),
        ("def Setup():\ndef Predict():\n  v1 = v2 + s1\ndef Learn():\n",
         "prog.txt:3: operand kinds o=v, a=v, b=s do not match any op of form '{o} = {a} + {b}'"),
        ("def Setup():\ndef Learn():\ndef Predict():\n", "prog.txt:2: expected 'def Predict():', found 'def Learn():'"),
        ("def Setup():\ndef Predict():\ndef Learn():\ndef Learn():\n", "prog.txt:4: unexpected 'def Learn():'"),
        ("  s1 = s2 + s3\n", "prog.txt:1: 's1 = s2 + s3' before 'def Setup():'"),
        ("", "prog.txt:1: empty program"),
        ("\n  # only a comment\n", "prog.txt:1: empty program"),
        ("def Setup():\n  s2 = 1e999\ndef Predict():\ndef Learn():\n", "prog.txt:2: constant d=1e999 overflows"),
        ("def Setup():\n  v2[0.5] = 1e39\ndef Predict():\ndef Learn():\n", "prog.txt:2: constant f1=1e39 overflows float32"),
        ("def Setup():\n  s2 = 1_0\ndef Predict():\ndef Learn():\n", "prog.txt:2: unknown instruction"),
        ("def Setup():\n  x2 = 1\ndef Predict():\ndef Learn():\n", "prog.txt:2: operand kinds o=x"),
    ],
)
def test_text_errors_name_file_and_line(text, message):
    with pytest.raises(ser.ProgramSyntaxError) as info:
        ser.parse_algorithm(text, source="prog.txt")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_text_out_of_range_address_with_memory():
    text = "def Setup():\ndef Predict():\n  s1 = s2 + s3\n  s1 = s9 + s3\ndef Learn():\n"
    assert ser.parse_algorithm(text) is not None
    with pytest.raises(ProgramError, match=r"^p\.txt:4: Predict instruction 1: field in1=s9 is out of range"):
        ser.parse_algorithm(text, source="p.txt", memory=MemoryShape(4, 2, 1, 4))


def good_dict() -> dict:
    return ser.algorithm_to_dict(Algorithm(
        setup=(Instruction(56, out=2, d=0.5),),
        predict=(Instruction(27, in1=1, in2=0, out=3), Instruction(1, in1=2, in2=3, out=1),
                 Instruction(58, out=0, f0=0.25, f1=0.5, f2=-1.0)),
    ), MemoryShape(4, 2, 1, 4))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["predict"][1].__setitem__("in1", "x"), "src: predict[1].in1: expected an integer, got string"),
        (lambda d: d["predict"][1].__setitem__("in1", True), "src: predict[1].in1: expected an integer, got boolean"),
        (lambda d: d["predict"][1].__setitem__("in1", -1), "src: predict[1].in1: expected an integer >= 0"),
        (lambda d: d["predict"][1].__setitem__("in1", 9), "src: predict[1]: Predict instruction 1: field in1=s9 is out of range"),
        (lambda d: d["predict"][1].pop("in2"), "src: predict[1]: missing key 'in2'"),
        (lambda d: d["predict"][1].__setitem__("d", 1.0), "src: predict[1].d: SCALAR_SUM_OP takes no constant 'd'"),
        (lambda d: d["predict"][1].__setitem__("colour", 1), "src: predict[1]: unknown key 'colour'"),
        (lambda d: d["setup"][0].__setitem__("in1", 2), "src: setup[0].in1: SCALAR_CONST_SET_OP does not use in1"),
        (lambda d: d["setup"][0].__setitem__("d", "big"), "src: setup[0].d: expected a number"),
        (lambda d: d["setup"][0].__setitem__("d", 10**400), "src: setup[0].d: integer constant too large"),
        (lambda d: d["setup"][0].__setitem__("op", "FOO_OP"), "src: setup[0].op: unknown op name 'FOO_OP'"),
        (lambda d: d["setup"][0].__setitem__("op", 65), "src: setup[0].op: unknown op id 65"),
        (lambda d: d["setup"][0].__setitem__("op", 1), "src: setup[0].d: SCALAR_SUM_OP takes no constant 'd'"),
        (lambda d: d["setup"].__setitem__(0, {"op": 5, "out": 1}), "src: setup[0]: missing key 'in1'"),
        (lambda d: d["setup"][0].pop("op"), "src: setup[0]: missing key 'op'"),
        (lambda d: d["setup"].__setitem__(0, 3), "src: setup[0]: expected an object, got number"),
        (lambda d: d.__setitem__("learn", {}), "src: learn: expected an array of instructions, got object"),
        (lambda d: d.pop("learn"), "src: top level: missing key 'learn'"),
        (lambda d: d.__setitem__("version", 2), "src: version: unsupported version 2"),
        (lambda d: d.__setitem__("version", "1"), "src: version: expected an integer, got string"),
        (lambda d: d.__setitem__("format", "other"), "src: format: expected 'azero-jax-program'"),
        (lambda d: d.__setitem__("extra", 1), "src: top level: unknown key 'extra'"),
        (lambda d: d["memory"].__setitem__("scalars", 1), "src: memory: MemoryShape.scalars must be an integer >= 2"),
        (lambda d: d["memory"].pop("features"), "src: memory: missing key 'features'"),
        (lambda d: d["predict"][2].__setitem__("f0", 1.5), "src: predict[2]: Predict instruction 2: element index f0"),
    ],
)
def test_json_errors_name_path(mutate, message):
    data = good_dict()
    ser.algorithm_from_dict(data)  # the unmutated dict is valid
    mutate(data)
    with pytest.raises(ser.ProgramSyntaxError) as info:
        ser.loads_algorithm(json.dumps(data), source="src")
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("text", ["", "   ", "{", "[]", "null", '{"format": "azero-jax-program"', "{}", "[" * 100000])
def test_bad_json_text(text):
    with pytest.raises(ser.ProgramSyntaxError, match=r"^src"):
        ser.loads_algorithm(text, source="src")


# ------------------------------------------------------------ files --


def test_save_and_load_both_formats(tmp_path):
    rng = np.random.default_rng(7)
    alg = next(random_programs(rng, 1))
    json_path = tmp_path / "prog.json"
    ser.save_algorithm(json_path, alg, BIG_MEMORY)
    assert ser.load_algorithm(json_path) == alg
    assert ser.load_algorithm(str(json_path), memory=BIG_MEMORY) == alg
    assert json_path.read_text() == ser.dumps_algorithm(alg, BIG_MEMORY)
    text_path = tmp_path / "prog.txt"
    ser.save_algorithm(text_path, alg)
    assert text_path.read_text() == ser.format_algorithm(alg)
    assert ser.load_algorithm(text_path) == printed_algorithm(alg)
    ser.save_algorithm(json_path, Algorithm())  # overwrite in place
    assert ser.load_algorithm(json_path) == Algorithm()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prog.json", "prog.txt"]  # no temp files left


def test_load_uses_stored_memory_for_validation(tmp_path):
    path = tmp_path / "p.json"
    ser.save_algorithm(path, Algorithm(predict=(Instruction(1, in1=5, in2=0, out=1),)), BIG_MEMORY)
    assert ser.load_algorithm(path).predict[0].in1 == 5
    with pytest.raises(ProgramError, match=re.escape(f"{path}: predict[0]: Predict instruction 0: field in1=s5")):
        ser.load_algorithm(path, memory=MemoryShape(4, 2, 1, 4))
    data = json.loads(path.read_text())
    data["memory"]["scalars"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ProgramError, match=r"predict\[0\]: .*out of range"):
        ser.load_algorithm(path)


@pytest.mark.parametrize(
    "content, message",
    [(None, "cannot read program file"), (b"", ":1: empty program file"), (b"  \n\t", ":1: empty program file"),
     (b"\xff\xfe junk", "not UTF-8"), (b"def Setup():\n", ":1: missing 'def Predict():'"),
     (b'{"format": "azero-jax-program",\n "version": 1,\n', ":3: invalid JSON")],
)
def test_load_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.prog"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ProgramError) as info:
        ser.load_algorithm(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_load_accepts_bom_and_crlf_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + ser.dumps_algorithm(Algorithm(setup=(NO_OP,))).replace("\n", "\r\n").encode())
    assert ser.load_algorithm(path) == Algorithm(setup=(NO_OP,))


# ----------------------------------------------------------------- fuzz --

SOURCE = "fuzz-src.prog"
JUNK = ["foo", "999", "s999", "v999", "m999", "x1", "", "(", ")", ",", "nan", "-", "1e999", "def", "#", "\x00", "é",
        "v", "NoOp()", "=", "1e-400", "\n", "def Learn():", "inf", "1 / ", "s1 =", "{", "[", "0x10", "٣"]
JSON_JUNK = [None, True, False, "x", "", 1.5, [], {}, -1, 0, 999, 10**400, "nan", "-inf", 65, "SCALAR_SUM_OP",
             {"op": 1}, [1, 2], 1e308]
FUNCTION_NAMES = sorted({m for op in ops_lib.OPS for m in re.findall(r"[a-z_]+(?=\()", op.printed)} | {"NoOp", "foo"})


def corrupt_text(text: str, rng: random.Random) -> tuple[str, MemoryShape | None]:
    lines = text.split("\n")
    kind = rng.randrange(8)
    memory = None
    if kind == 0:
        return text[: rng.randrange(len(text) + 1)], memory
    if kind == 1 and lines:
        del lines[rng.randrange(len(lines))]
    elif kind == 2:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == 3:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 4:
        tokens = re.split(r"(\W)", text)
        for _ in range(rng.randint(1, 3)):
            tokens[rng.randrange(len(tokens))] = rng.choice(JUNK)
        return "".join(tokens), memory
    elif kind == 5:
        names = [m for m in re.finditer(r"[a-zA-Z_]+(?=\()", text)]
        if names:
            m = rng.choice(names)
            return text[: m.start()] + rng.choice(FUNCTION_NAMES) + text[m.end():], memory
    elif kind == 6:
        addresses = list(re.finditer(r"[svm][0-9]+", text))
        memory = MemoryShape(rng.randint(2, 5), rng.randint(1, 5), rng.randint(0, 3), rng.choice([1, 4, 8]))
        if addresses:
            m = rng.choice(addresses)
            return text[: m.start()] + m.group()[0] + rng.choice(["999", "3", "0", "65536"]) + text[m.end():], memory
        return text, memory
    else:
        pos = rng.randrange(len(text) + 1)
        return text[:pos] + "".join(chr(rng.randrange(1, 300)) for _ in range(rng.randint(1, 4))) + text[pos:], memory
    return "\n".join(lines), memory


def json_locations(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_locations(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_locations(v, (*path, i))


def corrupt_json(text: str, rng: random.Random) -> tuple[str, MemoryShape | None]:
    kind = rng.randrange(6)
    if kind == 0:
        return text[: rng.randrange(len(text) + 1)], None
    if kind == 1:
        pos = rng.randrange(len(text))
        return text[:pos] + rng.choice(['"', "{", "}", ",", "]", "x", "0", ":"]) + text[pos + 1:], None
    data = json.loads(text)
    locations = [p for p in json_locations(data) if p]
    path = rng.choice(locations)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if kind == 2:
        parent[last] = rng.choice(JSON_JUNK)
    elif kind == 3:
        del parent[last]
    elif kind == 4:
        if isinstance(parent, dict):
            parent[rng.choice(["in1", "in2", "out", "d", "f0", "f1", "f2", "extra", "memory", "op"])] = rng.choice([0, 1, 0.5, 999])
        else:
            parent.append(rng.choice(JSON_JUNK))
    else:
        ops = [p for p in locations if p[-1] == "op"]
        if ops:
            target = rng.choice(ops)
            data[target[0]][target[1]]["op"] = rng.choice([rng.randrange(-2, 70), rng.choice(ops_lib.OPS).name, "NOPE"])
    return json.dumps(data), None


def test_fuzz_malformed_programs_raise_one_line_program_errors():
    np_rng = np.random.default_rng(99)
    rng = random.Random(1234)
    small = MemoryShape(5, 4, 3, 4)
    bases = [ser.format_algorithm(a) for a in random_programs(np_rng, 20, small, max_size=6)]
    bases += [p.read_text() for p in reference_programs()[:10]]
    json_bases = [ser.dumps_algorithm(a, small if i % 2 else None) for i, a in enumerate(random_programs(np_rng, 20, small, 6))]
    json_bases.append(ser.dumps_algorithm(ser.parse_algorithm(bases[-1])))
    outcomes = {"ok": 0, "error": 0}
    for trial in range(3000):
        if trial % 2:
            text, memory = corrupt_text(rng.choice(bases), rng)
        else:
            text, memory = corrupt_json(rng.choice(json_bases), rng)
        try:
            ser.loads_any(text, source=SOURCE, memory=memory)
            if text.lstrip().startswith("{"):
                ser.loads_algorithm(text, source=SOURCE, memory=memory)
            else:
                ser.parse_algorithm(text, source=SOURCE, memory=memory)
            outcomes["ok"] += 1
        except ProgramError as e:
            message = str(e)
            assert message.startswith(SOURCE), (message, text)
            assert "\n" not in message and "\r" not in message, (message, text)
            outcomes["error"] += 1
    assert outcomes["error"] >= 1000 and outcomes["ok"] >= 100, outcomes


def test_syntax_error_pickles():
    error = ser.ProgramSyntaxError("f.txt", "bad thing", line=3)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "f.txt:3: bad thing" and again.line == 3 and isinstance(again, ProgramError)


def test_json_number_overflowing_a_double_is_an_error_not_inf():
    """1e309 in a JSON program is one clear error (the text form rejects it
    too); infinity is written as the string "inf"."""
    text = ('{"format": "azero-jax-program", "version": 1, "predict": [], "learn": [], '
            '"setup": [{"op": "SCALAR_CONST_SET_OP", "out": 2, "d": %s}]}')
    with pytest.raises(ProgramError, match="1e309 does not fit a double"):
        ser.loads_algorithm(text % "1e309")
    assert ser.loads_algorithm(text % '"inf"').setup[0].d == math.inf
    assert ser.loads_algorithm(text % "-1e308").setup[0].d == -1e308
