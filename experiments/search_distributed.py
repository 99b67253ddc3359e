"""Island evolution across processes on `jax.distributed` (first step).

  python experiments/search_distributed.py --config=tiny --islands=2 --migration_every=5 --steps=50 \
      --coordinator_address=127.0.0.1:12345 --num_processes=2 --process_id=0 --output_dir=/tmp/d &
  python experiments/search_distributed.py ... --process_id=1 ...

A thin wrapper of `azero_jax.scripts.search_distributed` (the
`azero-search-distributed` console script once the package is installed),
which documents the flags, the island placement (island g on process
g mod N) and results.json. One JAX device per process: it does not split the
CPU into host devices like the other entry points.
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax.scripts import search_distributed  # noqa: E402

if __name__ == "__main__":
    search_distributed.cli_main()
