"""Task data checks: what a task's arrays must be, so that bad data is one
ValueError naming the array (and file) and what to do, never a silent cast or
a crash inside an interpreter.

  * every task (`check_arrays`, run by `tasks.Task`): real numbers (complex or
    non-numeric data is an error, not silently truncated), x of shape (n, F)
    with 1 <= F <= MAX_FEATURES and y of shape (n,), at least one example per
    split, the same F in both splits, labels 0/1 only in an accuracy task's
    splits; a multiclass task: 2 <= C <= F classes and integer labels
    0..C-1 in both splits (`check_num_classes`);
  * an explicit task's .npz file (`load_npz_arrays`): readable, the keys
    NPZ_KEYS, one task or stacked tasks of matching shapes;
  * finite values (`nonfinite`, `check_finite`): the interpreter follows the
    reference's rules for NaN and infinity, but a search on them is refused.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from azero_jax import fitness as fitness_lib

# The documented cap on the feature dimension F (a program holds FxF matrices
# per task: 4096 is already 128 MiB per matrix in float64).
MAX_FEATURES = 4096

NPZ_KEYS = ("x_train", "y_train", "x_valid", "y_valid")


def real_array(value, name: str) -> np.ndarray:
    """`value` as float64; complex (or non-numeric) data is an error, not
    silently truncated."""
    a = np.asarray(value)
    if np.iscomplexobj(a):
        raise ValueError(f"{name} is complex ({a.dtype}); task data must be real numbers")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float64)


def infer_num_classes(*labels) -> int:
    """C for multiclass labels given without it: 1 + the largest finite label
    over all given arrays (at least 2); wrong labels are reported by the
    checks that follow."""
    values = [np.asarray(y, dtype=np.float64).ravel() for y in labels]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    top = float(finite.max()) if finite.size else 0.0
    return max(2, int(min(top, 2**31 - 2)) + 1) if top >= 0 else 2


def check_num_classes(num_classes, features: int) -> int:
    """C of a multiclass task: an integer with 2 <= C <= F (the one-hot label
    in v1 and the logits in v2 are F-vectors)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes of a multiclass task must be an integer >= 2, got {num_classes!r}")
    if num_classes > features:
        raise ValueError(f"a multiclass task's num_classes ({num_classes}) exceeds its feature size F={features}: "
                         "the one-hot label (v1) and the logits (v2) are F-vectors, so C <= F; project to more "
                         "features or use fewer classes")
    return int(num_classes)


def _check_class_labels(y: np.ndarray, name: str, num_classes: int) -> None:
    wrong = ~((y >= 0) & (y <= num_classes - 1) & (y == np.floor(y)))
    if wrong.any():
        raise ValueError(f"{name} of a multiclass task must hold integer class labels 0..{num_classes - 1} "
                         f"(num_classes={num_classes}); {int(wrong.sum())} label(s) are not "
                         f"(e.g. {float(y[wrong][0])!r}): remap the classes or set num_classes")


def check_arrays(x_train, y_train, x_valid, y_valid, eval_type: str, num_classes: int = 0) -> dict[str, np.ndarray]:
    """The four arrays of a task as float64, checked (see the module
    docstring); `eval_type` is already canonical; `num_classes` is a
    multiclass task's C (checked here against F)."""
    if eval_type == fitness_lib.MULTICLASS:
        check_num_classes(num_classes, MAX_FEATURES)
    given = {"x_train": x_train, "y_train": y_train, "x_valid": x_valid, "y_valid": y_valid}
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "valid"):
        x = real_array(given[f"x_{split}"], f"x_{split}")
        y = real_array(given[f"y_{split}"], f"y_{split}")
        if x.ndim != 2:
            raise ValueError(f"x_{split} must have shape (n, F), got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y_{split} must have shape ({x.shape[0]},) to match x_{split}, got {y.shape}")
        if x.shape[0] < 1:
            raise ValueError(f"x_{split} has no examples; a task needs at least one {split} example")
        if eval_type == fitness_lib.ACCURACY:
            # NaN is left to `check_finite` (searches refuse non-finite data;
            # evaluating one program on it warns: the C++ cases include such data).
            wrong = (y != 0.0) & (y != 1.0) & ~np.isnan(y)
            if wrong.any():
                raise ValueError(f"y_{split} of an accuracy task must hold labels 0 and 1 only (accuracy is "
                                 "measured against them); "
                                 f"{int(wrong.sum())} label(s) are not (e.g. {float(y[wrong][0])!r}): map the classes "
                                 "to 0/1 or use eval_type rms")
        if eval_type == fitness_lib.MULTICLASS:
            _check_class_labels(y, f"y_{split}", num_classes)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    x_train, x_valid = arrays["x_train"], arrays["x_valid"]
    if not 1 <= x_train.shape[1] <= MAX_FEATURES:
        raise ValueError(f"x_train has {x_train.shape[1]} features; F must be in [1, {MAX_FEATURES}] "
                         "(the documented cap)")
    if x_valid.shape[1] != x_train.shape[1]:
        raise ValueError(
            f"x_train has {x_train.shape[1]} features but x_valid has {x_valid.shape[1]}"
        )
    if eval_type == fitness_lib.MULTICLASS:
        check_num_classes(num_classes, x_train.shape[1])
    elif num_classes:
        raise ValueError(f"num_classes is only used by multiclass tasks, not {eval_type} ones (got {num_classes})")
    return arrays


