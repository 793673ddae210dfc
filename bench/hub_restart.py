"""Hub start-up at scale: how soon a hub with N members x P practices answers, and its search.

    .venv/bin/python -m bench.hub_restart [--members 11000] [--practices 20]
        [--postgres postgresql+asyncpg://...]

Ingests the documents of ``bench.hub_scale`` into a fresh hub's database (SQL only, as
``hub_scale.ingest`` does; SQLite in a temporary directory, or a throw-away PostgreSQL
database beside the given one), then starts ``praxisnetz serve`` on it three times:

- **first start**: the RDF index is built from SQL, the search filled;
- **restart**: the index on disk is whole; SQLite's in-memory search is filled again,
  PostgreSQL's table compared row by row;
- **stopped while filling**: the index removed (so the start rebuilds it), SIGINT a few
  seconds after the first answer.

For each: the wall time from spawning the process to its first answer (``GET
/.well-known/nodeinfo``), to the first search answered in full (``GET /search?q=Akte``:
503 while the search fills: how long those took to answer, too), and from SIGINT to the
process's end (and whether the hub's log says it stopped its fill: a small hub's fill
ends before the SIGINT). The hub answers
``START_GRACE_SECONDS`` after its start at the latest (``node.hub.wiring``). Run alone: it
is not part of ``make bench`` (~5 minutes at full size).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import format_table
from bench._support import (
    Children,
    children,
    free_port,
    make_node_dir,
    scratch_postgres_changes,
    serve_node,
    wait_for,
)
from bench.hub_scale import ingest
from node.config import NodeConfig
from node.hub.wiring import INDEX_DIR

SEARCH_POLL_SECONDS = 0.25
STOP_AFTER_ANSWER_SECONDS = 5.0


@dataclass(frozen=True)
class Row:
    start: str
    first_answer_s: float
    search_whole_s: float | None  # None: stopped before
    stop_s: float
    stopped_while_filling: bool  # the hub's log says so (a small hub's fill ends first)
    # the hub's answers while its search filled (the 503s of the polls), ms; None: none
    fill_answer_p50_ms: float | None
    fill_answer_max_ms: float | None


def _search_whole(config: NodeConfig, process: subprocess.Popen[bytes], began: float,
                  waits: list[float], timeout: float = 600.0) -> float:
    """Seconds from ``began`` until the search answers 200 (it answers 503 while filling);
    each 503's time to answer goes into ``waits``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    while True:
        asked = time.perf_counter()
        try:
            with opener.open(f"{config.base_url}/search?q=Akte", timeout=10) as response:
                response.read()
            return time.perf_counter() - began
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            waits.append(time.perf_counter() - asked)
        if process.poll() is not None or time.perf_counter() - began > timeout:
            raise ChildProcessError(f"the hub's search did not fill ({process.returncode})")
        time.sleep(SEARCH_POLL_SECONDS)


def _ms(waits: list[float]) -> tuple[float | None, float | None]:
    """The median and the longest of ``waits`` in ms."""
    if not waits:
        return None, None
    return round(statistics.median(waits) * 1000, 1), round(max(waits) * 1000, 1)


def _stop(process: subprocess.Popen[bytes]) -> float:
    """SIGINT (Ctrl-C, as an operator stops it) and the seconds until the process ended."""
    began = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    return time.perf_counter() - began


def _start(group: Children, config: NodeConfig, log: Path, label: str, *,
           stop_while_filling: bool = False) -> Row:
    began = time.perf_counter()
    process = serve_node(group, config, log)
    first = wait_for(f"{config.base_url}/.well-known/nodeinfo", timeout=600, process=process)
    if stop_while_filling:
        time.sleep(STOP_AFTER_ANSWER_SECONDS)
        stopped = _stop(process)
        said = "hub stopped filling" in log.read_text(errors="replace")
        return Row(label, round(first, 1), None, round(stopped, 1), said, None, None)
    waits: list[float] = []
    whole = _search_whole(config, process, began, waits)
    return Row(label, round(first, 1), round(whole, 1), round(_stop(process), 1), False,
               *_ms(waits))


def measure(members: int = 11_000, practices: int = 20, postgres: str | None = None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-hub-restart-") as tmp, \
            scratch_postgres_changes(postgres) as changes, children() as group:
        config = make_node_dir(Path(tmp), "hub", free_port(), is_hub=True, **changes)
        asyncio.run(ingest(config.database_url, members, practices))
        log = Path(tmp) / "hub.log"
        rows = [_start(group, config, log, "first start (index built)"),
                _start(group, config, log, "restart (index whole)")]
        shutil.rmtree(config.data_dir / INDEX_DIR)
        rows.append(_start(group, config, log, "stopped while filling (index rebuilt)",
                           stop_while_filling=True))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hub_restart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=11_000)
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL URL; the hub runs in a scratch database beside it")
    args = parser.parse_args()
    print(format_table(measure(args.members, args.practices, args.postgres)))


if __name__ == "__main__":
    main()
