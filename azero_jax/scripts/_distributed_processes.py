"""What the processes of a distributed search agree on outside the search
itself: connecting to the coordinator (with checks that turn JAX's aborts
into one `error:` line), the exit of a process that lost its peers, and the
checkpoint step every process resumes from. Used by
`azero_jax.scripts.search_distributed` (whose docstring describes the
behaviour); kept apart so that script stays one flow."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
import time

import numpy as np

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import cli, experiment
from azero_jax.search import distributed as dist

# ------------------------------------------------------------ connection --

def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = (address or "").strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise cli.UsageError(f"--coordinator_address must be HOST:PORT, got {address!r}")
    return host, int(port)


def check_coordinator_address(address: str, process_id: int, timeout: float) -> None:
    """Before `jax.distributed.initialize` (whose failures abort the process
    with a C++ stack trace): process 0 must be able to bind the address (it
    runs the coordinator there); the others wait up to `timeout` seconds for
    it to accept connections. A UsageError (one `error:` line) otherwise."""
    host, port = parse_address(address)
    if process_id == 0:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise cli.UsageError(f"coordinator address {address!r}: cannot resolve {host!r} ({e})") from None
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(sockaddr)
            except OSError as e:
                why = ("the port is in use" if e.errno == errno.EADDRINUSE else
                       f"{host!r} is not an address of this machine" if e.errno == errno.EADDRNOTAVAIL else str(e))
                raise cli.UsageError(f"process 0 cannot run the coordinator at {address}: {why}") from None
        return
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                return
        except OSError as e:
            last = e.strerror or str(e)
        if time.monotonic() >= deadline:
            raise cli.UsageError(f"no coordinator reachable at {address} within {timeout:g} s ({last}): check "
                                 "--coordinator_address and that process 0 is running")
        time.sleep(0.2)


def initialize(address: str, num_processes: int, process_id: int, timeout: int, *, heartbeat_timeout: int = 100,
               shutdown_timeout: int = 3600) -> None:
    start = time.monotonic()
    check_coordinator_address(address, process_id, timeout)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    left = max(1, int(timeout - (time.monotonic() - start)))
    jax.distributed.initialize(coordinator_address=address, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=left, heartbeat_timeout_seconds=heartbeat_timeout,
                               shutdown_timeout_seconds=shutdown_timeout)


EXIT_PEER_LOST = 3  # the exit status of a process that lost the others (see `peer_lost`)


def peer_lost(process_id: int, what: str, output_dir: str) -> None:
    """The end of a process whose exchange with the others failed or timed
    out: one `error:` line, exit status 3, and no `jax.distributed.shutdown`
    (its barrier would wait for the dead process and end in an abort)."""
    print(f"error: process {process_id} lost the other processes ({what}): a process died, hangs or cannot be "
          f"reached; rerun the same command on every process to resume from the newest common checkpoint in "
          f"{output_dir} (with --checkpoint_every_steps)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_PEER_LOST)


# ------------------------------------------------------------ checkpoints --

KILL_ENV = "AZERO_JAX_DISTRIBUTED_KILL_AT"  # test hook "P:S": process P SIGKILLs itself after step S
_MAX_HELD = 8  # checkpoint steps a process reports when the processes agree on where to resume


def checkpoint_header(config: experiment.ExperimentConfig, num_processes: int) -> dict:
    return {"num_processes": num_processes, "num_islands": config.num_islands, "seed": config.random_seed,
            "config_hash": config.search_hash()}


def check_checkpoints(output_dir: str, header: dict) -> dict[int, list[int]]:
    """The checkpoint files in `output_dir` ({process: steps}); a UsageError
    if any was written by a run with another layout, seed or config."""
    found = dist.list_checkpoints(output_dir)
    for q, steps in found.items():
        path = dist.checkpoint_path(output_dir, q, steps[-1])  # each process's newest one
        try:
            saved = checkpoint_lib.load(path)["header"]
        except (checkpoint_lib.CheckpointError, KeyError, TypeError) as e:
            if not os.path.exists(path):  # dropped meanwhile
                continue
            raise cli.UsageError(f"{e}; remove the checkpoint files or use a fresh --output_dir") from None
        for key, flag in (("num_processes", "--num_processes"), ("num_islands", "--islands"), ("seed", "--seed")):
            if saved.get(key) != header[key]:
                raise cli.UsageError(
                    f"the checkpoints in {output_dir} were written with {flag}={saved.get(key)}, this run has "
                    f"{flag}={header[key]}: resume with {flag}={saved.get(key)} or use a fresh --output_dir")
        if saved.get("config_hash") != header["config_hash"]:
            raise cli.UsageError(f"the checkpoints in {output_dir} were written by a run with a different search "
                                 "config: resume with the same flags or use a fresh --output_dir")
    extra = sorted(q for q in found if q >= header["num_processes"])
    if extra:
        raise cli.UsageError(f"{output_dir} holds checkpoints of process {extra[0]}, but this run has "
                             f"{header['num_processes']} processes: use a fresh --output_dir")
    return found


def agree_on_resume(held: list[int], header: dict, allgather) -> int | None:
    """The step all processes resume from (None: a fresh start); every
    process also checks that all of them run the same config."""
    digest = int.from_bytes(hashlib.sha256(repr(sorted(header.items())).encode()).digest()[:4], "little", signed=True)
    held = sorted(held)[-_MAX_HELD:]
    row = np.full(_MAX_HELD + 1, -1, np.int32)
    row[0] = digest
    row[1:1 + len(held)] = held
    gathered = allgather(row)
    if (gathered[:, 0] != digest).any():
        raise cli.UsageError("the processes were started with different flags (config, seed, islands or process "
                             "count): give every process the same flags except --process_id")
    return dist.common_step([[int(v) for v in r[1:] if v >= 0] for r in gathered])


def kill_at() -> tuple[int, int] | None:
    value = os.environ.get(KILL_ENV)
    if not value:
        return None
    process, _, step = value.partition(":")
    return int(process), int(step)


def population_digest(state) -> list[int]:
    island = state.islands[0]
    h = hashlib.sha256(np.ascontiguousarray(island.fitnesses, np.float64).tobytes())
    for code in island.programs:
        for a in code:
            h.update(np.ascontiguousarray(a).tobytes())
    return np.frombuffer(h.digest()[:8], np.int32).tolist()
