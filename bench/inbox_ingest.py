"""Inbox ingest: signed Creates from many actors, verified and persisted by ``praxisnetz serve``.

A separate load process (``bench.load_client ingest``) serves the actors' documents on
one loopback port, signs every Create in advance (draft-cavage and RFC 9421 alternately,
RSA-2048), and posts them over loopback in rounds: in each, first to a trivial aiohttp
POST handler in its own process (the machine's bare rate), then the round's new
activities to the inbox of a real ``praxisnetz serve`` node on SQLite, whose inbox worker
runs as in production; before the next round the node finishes processing and falls
idle, so no phase shares the CPU with the previous one's work. The node fetches each
actor's key once (key cache, in the first round); "persisted" counts the node's
``inbox_items`` rows afterwards. Target: the node's rate is at least 50% of the bare rate.

Why rounds: on this shared 2-core machine the bare rate of one phase moved between
3,300 and 6,500/s between identical runs, and a single pair of phases gave shares from
38% to 55% for the same code. Each round pairs a node phase with the bare phase just
before it; the row gives the median of the rounds' shares, with the lowest and highest.

Rows: each node set-up at each number of requests in flight. In flight: 32, and 128 (the
node's capacity: a 202 waits for the group commit's fsync, so at 32 in flight the node
is partly waiting on the disk with its CPU idle, while the bare handler is already
saturated at 32; a busy inbox has many senders at once). Node set-ups: by default the
node as installed (one process) and with
``[server] processes = 2`` (two acceptor processes on the one port plus one worker process,
``node.serve_processes``: what a busy node on two cores or more would run). The baseline
then runs as many trivial aiohttp processes on its port (SO_REUSEPORT), so both sides may
use the second core; ``node_processes`` and ``bare_processes`` say what ran, and the CPU
figures add up all of a side's processes. ``loop_busy_pct`` (the acceptors' event-loop
threads on a CPU during the node phases) and ``machine_busy_pct`` (every core) tell a row
bound by CPU from one bound by the round trip's latency: at 32 in flight in session 13,
loop 73% and machine 70% (docs/performance.md). ``--processes N`` and ``--concurrency N``
(repeatable) pick the rows.
Run: ``python -m bench inbox_ingest`` or ``python -m bench.inbox_ingest [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bench._support import (
    PYTHON,
    children,
    cpu_seconds,
    free_port,
    make_node_dir,
    scratch_postgres_changes,
    serve_node,
    start_sink,
    wait_for,
)
from bench.load_client import PHASE_END, PHASE_NODE, PHASE_WAIT, IngestResult
from node.config import InboxTuning, NodeConfig, ServerTuning
from node.storage.db import create_engine, session_maker
from node.storage.models import InboxArrival, InboxItem, InboxState

TARGET_SHARE_PCT = 50.0
# `make bench` measures the node as installed (one process) and with two acceptors (the
# setting for a busy node on a machine with two cores or more)
DEFAULT_PROCESSES = (1, 2)
# requests in flight: the load of the earlier runs, and enough to saturate the node
DEFAULT_CONCURRENCY = (32, 128)
DEFAULT_ROUNDS = 5
WAITING = (InboxState.RECEIVED.value, InboxState.PROCESSING.value)
# One host and one address send everything: the rate limits would measure 429s.
BENCH_INBOX = InboxTuning(requests_per_host_per_minute=10_000_000, requests_per_ip_per_minute=10_000_000,
                          queue_limit=1_000_000)


@dataclass(frozen=True)
class Row:
    activities: int  # per round, to each side
    actors: int
    node_per_s: float  # medians over the rounds
    bare_aiohttp_per_s: float
    share_pct: float  # the median of the rounds' shares (node phase / bare phase before it)
    persisted: int
    refused: str
    target: str
    # CPU milliseconds per activity (from /proc and the load process's own clock), to
    # tell which process bounds a rate: the node while the load client posted to it (its
    # inbox worker included), the node from the load client's start until every item was
    # processed, the sink, and the load client in each phase
    node_cpu_ms: float = 0.0
    node_cpu_ms_to_processed: float = 0.0
    sink_cpu_ms: float = 0.0
    client_cpu_ms_bare: float = 0.0
    client_cpu_ms_node: float = 0.0
    processed_after_s: float = 0.0  # after the load ended, until no item waited any more
    database: str = "sqlite"
    node_processes: str = "1"  # "1", or "N+1" for N acceptors and the worker process
    # of node_cpu_ms, what the worker process spent (a multi-process node only)
    worker_cpu_ms: float = 0.0
    bare_processes: int = 1  # sink processes of the baseline: as many as acceptors
    concurrency: int = 32  # requests the load client keeps in flight (both phases)
    rounds: int = 1
    share_min_pct: float = 0.0  # the lowest and highest of the rounds' shares
    share_max_pct: float = 0.0
    # During the node phases: how much of the wall time each acceptor's event-loop thread
    # was on a CPU (the mean over acceptors), and the machine's cores busy (all processes,
    # /proc/stat). A loop well below 100% on a machine with cores to spare means the rate
    # is bound by the round trip's latency, not by CPU (docs/performance.md, session 13).
    loop_busy_pct: float = 0.0
    machine_busy_pct: float = 0.0


async def _count(config: NodeConfig, *, waiting_only: bool = False) -> int:
    """The inbox's items (waiting ones only: and the arrivals not yet moved to them)."""
    statement = select(func.count()).select_from(InboxItem)
    if waiting_only:
        statement = statement.where(InboxItem.state.in_(WAITING))
    engine = create_engine(config.database_url)
    try:
        async with session_maker(engine)() as session:
            arrivals = select(func.count()).select_from(InboxArrival)
            return int(await session.scalar(statement)) + (
                int(await session.scalar(arrivals)) if waiting_only else 0)
    finally:
        await engine.dispose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a running process and of its running children
    (the acceptors and the worker of a multi-process node; Linux /proc)."""
    own = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _wait_idle(pid: int, timeout: float = 60.0) -> None:
    """Until the node's processes stop using CPU (a multi-process node's worker process
    is still starting when the acceptors already answer)."""
    started, last = time.perf_counter(), _cpu_seconds(pid)
    while time.perf_counter() - started < timeout:
        time.sleep(0.5)
        now = _cpu_seconds(pid)
        if now - last < 0.05:
            return
        last = now


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _is_worker(pid: int) -> bool:
    return b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _loop_cpu_seconds(pid: int, processes: int) -> float:
    """CPU time so far of the event-loop threads (each process's main thread) of the
    node's acceptors: the node itself, or its children other than the worker process."""
    acceptors = [pid] if processes == 1 else [c for c in _children(pid) if not _is_worker(c)]
    return sum(cpu_seconds(acceptor, thread=acceptor) for acceptor in acceptors)


def _machine_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (/proc/stat, all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def _worker_cpu_seconds(pid: int) -> float:
    """CPU time so far of the worker process among ``pid``'s children (0.0 if none)."""
    return sum(_cpu_seconds(child) for child in _children(pid) if _is_worker(child))


@dataclass(frozen=True)
class LoadRun:
    """What the load client printed, and the node's CPU seconds during its node phases
    only (before them the client generates keys, signs every post and loads the
    baseline, while the node's workers poll an idle database)."""

    lines: list[str]
    node_cpu_s: float
    worker_cpu_s: float  # of node_cpu_s, the worker process's (a multi-process node)
    loop_busy_pct: float = 0.0  # the acceptors' event-loop threads on a CPU (mean)
    machine_busy_pct: float = 0.0  # every core, every process


@dataclass
class _PhaseCounters:
    """CPU readings summed over the node phases (``_post_load``)."""

    node: float = 0.0
    worker: float = 0.0
    loops: float = 0.0
    wall: float = 0.0
    busy_jiffies: int = 0
    all_jiffies: int = 0

    @staticmethod
    def read(node_pid: int, processes: int) -> tuple[float, float, float, float, int, int]:
        busy, total = _machine_jiffies()
        return (_cpu_seconds(node_pid), _worker_cpu_seconds(node_pid),
                _loop_cpu_seconds(node_pid, processes), time.perf_counter(), busy, total)

    def add(self, before: tuple[float, float, float, float, int, int],
            after: tuple[float, float, float, float, int, int]) -> None:
        node, worker, loops, wall, busy, total = (b - a for a, b in zip(before, after, strict=True))
        self.node += node
        self.worker += worker
        self.loops += loops
        self.wall += wall
        self.busy_jiffies += int(busy)
        self.all_jiffies += int(total)

    def run(self, lines: list[str], processes: int) -> LoadRun:
        loop_pct = 100.0 * self.loops / (self.wall * processes) if self.wall else 0.0
        machine_pct = 100.0 * self.busy_jiffies / self.all_jiffies if self.all_jiffies else 0.0
        return LoadRun(lines, self.node, self.worker, loop_pct, machine_pct)


def _post_load(argv: list[str], node_pid: int, config: NodeConfig, processes: int) -> LoadRun:
    """Run the load client; between its rounds, let the node process everything and
    fall idle before the client goes on."""
    load = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    counters = _PhaseCounters()
    started = None
    assert load.stdout is not None and load.stdin is not None
    for line in load.stdout:
        phase = line.strip()
        if phase == PHASE_NODE:
            started = _PhaseCounters.read(node_pid, processes)
        elif phase == PHASE_END:
            assert started is not None  # the client says PHASE_NODE first
            counters.add(started, _PhaseCounters.read(node_pid, processes))
        elif phase == PHASE_WAIT:
            _wait_processed(config)
            _wait_idle(node_pid)
            load.stdin.write("next\n")
            load.stdin.flush()
        lines.append(phase)
    _, errors = load.communicate(timeout=900)
    if load.returncode != 0:
        raise subprocess.CalledProcessError(load.returncode, argv, "\n".join(lines), errors)
    return counters.run(lines, processes)


def _wait_processed(config: NodeConfig, timeout: float = 600.0) -> float:
    started = time.perf_counter()
    while asyncio.run(_count(config, waiting_only=True)) and time.perf_counter() - started < timeout:
        time.sleep(0.2)
    return time.perf_counter() - started


def run(activities: int = 4000, actors: int = 100,
        concurrency: int | Sequence[int] = DEFAULT_CONCURRENCY,
        profile: Path | None = None, postgres: str | None = None,
        processes: int | Sequence[int] = DEFAULT_PROCESSES,
        rounds: int = DEFAULT_ROUNDS) -> list[Row]:
    """One row per number of acceptor processes (the baseline runs as many sinks) and
    number of requests in flight; ``activities`` per round to each side."""
    counts = (processes,) if isinstance(processes, int) else tuple(processes)
    loads = (concurrency,) if isinstance(concurrency, int) else tuple(concurrency)
    return [_run_one(activities, actors, load, profile, postgres, count, rounds)
            for count in counts for load in loads]


def _run_one(activities: int, actors: int, concurrency: int, profile: Path | None,
             postgres: str | None, processes: int, rounds: int) -> Row:
    with (tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, children() as group,
          scratch_postgres_changes(postgres) as database):
        root = Path(tmp)
        node_port, sink_port, actor_port = free_port(), free_port(), free_port()
        config = make_node_dir(root, "ingest", node_port, inbox=BENCH_INBOX,
                               server=ServerTuning(processes=processes), **database)
        sink = start_sink(group, sink_port, processes)
        node = serve_node(group, config, root / "node.log", profile=profile)
        wait_for(f"http://127.0.0.1:{sink_port}/count", process=sink)
        wait_for(f"{config.base_url}/.well-known/nodeinfo", process=node)
        _wait_idle(node.pid)
        node_cpu, sink_cpu = _cpu_seconds(node.pid), _cpu_seconds(sink.pid)
        load = _post_load(
            [PYTHON, "-m", "bench.load_client", "ingest", "--target", config.inbox_url,
             "--baseline", f"http://127.0.0.1:{sink_port}/inbox",
             "--actor-port", str(actor_port), "--actors", str(actors),
             "--activities", str(activities), "--concurrency", str(concurrency),
             "--rounds", str(rounds)],
            node.pid, config, processes)  # fmt: skip
        sink_cpu = _cpu_seconds(sink.pid) - sink_cpu
        processed_after = _wait_processed(config)
        persisted = asyncio.run(_count(config))  # processing moved every arrival
        node_cpu_all = _cpu_seconds(node.pid) - node_cpu
    posts = activities * rounds
    return _row(IngestResult(**json.loads(load.lines[-1])), load, persisted, posts, concurrency, processes,
                postgres is not None, sink_cpu=sink_cpu, node_cpu_all=node_cpu_all,
                processed_after=processed_after)


def _row(result: IngestResult, load: LoadRun, persisted: int, posts: int,
         concurrency: int, processes: int, postgres: bool, *, sink_cpu: float,
         node_cpu_all: float, processed_after: float) -> Row:
    """The row of one set-up from the load client's result and the CPU readings."""
    shares = [node / bare * 100.0
              for node, bare in zip(result.node_rounds, result.baseline_rounds, strict=True)]
    share = statistics.median(shares)
    refused = ",".join(f"{k}x{v}" for k, v in result.node_refused.items()) or "-"
    met = "met" if share >= TARGET_SHARE_PCT and persisted == posts else "NOT met"
    per_activity_ms = 1000.0 / posts
    return Row(result.activities, result.actors, statistics.median(result.node_rounds),
               statistics.median(result.baseline_rounds), share, persisted, refused,
               f">= {TARGET_SHARE_PCT:.0f}%: {met}", load.node_cpu_s * per_activity_ms,
               node_cpu_all * per_activity_ms, sink_cpu * per_activity_ms,
               result.client_cpu_ms_baseline, result.client_cpu_ms_node, processed_after,
               "postgresql" if postgres else "sqlite",
               "1" if processes == 1 else f"{processes}+1",
               load.worker_cpu_s * per_activity_ms, processes, concurrency,
               len(shares), min(shares), max(shares), load.loop_busy_pct,
               load.machine_busy_pct)


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.inbox_ingest")
    parser.add_argument("--quick", action="store_true",
                        help="300 activities a round from 30 actors, 3 rounds")
    parser.add_argument("--activities", type=int, default=4000, help="per round, to each side")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="bare and node phases, alternately; the row gives the median share")
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--concurrency", type=int, action="append",
                        help="requests in flight; repeat for several rows (default: 32 and 128)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the node here")
    parser.add_argument("--processes", type=int, action="append",
                        help="the node's [server] processes: acceptor processes on the port "
                             "(above 1, plus one worker process), and as many sink processes"
                             " for the baseline; repeat for several rows (default: 1 and 2)")
    parser.add_argument("--postgres", metavar="URL",
                        help="run the node on a scratch database of this PostgreSQL server "
                             "(postgresql+asyncpg://…) instead of SQLite")
    args = parser.parse_args()
    if args.quick:
        args.activities, args.actors, args.rounds = 300, 30, 3
    print(format_table(run(args.activities, args.actors,
                           args.concurrency or DEFAULT_CONCURRENCY, profile=args.profile,
                           postgres=args.postgres,
                           processes=args.processes or DEFAULT_PROCESSES, rounds=args.rounds)))


if __name__ == "__main__":
    main()
