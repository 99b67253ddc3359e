"""The plain NumPy float64 reference interpreter: the oracle.

One program, one task, one instruction at a time, written to be read against
the authors' `executor.h` (spec §6-§7) rather than to be fast. Everything
faster in this package is proven equal to it by differential tests, and it is
itself proven against the C++ outputs in `tests/data/cpp_reference_cases.tar.xz`.

Op semantics come from the op table's kernels (`azero_jax.ops`), evaluated with
``xp = numpy``; the per-example error, early-stop, loss and fitness rules from
`azero_jax.fitness` (their scalar path; the JAX interpreter runs the same
rules batched). This module owns memory, the evaluation loop, the loss
accumulation and the random stream wiring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from azero_jax import fitness as fitness_lib
from azero_jax import multiclass as mc
from azero_jax import ops as ops_lib
from azero_jax import rng as rng_lib
from azero_jax.program import Algorithm, Instruction, MemoryShape
from azero_jax.tasks import Task


class Memory:
    """S scalars, V vectors (F,), M matrices (F, F), all zero on creation."""

    def __init__(self, shape: MemoryShape, dtype=np.float64):
        self.shape = shape
        f = shape.features
        self.scalar = np.zeros((shape.scalars,), dtype)
        self.vector = np.zeros((shape.vectors, f), dtype)
        self.matrix = np.zeros((max(shape.matrices, 0), f, f), dtype)
        self._banks = {ops_lib.SCALAR: self.scalar, ops_lib.VECTOR: self.vector, ops_lib.MATRIX: self.matrix}

    def read(self, kind: str | None, address: int):
        if kind is None:
            return None
        return self._banks[kind][address]

    def write(self, kind: str, address: int, value) -> None:
        self._banks[kind][address] = value


@dataclasses.dataclass
class TaskResult:
    """What one (program, task) evaluation produced.

    `valid_predictions` holds raw s1 after Predict on each validation example
    (no sigmoid), on multiclass tasks the predicted class (argmax of the
    logits in v2; NaN where the softmax is undefined); it covers every
    example even past a validation early stop,
    since Predict-only steps cannot change the outcome. `train_errors` and
    `valid_errors` are the per-example errors FEC hashes (spec §9).
    """

    fitness: float
    train_steps: int
    stopped_early: bool
    valid_stop_index: int = -1
    valid_predictions: np.ndarray | None = None
    train_errors: list[float] = dataclasses.field(default_factory=list)
    valid_errors: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class EvalResult:
    fitness: float
    tasks: list[TaskResult]


def execute(
    instructions: Sequence[Instruction],
    memory: Memory,
    *,
    seed: int = 0,
    task_index: int = 0,
    phase: int = rng_lib.PHASE_SETUP,
    example: int = 0,
    component: str = "setup",
) -> None:
    """Runs `instructions` in order on `memory` (in place). The keyword
    arguments locate the execution in the random stream (random-set ops)."""
    features = memory.shape.features
    with np.errstate(all="ignore"):
        for position, instr in enumerate(instructions):
            spec = ops_lib.OPS[instr.op]
            if spec.out is None:
                continue
            old = memory.read(spec.out, instr.out)
            u1 = u2 = None
            if spec.random:
                key = rng_lib.instruction_key(np, seed, task_index, phase, example,
                                              rng_lib.COMPONENT_INDEX[component], position)
                u1 = rng_lib.uniforms(np, key, old.shape, np.float64, stream=0)
                u2 = rng_lib.uniforms(np, key, old.shape, np.float64, stream=1)
            args = ops_lib.OpArgs(
                a=memory.read(spec.in1, instr.in1), b=memory.read(spec.in2, instr.in2), old=old,
                d=instr.d, f0=instr.f0, f1=instr.f1, f2=instr.f2, u1=u1, u2=u2, features=features,
            )
            memory.write(spec.out, instr.out, spec.kernel(np, args))


class _Executor:
    """One program on one task's memory, keyed for the random stream."""

    def __init__(self, algorithm: Algorithm, task: Task, memory_shape: MemoryShape, seed: int):
        self.algorithm = algorithm
        self.task = task
        self.memory = Memory(memory_shape.with_features(task.features))
        self.seed = seed

    def run(self, component: str, phase: int, example: int) -> None:
        execute(self.algorithm.component(component), self.memory, seed=self.seed, task_index=self.task.index,
                phase=phase, example=example, component=component)


def evaluate_task(
    algorithm: Algorithm,
    task: Task,
    memory: MemoryShape,
    *,
    seed: int = 0,
    max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
    num_train_examples: int | None = None,
    num_valid_examples: int | None = None,
) -> TaskResult:
    """Evaluates `algorithm` on `task` exactly as the reference `Executor`.

    Wipe memory, run Setup once; for each training example (epoch order):
    v0 = x, s0 = 0, Predict, sigmoid(s1) for classification, early stop if
    |y - s1| is NaN or > max_abs_error, v0 = x, s0 = y, Learn; after each epoch
    validate with Predict only. Fitness is the max over epochs; divergence in
    the first epoch gives 0. `num_train_examples` (all epochs together, e.g.
    from the train budget) defaults to the task's train size x epochs.

    Multiclass tasks (`azero_jax.multiclass`): v1 = 0 before Predict, v2 =
    padded softmax of its first C logits after it (error 1 - p_true), v1 =
    one-hot label before Learn; validation scores the argmax of v2's logits.
    """
    with np.errstate(all="ignore"):
        return _evaluate_task(algorithm, task, memory, seed, max_abs_error, num_train_examples, num_valid_examples)


