"""Dead-code analysis: stripping dead instructions never changes any result
(checked with the reference interpreter on random programs over all 65 ops,
with NaN/Inf-provoking constants and random ops), and the analysis finds the
dead instructions of hand-made cases."""

from __future__ import annotations

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import liveness, reference, tasks
from azero_jax import program_arrays as pa
from azero_jax import programs as programs_lib
from azero_jax.jax_eval import parity
from azero_jax.program import Algorithm, MemoryShape, make_instruction

MEM = MemoryShape(4, 3, 2, 4)
_RNG = np.random.default_rng(7)
_X = _RNG.normal(size=(18, 4))
TASKS = [*tasks.make_tasks(tasks.TaskSpec(kind="linear", features=4, num_train=12, num_valid=6, num_tasks=1)),
         tasks.Task(_X[:12], (_X[:12, 0] > 0).astype(float), _X[12:], (_X[12:, 0] > 0).astype(float),
                    eval_type=fitness_lib.ACCURACY, num_train_epochs=2, data_seed=5, index=1, name="binary")]


def _bits(values) -> bytes:
    return b"" if values is None else np.asarray(values, dtype=np.float64).tobytes()


def _same(a: reference.TaskResult, b: reference.TaskResult) -> bool:
    """Bit for bit (so -0.0 vs +0.0 and NaN payloads count)."""
    return (_bits(a.train_errors) == _bits(b.train_errors) and _bits(a.valid_errors) == _bits(b.valid_errors)
            and _bits(a.valid_predictions) == _bits(b.valid_predictions)
            and a.train_steps == b.train_steps and a.stopped_early == b.stopped_early
            and (a.fitness == b.fitness or (np.isnan(a.fitness) and np.isnan(b.fitness))))


def test_stripping_dead_code_changes_nothing_on_random_programs():
    rng = np.random.default_rng(0)
    programs = parity.random_programs(rng, MEM, 400, max_size=10)
    stripped_some = 0
    for program in programs:
        lean = liveness.strip_dead_code(program)
        stripped_some += lean != program
        for task in TASKS:
            a = reference.evaluate_task(program, task, MEM, seed=3)
            b = reference.evaluate_task(lean, task, MEM, seed=3)
            assert _same(a, b), (program, task.name)
    assert stripped_some > 200  # the check is not vacuous: most random programs have dead code


def test_hand_written_learners_are_all_live():
    for program in (programs_lib.linear_algorithm(), programs_lib.neural_net_algorithm()):
        assert all(all(mask) for mask in liveness.live_instructions(program))


def test_dead_instructions_found():
    i = make_instruction
    program = Algorithm(
        setup=(i("SCALAR_CONST_SET", out=2, d=0.5),  # live: read by Learn
               i("SCALAR_CONST_SET", out=3, d=0.7)),  # dead: overwritten in Learn before any read
        predict=(i("VECTOR_INNER_PRODUCT", in1=0, in2=1, out=1),
                 i("VECTOR_SUM", in1=0, in2=0, out=2)),  # dead: Learn overwrites v2 before reading it
        learn=(i("SCALAR_DIFF", in1=0, in2=1, out=3), i("SCALAR_PRODUCT", in1=2, in2=3, out=3),
               i("SCALAR_VECTOR_PRODUCT", in1=3, in2=0, out=2), i("VECTOR_SUM", in1=1, in2=2, out=1),
               i("SCALAR_CONST_SET", out=0, d=9.0)))  # dead: s0 is set before every Predict and Learn
    setup, predict, learn = liveness.live_instructions(program)
    assert setup == (True, False)
    assert predict == (True, False)
    assert learn == (True, True, True, True, False)


def test_partial_writes_keep_the_earlier_write_live():
    i = make_instruction
    program = Algorithm(
        setup=(i("VECTOR_GAUSSIAN_SET", out=1, f0=0.0, f1=1.0), i("VECTOR_CONST_SET", out=1, f0=0.3, f1=2.0)),
        predict=(i("VECTOR_INNER_PRODUCT", in1=0, in2=1, out=1),), learn=())
    assert liveness.live_instructions(program)[0] == (True, True)


