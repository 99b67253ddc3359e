"""Search on projected binary image tasks: the reference's `baseline` config
(spec §11, §17) on real data, with baselines on the same tasks.

  python experiments/cifar_binary.py --output_dir=runs/digits            # built-in data, runs anywhere
  python experiments/cifar_binary.py --dataset=fashion_mnist --max_minutes=30 --output_dir=runs/fm
  python experiments/cifar_binary.py --dataset=cifar10 --data_dir=~/data/cifar10 --output_dir=runs/c10
  python experiments/cifar_binary.py ... --resume                        # continue an interrupted run

A thin wrapper of `azero_jax.scripts.cifar_binary` (the `azero-cifar-binary`
console script once the package is installed), which documents the data
flags, this script's config defaults (the baseline preset with population
100, 1 child per step, progress every 1000, checkpoints every 300 s, seed
1000060, the batched backend: float32 on a GPU/TPU, float64 on CPU) and the
outputs. Every config field is a flag of its own name and `--set KEY=VALUE`
sets any (see azero_jax.cli); --help lists them.
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from azero_jax.scripts import cifar_binary  # noqa: E402

if __name__ == "__main__":
    cifar_binary.cli_main()
