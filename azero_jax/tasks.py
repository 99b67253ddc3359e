"""Tasks: the data one program is trained and validated on (reference §10)."""

from __future__ import annotations

import dataclasses

import numpy as np

from azero_jax import fitness as fitness_lib


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One task: train/valid arrays, eval type and epoch count.

    Arrays are float64: x of shape (n, F), y of shape (n,). `data_seed` keys
    the epoch shuffling (epochs after the first) and `index` is the task's
    position in its collection (it keys the random-op stream and FEC hashes).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    eval_type: str = fitness_lib.RMS_ERROR
    num_train_epochs: int = 1
    data_seed: int = 0
    param_seed: int = 0
    index: int = 0
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "eval_type", fitness_lib.parse_eval_type(self.eval_type))
        for split in ("train", "valid"):
            x = np.asarray(getattr(self, f"x_{split}"), dtype=np.float64)
            y = np.asarray(getattr(self, f"y_{split}"), dtype=np.float64)
            if x.ndim != 2:
                raise ValueError(f"x_{split} must have shape (n, F), got {x.shape}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must have shape ({x.shape[0]},) to match x_{split}, got {y.shape}")
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y)
        if self.x_valid.shape[1] != self.x_train.shape[1]:
            raise ValueError(
                f"x_train has {self.x_train.shape[1]} features but x_valid has {self.x_valid.shape[1]}"
            )
        if self.num_train_epochs < 1:
            raise ValueError(f"num_train_epochs must be >= 1, got {self.num_train_epochs}")

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_valid(self) -> int:
        return int(self.x_valid.shape[0])

    def epoch_order(self) -> np.ndarray:
        """Train example indices over all epochs (reference `GenerateEpochs`):
        epoch 0 in natural order, each later epoch a fresh shuffle of the
        previous order seeded by the data seed. NumPy's generator stands in for
        the reference's std::shuffle on mt19937 (same rule, other numbers)."""
        order = np.arange(self.num_train)
        epochs = [order]
        rng = np.random.default_rng(self.data_seed + 3274582109)
        for _ in range(1, self.num_train_epochs):
            order = order[rng.permutation(self.num_train)]
            epochs.append(order)
        return np.concatenate(epochs)
