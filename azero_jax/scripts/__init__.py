"""The entry points' mains (console scripts azero-search, azero-evaluate,
azero-linear-regression, azero-cifar-binary; the files in experiments/ and
tools/ are thin wrappers around them for a checkout).

Each module calls `cpu_devices.use_cpu_cores_or_exit()` before anything
imports JAX, defines its flags only when its `cli_main()` runs (importing a
module defines no flags, so tests can import several), and `cli_main()` is
the absl entry point through `cli.run_app`, the one error boundary: bad
flags and input, and OS faults, are one `error:` line with exit status 2; a
bug shows its traceback and says so. The mains themselves catch nothing.
"""
