"""Search difficulty: success rates of evolution and random search at equal
budgets against the hand-written reference programs (AutoML-Zero §4.1).

  python experiments/search_difficulty.py                       # the default table
  python experiments/search_difficulty.py --families=linear --repeats=20 --individuals=2000

A thin wrapper of `azero_jax.scripts.search_difficulty` (the
`azero-search-difficulty` console script once the package is installed);
see that module for the definitions and flags.
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from azero_jax.scripts import search_difficulty  # noqa: E402

if __name__ == "__main__":
    search_difficulty.cli_main()
