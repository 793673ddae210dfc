"""``praxisnetz serve`` with ``[server] processes = N`` (N > 1): N acceptors and one worker.

One Python process spends about a millisecond of CPU per accepted inbox request
(parsing, the signature, the row): on a machine with more than one core, one process
leaves the others idle. With ``processes = N`` the ``serve`` command becomes a small
supervisor that

- migrates the database once (the children then find it current),
- starts N *acceptor* processes (``serve --acceptor``): the whole web application, each
  with its own inbox writer and key cache, all listening on the same port with
  ``SO_REUSEPORT`` (the kernel spreads the connections over them),
- starts one *worker* process (``praxisnetz worker``: delivery, inbox processing,
  backfill) at a lower CPU priority: a sender waits for its 202, processing can wait,
  and when the acceptors are idle the worker has the CPU to itself,
- on SIGTERM or SIGINT (Ctrl-C) sends SIGTERM to every child, waits for them to finish
  what they hold (the acceptors answer their requests in flight and commit what is
  queued, the worker releases its claims), kills what is still running after
  ``STOP_TIMEOUT_SECONDS``, and exits 0,
- stops them all and exits 1 when one child ends by itself: a half-running node is
  not left behind (the service manager restarts the whole).

Correctness does not depend on the process count: SQLite's ``BEGIN IMMEDIATE``
serialises the writers' group commits, the queue limit is counted inside each writer's
transaction, and the workers' claims hold against any number of processes. What is
per process: the token buckets of the inbox (each takes 1/N of the configured budget,
``node.inbox.InboxRateLimiter``) and the key cache. A hub keeps one process (its search
index lives in memory).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from node.config import ConfigError, NodeConfig

log = logging.getLogger("praxisnetz.serve")

ACCEPTOR_FLAG = "--acceptor"
WORKER_NICENESS = 10  # CPU weight about a tenth of an acceptor's while both are busy
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Child:
    role: str  # "acceptor" or "worker"
    argv: tuple[str, ...]
    niceness: int = 0


def check_multi_process(config: NodeConfig) -> None:
    """Refuse a configuration that one process must serve."""
    if config.is_hub:
        raise ConfigError(
            "server.processes", "a hub runs in one process (its search index is in memory)"
        )
    if ":memory:" in config.database_url:
        raise ConfigError("server.processes", "an in-memory database is not shared")


def children_for(config: NodeConfig, host: str, port: int) -> list[Child]:
    """The acceptors (one per configured process) and the one worker process."""
    base = (sys.executable, "-m", "node.cli")
    data_dir = ("--data-dir", str(Path(config.data_dir).resolve()))
    acceptor = Child(
        "acceptor", (*base, "serve", *data_dir, "--host", host, "--port", str(port), ACCEPTOR_FLAG)
    )
    worker = Child("worker", (*base, "worker", *data_dir), niceness=WORKER_NICENESS)
    return [acceptor] * config.server.processes + [worker]


AUTOGROUP = Path("/proc/self/autogroup")


def _child_setup(niceness: int) -> None:
    # Runs in the child between fork and exec: the child gets SIGTERM if the supervisor
    # dies (SIGKILL included), so no acceptor keeps the port without a supervisor.
    if niceness:
        os.nice(niceness)
        lower_autogroup_priority(niceness)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def lower_autogroup_priority(niceness: int, autogroup: Path = AUTOGROUP) -> bool:
    """Give this process's autogroup the niceness too; whether it could.

    With Linux's autogroup scheduling (``kernel.sched_autogroup_enabled``, the default of
    many distributions outside a service manager's CPU cgroups) the CPU is shared between
    sessions first and a process's own nice value counts only inside its session. The
    child has a session of its own (``start_new_session``), so without this its nice
    value would weigh nothing against the acceptors' sessions. Without autogroups (no
    file, or a kernel that refuses the write) there is nothing to do."""
    try:
        autogroup.write_text(f"{niceness}\n")
    except OSError:  # no autogroup scheduling here: the process's nice value is what counts
        return False
    return True


def start_child(child: Child) -> subprocess.Popen[bytes]:
    # A session of its own: a Ctrl-C in the terminal reaches the supervisor only, which
    # then stops every child exactly once.
    setup = lambda: _child_setup(child.niceness)  # noqa: E731
    return subprocess.Popen(list(child.argv), start_new_session=True, preexec_fn=setup)  # noqa: PLW1509


def stop_children(
    processes: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT_SECONDS
) -> list[int]:
    """SIGTERM to every running child, SIGKILL to those still running after ``timeout``;
    returns their exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("child did not stop in time; killing it pid=%s", process.pid)
            process.kill()
            process.wait()
    return [process.returncode for process in processes]


async def _migrate_once(config: NodeConfig) -> None:
    from node.storage.db import create_engine, migrate

    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def supervise(config: NodeConfig, host: str, port: int) -> int:
    """Run the children until a signal (exit 0) or until one of them ends (exit 1)."""
    check_multi_process(config)
    asyncio.run(_migrate_once(config))
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for child in children_for(config, host, port):
            processes.append(start_child(child))
        log.info(
            "serving processes=%d acceptors=%s worker=%s port=%d",
            len(processes),
            [p.pid for p in processes[:-1]],
            processes[-1].pid,
            port,
        )
        ended = _wait_for_stop_or_exit(processes, stop_requested)
    finally:
        codes = stop_children(processes)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if ended is not None:
        log.error(
            "a child process ended by itself; stopped the others pid=%s code=%s",
            ended.pid,
            ended.returncode,
        )
        return 1
    log.info("stopped exit_codes=%s", codes)
    return 0


def _wait_for_stop_or_exit(
    processes: Sequence[subprocess.Popen[bytes]], stop_requested: list[int]
) -> subprocess.Popen[bytes] | None:
    while not stop_requested:
        for process in processes:
            if process.poll() is not None:
                return process
        time.sleep(POLL_SECONDS)
    return None
