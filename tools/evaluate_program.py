"""Evaluate one program (JSON or the reference's printed text) with the NumPy
reference interpreter.

  python tools/evaluate_program.py PROGRAM_FILE --tasks=demo_search
  python tools/evaluate_program.py prog.txt --data=data.npz --eval_type=rms --json
  python tools/evaluate_program.py linear --tasks=demo_select   # a shipped program

PROGRAM_FILE may also name a shipped hand-written program (noop, linear,
neural_net, damaged_neural_net). The last line printed is `fitness=<value>`, or
with --json one JSON object with the fitness, train steps and the raw
validation predictions (s1) of each task.

A thin wrapper of `azero_jax.scripts.evaluate_program` (the `azero-evaluate`
console script once the package is installed).
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax.scripts import evaluate_program  # noqa: E402

if __name__ == "__main__":
    evaluate_program.cli_main()
