"""The README's main job on built-in data.

Until the search lands (issue: regularized evolution), this evaluates the
reference's hand-written programs (linear regression by SGD, the 2-layer
neural net with backprop) on the demo task presets with the NumPy reference
interpreter, and prints each program and its fitness. The search issue turns
this script into the linear-regression discovery demo.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import programs, reference, serialization, tasks  # noqa: E402
from azero_jax.program import MemoryShape  # noqa: E402

_NUM_TASKS = flags.DEFINE_integer("num_tasks", 10, "tasks per preset (the presets have 10 or 100)")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 0.01, "learning rate of the hand-written programs")

# (program, preset, memory S/V/M): the demo build is 4/3/1, the NN needs 5/9/2.
_RUNS = [
    ("linear", "demo_search", (4, 3, 1)),
    ("linear", "demo_select", (4, 3, 1)),
    ("linear", "nn_teacher", (5, 9, 2)),
    ("neural_net", "nn_teacher", (5, 9, 2)),
]


def main(argv: list[str]) -> None:
    del argv
    for name, preset, (s, v, m) in _RUNS:
        spec = tasks.get_preset(preset)
        spec = spec.replace(num_tasks=min(spec.num_tasks, _NUM_TASKS.value))
        task_list = tasks.make_tasks(spec)
        memory = MemoryShape(s, v, m, spec.features)
        algorithm = programs.hand_written(name, learning_rate=_LEARNING_RATE.value)
        start = time.perf_counter()
        result = reference.evaluate(algorithm, task_list, memory)
        seconds = time.perf_counter() - start
        steps = sum(r.train_steps for r in result.tasks)
        print(f"=== {name} on {preset} ({len(task_list)} tasks, F={spec.features}, memory {s}/{v}/{m})")
        print(serialization.format_algorithm(algorithm), end="")
        print(f"fitness={result.fitness:.6f}  ({steps} train steps in {seconds:.2f} s)\n")


if __name__ == "__main__":
    app.run(main)
