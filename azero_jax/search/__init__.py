"""Host-side search: mutator and initial programs (`mutator`, and
`array_mutator` over a whole step's children), FEC spec and hash (`fec`) and
its LRU cache (`fec_cache`), train budget (`train_budget`), regularized
evolution / islands / random search (`evolution`, `evolution_state`),
multi-process islands (`distributed`). Evaluation is `azero_jax.evaluation`'s.

All randomness comes from an explicit `np.random.Generator`, so a search is
reproducible from its seed.
"""