def test_state_carried_through_the_loop_is_live():
    """A value written in Predict and read in the next Predict (a counter)."""
    i = make_instruction
    program = Algorithm(
        setup=(i("SCALAR_CONST_SET", out=3, d=1.0),),
        predict=(i("SCALAR_SUM", in1=2, in2=3, out=2), i("SCALAR_SUM", in1=2, in2=0, out=1)),
        learn=())
    assert all(all(mask) for mask in liveness.live_instructions(program))


def test_removing_dead_code_shortens_and_keeps_results():
    base = programs_lib.linear_algorithm((5, 1, 4))
    lean = liveness.strip_dead_code(base, keep_positions=False)
    assert lean.sizes == (1, 1, 4)
    task = TASKS[0]
    assert reference.evaluate_task(lean, task, MEM).fitness == reference.evaluate_task(base, task, MEM).fitness


# ------------------------------------------------- packed programs --

def test_batch_analysis_equals_per_program():
    """`live_instructions_batch` (the search's packed form) marks exactly the
    instructions `live_instructions` marks, over all ops and random sizes."""
    rng = np.random.default_rng(1)
    programs = parity.random_programs(rng, MEM, 500, max_size=12) + [
        programs_lib.linear_algorithm(), programs_lib.neural_net_algorithm(), Algorithm()]
    arrays = pa.from_algorithms(programs, 16)  # capacity beyond every length
    masks = liveness.live_instructions_batch(arrays)
    for b, program in enumerate(programs):
        for comp, (want, got) in enumerate(zip(liveness.live_instructions(program), masks, strict=True)):
            assert tuple(got[b, :len(want)].tolist()) == want and not got[b, len(want):].any(), (b, comp)


def test_live_code_keys_ignore_dead_code_only():
    """Equal keys for programs that differ in dead code (and in dead code's
    length: live instructions move), different keys when live code differs,
    and a random-set op's position counts (its stream is keyed by it)."""
    rng = np.random.default_rng(2)
    programs = parity.random_programs(rng, MEM, 300, max_size=10)
    noop = make_instruction("NO_OP")
    variants = []
    for p in programs:
        lean = liveness.strip_dead_code(p, keep_positions=False)
        has_random = any(instr.spec.random for code in (p.setup, p.predict, p.learn) for instr in code)
        variants.append((p, liveness.strip_dead_code(p), None if has_random else lean,
                         None if has_random else lean.replace(setup=(noop,) + lean.setup)))
    flat = [v for group in variants for v in group if v is not None]
    keys = liveness.live_code_keys(pa.from_algorithms(flat))
    by_program, k = [], 0
    for group in variants:
        n = sum(v is not None for v in group)
        by_program.append(set(keys[k:k + n].tolist()))
        k += n
    assert all(len(s) == 1 for s in by_program)  # every variant of a program shares its key
    def live_code(p):  # per component: the live instructions, with the positions of random ones
        return tuple(tuple((instr, pos if instr.spec.random else None) for pos, (instr, alive)
                           in enumerate(zip(code, mask, strict=True)) if alive)
                     for code, mask in zip((p.setup, p.predict, p.learn), liveness.live_instructions(p), strict=True))
    distinct = {live_code(p) for p in programs}
    assert len({next(iter(s)) for s in by_program}) == len(distinct) > 100  # distinct live code, distinct keys
    i = make_instruction
    moved = [Algorithm(setup=pad + (i("SCALAR_UNIFORM_SET", out=2, f0=-1.0, f1=1.0),),
                       predict=(i("SCALAR_SUM", in1=2, in2=2, out=1),)) for pad in ((), (noop,))]
    a, b = liveness.live_code_keys(pa.from_algorithms(moved)).tolist()
    assert a != b
    assert liveness.live_code_keys(pa.from_algorithms([Algorithm(setup=(i("SCALAR_CONST_SET", out=30, d=1.0),))],
                                                      )) is None  # address beyond the packed masks
