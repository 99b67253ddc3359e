"""Run a search experiment (the reference's run_search_experiment).

  python experiments/search.py --config=tiny --output_dir=/tmp/run
  python experiments/search.py --config=demo --output_dir=runs/demo --seed=7
  python experiments/search.py --config=my.json --output_dir=runs/x --resume
  python experiments/search.py --config=tiny --output_dir=/tmp/run --population_size=50 --set 'fec=null'

--config is a preset name (demo, baseline, integration_linear,
integration_nonlinear, tiny) or a JSON config file (see
azero_jax.experiment.ExperimentConfig). Every config field is also a flag of
its own name (--population_size, --backend, ...; aliases --seed, --islands,
--max_minutes) and `--set KEY=VALUE` sets any field; both override the
config. Writes progress.csv, checkpoint.json, best_program.json/.txt and
results.json into --output_dir; --resume continues from its checkpoint.

A thin wrapper of `azero_jax.scripts.search` (the `azero-search` console
script once the package is installed).
"""

from __future__ import annotations

import os
import sys

# Runnable from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azero_jax import cpu_devices  # noqa: E402

cpu_devices.use_cpu_cores_or_exit()  # one XLA host device per core; before anything imports JAX

from azero_jax.scripts import search  # noqa: E402

if __name__ == "__main__":
    search.cli_main()
