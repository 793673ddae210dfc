"""Inbox ingest: signed Creates from many actors, verified and persisted by ``praxisnetz serve``.

A separate load process (``bench.load_client ingest``) serves the actors' documents on
one loopback port, signs every Create in advance (draft-cavage and RFC 9421 alternately,
RSA-2048), and posts them over loopback with 32 requests in flight: first to a trivial
aiohttp POST handler in its own process (the machine's bare rate), then to the inbox of a
real ``praxisnetz serve`` node on SQLite, whose inbox worker runs as in production. The
node fetches each actor's key once (key cache); "persisted" counts the node's
``inbox_items`` rows afterwards. Target: the node's rate is at least 50% of the bare rate.
Run: ``python -m bench inbox_ingest`` or ``python -m bench.inbox_ingest [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bench._support import (
    PYTHON,
    children,
    free_port,
    make_node_dir,
    serve_node,
    start_sink,
    wait_for,
)
from node.config import InboxTuning, NodeConfig
from node.storage.db import create_engine, session_maker
from node.storage.models import InboxItem

TARGET_SHARE_PCT = 50.0
# One host and one address send everything: the rate limits would measure 429s.
BENCH_INBOX = InboxTuning(requests_per_host_per_minute=10_000_000, requests_per_ip_per_minute=10_000_000,
                          queue_limit=1_000_000)


@dataclass(frozen=True)
class Row:
    activities: int
    actors: int
    node_per_s: float
    bare_aiohttp_per_s: float
    share_pct: float
    persisted: int
    refused: str
    target: str


async def _persisted(config: NodeConfig) -> int:
    engine = create_engine(config.database_url)
    try:
        async with session_maker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(InboxItem)))
    finally:
        await engine.dispose()


def run(activities: int = 2000, actors: int = 100, concurrency: int = 32,
        profile: Path | None = None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, children() as group:
        root = Path(tmp)
        node_port, sink_port, actor_port = free_port(), free_port(), free_port()
        config = make_node_dir(root, "ingest", node_port, inbox=BENCH_INBOX)
        sink = start_sink(group, sink_port)
        node = serve_node(group, config, root / "node.log", profile=profile)
        wait_for(f"http://127.0.0.1:{sink_port}/count", process=sink)
        wait_for(f"{config.base_url}/.well-known/nodeinfo", process=node)
        load = subprocess.run(
            [PYTHON, "-m", "bench.load_client", "ingest", "--target", config.inbox_url,
             "--baseline", f"http://127.0.0.1:{sink_port}/inbox",
             "--actor-port", str(actor_port), "--actors", str(actors),
             "--activities", str(activities), "--concurrency", str(concurrency)],
            capture_output=True, text=True, timeout=900, check=True,
        )  # fmt: skip
        result = json.loads(load.stdout.strip().splitlines()[-1])
        persisted = asyncio.run(_persisted(config))
    share = result["node_per_s"] / result["baseline_per_s"] * 100.0
    refused = ",".join(f"{k}x{v}" for k, v in result["node_refused"].items()) or "-"
    met = "met" if share >= TARGET_SHARE_PCT and persisted == activities else "NOT met"
    return [Row(activities, actors, result["node_per_s"], result["baseline_per_s"], share,
                persisted, refused, f">= {TARGET_SHARE_PCT:.0f}%: {met}")]


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.inbox_ingest")
    parser.add_argument("--quick", action="store_true", help="300 activities from 30 actors")
    parser.add_argument("--activities", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the node here")
    args = parser.parse_args()
    if args.quick:
        args.activities, args.actors = 300, 30
    print(format_table(run(args.activities, args.actors, profile=args.profile)))


if __name__ == "__main__":
    main()
