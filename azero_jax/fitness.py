"""Fitness definitions (reference §7-§8): squashed RMS, accuracy, aggregation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RMS_ERROR = "rms"
ACCURACY = "accuracy"
EVAL_TYPES = (RMS_ERROR, ACCURACY)
_EVAL_TYPE_ALIASES = {
    "rms": RMS_ERROR, "rms_error": RMS_ERROR, "regression": RMS_ERROR,
    "accuracy": ACCURACY, "classification": ACCURACY,
}

MIN_FITNESS = 0.0
MAX_FITNESS = 1.0
MAX_ABS_ERROR = 100.0  # the reference's default early-stopping threshold

MEAN, MEDIAN = "mean", "median"


def parse_eval_type(value: str) -> str:
    """`rms` / `RMS_ERROR` / `accuracy` / `ACCURACY` -> canonical name."""
    key = str(value).strip().lower()
    if key not in _EVAL_TYPE_ALIASES:
        raise ValueError(f"unknown eval type {value!r}; use one of: rms, accuracy")
    return _EVAL_TYPE_ALIASES[key]


def sigmoid(x):
    """1 / (1 + exp(-x)) in the input's precision, as the reference computes it."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def flip_and_squash(rmse: float) -> float:
    """1 - (2/pi) atan(rmse); NaN/inf -> 0 (reference `FlipAndSquash`)."""
    if math.isnan(rmse) or math.isinf(rmse):
        return MIN_FITNESS
    return 1.0 - (2.0 / math.pi) * math.atan(rmse)


def combine(fitnesses: Sequence[float], mode: str = MEAN) -> float:
    """Aggregates per-task fitnesses: arithmetic mean, or the reference's
    median (the element at index n // 2 after sorting: the upper median)."""
    values = [float(f) for f in fitnesses]
    if not values:
        raise ValueError("cannot combine an empty list of task fitnesses")
    if mode == MEAN:
        return float(sum(values) / len(values))
    if mode == MEDIAN:
        return sorted(values)[len(values) // 2]
    raise ValueError(f"unknown fitness combination {mode!r}; use 'mean' or 'median'")
