"""What users do with a found algorithm: read it, ablate it, re-tune its
constants, export it as standalone code and plot a run (host-side NumPy; the
batched evaluations go through `azero_jax.evaluation`)."""
