"""Host-side search: mutator and initial programs (`mutator`), FEC (`fec`),
train budget (`train_budget`), multi-task evaluation front end
(`evaluator`), regularized evolution / islands / random search (`evolution`).

All randomness comes from an explicit `np.random.Generator`, so a search is
reproducible from its seed.
"""
