"""Throughput: NumPy reference interpreter vs the batched JAX interpreter.

Same random programs and tasks for both, in one run. Reports programs/s,
train steps/s (one Predict+Learn on one example; validation time included in
the wall time of both sides), compile time, peak memory, JAX / reference, the
per-step cost of the full 65-op table vs the experiment's op subset, and the
number of fusions (kernels) in the compiled per-example loop, read from the
optimized HLO. Sweeps the batch size (per-config caps keep each config to a
few minutes on a 2-core CPU); prints a table of figures and, last, a
key=value summary line. The baseline's tasks are scaled down (8000/1000 ->
800/100 examples by default, printed): the per-step cost does not depend on
the task size, only the wall time does.

    python tools/benchmark_throughput.py                      # both configs, defaults
    python tools/benchmark_throughput.py --configs=demo --demo_programs=256,1024,2048
    python tools/benchmark_throughput.py --configs=baseline --dataset=fashion_mnist   # real projected tasks

With --backends=xla,pallas,native (any of them, in that order of the flag),
the tool instead runs the named evaluation backends side by side on the
same programs and tasks, at each swept batch size (--programs, else the
config's first size): wall and CPU seconds, train steps/s (wall and per
CPU-second) and programs/s (individuals/s) per backend, the pallas/xla and
native/xla ratios, and the largest fitness difference from the first backend
(a correctness check). native is the Numba CPU interpreter (float64, all
cores); xla and pallas run on the device JAX finds. Off a GPU the
pallas kernel runs in Pallas interpret mode: its figure is then a
correctness run only, not a speed figure, and the output says so. Without
the flag the tool does what it always did (the xla path against the NumPy
reference).

    python tools/benchmark_throughput.py --backends=xla,pallas --configs=demo --programs=64
    python tools/benchmark_throughput.py --backends=xla,native --dtype=float64 --programs=256,1024

With --dataset, the baseline config runs on the experiment's real projected
binary tasks (accuracy; the first 10 search tasks of experiments/cifar_binary.py,
from the same cache) instead of synthetic regression tasks, sliced by
--baseline_scale like the synthetic ones.
"""

from __future__ import annotations

import json
import re
import resource
import time

import numpy as np
from absl import app, flags

from azero_jax import cpu_devices

cpu_devices.use_cpu_cores()  # JAX on every core (AZERO_JAX_CPU_DEVICES=1: one device); per-core figures too

from azero_jax import generators, reference  # noqa: E402
from azero_jax import ops as ops_lib  # noqa: E402
from azero_jax.program import COMPONENTS, MemoryShape  # noqa: E402
from azero_jax.tasks import Task  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["demo", "baseline"], "named configs to run")
flags.DEFINE_list("programs", [], "program batch sizes to sweep for every config (overrides the per-config lists)")
flags.DEFINE_list("demo_programs", ["256", "1024", "2048"], "demo: program batch sizes (lanes = programs x 10 tasks)")
flags.DEFINE_list("baseline_programs", ["64", "256"], "baseline: program batch sizes (compile grows with F=16)")
flags.DEFINE_integer("max_lanes", 40960, "cap on programs x tasks for this machine")
flags.DEFINE_integer("full_programs", 1024, "demo: program batch for the full-table vs subset comparison")
flags.DEFINE_integer("baseline_full_programs", 64, "baseline: same (the F=16 full table is slow to compile and run)")
flags.DEFINE_integer("repeats", 2, "timed calls per batch size (the best is reported; the machine is shared)")
flags.DEFINE_string("dtype", "float32", "float32 or float64 for the JAX side")
flags.DEFINE_float("baseline_scale", 0.1, "baseline task sizes x this (8000/1000 -> 800/100); per-step cost is "
                   "independent of the size, the full size only costs wall time")
flags.DEFINE_integer("ref_programs", 4, "programs the slow reference evaluates (on one task; extrapolated)")
flags.DEFINE_string("json", "", "write the full table here")
flags.DEFINE_string("gate", "auto", "op-group gating policy of the JAX interpreter")
flags.DEFINE_float("cpp_demo_steps_per_cpu_s", None, "a measured C++ figure to compare the demo with (train steps "
                   "per CPU-second of one core of the authors' run_search_experiment); no ratio is printed without "
                   "it. The whole-search comparison with the C++ is tools/compare_reference.py")
flags.DEFINE_list("backends", [], "run these backends side by side (xla, pallas, native) instead of the default "
                  "xla-vs-reference run; pallas is interpret mode (a correctness run only) off a GPU; "
                  "native is the Numba CPU interpreter (float64)")
