"""Small node: start-up of ``praxisnetz serve`` and its resident memory.

Start-up is the wall time from spawning ``python -m node.cli serve`` to the first
answered ``GET /.well-known/nodeinfo`` (polled every 10 ms), once on a fresh database
(migrations run) and once on the same node again (the usual restart). Resident memory
(VmRSS of the serve process) is read after 2 s idle, after the first contribution (which
imports Markdown and validation), and after N contributions in all were published through
``POST /api/contributions`` (the rest 8 in flight; the node has no followers, so no
deliveries are queued), each time after 2 s to settle. Targets: start-up under 1.5 s, memory
under 100 MiB. The restart's CPU time (user + system, from /proc) is printed beside
its wall time: on a loaded machine the wall time mostly measures the other processes.

The restart is measured once more with a bytecode cache, as an installed node starts
(pip writes the ``.pyc`` files; a source checkout writes them on its first run): the
workspace this bench usually runs in sets ``PYTHONDONTWRITEBYTECODE=1``, so every start
above compiles the project's ~100 modules from source again. The cache is a
``PYTHONPYCACHEPREFIX`` directory in the bench's temporary directory, filled by one
unmeasured start; the rows above are measured without it, as before.
Run: ``python -m bench small_node`` or ``python -m bench.small_node [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench._support import (
    Children,
    children,
    cpu_seconds,
    free_port,
    make_node_dir,
    rss_mib,
    serve_node,
    wait_for,
)
from node.config import NodeConfig
from node.storage.db import create_engine, migrate, session_maker
from node.storage.tokens import create_token

STARTUP_TARGET_S = 1.5
MEMORY_TARGET_MIB = 100.0
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Row:
    measure: str
    value: float
    unit: str
    target: str


async def _issue_token(config: NodeConfig) -> str:
    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
        async with session_maker(engine).begin() as session:
            return (await create_token(session, "bench", now=datetime.now(UTC))).token
    finally:
        await engine.dispose()


def _practice(number: int) -> dict[str, object]:
    return {
        "kind": "practice",
        "slug": f"praxis-{number}",
        "title": f"E-Akte im Bauamt {number}",
        "summary": "Wie wir die E-Akte eingeführt haben.",
        "topics": ["e-akte"],
        "status": "in-operation",
        "steps": ["Ist-Prozesse aufnehmen", "Pilot starten"],
        "body": "Wir haben die **Bauakten** umgestellt. " * 10,
    }


async def publish(
    base_url: str, token: str, count: int, concurrency: int = 8, start: int = 0
) -> float:
    """Publishes ``count`` practices (numbered from ``start``) through the API; returns
    contributions per second."""
    numbers = iter(range(start, start + count))
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            for number in numbers:
                async with session.post(
                    f"{base_url}/api/contributions", json=_practice(number)
                ) as response:
                    if response.status != 201:
                        raise RuntimeError(
                            f"publish {number}: {response.status} {await response.text()}"
                        )

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def _start(group: Children, config: NodeConfig, log: Path) -> tuple[int, float, float]:
    """The serve process's pid, wall time to its first answer and CPU time spent so far."""
    started = time.perf_counter()
    process = serve_node(group, config, log)
    wait_for(f"{config.base_url}/.well-known/nodeinfo", interval=0.01, process=process)
    return process.pid, time.perf_counter() - started, cpu_seconds(process.pid)


@contextlib.contextmanager
def bytecode_cache(directory: Path) -> Iterator[None]:
    """Child processes started inside read and write their bytecode under ``directory``
    (``os.environ`` is restored on the way out)."""
    saved = dict(os.environ)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(directory)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _cached_restart(config: NodeConfig, root: Path) -> tuple[float, float]:
    """Wall and CPU time of a restart with a warm bytecode cache (one start fills it)."""
    with bytecode_cache(root / "pycache"):
        with children() as group:
            _start(group, config, root / "serve.log")
        with children() as group:
            _, wall, cpu = _start(group, config, root / "serve.log")
    return wall, cpu


def _verdict(value: float, limit: float, unit: str) -> str:
    return f"< {limit:g} {unit}: {'met' if value < limit else 'NOT met'}"


def run(contributions: int = 1000, settle_seconds: float = SETTLE_SECONDS) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        root = Path(tmp)
        config = make_node_dir(root, "klein", free_port())
        with children() as group:
            _, cold, _ = _start(group, config, root / "serve.log")
        token = asyncio.run(_issue_token(config))
        with children() as group:
            pid, warm, warm_cpu = _start(group, config, root / "serve.log")
            time.sleep(settle_seconds)
            idle = rss_mib(pid)
            asyncio.run(publish(config.base_url, token, 1, concurrency=1))
            time.sleep(settle_seconds)
            first = rss_mib(pid)  # the first publish imports Markdown and validation
            rate = asyncio.run(publish(config.base_url, token, contributions - 1, start=1))
            time.sleep(settle_seconds)
            loaded = rss_mib(pid)
        cached, cached_cpu = _cached_restart(config, root)
    return [
        Row("start-up, new database", cold * 1000, "ms", _verdict(cold, STARTUP_TARGET_S, "s")),
        Row("start-up, restart", warm * 1000, "ms", _verdict(warm, STARTUP_TARGET_S, "s")),
        Row("RSS idle", idle, "MiB", _verdict(idle, MEMORY_TARGET_MIB, "MiB")),
        Row("RSS after the first contribution", first, "MiB", "-"),
        Row(
            f"RSS after {contributions:,} contributions",
            loaded,
            "MiB",
            _verdict(loaded, MEMORY_TARGET_MIB, "MiB"),
        ),
        Row("publish rate (API)", rate, "per s", "-"),
        # The wall time above grows with the machine's load; the CPU time much less.
        Row("start-up CPU time (user+sys), restart", warm_cpu * 1000, "ms", "-"),
        # as installed: the same restart with the project's bytecode cached (docstring)
        Row("start-up, restart, bytecode cached", cached * 1000, "ms", "-"),
        Row("start-up CPU time, restart, bytecode cached", cached_cpu * 1000, "ms", "-"),
    ]


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.small_node")
    parser.add_argument("--quick", action="store_true", help="100 contributions")
    parser.add_argument("--contributions", type=int, default=1000)
    args = parser.parse_args()
    print(format_table(run(100 if args.quick else args.contributions)))


if __name__ == "__main__":
    main()
