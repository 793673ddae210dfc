"""Shared plumbing of the benchmarks: loopback ports, child processes, node directories.

Every child process is started here and stopped by ``children`` on the way out, so a
benchmark leaves no process behind even when it fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import make_url

from node.config import DeliveryTuning, InboxTuning, NodeConfig, write_config
from node.identity import create_node_keys

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_node_dir(root: Path, slug: str, port: int, **changes: object) -> NodeConfig:
    """A node directory as ``praxisnetz init --allow-private-network`` leaves it (SQLite)."""
    data_dir = root / slug
    data_dir.mkdir(parents=True, exist_ok=True)
    config = NodeConfig(data_dir=data_dir, base_url=f"http://127.0.0.1:{port}",
                        name=f"Bench {slug}", slug=slug, allow_private_network=True,
                        inbox=InboxTuning(), delivery=DeliveryTuning())
    config = replace(config, **changes) if changes else config  # type: ignore[arg-type]
    create_node_keys(config)
    write_config(config)  # with the [inbox]/[delivery] tuning a benchmark set
    return config


class Children:
    """Child processes of one benchmark; all are terminated (then killed) on close."""

    def __init__(self) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1"}
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env)
        self._processes.append(process)
        return process

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def children() -> Iterator[Children]:
    group = Children()
    try:
        yield group
    finally:
        group.close()


def serve_node(group: Children, config: NodeConfig, log: Path, *,
               profile: Path | None = None) -> subprocess.Popen[bytes]:
    """``praxisnetz serve`` for ``config``; with ``profile``, under cProfile writing there
    (the profile is written when the node stops on SIGTERM)."""
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    return group.start([PYTHON, *profiler, "-m", "node.cli", "serve",
                        "--data-dir", str(config.data_dir)], log=log)


def start_sink(group: Children, port: int, processes: int = 1) -> subprocess.Popen[bytes]:
    """The trivial aiohttp POST server of ``bench.load_client`` on ``port``; with
    ``processes`` > 1, this process and its children share the port."""
    return group.start([PYTHON, "-m", "bench.load_client", "sink", "--port", str(port),
                        "--processes", str(processes)])


def wait_for(url: str, timeout: float = 30.0, interval: float = 0.01,
             process: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until ``url`` answers (any HTTP status counts as an answer); fails at once
    if ``process`` (the server behind ``url``) has ended."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    started = time.perf_counter()
    while True:
        try:
            with opener.open(url, timeout=2) as response:
                response.read()
            return time.perf_counter() - started
        except urllib.error.HTTPError:
            return time.perf_counter() - started
        except OSError:
            if process is not None and process.poll() is not None:
                raise ChildProcessError(f"{process.args!r} ended with {process.returncode} "
                                        f"before {url} answered") from None
            if time.perf_counter() - started > timeout:
                raise
            time.sleep(interval)


def get_json(url: str) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time a running process (or one of its threads) has used so far
    (Linux ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    # The command may contain spaces; the fields after its closing parenthesis do not.
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def asyncpg_dsn(url: str) -> str:
    """The DSN asyncpg itself connects to for a node's ``postgresql+asyncpg://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _scratch_database(url: str, prefix: str = "praxisnetz_bench") -> tuple[str, str, str]:
    """For a throw-away database beside ``url`` (an asyncpg URL): the DSN asyncpg connects
    to as admin, the new database's name and its URL for the node."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    return (asyncpg_dsn(url), name,
            make_url(url).set(database=name).render_as_string(hide_password=False))


def server_cpu_seconds(pid: int) -> float:
    """CPU time a server that forks a process per connection (PostgreSQL's postmaster)
    has used so far with its children: its own, its live children's, and what it reaped
    of its ended children (``cutime``/``cstime``, which ``cpu_seconds`` leaves out)."""
    def stat_fields(path: Path) -> list[str]:
        return path.read_text().rpartition(")")[2].split()

    ticks = os.sysconf("SC_CLK_TCK")
    own = stat_fields(Path(f"/proc/{pid}/stat"))
    total = sum(int(own[field]) for field in (11, 12, 13, 14))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_fields(stat)
        except OSError:
            continue  # ended while we looked: its time is in the parent's cutime now
        if fields[1] == str(pid):
            total += sum(int(fields[field]) for field in (11, 12, 13, 14))
    return total / ticks


@contextlib.asynccontextmanager
async def scratch_postgres_database(url: str, prefix: str = "praxisnetz_bench"
                                    ) -> AsyncIterator[str]:
    """The URL of a throw-away database on the PostgreSQL server of ``url`` (an asyncpg
    URL), dropped afterwards: a benchmark never writes into the database it was given.
    The tests' databases have a prefix of their own, so that the benchmarks' smoke tests
    can tell theirs from those of tests running beside them on the same server."""
    import asyncpg  # only the PostgreSQL benchmarks need it

    admin_dsn, name, scratch_url = _scratch_database(url, prefix)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield scratch_url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.contextmanager
def scratch_postgres_changes(url: str | None) -> Iterator[dict[str, str]]:
    """``scratch_postgres_database`` for a benchmark outside an event loop, as
    ``make_node_dir`` changes (``database_url``); nothing for SQLite (``url`` None)."""
    if url is None:
        yield {}
        return
    import asyncpg

    admin_dsn, name, scratch_url = _scratch_database(url)

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield {"database_url": scratch_url}
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