flags.DEFINE_string("dataset", None, "baseline on real projected tasks of this dataset (digits, mnist, "
                    "fashion_mnist, cifar10) instead of synthetic regression tasks")
flags.DEFINE_string("data_dir", None, "folder of --dataset's files (not needed for digits / the Debian Fashion-MNIST)")
flags.DEFINE_string("cache_dir", None, "projected-task cache (default as experiments/cifar_binary.py)")

CONFIGS = {
    "demo": dict(memory=(4, 3, 1), features=4, ops=(ops_lib.DEMO_OPS,) * 3, sizes=(10, 2, 8), tasks=10,
                 train=100, valid=100),
    "baseline": dict(memory=(5, 9, 2), features=16,
                     ops=(ops_lib.BASELINE_SETUP_OPS, ops_lib.BASELINE_PREDICT_OPS, ops_lib.BASELINE_LEARN_OPS),
                     sizes=(6, 10, 22), tasks=10, train=8000, valid=1000),
}


def real_tasks(cfg, scale: float) -> list[Task]:
    """The experiment's search tasks on --dataset (projected, accuracy), sliced by `scale`."""
    from azero_jax import datasets

    cache = datasets.ProjectedTaskCache(FLAGS.dataset, lambda: datasets.load_dataset(FLAGS.dataset, FLAGS.data_dir),
                                        FLAGS.cache_dir, print)
    sizes = datasets.SplitSizes()  # the experiment's 8000 / 1000 / 1000, so its cache is reused
    if FLAGS.dataset == datasets.DIGITS:
        sizes = datasets.capped_sizes(sizes, cache.data)
    choices = datasets.choose_tasks(cfg["tasks"], datasets.search_pairs())
    collection = datasets.build_collection(cache, choices, cfg["features"], sizes, "search")
    n_train, n_valid = max(10, int(sizes.train * scale)), max(2, int(sizes.valid * scale))
    return [Task(t.x_train[:n_train], t.y_train[:n_train], t.x_valid[:n_valid], t.y_valid[:n_valid],
                 eval_type=t.eval_type, index=t.index, data_seed=t.data_seed, name=t.name)
            for t in collection.tasks()]


def make_tasks(rng, cfg, scale: float) -> list[Task]:
    f = cfg["features"]
    n_train, n_valid = max(10, int(cfg["train"] * scale)), max(2, int(cfg["valid"] * scale))
    tasks = []
    for i in range(cfg["tasks"]):
        w = rng.normal(size=f)
        x = rng.normal(size=(n_train + n_valid, f))
        y = x @ w
        tasks.append(Task(x[:n_train], y[:n_train], x[n_train:], y[n_train:], index=i, data_seed=i))
    return tasks


def hlo_fusions(text: str) -> dict[str, int]:
    """Kernels (fusions and non-scalar copies) in the compiled per-example
    train body: its own, and per instruction iteration of the nested Predict /
    Learn loops."""
    comps: dict[str, str] = {}
    for block in re.split(r"\n(?=%|ENTRY )", text):
        m = re.match(r"(?:ENTRY )?%?([\w.\-]+) ", block)
        if m:
            comps[m.group(1)] = block

    def whiles(name):
        return re.findall(r"while\(.*?body=%?([\w.\-]+)", comps.get(name, ""))

    def fusions(name, seen=()):
        body = comps.get(name, "")
        n = len(re.findall(r"= [^=]*? fusion\(", body))
        n += len(re.findall(r"= [a-z0-9]+\[\d[^\]]*\]\S* copy\(", body))  # non-scalar copies are kernels too
        for branch in re.findall(r"(?:true_computation|false_computation)=%?([\w.\-]+)", body):
            n += fusions(branch)
        for group in re.findall(r"branch_computations=\{([^}]*)\}", body):
            for branch in re.findall(r"%?([\w.\-]+)", group):
                n += fusions(branch)
        return n

    for name in comps:
        kids = whiles(name)
        if len(kids) == 2 and all(not whiles(k) for k in kids):
            return dict(step_body=fusions(name), predict_instr=fusions(kids[0]), learn_instr=fusions(kids[1]))
    return dict(step_body=-1, predict_instr=-1, learn_instr=-1)


def time_reference(progs, task, memory, n_ref):
    t0 = time.process_time()
    steps = 0
    for p in progs[:n_ref]:
        steps += reference.evaluate_task(p, task, memory).train_steps
    return steps, time.process_time() - t0


