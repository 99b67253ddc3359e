"""Analyze one program (live code, ablation table, constant re-tuning):
`python tools/analyze_program.py --help`.

A thin wrapper of `azero_jax.scripts.analyze_program` (the
`azero-analyze-program` console script once the package is installed),
runnable from a checkout.
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax.scripts import analyze_program  # noqa: E402

if __name__ == "__main__":
    analyze_program.cli_main()
