"""Train budget (spec §8, reference `train_budget.cc`, `compute_cost.cc`).

Programs much more expensive per example than a baseline (the hand-written
neural net) are not trained at all, which bounds the cost of an individual
and so the search throughput. Cost is the op table's benchmark cost per op.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax import programs as programs_lib
from azero_jax.program import Algorithm, Instruction
from azero_jax.program_arrays import ComponentCode, ProgramArrays

_OP_COSTS = np.array([float(op.cost) for op in ops_lib.OPS], dtype=np.float64)

DEFAULT_THRESHOLD_FACTOR = 2.0


def component_cost(instructions: Sequence[Instruction]) -> float:
    """Sum of per-op costs, accumulated in double in program order."""
    cost = 0.0
    for instr in instructions:
        cost += float(ops_lib.OPS[instr.op].cost)
    return cost


def component_costs(code: ComponentCode) -> np.ndarray:
    """`component_cost` of every program of a packed component (B,), summed
    position by position in program order (the same float64 additions)."""
    cost = np.zeros(code.lengths.shape[0], dtype=np.float64)
    for k in range(int(code.lengths.max(initial=0))):
        cost += np.where(k < code.lengths, _OP_COSTS[code.ints[:, k, 0]], 0.0)
    return cost


@dataclasses.dataclass(frozen=True)
class TrainBudget:
    """Reference `TrainBudget`: the baseline's setup cost and per-example
    (predict + learn) cost, and the threshold factor."""

    baseline_setup_cost: float
    baseline_train_cost: float
    threshold_factor: float = DEFAULT_THRESHOLD_FACTOR

    @classmethod
    def from_baseline(cls, baseline: Algorithm, threshold_factor: float = DEFAULT_THRESHOLD_FACTOR) -> TrainBudget:
        return cls(component_cost(baseline.setup),
                   component_cost(baseline.predict) + component_cost(baseline.learn),
                   float(threshold_factor))

    @classmethod
    def neural_net(cls, init_sizes: Sequence[int] = (0, 0, 0),
                   threshold_factor: float = DEFAULT_THRESHOLD_FACTOR, baseline: str = "neural_net") -> TrainBudget:
        """Baseline built like the reference's Generator: the hand-written
        program padded to the experiment's init sizes."""
        return cls.from_baseline(programs_lib.hand_written(baseline, init_sizes), threshold_factor)

    def train_examples(self, algorithm: Algorithm, budget: int) -> int:
        """All `budget` examples if cost(candidate) <= factor * cost(baseline)
        at n = budget, else 0 (=> that task's fitness is 0).

        The reference aborts when predict + learn cost is 0 (both empty);
        here such a program simply passes the test.
        """
        n = float(budget)
        setup = component_cost(algorithm.setup)
        train = component_cost(algorithm.predict) + component_cost(algorithm.learn)
        baseline = self.baseline_setup_cost + n * self.baseline_train_cost
        return int(budget) if setup + n * train <= baseline * self.threshold_factor else 0

    def train_examples_batch(self, programs: ProgramArrays, budgets: np.ndarray) -> np.ndarray:
        """`train_examples` of every packed program (rows) for every budget
        (columns): an int64 array (B, len(budgets))."""
        n = np.asarray(budgets, dtype=np.int64)[None, :]
        setup = component_costs(programs.setup)[:, None]
        train = (component_costs(programs.predict) + component_costs(programs.learn))[:, None]
        baseline = self.baseline_setup_cost + n.astype(np.float64) * self.baseline_train_cost
        return np.where(setup + n * train <= baseline * self.threshold_factor, n, 0)


@dataclasses.dataclass(frozen=True)
class TrainBudgetSpec:
    """The train-budget setting of an experiment (its JSON form is
    {"baseline": ..., "factor": ...}): which hand-written program is the
    baseline (short or reference name, stored short) and the threshold
    factor. `build` makes the `TrainBudget` for the experiment's init sizes."""

    baseline: str = "neural_net"
    factor: float = DEFAULT_THRESHOLD_FACTOR

    def __post_init__(self):
        name = str(self.baseline).strip()
        name = programs_lib.REFERENCE_NAMES.get(name.upper(), name.lower())
        if name not in programs_lib.HAND_WRITTEN:
            raise ValueError(f"TrainBudgetSpec.baseline must be one of {', '.join(programs_lib.HAND_WRITTEN)}, "
                             f"got {self.baseline!r}")
        factor = self.factor
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or math.isnan(factor) or factor <= 0:
            raise ValueError(f"TrainBudgetSpec.factor must be a number > 0, got {factor!r}")
        object.__setattr__(self, "baseline", name)
        object.__setattr__(self, "factor", float(factor))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainBudgetSpec:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "factor": self.factor}

    def build(self, init_sizes: Sequence[int] = (0, 0, 0)) -> TrainBudget:
        """The budget: the baseline padded to `init_sizes` (like the reference's Generator)."""
        return TrainBudget.neural_net(init_sizes, self.factor, baseline=self.baseline)