def _setup(name: str):
    """(config, rng, memory, tasks, task arrays, op subsets, program sizes) of a named config."""
    from azero_jax import jax_eval

    cfg = CONFIGS[name]
    rng = np.random.default_rng(0)
    memory = MemoryShape(*cfg["memory"], features=cfg["features"])
    scale = FLAGS.baseline_scale if name == "baseline" else 1.0
    tasks = real_tasks(cfg, scale) if (FLAGS.dataset and name == "baseline") else make_tasks(rng, cfg, scale)
    return (cfg, rng, memory, tasks, jax_eval.TaskArrays(tasks), dict(zip(COMPONENTS, cfg["ops"], strict=True)),
            dict(zip(COMPONENTS, cfg["sizes"], strict=True)))


def run_config(name: str, rows: list, summary: dict) -> None:
    from azero_jax import jax_eval

    cfg, rng, memory, tasks, arrays, subsets, sizes = _setup(name)
    sizes_flag = FLAGS.programs or (FLAGS.demo_programs if name == "demo" else FLAGS.baseline_programs)
    sweep = [int(p) for p in sizes_flag if int(p) * len(tasks) <= FLAGS.max_lanes] or [int(sizes_flag[0])]
    progs_all = [generators.random_algorithm(rng, memory, subsets, sizes) for _ in range(max(sweep))]
    n_train = tasks[0].num_train

    # Reference: a few programs on one task, extrapolated per step.
    ref_steps, ref_cpu = time_reference(progs_all, tasks[0], memory, FLAGS.ref_programs)
    ref_sps = ref_steps / max(ref_cpu, 1e-9)
    ref_pps = FLAGS.ref_programs / ref_cpu / len(tasks)
    print(f"[{name}] reference: {FLAGS.ref_programs} programs x 1 task, {ref_steps} train steps in "
          f"{ref_cpu:.2f} CPU-s -> {ref_sps:,.0f} steps/s, {ref_pps:.2f} programs/s on {len(tasks)} tasks "
          f"(extrapolated; tasks {n_train}/{tasks[0].num_valid} train/valid"
          + (f", scaled x{FLAGS.baseline_scale} from {cfg['train']}/{cfg['valid']}"
             if name == "baseline" and FLAGS.baseline_scale != 1.0 else "")
          + (f", projected {FLAGS.dataset} pairs" if FLAGS.dataset and name == "baseline" else ", synthetic") + ")")

    best = None
    for n_prog in sweep:
        progs = progs_all[:n_prog]
        t0 = time.perf_counter()
        traces = jax_eval.trace_count()
        jax_eval.evaluate_batch(progs, arrays, memory, op_subsets=subsets, dtype=FLAGS.dtype, gate=FLAGS.gate)
        first = time.perf_counter() - t0
        wall = cpu = float("inf")
        for _ in range(max(1, FLAGS.repeats)):
            t0, c0 = time.perf_counter(), time.process_time()
            jax_eval.evaluate_batch(progs, arrays, memory, op_subsets=subsets, dtype=FLAGS.dtype, gate=FLAGS.gate)
            w, c = time.perf_counter() - t0, time.process_time() - c0
            if w < wall:
                wall, cpu = w, c
        assert jax_eval.trace_count() == traces + 1, "retraced on a repeated call"
        steps = n_prog * len(tasks) * n_train  # programs that stop early still cost (masked lanes)
        row = dict(config=name, dtype=FLAGS.dtype, programs=n_prog, lanes=n_prog * len(tasks),
                   compile_s=round(first - wall, 2), wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                   programs_per_s=round(n_prog / wall, 1), steps_per_s=round(steps / wall),
                   steps_per_cpu_s=round(steps / cpu), ref_steps_per_s=round(ref_sps),
                   ref_programs_per_s=round(ref_pps, 3), speedup=round(steps / wall / ref_sps, 1),
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        rows.append(row)
        print("  " + " ".join(f"{k}={v}" for k, v in row.items() if k not in ("config", "dtype")))
        if best is None or row["steps_per_s"] > best["steps_per_s"]:
            best = row

    # Full 65-op table vs the subset, and fusion counts.
    full_cap = FLAGS.baseline_full_programs if name == "baseline" else FLAGS.full_programs
    progs = progs_all[:min(max(sweep), full_cap)]
    batch = jax_eval.compile_programs(progs, memory, op_subsets=subsets)
    times = {}
    full_compile = 0.0
    for label, subs in (("subset", subsets), ("full", None)):
        t0 = time.perf_counter()
        jax_eval.evaluate_compiled(batch, arrays, memory, op_subsets=subs, dtype=FLAGS.dtype, gate=FLAGS.gate)
        first = time.perf_counter() - t0
        best_t = float("inf")
        for _ in range(max(1, FLAGS.repeats)):  # best of N
            t0 = time.perf_counter()
            jax_eval.evaluate_compiled(batch, arrays, memory, op_subsets=subs, dtype=FLAGS.dtype, gate=FLAGS.gate)
            best_t = min(best_t, time.perf_counter() - t0)
        times[label] = best_t
        if label == "full":
            full_compile = first - best_t
    full_ratio = times["full"] / times["subset"]
    compiled = jax_eval.compiled_executable(batch, arrays, memory, op_subsets=subsets, dtype=FLAGS.dtype,
                                            gate=FLAGS.gate)
    fus = hlo_fusions(compiled.as_text())
    try:
        mem = compiled.memory_analysis()
        temp_mb = round((mem.temp_size_in_bytes + mem.argument_size_in_bytes) / 2**20, 1)
    except Exception:  # noqa: BLE001 - not every backend reports it
        temp_mb = -1
    p_len, l_len = cfg["sizes"][1], cfg["sizes"][2]
    per_step = fus["step_body"] + p_len * fus["predict_instr"] + l_len * fus["learn_instr"]
    print(f"  full-table/subset per-step cost: {full_ratio:.2f}x ({times['full']:.2f}s vs {times['subset']:.2f}s at "
          f"{len(progs)} programs; full-table compile {full_compile:.1f}s)")
    print(f"  fusions: {fus['step_body']} in the example body + {fus['predict_instr']} per Predict instruction + "
          f"{fus['learn_instr']} per Learn instruction -> {per_step} kernels per train step at sizes "
          f"{p_len}/{l_len}; XLA buffers (args+temp) {temp_mb} MB")
    print(f"  best: {best['steps_per_s']:,} train steps/s = {best['speedup']}x the NumPy reference")
    summary.update({
        f"{name}_steps_per_s": best["steps_per_s"], f"{name}_programs_per_s": best["programs_per_s"],
        f"{name}_ref_steps_per_s": best["ref_steps_per_s"], f"{name}_speedup": best["speedup"],
        f"{name}_full_over_subset": round(full_ratio, 2), f"{name}_fusions_per_step": per_step,
        f"{name}_fusions_per_instruction": max(fus["predict_instr"], fus["learn_instr"]),
        f"{name}_best_lanes": best["lanes"], f"{name}_compile_s": best["compile_s"],
        f"{name}_steps_per_cpu_s": best["steps_per_cpu_s"],
    })
    if name == "demo" and FLAGS.cpp_demo_steps_per_cpu_s:
        summary["demo_over_cpp_core"] = round(best["steps_per_cpu_s"] / FLAGS.cpp_demo_steps_per_cpu_s, 3)


BACKENDS = ("xla", "pallas", "native")


def _native_runner(tasks, memory):
    """evaluate(programs) -> (programs, tasks) fitness through the native
    backend's `full` (float64, every CPU core, full budgets, seed 0;
    conversion to arrays included, as xla's packing is)."""
    from azero_jax import evaluation

    backend = evaluation.make_backend("native", tasks, memory)
    budgets = np.array([t.num_train * t.num_train_epochs for t in tasks])

    def evaluate(progs):
        p, t = len(progs), len(tasks)
        jobs = evaluation.Jobs(np.repeat(np.arange(p), t), np.tile(np.arange(t), p), np.tile(budgets, p),
                               np.zeros(p * t, np.int64))
        return backend.full(progs, jobs).fitness.reshape(p, t)

    return evaluate


def _backend_runner(backend: str, arrays, memory, subsets, tasks=None):
    """(evaluate(programs) -> fitness, a note on the figure) for one backend."""
    from azero_jax import jax_eval

    if backend == "native":
        note = "float64 (native computes in float64)" if FLAGS.dtype != "float64" else ""
        return _native_runner(tasks, memory), note
    if backend == "xla":
        return (lambda progs: jax_eval.evaluate_batch(progs, arrays, memory, op_subsets=subsets, dtype=FLAGS.dtype,
                                                      gate=FLAGS.gate)), ""
    from azero_jax import pallas_eval

    interpret = pallas_eval.default_interpret()
    note = ("interpret mode (no GPU): a correctness run only, not a speed figure" if interpret
            else "Triton kernel on the GPU")
    return (lambda progs: pallas_eval.evaluate_batch(progs, arrays, memory, op_subsets=subsets, dtype=FLAGS.dtype,
                                                     interpret=interpret)), note


def run_backends(name: str, backends: list[str], rows: list, summary: dict) -> None:
    """--backends: the named backends side by side on the same programs and tasks."""
    import jax


    cfg, rng, memory, tasks, arrays, subsets, sizes = _setup(name)
    sweep = [int(p) for p in (FLAGS.programs or [(FLAGS.demo_programs if name == "demo"
                                                  else FLAGS.baseline_programs)[0]])]
    progs_all = [generators.random_algorithm(rng, memory, subsets, sizes) for _ in range(max(sweep))]
    n_train = tasks[0].num_train
    print(f"[{name}] backends {','.join(backends)} on {jax.default_backend()} ({len(jax.local_devices())} devices), "
          f"{len(tasks)} tasks of {n_train}/{tasks[0].num_valid} train/valid, {FLAGS.dtype}")
    for n_prog in sweep:
        progs = progs_all[:n_prog]
        steps = n_prog * len(tasks) * n_train  # programs that stop early still cost (masked lanes)
        first_fit, by_backend = None, {}
        for backend in backends:
            evaluate, note = _backend_runner(backend, arrays, memory, subsets, tasks)
            t0 = time.perf_counter()
            fit = np.asarray(evaluate(progs))
            first = time.perf_counter() - t0
            wall = cpu = float("inf")
            for _ in range(max(1, FLAGS.repeats)):
                t0, c0 = time.perf_counter(), time.process_time()
                fit = np.asarray(evaluate(progs))
                if time.perf_counter() - t0 < wall:
                    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            diff = 0.0 if first_fit is None else float(np.nanmax(np.abs(fit - first_fit), initial=0.0))
            first_fit = fit if first_fit is None else first_fit
            row = dict(config=name, backend=backend, dtype=FLAGS.dtype, programs=n_prog, lanes=n_prog * len(tasks),
                       compile_s=round(first - wall, 2), wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                       programs_per_s=round(n_prog / wall, 1), steps_per_s=round(steps / wall),
                       steps_per_cpu_s=round(steps / max(cpu, 1e-9)),
                       max_fitness_diff=diff, note=note)
            rows.append(row)
            by_backend[backend] = row
            print(f"  {backend}: " + " ".join(f"{k}={v}" for k, v in row.items()
                                              if k not in ("config", "backend", "dtype", "note"))
                  + (f"  [{note}]" if note else ""))
        if {"xla", "pallas"} <= set(by_backend):
            ratio = by_backend["pallas"]["steps_per_s"] / max(by_backend["xla"]["steps_per_s"], 1)
            caveat = (" (pallas in interpret mode: a correctness run only, not a speed figure)"
                      if by_backend["pallas"]["note"].startswith("interpret") else "")
            print(f"  pallas/xla: {ratio:.3g}x train steps/s at {n_prog} programs{caveat}")
            summary[f"{name}_pallas_over_xla"] = round(ratio, 4)
            summary["pallas_interpret"] = int(bool(caveat))
        if {"xla", "native"} <= set(by_backend):
            ratio = by_backend["native"]["steps_per_s"] / max(by_backend["xla"]["steps_per_s"], 1)
            print(f"  native/xla: {ratio:.3g}x train steps/s at {n_prog} programs")
            summary[f"{name}_native_over_xla"] = round(ratio, 4)
        for backend, row in by_backend.items():
            summary[f"{name}_{backend}_steps_per_cpu_s"] = row["steps_per_cpu_s"]
            summary[f"{name}_{backend}_steps_per_s"] = row["steps_per_s"]
            summary[f"{name}_{backend}_programs_per_s"] = row["programs_per_s"]
            summary[f"{name}_{backend}_max_fitness_diff"] = row["max_fitness_diff"]


def main(argv) -> None:
    del argv
    import jax

    rows: list = []
    summary: dict = {"devices": len(jax.local_devices()), "dtype": FLAGS.dtype}
    if FLAGS.dataset:
        summary["baseline_tasks"] = FLAGS.dataset
    backends = [b.strip().lower() for b in FLAGS.backends if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or len(set(backends)) != len(backends):
        raise app.UsageError(f"--backends takes distinct names from {', '.join(BACKENDS)}; got {FLAGS.backends}")
    if backends:
        for name in FLAGS.configs:
            run_backends(name, backends, rows, summary)
        cols = ("config", "backend", "programs", "lanes", "compile_s", "wall_s", "steps_per_s", "programs_per_s",
                "max_fitness_diff")
    else:
        for name in FLAGS.configs:
            run_config(name, rows, summary)
        cols = ("config", "programs", "lanes", "compile_s", "wall_s", "cpu_s", "steps_per_s", "steps_per_cpu_s",
                "ref_steps_per_s", "speedup", "programs_per_s")
    print("\n" + " | ".join(cols))
    for row in rows:
        print(" | ".join(f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in cols))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(dict(rows=rows, summary=summary), f, indent=1)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))

if __name__ == "__main__":
    app.run(main)
