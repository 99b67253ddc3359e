"""The native interpreter's evaluation loop: one (program, task) job as
`reference._evaluate_task` runs it, and a whole batch of jobs in parallel.

Task data arrive padded (`azero_jax.native_eval.TaskData`); programs as the
search's `ProgramArrays` fields. Per-example rules restate `azero_jax.fitness`
and `azero_jax.multiclass` (see `kernel.py` for why and how exactly).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from azero_jax.native_eval.kernel import _FAST, _JIT, STACK, _execute

RMS, ACCURACY, MULTICLASS = 0, 1, 2
_PHASE_SETUP, _PHASE_TRAIN, _PHASE_VALID = 0, 1, 2
_SETUP, _PREDICT, _LEARN = 0, 1, 2
_FEATURES, _LABEL, _PREDICTION = 0, 0, 1  # v0, s0, s1
_LABEL_VECTOR, _PREDICTION_VECTOR = 1, 2  # multiclass v1, v2


@njit(inline="always", **_FAST)
def _logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


@njit(inline="always", **_FAST)
def _predict_inputs(s, v, x, row, f, rule):
    """Before Predict: v0 = x[row]; the label hidden (s0 = 0, multiclass: v1 = 0)."""
    for i in range(f):
        v[_FEATURES, i] = x[row, i]
    if rule == MULTICLASS:
        for i in range(f):
            v[_LABEL_VECTOR, i] = 0.0
    else:
        s[_LABEL] = 0.0


@njit(inline="always", **_FAST)
def _nan_max(a, b):
    """`np.maximum(a, b)`: NaN if either is NaN, else the larger (a on ties)."""
    return b if (b > a or b != b) and a == a else a


@njit(**_FAST)
def _softmax_into(v, f, classes, tmp):
    """v[2] = padded softmax of its first C logits (`multiclass.softmax`);
    returns nothing (NaN everywhere when undefined)."""
    top = v[_PREDICTION_VECTOR, 0]
    for c in range(1, classes):
        z = v[_PREDICTION_VECTOR, c]
        top = _nan_max(top, z)
    for c in range(classes):
        tmp[c] = np.exp(v[_PREDICTION_VECTOR, c] - top)
    total = tmp[0]
    for c in range(1, classes):
        total = total + tmp[c]
    for c in range(classes):
        v[_PREDICTION_VECTOR, c] = tmp[c] / total
    for c in range(classes, f):
        v[_PREDICTION_VECTOR, c] = 0.0


@njit(**_FAST)
def _predicted_class(v, classes):
    """`multiclass.predicted_class`: argmax (first on ties), NaN when undefined."""
    best = 0.0
    top = v[_PREDICTION_VECTOR, 0]
    nan_max = top
    for c in range(1, classes):
        z = v[_PREDICTION_VECTOR, c]
        if z > top:
            best = float(c)
            top = z
        nan_max = _nan_max(nan_max, z)
    if math.isfinite(nan_max):
        return best
    return np.nan


@njit(inline="always", **_FAST)
def evaluate_lane(setup_i, setup_f, setup_n, pred_i, pred_f, pred_n, learn_i, learn_f, learn_n,
                  x_train, y_train, order, per_epoch, x_valid, y_valid, valid_size, num_valid, rule, classes, f,
                  task_index, seed, num_all_train, max_abs_error, s, v, m, tmp, errors, valid_errors):
    """One job. `valid_size`: the task's validation count (keys the random
    stream); `num_valid`: how many of them to run. Returns (fitness,
    train_steps, n_errors): `errors` (a row of at
    least num_all_train + num_valid entries, or empty) receives the train
    errors, then the last validated epoch's valid errors, as the reference
    records them for FEC."""
    record = errors.shape[0] > 0
    _execute(setup_i, setup_f, setup_n, s, v, m, f, tmp, seed, task_index, _PHASE_SETUP, 0, _SETUP)
    steps = 0
    n_train_errors = 0
    n_valid_errors = 0
    best = 0.0
    epoch = 0
    start = 0
    stride = max(per_epoch, 1)
    while start < num_all_train:
        stop_train = False
        for step in range(start, min(start + per_epoch, num_all_train)):
            ex = order[step]
            y = y_train[ex]
            steps += 1
            _predict_inputs(s, v, x_train, ex, f, rule)
            _execute(pred_i, pred_f, pred_n, s, v, m, f, tmp, seed, task_index, _PHASE_TRAIN, step, _PREDICT)
            if rule == MULTICLASS:
                _softmax_into(v, f, classes, tmp)
                error = 1.0 - v[_PREDICTION_VECTOR, int(y)]
            else:
                if rule == ACCURACY:
                    s[_PREDICTION] = _logistic(s[_PREDICTION])
                error = abs(y - s[_PREDICTION])
            if record:
                errors[n_train_errors] = error
            n_train_errors += 1
            if error != error or error > max_abs_error:
                stop_train = True
                break
            for i in range(f):
                v[_FEATURES, i] = x_train[ex, i]
            if rule == MULTICLASS:
                for i in range(f):
                    v[_LABEL_VECTOR, i] = 1.0 if i == int(y) else 0.0
            else:
                s[_LABEL] = y
            _execute(learn_i, learn_f, learn_n, s, v, m, f, tmp, seed, task_index, _PHASE_TRAIN, step, _LEARN)
        if stop_train:
            if epoch == 0:
                return 0.0, steps, n_train_errors
            break
        # validation (Predict only), every example even after a stop: memory carries on
        loss = 0.0
        valid_stop = False
        n_valid_errors = 0
        for i in range(num_valid):
            _predict_inputs(s, v, x_valid, i, f, rule)
            _execute(pred_i, pred_f, pred_n, s, v, m, f, tmp, seed, task_index, _PHASE_VALID,
                     epoch * valid_size + i, _PREDICT)
            if valid_stop:
                continue
            label = y_valid[i]
            if rule == MULTICLASS:
                predicted = _predicted_class(v, classes)
                if predicted != predicted:
                    error = np.inf
                else:
                    error = 0.0 if predicted == label else 1.0
                loss += error
            elif rule == ACCURACY:
                p = _logistic(s[_PREDICTION])
                if p < 0.0 or p > 1.0:
                    error = np.inf
                else:
                    error = 0.0 if (label > 0.5) == (p > 0.5) else 1.0
                loss += error
            else:
                error = abs(label - s[_PREDICTION])
                loss += error * error
            if record:
                valid_errors[n_valid_errors] = error
            n_valid_errors += 1
            if error != error or error > max_abs_error:
                valid_stop = True
        if not valid_stop:
            if rule == RMS:
                rmse = math.sqrt(loss / num_valid)
                fit = 0.0 if not math.isfinite(rmse) else 1.0 - (2.0 / math.pi) * math.atan(rmse)
            else:
                fit = 1.0 - loss / num_valid
            best = max(best, fit)
        epoch += 1
        start += stride
    if record:  # the last validated epoch's errors after all train errors, as the reference records them
        for i in range(n_valid_errors):
            errors[n_train_errors + i] = valid_errors[i]
    return best, steps, n_train_errors + n_valid_errors


@njit(**_FAST)
def _code_ok(ints, n, kinds, limits):
    """Whether the first n instructions have known op ids and addresses
    inside memory (`limits[kind code]`, kind codes as `program.OPERAND_KIND_CODES`
    in `kinds`): the interpreter itself does not bound-check."""
    for pos in range(n):
        op = ints[pos, 0]
        if op < 0 or op >= kinds.shape[0]:
            return False
        for k in range(3):
            address = ints[pos, 1 + k]
            if address < 0 or address >= limits[kinds[op, k]]:
                return False
    return True


@njit(nogil=True, **_JIT)
def evaluate_jobs(setup_i, setup_f, setup_n, pred_i, pred_f, pred_n, learn_i, learn_f, learn_n,
                  x_train, y_train, order, per_epoch, x_valid, y_valid, valid_size, rule, classes, features,
                  task_index, job_program, job_task, job_train, job_valid, job_seed, max_abs_error,
                  scalars, vectors, matrices, kinds, fitness, steps, lengths, errors, f_hint, which):
    """Jobs `which` (indices into the job arrays): fitness, steps, lengths
    and (when `errors` has columns) the error rows are written per job. Task
    arrays are indexed by `job_task`, program arrays by `job_program`. A job
    whose program fails `_code_ok` is not run and gets length -1. Runs
    without the GIL: the caller splits the jobs over threads. This function
    allocates the block's memory (at the largest F); `_run_jobs` runs the
    jobs without reference counting (views made here would cost atomic
    increments per job: ~0.3 us each on the demo's probes).

    `f_hint`: a tuple of F zeros when every task has that F, else (): its
    length, part of the type, is compiled in as a constant (one compilation
    per length, on first use, cached on disk), so LLVM unrolls the vector
    and matrix loops. (`numba.literally` on an int argument did the same,
    but its dispatch cost ~2 ms a call.) Demo search, F = 4 (seed 3): full
    evaluations 4.1 s against 4.9-5.7 s, probes 5.1 against 6.4-7.4
    (docs/performance.md)."""
    f = features.max()
    s = np.zeros(scalars)
    v = np.zeros(vectors * f)
    m = np.zeros(max(matrices, 0) * f * f)
    tmp = np.zeros(2 * f * (f + 1) + STACK)  # scratch: written before it is read
    valid_errors = np.zeros(errors.shape[1])  # one epoch's valid errors (a later epoch may stop in training)
    limits = np.array([1 << 62, scalars, vectors, matrices], dtype=np.int64)
    _run_jobs(setup_i, setup_f, setup_n, pred_i, pred_f, pred_n, learn_i, learn_f, learn_n,
              x_train, y_train, order, per_epoch, x_valid, y_valid, valid_size, rule, classes, features,
              task_index, job_program, job_task, job_train, job_valid, job_seed, max_abs_error,
              vectors, matrices, kinds, limits, fitness, steps, lengths, errors, which, s, v, m, tmp, valid_errors,
              len(f_hint))


@njit(**_FAST)
def _run_jobs(setup_i, setup_f, setup_n, pred_i, pred_f, pred_n, learn_i, learn_f, learn_n,
              x_train, y_train, order, per_epoch, x_valid, y_valid, valid_size, rule, classes, features,
              task_index, job_program, job_task, job_train, job_valid, job_seed, max_abs_error,
              vectors, matrices, kinds, limits, fitness, steps, lengths, errors, which, s, v_flat, m_flat, tmp,
              valid_errors, fixed_f):
    """`evaluate_jobs`' loop on its preallocated memory (flat banks reshaped to each task's F)."""
    for j in which:
        p = job_program[j]
        t = job_task[j]
        if not (_code_ok(setup_i[p], setup_n[p], kinds, limits) and _code_ok(pred_i[p], pred_n[p], kinds, limits)
                and _code_ok(learn_i[p], learn_n[p], kinds, limits)):
            lengths[j] = -1
            continue
        f = features[t] if fixed_f == 0 else fixed_f
        v = v_flat[:vectors * f].reshape((vectors, f))
        m = m_flat[:matrices * f * f].reshape((matrices, f, f))
        s[:] = 0.0
        v[:] = 0.0
        m[:] = 0.0
        fit, st, n = evaluate_lane(
            setup_i[p], setup_f[p], setup_n[p], pred_i[p], pred_f[p], pred_n[p], learn_i[p], learn_f[p], learn_n[p],
            x_train[t], y_train[t], order[t], per_epoch[t], x_valid[t], y_valid[t], valid_size[t], job_valid[j], rule[t],
            classes[t], f, task_index[t], job_seed[j], job_train[j], max_abs_error,
            s, v, m, tmp, errors[j], valid_errors)
        fitness[j] = fit
        steps[j] = st
        lengths[j] = n
