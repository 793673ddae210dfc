"""Fan-out: N activities to M followers each through the durable delivery queue.

The benchmark fills a node's SQLite database the way publishing does (one ``followers``
row per follower, ``record_local_activity`` adds one pending ``deliveries`` row per
follower inbox; the shared inbox is not used: every follower has its own inbox), then
starts ``praxisnetz worker`` processes (the production delivery worker, default tuning;
two by default, one per core, sharing the one SQLite queue) and waits until every row
is ``delivered``. The followers' inboxes live on a few loopback receiving servers (one
port each) that answer 202 without verifying: by default ``bench.lean_sink``, one
process serving every port (an asyncio protocol that frames requests by Content-Length
and checks each POST is signed and complete, so the receivers take little of the two
cores the workers need), or with ``--receiver aiohttp`` one aiohttp sink process
(``bench.load_client sink``) per port. Every
delivery is an RSA-2048 signed POST (RFC 9421 first; the receivers accept it, so no
second knock). The rate is counted from the first to the last finished delivery
(worker start-up is left out) and set against this machine's bare RSA-2048 signing
rate, measured before and after the run. Target: at least 1,000 deliveries/s.

The machine is shared, so the wall-clock rate says as much about the other processes
as about the worker. The row therefore also gives, over the same interval, the CPU
time the workers and the receivers (and on PostgreSQL its server, on the same cores)
spent per delivery (``/proc/PID/stat``), the CPU time of one bare signature and its
share of a delivery's worker CPU, the rate one fully used core would give at that cost,
an estimate for the two cores with nothing else running, and the 1-minute load average.
With ``--postgres URL`` the queue is in a scratch database on that PostgreSQL server
(the workers claim with ``FOR UPDATE SKIP LOCKED`` there, and nothing serialises them).
Run: ``python -m bench fanout`` or ``python -m bench.fanout [--quick] [--workers N] [--receiver lean|aiohttp] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._support import (
    PYTHON,
    Children,
    asyncpg_dsn,
    children,
    cpu_seconds,
    free_port,
    get_json,
    make_node_dir,
    scratch_postgres_changes,
    server_cpu_seconds,
    start_sink,
    wait_for,
)
from federation.httpsig import SignatureAlgorithm
from federation.httpsig_common import sign_bytes
from federation.keys import generate_rsa_key
from node.config import NodeConfig
from node.outbox import recipients_for, record_local_activity
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import DeliveryState, Follower

TARGET_PER_S = 1000.0
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


@dataclass(frozen=True)
class Row:
    activities: int
    followers: int
    deliveries: int
    receivers: int
    deliveries_per_s: float
    rsa_sign_per_s: float
    share_of_signing_pct: float
    received: int
    target: str
    workers: int = 1
    # in µs: the table prints one decimal, and 0.1 ms hid the receivers' differences
    worker_cpu_us_per_delivery: float = 0.0
    receiver_cpu_us_per_delivery: float = 0.0
    per_worker_core_s: float = 0.0  # deliveries per second one fully used core would give
    load_1m: float = 0.0
    rsa_sign_cpu_us: float = 0.0  # CPU time of one bare signature, same run
    signing_share_of_worker_cpu_pct: float = 0.0
    # What the two cores would deliver with nothing else running: 2 CPU-seconds per second
    # over the measured worker + receiver (+ PostgreSQL server) CPU per delivery (an
    # estimate, not a measurement).
    idle_machine_estimate_per_s: float = 0.0
    receiver: str = "lean"  # bench.lean_sink, or "aiohttp" (bench.load_client sink)
    # POSTs the receivers found unsigned or badly framed ("-": the aiohttp sink does not look)
    malformed: str = "-"
    database: str = "sqlite"  # the queue's database: "sqlite" or "postgresql" (--postgres)
    # PostgreSQL's server processes (0 on SQLite): on the same two cores as the workers
    database_cpu_us_per_delivery: float = 0.0


@dataclass(frozen=True)
class SignRate:
    per_s: float  # wall clock: what this process got of the machine
    cpu_ms: float  # CPU time per signature: what one costs, whatever the load


def rsa_sign_rate(seconds: float = 1.0) -> SignRate:
    """Bare RSA-2048 PKCS#1 v1.5 SHA-256 signatures on this machine."""
    key, message = generate_rsa_key(), b"x" * 300
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        sign_bytes(key, SignatureAlgorithm.RSA_V1_5_SHA256, message)
        done += 1
    return SignRate(done / (time.perf_counter() - started),
                    1000.0 * (time.process_time() - cpu) / done)


def _mean_rate(first: SignRate, second: SignRate) -> SignRate:
    return SignRate((first.per_s + second.per_s) / 2, (first.cpu_ms + second.cpu_ms) / 2)


