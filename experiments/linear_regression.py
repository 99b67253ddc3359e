"""The README's main job: rediscover linear regression from scratch.

The reference's 5-minute demo (`run_demo.sh`, spec §16) on the batched
backend, with a fixed seed, early stopping and a time budget; see
`azero_jax.scripts.linear_regression` (the `azero-linear-regression` console
script once the package is installed), of which this file is a thin wrapper.

  python experiments/linear_regression.py                      # ~minutes on a laptop CPU
  python experiments/linear_regression.py --seed=2 --output_dir=runs/lr2
  python experiments/linear_regression.py --backend=reference --children_per_step=1   # the sequential reference (slow)

Every config field is a flag of its own name and `--set KEY=VALUE` sets any
(see azero_jax.cli); --help lists them with this script's defaults. Writes
progress.csv, checkpoint.json, best_program.json/.txt, results.json in
--output_dir; a rerun with the same flags resumes (or just reprints a
finished run).
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from azero_jax.scripts import linear_regression  # noqa: E402

if __name__ == "__main__":
    linear_regression.cli_main()
