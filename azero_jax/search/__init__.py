"""Host-side search: mutator and initial programs (`mutator`), FEC (`fec`),
train budget (`train_budget`), multi-task evaluation front end
(`evaluator`, with the NumPy reference backend), the batched JAX backend
(`jax_evaluator`), regularized evolution / islands / random search
(`evolution`).

All randomness comes from an explicit `np.random.Generator`, so a search is
reproducible from its seed.
"""
