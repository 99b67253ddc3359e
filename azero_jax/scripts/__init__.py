"""The entry points' mains (console scripts azero-search, azero-evaluate,
azero-linear-regression, azero-cifar-binary; the files in experiments/ and
tools/ are thin wrappers around them for a checkout).

Each module calls `cpu_devices.use_cpu_cores()` before anything imports JAX,
defines its flags only when its `cli_main()` runs (importing a module defines
no flags, so tests can import several), and `cli_main()` is the absl entry
point: bad flags are one `error:` line with exit status 2.
"""