def _activity(config: NodeConfig, number: int) -> dict[str, object]:
    note = f"{config.base_url}/contributions/praxis-{number}"
    return {
        "@context": AS_CONTEXT, "id": f"{note}#create-{number}", "type": "Create",
        "actor": config.actor_url, "to": [config.followers_url],
        "object": {"id": note, "type": "Article", "attributedTo": config.actor_url,
                   "name": f"Praxis {number}", "content": "Wir haben die Bauakten umgestellt. " * 20},
    }


async def fill_queue(config: NodeConfig, activities: int, inbox_bases: list[str],
                     followers: int) -> None:
    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
        sessions, now = session_maker(engine), datetime.now(UTC)
        async with sessions() as session, session.begin():
            for number in range(followers):
                actor = f"{inbox_bases[number % len(inbox_bases)]}/users/{number}"
                session.add(Follower(actor_uri=actor, inbox=f"{actor}/inbox", created_at=now))
        for first in range(0, activities, 50):
            async with sessions() as session, session.begin():
                inboxes = await recipients_for(session, own_inboxes=[config.inbox_url])
                for number in range(first, min(first + 50, activities)):
                    await record_local_activity(session, _activity(config, number), inboxes, now=now)
    finally:
        await engine.dispose()


class DeliveredCount:
    """Rows delivered so far, asked every 0.25 s while the workers run: through the
    standard library's sqlite3, or one asyncpg connection kept for the whole wait (a new
    one per poll cost PostgreSQL a backend of its own each time, ~11 ms of its CPU,
    taken from the cores the workers need)."""

    _QUERY = "SELECT count(*) FROM deliveries WHERE state = "

    def __init__(self, database_url: str) -> None:
        self._sqlite_path: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Any = None  # asyncpg's Connection (imported with --postgres only)
        self.server_pid: int | None = None  # PostgreSQL's postmaster, if on this machine
        if database_url.startswith("sqlite"):
            self._sqlite_path = database_url.removeprefix("sqlite+aiosqlite:///")
            return
        import asyncpg

        self._loop = asyncio.new_event_loop()
        self._connection = self._loop.run_until_complete(asyncpg.connect(asyncpg_dsn(database_url)))
        backend = self._loop.run_until_complete(self._connection.fetchval("SELECT pg_backend_pid()"))
        with contextlib.suppress(OSError):  # a server elsewhere: its CPU is not ours to see
            status = Path(f"/proc/{backend}/status").read_text()
            self.server_pid = int(status.split("PPid:", 1)[1].split()[0])

    def database_cpu(self) -> float:
        """CPU seconds PostgreSQL's server has used so far (0 for SQLite, whose work runs
        in the workers' processes)."""
        return server_cpu_seconds(self.server_pid) if self.server_pid is not None else 0.0

    def __call__(self) -> int:
        state = DeliveryState.DELIVERED.value
        if self._loop is not None:
            query = self._connection.fetchval(self._QUERY + "$1", state)
            return int(self._loop.run_until_complete(query))
        uri = f"file:{self._sqlite_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=15)) as db:
            (count,) = db.execute(self._QUERY + "?", (state,)).fetchone()
        return int(count)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._connection.close())
            self._loop.close()
            self._loop = None


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass(frozen=True)
class Drained:
    """From the first finished delivery to the last: rate and CPU spent per group."""

    per_s: float
    cpu_seconds: tuple[float, ...]  # one entry per process group, same order
    deliveries: int


CpuSource = Callable[[], float]  # CPU seconds some processes have used so far


def group_cpu(processes: list[subprocess.Popen[bytes]]) -> CpuSource:
    return lambda: sum(cpu_seconds(process.pid) for process in processes)


def _cpu_now(sources: list[CpuSource]) -> tuple[float, ...]:
    return tuple(source() for source in sources)


def _wait_until_delivered(delivered: DeliveredCount, total: int, timeout: float,
                          groups: list[CpuSource]) -> Drained:
    """Deliveries per second from the first finished delivery to the last, and the CPU
    time each group of processes spent meanwhile."""
    first_seen: tuple[float, int, tuple[float, ...]] | None = None
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        done, now = delivered(), time.perf_counter()
        if done and first_seen is None:
            first_seen = (now, done, _cpu_now(groups))
        if done >= total and first_seen is not None:
            spent = tuple(b - a for a, b in zip(first_seen[2], _cpu_now(groups), strict=True))
            seconds, counted = now - first_seen[0], total - first_seen[1]
            return Drained(counted / seconds if seconds > 0 else float(total), spent, counted)
        time.sleep(0.25)
    raise TimeoutError(f"only {delivered()} of {total} delivered")


