"""Functional equivalence checking, FEC (spec §9, reference `fec_cache.*`).

Two programs whose per-example errors on a short probe (first `num_train`
train and `num_valid` valid examples) are bit-identical almost surely compute
the same function, so the second one reuses the first one's per-task fitness.
This module holds the spec and the hash, `fec_cache` the cache; how the probe
errors and the full fitness are computed is the evaluator's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from azero_jax.hashing import GOLDEN, combine_mixed_into, hash_combine, mix64

# The reference re-seeds its probe RNG to this before every probe
# (`kFunctionalCacheRandomSeed`); here it is the probe's random-stream seed.
FEC_RANDOM_SEED = 235732282


@dataclasses.dataclass(frozen=True)
class FECSpec:
    """Reference `FECSpec`: probe sizes, LRU capacity, forced forgetting
    (0 = never forget)."""

    num_train_examples: int = 10
    num_valid_examples: int = 10
    cache_size: int = 100000
    forget_every: int = 100

    def __post_init__(self):
        for name, low in (("num_train_examples", 1), ("num_valid_examples", 1), ("cache_size", 2),
                          ("forget_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"FECSpec.{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.forget_every == 1:
            raise ValueError("FECSpec.forget_every must be 0 (never) or > 1, got 1")


_SEED = np.uint64(42)  # the reference's start value


def fec_hash_batch(errors: np.ndarray, lengths: np.ndarray, task_index: np.ndarray,
                   num_train_examples: np.ndarray) -> np.ndarray:
    """Vectorized `fec_hash` of J probes at once, as uint64 (J,).

    errors: (J, L) float; row j's first lengths[j] entries are its error
    sequence (train errors then valid errors; the rest is ignored).
    Hashing each probe separately costs several microseconds of Python per
    (program, task); a search hashes ~10 per individual, so the batched
    evaluator hashes a whole step's probes in a few array operations.
    The same as `fec_key(probe_digest(errors, lengths, task_index),
    num_train_examples)`: the digest depends on the probe only, so the
    evaluator may memoize it (see `CachedEvaluator`).
    """
    return fec_key(probe_digest(errors, lengths, task_index), num_train_examples)


def fec_key(digest: np.ndarray, num_train_examples: np.ndarray) -> np.ndarray:
    """The FEC key (uint64) of a probe digest and the train-example count of
    the full evaluation (so budget-truncated runs hash differently)."""
    with np.errstate(over="ignore"):
        return hash_combine(np.asarray(digest, dtype=np.uint64),
                            np.asarray(num_train_examples, dtype=np.int64).astype(np.uint64))


def probe_digest(errors: np.ndarray, lengths: np.ndarray, task_index: np.ndarray) -> np.ndarray:
    """The probe part of `fec_hash_batch`: row j's first lengths[j] errors
    combined in order (`hash_combine`), then the task index.

    Written for speed with the same values as that sequence of combines:
    the errors' `mix64(bits) + GOLDEN` terms in one pass over the batch, then
    one in-place combine per column over the rows still that long (rows
    sorted by length: a prefix). Seed 3 of the demo (9.75 M probes): 2.5 s
    hashing with a `hash_combine` + `np.where` per column
    (docs/performance.md)."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors must have shape (J, L), got {errors.shape}")
    lengths = np.asarray(lengths, dtype=np.int64)
    count, width = errors.shape
    h = np.full(count, _SEED, dtype=np.uint64)
    width = min(width, int(lengths.max(initial=0)))
    if width:
        # Rows longest first (column k then combines into a prefix of them), columns as
        # contiguous rows; -0.0 -> +0.0 (as std::hash<double>); NaN bits kept.
        order = np.argsort(-lengths, kind="stable")
        rows_at = count - np.searchsorted(lengths[order][::-1], np.arange(width), side="right")  # longer than k
        columns = np.ascontiguousarray(errors[order, :width].T, dtype="<f8")
        columns[columns == 0.0] = 0.0
        scratch = np.empty(count, np.uint64)
        with np.errstate(over="ignore"):
            terms = mix64(columns.view(np.uint64)) + GOLDEN
            for k, n in enumerate(rows_at.tolist()):
                combine_mixed_into(h[:n], terms[k, :n], scratch[:n])
        h[order] = h.copy()
    with np.errstate(over="ignore"):
        return hash_combine(h, np.asarray(task_index, dtype=np.int64).astype(np.uint64))


def fec_hash(train_errors: Sequence[float], valid_errors: Sequence[float], task_index: int,
             num_train_examples: int) -> int:
    """64-bit hash of the probe errors (exact float64 bits, as the reference
    hashes raw doubles), then the task index, then the train-example count of
    the full evaluation (so budget-truncated runs hash differently).

    Like the reference's sequence of HashCombine calls, train and valid errors
    are hashed as one sequence. -0.0 hashes as +0.0 (std::hash<double> does
    the same). The mix is deterministic across processes (unlike Python's
    hash) and identical to `fec_hash_batch`, so the reference and the JAX
    backends share it; the values differ from the C++ ones (not needed:
    hashes only key this process's cache and its checkpoint).
    """
    errors = np.concatenate([np.asarray(train_errors, dtype=np.float64).ravel(),
                             np.asarray(valid_errors, dtype=np.float64).ravel()])
    return int(fec_hash_batch(errors[None, :], np.array([errors.size]), np.array([task_index]),
                              np.array([num_train_examples]))[0])