def _evaluate_task(algorithm, task, memory, seed, max_abs_error, num_train_examples, num_valid_examples):
    multiclass = task.eval_type == fitness_lib.MULTICLASS
    if multiclass:
        mc.check_vectors(memory.vectors)
    executor = _Executor(algorithm, task, memory, seed)
    mem = executor.memory
    classification = task.eval_type == fitness_lib.ACCURACY
    per_epoch = task.num_train
    max_train = per_epoch * task.num_train_epochs
    num_all_train = max_train if num_train_examples is None else min(int(num_train_examples), max_train)
    num_valid = task.num_valid if num_valid_examples is None else min(int(num_valid_examples), task.num_valid)
    if num_valid < 1:
        raise ValueError(f"task {task.name or task.index} needs at least one validation example")
    order = task.epoch_order()

    executor.run("setup", rng_lib.PHASE_SETUP, 0)
    result = TaskResult(fitness=fitness_lib.MIN_FITNESS, train_steps=0, stopped_early=False)
    best = fitness_lib.MIN_FITNESS
    for epoch, start in enumerate(range(0, num_all_train, max(per_epoch, 1))):
        for step in range(start, min(start + per_epoch, num_all_train)):
            example = order[step]
            x, y = task.x_train[example], task.y_train[example]
            result.train_steps += 1  # counted before Predict, like the reference
            mem.vector[ops_lib.FEATURES_ADDRESS] = x
            if multiclass:
                mem.vector[mc.LABEL_VECTOR_ADDRESS] = 0.0
            else:
                mem.scalar[ops_lib.LABEL_ADDRESS] = 0.0
            executor.run("predict", rng_lib.PHASE_TRAIN, step)
            if multiclass:
                probs, error, stop = mc.train_rule(np, y, mem.vector[mc.PREDICTION_VECTOR_ADDRESS],
                                                   task.num_classes, max_abs_error)
                mem.vector[mc.PREDICTION_VECTOR_ADDRESS] = probs  # Learn sees the softmax
            else:
                prediction = fitness_lib.train_prediction(np, mem.scalar[ops_lib.PREDICTION_ADDRESS], classification)
                mem.scalar[ops_lib.PREDICTION_ADDRESS] = prediction  # Learn sees the sigmoid
                error, stop = fitness_lib.train_error(np, y, prediction, max_abs_error)
            result.train_errors.append(float(error))
            if stop:
                result.stopped_early = True
                break
            mem.vector[ops_lib.FEATURES_ADDRESS] = x
            if multiclass:
                mem.vector[mc.LABEL_VECTOR_ADDRESS] = mc.one_hot(np, y, task.features, np.float64)
            else:
                mem.scalar[ops_lib.LABEL_ADDRESS] = y
            executor.run("learn", rng_lib.PHASE_TRAIN, step)
        if result.stopped_early:
            if epoch == 0:
                return result  # first-epoch divergence: minimum fitness
            break
        best = max(best, _validate(executor, task, num_valid, epoch, max_abs_error, result))
    result.fitness = best
    return result


def _validate(executor: _Executor, task: Task, num_valid: int, epoch: int, max_abs_error: float,
              result: TaskResult) -> float:
    """Predict-only pass over the first `num_valid` validation examples."""
    mem = executor.memory
    classification = task.eval_type == fitness_lib.ACCURACY
    multiclass = task.eval_type == fitness_lib.MULTICLASS
    predictions = np.empty(num_valid)
    errors = []
    loss = 0.0
    stop_index = -1
    for i in range(num_valid):
        mem.vector[ops_lib.FEATURES_ADDRESS] = task.x_valid[i]
        if multiclass:
            mem.vector[mc.LABEL_VECTOR_ADDRESS] = 0.0
        else:
            mem.scalar[ops_lib.LABEL_ADDRESS] = 0.0
        executor.run("predict", rng_lib.PHASE_VALID, epoch * task.num_valid + i)
        if multiclass:
            prediction, error, stop = mc.valid_rule(np, task.y_valid[i], mem.vector[mc.PREDICTION_VECTOR_ADDRESS],
                                                    task.num_classes, max_abs_error)
        else:
            prediction = float(mem.scalar[ops_lib.PREDICTION_ADDRESS])
        predictions[i] = prediction
        if stop_index >= 0:
            continue  # keep reporting predictions; the fitness is already 0
        if not multiclass:
            error, stop = fitness_lib.valid_error(np, task.y_valid[i], prediction, classification, max_abs_error)
        loss += fitness_lib.loss_term(np, error, classification or multiclass)
        errors.append(error)
        if stop:
            stop_index = i
    result.valid_predictions = predictions
    result.valid_errors = errors
    result.valid_stop_index = stop_index
    return fitness_lib.fitness_from_loss(np, loss, num_valid, classification or multiclass, ok=stop_index < 0)


def evaluate(
    algorithm: Algorithm,
    tasks: Sequence[Task],
    memory: MemoryShape,
    *,
    seed: int = 0,
    combination: str = fitness_lib.MEAN,
    max_abs_error: float = fitness_lib.MAX_ABS_ERROR,
    num_train_examples: Sequence[int | None] | None = None,
) -> EvalResult:
    """Evaluates on every task and combines the per-task fitnesses (spec §8)."""
    results = [
        evaluate_task(algorithm, task, memory, seed=seed, max_abs_error=max_abs_error,
                      num_train_examples=None if num_train_examples is None else num_train_examples[i])
        for i, task in enumerate(tasks)
    ]
    return EvalResult(fitness=fitness_lib.combine([r.fitness for r in results], combination), tasks=results)
