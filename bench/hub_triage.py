"""CPU of one triage page (``node.hub.triage.triage_page``) on a hub with N contributions.

    .venv/bin/python -m bench.hub_triage [--contributions 10000] [--decided 0.0]
        [--database-url postgresql+asyncpg://...] [--rounds 5]

Fills a fresh database (SQLite in a temporary directory, or a throw-away PostgreSQL
database beside the given one) with Core ``executemany``: one approved member per 20
contributions, the practices of ``bench.hub_scale`` arriving one second apart, one stance
per member, and a decision (accept) on the oldest ``--decided`` share of them (editors
work oldest first). Then reads the first page, a page in the middle and the last page
(50 each) ``--rounds`` times and prints the median CPU ms per page: the process's (with
SQLite the database's work is in it) and, on PostgreSQL, the server backend's beside it
(read from /proc: the server must run on this machine), with the 1-minute load average.
Run it from another checkout's tree (PYTHONPATH) to measure older code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench._support import cpu_seconds, scratch_postgres_database
from bench.hub_scale import member_actor, practice, stance
from node.hub import triage
from node.hub.tables import HubDecision, HubMember, MemberState
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import RemoteObject

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PER_MEMBER = 20
BATCH = 2_000


def _row(document: dict[str, Any], kind: str, received: datetime) -> dict[str, Any]:
    return {"uri": document["id"], "kind": kind, "attributed_to": document["attributedTo"],
            "in_reply_to": None, "about": document.get("about"), "document": document,
            "published": NOW, "updated": None, "deleted": False, "received_at": received}


def _rows(contributions: int) -> list[dict[str, Any]]:
    members = max(contributions // PER_MEMBER, 1)
    rows = [_row(practice(n % members, n // members), "Practice", NOW + timedelta(seconds=n))
            for n in range(contributions)]
    rows += [_row(stance(m, practice((m + 1) % members, 0)["id"]), "Stance", NOW)
             for m in range(members)]
    return rows


async def fill(engine: Any, contributions: int, decided: float) -> None:
    members = max(contributions // PER_MEMBER, 1)
    rows = _rows(contributions)
    async with engine.begin() as connection:
        await connection.execute(HubMember.__table__.insert(), [
            {"actor_uri": member_actor(n), "name": f"Kommune {n}", "kind": "municipality",
             "ags": f"{5_000_000 + n:08d}", "state": MemberState.APPROVED.value,
             "applied_at": NOW, "decided_at": NOW} for n in range(members)])
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as connection:
            await connection.execute(RemoteObject.__table__.insert(), rows[start:start + BATCH])
    decisions = [{"contribution_uri": row["uri"], "decision": "accept", "note": "",
                  "decided_at": NOW, "decided_by": "bench"}
                 for row in rows[:int(contributions * decided)]]
    for start in range(0, len(decisions), BATCH):
        async with engine.begin() as connection:
            await connection.execute(HubDecision.__table__.insert(),
                                     decisions[start:start + BATCH])
    if engine.dialect.name == "postgresql":  # as autovacuum would; nodes never ANALYZE SQLite
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))


def _backend_cpu(pid: int | None) -> float:
    return cpu_seconds(pid) if pid else 0.0


async def _page_cpu(sessions: Any, offset: int, postgres: bool) -> tuple[float, float, int]:
    async with sessions() as session:
        pid = (await session.scalar(text("SELECT pg_backend_pid()"))) if postgres else None
        started, server = time.process_time(), _backend_cpu(pid)
        found = await triage.triage_page(session, triage.TriageQuery(offset=offset))
        return time.process_time() - started, _backend_cpu(pid) - server, found.total


async def measure(url: str, contributions: int, decided: float, rounds: int) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        started = time.perf_counter()
        await fill(engine, contributions, decided)
        print(f"filled {contributions} in {time.perf_counter() - started:.1f} s")
        sessions = session_maker(engine)
        waiting = contributions - int(contributions * decided)
        postgres = url.startswith("postgresql")
        for name, offset in (("first", 0), ("middle", waiting // 2),
                             ("last", max(waiting - triage.DEFAULT_LIMIT, 0))):
            await _page_cpu(sessions, offset, postgres)  # warm the caches
            runs = [await _page_cpu(sessions, offset, postgres) for _ in range(rounds)]
            process = statistics.median(run[0] for run in runs) * 1000
            server = statistics.median(run[1] for run in runs) * 1000
            total = runs[0][2]
            print(f"{name:6} page (offset {offset:>7}, total {total}): process {process:7.1f} ms"
                  f" CPU, server {server:6.1f} ms; load {os.getloadavg()[0]:.1f}")
    finally:
        await engine.dispose()


async def main_async(arguments: argparse.Namespace) -> None:
    if arguments.database_url:
        async with scratch_postgres_database(arguments.database_url) as url:
            await measure(url, arguments.contributions, arguments.decided, arguments.rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        await measure(f"sqlite+aiosqlite:///{tmp}/triage.db", arguments.contributions,
                      arguments.decided, arguments.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contributions", type=int, default=10_000)
    parser.add_argument("--decided", type=float, default=0.0)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
