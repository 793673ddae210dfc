"""Inbox processing: received Creates applied by the inbox worker, CPU per item and rate.

The door's work is left out: N verified Creates (Articles from ``--actors`` actors, as
``bench.inbox_ingest`` posts them) are stored in ``inbox_items`` as the door leaves them,
then the node's own inbox worker (``node.workers.process_inbox_batch``, the processor of
``build_workers``) takes batches until none waits. Measured in this one process, which
is the node: ``time.process_time`` (every thread, the database driver's too) and the
wall clock. ``--updates`` sends each object's Update after its Create (the same path:
the origin, author and version rules, then one row rewritten).

``--hub`` makes the node a hub: its inbox hook sees every activity and its aggregator,
woken by the hook, indexes approved members' contributions (measured up to a last sync
after the worker is done, so the index has caught up). ``--members`` approves the
senders first (a hub's real load: its members' contributions, indexed), ``--topics``
tags each contribution with a topic (the hook then relays it to the topic's followers,
if it has any: none here, but the hook still asks).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, insert, select

from bench._support import free_port, make_node_dir, scratch_postgres_database
from node import appkeys
from node.app import create_app
from node.hub.runtime import HUB
from node.hub.tables import HubMember, MemberState
from node.inbox_writer import InboxRow
from node.storage.models import InboxItem, InboxState, RemoteObject
from node.workers import build_workers, process_inbox_batch

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


@dataclass(frozen=True)
class Row:
    items: int
    actors: int
    batch: int
    kind: str
    processed_per_s: float
    cpu_ms_per_item: float
    wall_s: float
    stored_objects: int
    hub: bool = False
    members: bool = False
    topics: bool = False
    database: str = "sqlite"


@dataclass(frozen=True)
class Load:
    """What is sent: how many Creates, from how many actors, and in which form."""

    items: int
    actors: int
    updates: bool = False
    hub: bool = False
    members: bool = False
    topics: bool = False


def _activity(actor: str, number: int, kind: str, topics: bool = False) -> dict[str, object]:
    note = f"{actor}/practices/{number}"
    obj: dict[str, object] = {"id": note, "type": "Article", "attributedTo": actor,
                              "name": f"Praxis {number}",
                              "content": "Wir haben die Bauakten umgestellt. " * 8,
                              "published": "2026-11-01T10:00:00Z"}
    if topics:
        obj["topic"] = ["https://w3id.org/praxisnetz/topics#e-akte"]
    if kind == "Update":
        obj["updated"] = "2026-11-02T10:00:00Z"
    return {"@context": AS_CONTEXT, "id": f"{note}/{kind.lower()}", "type": kind,
            "actor": actor, "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "object": obj}


def received_rows(items: int, actors: int, *, updates: bool, now: datetime,
                  topics: bool = False) -> list[dict[str, object]]:
    """The rows the door stores for ``items`` Creates (and their Updates)."""
    rows = []
    kinds = ("Create", "Update") if updates else ("Create",)
    for kind in kinds:
        for number in range(items // len(kinds)):
            actor = f"https://actors.example/users/{number % actors}"
            document = _activity(actor, number, kind, topics)
            rows.append(InboxRow(str(document["id"]), "shared", actor, "actors.example",
                                 document, now).values())
    return rows


async def _approve(app: web.Application, actors: int, now: datetime) -> None:
    """The senders as approved members of the hub (as an editor's approval leaves them)."""
    async with app[appkeys.SESSION_MAKER]() as session, session.begin():
        session.add_all(HubMember(actor_uri=f"https://actors.example/users/{number}",
                                  name=f"Kommune {number}", state=MemberState.APPROVED.value,
                                  applied_at=now, decided_at=now) for number in range(actors))


async def _measure(app: web.Application, rows: list[dict[str, object]],
                   batch: int) -> tuple[float, float, int]:
    sessions, clock = app[appkeys.SESSION_MAKER], app[appkeys.CLOCK]
    async with sessions() as session, session.begin():
        await session.execute(insert(InboxItem), rows)
    processor = build_workers(app).processor
    cpu, wall = time.process_time(), time.perf_counter()
    while await process_inbox_batch(processor, clock, batch):
        pass
    if HUB in app:  # the index catches up with the last items, too
        await app[HUB].aggregator.sync()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(RemoteObject))
        left = await session.scalar(select(func.count()).select_from(InboxItem).where(
            InboxItem.state != InboxState.DONE.value))
    if left:
        raise RuntimeError(f"{left} items were not processed as done")
    return cpu, wall, int(stored or 0)


async def _run_one(root: Path, load: Load, batch: int, postgres: str | None) -> Row:
    if postgres is None:
        return await _run_on(root, load, batch, {"is_hub": load.hub})
    async with scratch_postgres_database(postgres) as url:
        return await _run_on(root, load, batch, {"database_url": url, "is_hub": load.hub})


async def _run_on(root: Path, load: Load, batch: int, changes: dict[str, object]) -> Row:
    config = make_node_dir(root, "processing", free_port(), **changes)
    app = create_app(config, start_workers=False)
    runner = web.AppRunner(app, access_log=None)
    now = datetime.now(UTC)
    await runner.setup()
    try:
        if load.members:
            await _approve(app, load.actors, now)
        rows = received_rows(load.items, load.actors, updates=load.updates, now=now,
                             topics=load.topics)
        cpu, wall, stored = await _measure(app, rows, batch)
    finally:
        await runner.cleanup()
    return Row(items=len(rows), actors=load.actors, batch=batch,
               kind="Create+Update" if load.updates else "Create",
               processed_per_s=round(len(rows) / wall, 1),
               cpu_ms_per_item=round(cpu * 1000 / len(rows), 3), wall_s=round(wall, 2),
               stored_objects=stored, hub=config.is_hub, members=load.members,
               topics=load.topics,
               database="postgresql" if "database_url" in changes else "sqlite")


def run(items: int = 2000, actors: int = 100, batch: int | None = None,
        updates: bool = False, postgres: str | None = None, hub: bool = False,
        members: bool = False, topics: bool = False) -> list[Row]:
    from node.config import InboxTuning

    size = batch or InboxTuning().worker_batch_size
    load = Load(items, actors, updates=updates, hub=hub or members, members=members,
                topics=topics)
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as tmp:
        return [asyncio.run(_run_one(Path(tmp), load, size, postgres))]


def main(argv: list[str] | None = None) -> int:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.inbox_processing", description=__doc__)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--batch", type=int, help="items a batch (default: [inbox] worker_batch_size)")
    parser.add_argument("--updates", action="store_true", help="each Create followed by its Update")
    parser.add_argument("--postgres", metavar="URL",
                        help="a throw-away database on this PostgreSQL server (asyncpg URL)")
    parser.add_argument("--hub", action="store_true",
                        help="the node is a hub (its inbox hook sees every activity; the "
                             "senders are no members unless --members)")
    parser.add_argument("--members", action="store_true",
                        help="a hub whose senders are approved members (implies --hub)")
    parser.add_argument("--topics", action="store_true",
                        help="each contribution tagged with a topic")
    args = parser.parse_args(argv)
    print(format_table(run(args.items, args.actors, args.batch, args.updates, args.postgres,
                           args.hub, args.members, args.topics)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