RECEIVERS = ("lean", "aiohttp")


def _start_receivers(group: Children, ports: list[int], receiver: str) -> list[subprocess.Popen[bytes]]:
    """One aiohttp sink per port, or one lean process serving every port (see
    ``bench.lean_sink``: each port is still a host of its own to the worker)."""
    if receiver == "aiohttp":
        return [start_sink(group, port) for port in ports]
    if receiver != "lean":
        raise ValueError(f"receiver must be one of {RECEIVERS}, not {receiver!r}")
    ports_argv = [part for port in ports for part in ("--port", str(port))]
    return [group.start([PYTHON, "-m", "bench.lean_sink", *ports_argv])]


def _received(bases: list[str], receiver: str) -> tuple[int, str]:
    """POSTs the receivers counted, and the malformed ones ("-" if not looked at)."""
    counts = [get_json(f"{base}/count") for base in bases]
    posts = sum(int(count["posts"]) for count in counts)  # type: ignore[index]
    if receiver == "aiohttp":
        return posts, "-"
    return posts, str(sum(int(count["malformed"]) for count in counts))  # type: ignore[index]


def run(activities: int = 500, followers: int = 100, receivers: int = 4,
        sign_seconds: float = 1.0, profile: Path | None = None, workers: int = 2,
        receiver: str = "lean", postgres: str | None = None) -> list[Row]:
    signing_before = rsa_sign_rate(sign_seconds)
    total = activities * followers
    with (tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp, children() as group,
          scratch_postgres_changes(postgres) as database):
        root = Path(tmp)
        config = make_node_dir(root, "fanout", free_port(), **database)
        ports = [free_port() for _ in range(receivers)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        asyncio.run(fill_queue(config, activities, bases, followers))
        sinks = _start_receivers(group, ports, receiver)
        for number, base in enumerate(bases):
            wait_for(f"{base}/count", process=sinks[number % len(sinks)])
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
        worker_processes = [
            group.start([PYTHON, *(profiler if n == 0 else []), "-m", "node.cli", "worker",
                         "--data-dir", str(config.data_dir)], log=root / f"worker-{n}.log")
            for n in range(workers)
        ]
        delivered = DeliveredCount(config.database_url)
        try:
            drained = _wait_until_delivered(
                delivered, total, timeout=max(120.0, total / 50),
                groups=[group_cpu(worker_processes), group_cpu(sinks), delivered.database_cpu])
        finally:
            delivered.close()
        load = load_average()
        received, malformed = _received(bases, receiver)
    # Signing measured before and after the run: the machine's load moves meanwhile.
    signing = _mean_rate(signing_before, rsa_sign_rate(sign_seconds))
    rate = drained.per_s
    met = "met" if rate >= TARGET_PER_S else "NOT met"
    worker_cpu, receiver_cpu, database_cpu = (1e6 * cpu / max(drained.deliveries, 1)
                                              for cpu in drained.cpu_seconds)
    sign_cpu = 1000.0 * signing.cpu_ms
    return [Row(activities, followers, total, receivers, rate, signing.per_s,
                rate / signing.per_s * 100.0, received, f">= {TARGET_PER_S:,.0f}/s: {met}",
                workers, worker_cpu, receiver_cpu, _per_s(worker_cpu), load, sign_cpu,
                100.0 * sign_cpu / worker_cpu if worker_cpu else 0.0,
                2 * _per_s(worker_cpu + receiver_cpu + database_cpu), receiver, malformed,
                "sqlite" if postgres is None else "postgresql", database_cpu)]


def _per_s(cpu_us: float) -> float:
    return 1e6 / cpu_us if cpu_us else 0.0


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    parser.add_argument("--quick", action="store_true", help="50 activities x 20 followers")
    parser.add_argument("--activities", type=int, default=500)
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (default 2: one per core)")
    parser.add_argument("--receiver", choices=RECEIVERS, default="lean",
                        help="the followers' servers: bench.lean_sink (default) or the "
                             "aiohttp sink of bench.load_client")
    parser.add_argument("--postgres", metavar="URL",
                        help="queue in a scratch database on this PostgreSQL server "
                             "(postgresql+asyncpg://…) instead of SQLite")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the (first) worker here")
    args = parser.parse_args()
    if args.quick:
        args.activities, args.followers = 50, 20
    if args.workers < 1:
        parser.error("--workers: must be at least 1")
    print(format_table(run(args.activities, args.followers, profile=args.profile,
                           workers=args.workers, receiver=args.receiver,
                           postgres=args.postgres)))


if __name__ == "__main__":
    main()
