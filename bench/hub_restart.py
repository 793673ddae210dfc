"""Hub start-up at scale: how soon a hub with N members x P practices answers, and its search.

    .venv/bin/python -m bench.hub_restart [--members 11000] [--practices 20]
        [--postgres postgresql+asyncpg://...]

Ingests the documents of ``bench.hub_scale`` into a fresh hub's database (SQL only, as
``hub_scale.ingest`` does; SQLite in a temporary directory, or a throw-away PostgreSQL
database beside the given one), then starts ``praxisnetz serve`` on it four times:

- **first start**: the RDF index is built from SQL, the search filled;
- **restart**: the index on disk is whole; the search as the clean stop left it
  (``node.hub.search_snapshot``): SQLite's in-memory search read back from its snapshot,
  PostgreSQL's table kept without a comparison;
- **restart without the snapshot** (as after a crash): SQLite's in-memory search filled
  from SQL, PostgreSQL's table compared with SQL row by row;
- **stopped while filling**: the index removed (so the start rebuilds it), SIGINT a few
  seconds after the first answer.

For each: the wall time from spawning the process to its first answer (``GET
/.well-known/nodeinfo``), to the first search answered in full (``GET /search?q=Akte``:
503 while the search fills: how long those took to answer, too), and from SIGINT to the
process's end (and whether the hub's log says it stopped its fill: a small hub's fill
ends before the SIGINT), and where the search came from (its log: the snapshot, or
SQL). With ``--inbox-load N``, the first two starts also take N signed Creates at 32 in
flight from the ingest benchmark's load client (``bench.load_client``,
one round: a bare sink's phase, then the hub's) right after the first answer, and again
once the search is whole: the inbox's rate while the hub fills against after (the load
slows the fill, so ``search_whole_s`` is then longer than without it). The hub answers
``START_GRACE_SECONDS`` after its start at the latest (``node.hub.wiring``). Run alone: it
is not part of ``make bench`` (~5 minutes at full size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    PYTHON,
    Children,
    children,
    free_port,
    make_node_dir,
    scratch_postgres_changes,
    serve_node,
    start_sink,
    wait_for,
)
from bench.hub_scale import ingest
from bench.inbox_ingest import BENCH_INBOX
from bench.load_client import IngestResult
from node.config import NodeConfig
from node.hub.search_snapshot import SNAPSHOT_FILE
from node.hub.wiring import INDEX_DIR

SEARCH_POLL_SECONDS = 0.25
STOP_AFTER_ANSWER_SECONDS = 5.0
LOAD_CONCURRENCY = 32


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
    # --inbox-load: the hub's inbox rate right after the first answer and once the search
    # is whole, each as a share of the bare sink's in the same round (None: no load)
    inbox_in_fill_per_s: float | None = None
    inbox_in_fill_pct: float | None = None
    load_ended_in_fill: bool | None = None  # the search still filled when the load ended
    inbox_after_fill_per_s: float | None = None
    inbox_after_fill_pct: float | None = None
    search_from: str | None = None  # "snapshot" or "SQL", as the hub's log says


@dataclass(frozen=True)
class InboxLoad:
    """What ``_start`` posts to the hub's inbox (``--inbox-load``)."""

    activities: int
    sink_port: int


def _post(config: NodeConfig, load: InboxLoad) -> tuple[float, float]:
    """One round of the load client against the hub's inbox: its rate, and that as a
    share of the sink's (%); fails if the hub refused any."""
    argv = [PYTHON, "-m", "bench.load_client", "ingest", "--target", config.inbox_url,
            "--baseline", f"http://127.0.0.1:{load.sink_port}/inbox",
            "--actor-port", str(free_port()), "--activities", str(load.activities),
            "--concurrency", str(LOAD_CONCURRENCY), "--rounds", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True)
    result = IngestResult(**json.loads(done.stdout.strip().splitlines()[-1]))
    if result.node_refused or result.node_accepted != load.activities:
        raise RuntimeError(f"the hub refused activities: {result.node_refused}")
    node, bare = result.node_rounds[0], result.baseline_rounds[0]
    return round(node), round(100 * node / bare, 1)


def _filling(config: NodeConfig) -> bool:
    """The search answers 503: the hub still fills it."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(f"{config.base_url}/search?q=Akte", timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return True
        raise
    return False


def _search_whole(config: NodeConfig, process: subprocess.Popen[bytes], began: float,
                  waits: list[float], timeout: float = 600.0) -> float:
    """Seconds from ``began`` until the search answers 200 (it answers 503 while filling);
    each 503's time to answer goes into ``waits``."""
    while True:
        asked = time.perf_counter()
        if not _filling(config):
            return time.perf_counter() - began
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


def _search_from(log: Path, offset: int) -> str | None:
    """Where the start that logged from ``offset`` on took its search from."""
    said = log.read_bytes()[offset:]
    if b"hub search as at its clean stop" in said:
        return "snapshot"
    return "SQL" if b"hub filling its search" in said else None


def _start(group: Children, config: NodeConfig, log: Path, label: str, *,
           stop_while_filling: bool = False, load: InboxLoad | None = None) -> Row:
    logged = log.stat().st_size if log.exists() else 0
    began = time.perf_counter()
    process = serve_node(group, config, log)
    first = wait_for(f"{config.base_url}/.well-known/nodeinfo", timeout=600, process=process)
    if stop_while_filling:
        time.sleep(STOP_AFTER_ANSWER_SECONDS)
        stopped = _stop(process)
        said = "hub stopped filling" in log.read_text(errors="replace")
        return Row(label, round(first, 1), None, round(stopped, 1), said, None, None,
                   search_from=_search_from(log, logged))
    in_fill: tuple[float | bool | None, ...] = (None, None, None)
    if load is not None:
        in_fill = (*_post(config, load), _filling(config))
    waits: list[float] = []
    whole = _search_whole(config, process, began, waits)
    after = _post(config, load) if load is not None else (None, None)
    return Row(label, round(first, 1), round(whole, 1), round(_stop(process), 1), False,
               *_ms(waits), *in_fill, *after, search_from=_search_from(log, logged))


def measure(members: int = 11_000, practices: int = 20, postgres: str | None = None,
            inbox_load: int = 0) -> list[Row]:
    """The starts; with ``inbox_load`` activities posted in the first two."""
    with tempfile.TemporaryDirectory(prefix="bench-hub-restart-") as tmp, \
            scratch_postgres_changes(postgres) as changes, children() as group:
        config = make_node_dir(Path(tmp), "hub", free_port(), is_hub=True,
                               inbox=BENCH_INBOX, **changes)
        asyncio.run(ingest(config.database_url, members, practices))
        log = Path(tmp) / "hub.log"
        load = None
        if inbox_load:
            load = InboxLoad(inbox_load, free_port())
            wait_for(f"http://127.0.0.1:{load.sink_port}/count",
                     process=start_sink(group, load.sink_port))
        rows = [_start(group, config, log, "first start (index built)", load=load),
                _start(group, config, log, "restart (index whole)", load=load)]
        # the same restart as after a crash: no snapshot
        (config.data_dir / SNAPSHOT_FILE).unlink()
        rows.append(_start(group, config, log, "restart without the search's snapshot"))
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
    parser.add_argument("--inbox-load", type=int, default=0, metavar="N",
                        help="signed Creates posted during the fill and after it (e.g. 8000)")
    args = parser.parse_args()
    print(format_table(measure(args.members, args.practices, args.postgres, args.inbox_load)))


if __name__ == "__main__":
    main()