def nonfinite(task) -> str | None:
    """None when every value is finite, else which array holds NaN or
    infinity, how many, and the first index. (The interpreter follows
    the reference's rules for them, so the C++ cases may use them; a
    search on such data is refused: `check_finite`.)"""
    for name in ("x_train", "y_train", "x_valid", "y_valid"):
        a = getattr(task, name)
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            return (f"{name} has {int(bad.sum())} non-finite value(s) (NaN or infinity), the first at index "
                    f"{first}")
    return None


def load_npz_arrays(path: str) -> dict[str, np.ndarray]:
    """Reads and shape-checks an explicit-task .npz; returns arrays with a
    leading task axis: x (T, n, F), y (T, n)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"task data file {path!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # not a zip / npy, pickled content, truncated file
        raise ValueError(f"task data file {path!r} is not a readable .npz file: {e}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"task data file {path!r} holds a single array, not an .npz archive with keys {', '.join(NPZ_KEYS)}")
    with data:
        missing = [k for k in NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(
                f"task data file {path!r} is missing key(s) {', '.join(missing)}; "
                f"it must contain {', '.join(NPZ_KEYS)} (it has: {', '.join(data.files) or 'nothing'})"
            )
        try:
            arrays = {k: real_array(data[k], k) for k in NPZ_KEYS}
        except (TypeError, ValueError) as e:
            raise ValueError(f"task data file {path!r}: {e}") from None
        except (OSError, EOFError, zipfile.BadZipFile) as e:  # a truncated or damaged member
            raise ValueError(f"task data file {path!r} is damaged: {e}") from None
    x_ndim = arrays["x_train"].ndim
    if x_ndim not in (2, 3):
        raise ValueError(
            f"task data file {path!r}: x_train must have shape (n, F) or (tasks, n, F), got {arrays['x_train'].shape}"
        )
    if x_ndim == 2:
        arrays = {k: v[None] for k, v in arrays.items()}
    num, features = arrays["x_train"].shape[0], arrays["x_train"].shape[2]
    for split in ("train", "valid"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[0] != num or x.shape[2] != features:
            raise ValueError(
                f"task data file {path!r}: x_{split} has shape {x.shape[1:] if x_ndim == 2 else x.shape}, "
                f"expected (n, {features})" + ("" if x_ndim == 2 else f" stacked over {num} tasks")
            )
        if y.shape != x.shape[:2]:
            shown = y.shape[1:] if x_ndim == 2 else y.shape
            expected = x.shape[1:2] if x_ndim == 2 else x.shape[:2]
            raise ValueError(f"task data file {path!r}: y_{split} has shape {shown}, expected {expected}")
    return arrays


def check_finite(tasks, source: str = "") -> None:
    """ValueError naming the first task (and `source`, e.g. its file) whose
    data holds NaN or infinity: a search on them only scores garbage."""
    for t in tasks:
        problem = t.nonfinite()
        if problem is not None:
            where = f"task data file {source!r}" if source else f"task {t.name or t.index}"
            raise ValueError(f"{where}: {problem}: remove or impute them")
