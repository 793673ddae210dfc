"""CPU of the stances one public handbook page reads (the draft, handbook, edition pages):
``editorial.feedback_for`` (every stance document of each contribution) against
``public_feedback`` (counts grouped in SQL, only the reasons' stances, a few columns).

    .venv/bin/python -m bench.public_sections [--contributions 200] [--stances 20]
        [--database-url postgresql+asyncpg://...] [--rounds 5]

Prints the CPU per page read and the 1-minute load average, old and new alternately:
the process's (with SQLite the database's work is in it) and, on PostgreSQL, the server
backend's beside it (read from /proc: the server must run on this machine). PostgreSQL
runs in a throw-away database created beside the given one and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench._support import cpu_seconds, scratch_postgres_database
from node.hub import editorial
from node.hub.public_feedback import public_feedback
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import RemoteObject

NOW = datetime(2026, 11, 23, tzinfo=UTC)
POSITIONS = ("agree", "disagree", "partly")


def _stance(contribution: str, member: int, number: int) -> RemoteObject:
    uri = f"https://m{member}.example/stances/{number}"
    reason = f"Begründung {number}: " + "Text " * 20 if number % 2 else ""
    document = {"@context": "https://w3id.org/praxisnetz/context.jsonld", "id": uri,
                "type": ["Note", "Stance"], "attributedTo": f"https://m{member}.example/actor",
                "about": contribution, "position": POSITIONS[number % 3], "reason": reason,
                "content": reason, "published": NOW.isoformat(),
                "to": ["https://www.w3.org/ns/activitystreams#Public"]}
    return RemoteObject(uri=uri, kind="Stance", attributed_to=document["attributedTo"],
                        about=contribution, document=document, deleted=False,
                        received_at=NOW, published=NOW, updated=NOW)


async def _fill(sessions, contributions: int, stances: int) -> list[str]:
    targets = [f"https://m{i % 50}.example/practices/{i}" for i in range(contributions)]
    targets += [f"https://hub.example/handbook/sections/s{i}" for i in range(20)]
    async with sessions() as session, session.begin():
        number = 0
        for target in targets[:contributions]:
            for member in range(stances):
                session.add(_stance(target, member, number))
                number += 1
    return targets


def _backend_cpu(pid: int | None) -> float:
    return 0.0 if pid is None else cpu_seconds(pid)


async def _cpu(sessions, targets: list[str], new: bool, postgres: bool) -> tuple[float, float]:
    async with sessions() as session:
        pid = (await session.scalar(text("SELECT pg_backend_pid()"))) if postgres else None
        started, server = time.process_time(), _backend_cpu(pid)
        if new:
            await public_feedback(session, targets)
        else:
            await editorial.feedback_for(session, targets)
        return time.process_time() - started, _backend_cpu(pid) - server


@asynccontextmanager
async def _database(given: str, folder: str) -> AsyncIterator[str]:
    if not given:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        return
    async with scratch_postgres_database(given) as scratch:
        yield scratch


async def main(args: argparse.Namespace) -> None:
    postgres = bool(args.database_url)
    with tempfile.TemporaryDirectory() as folder:
        async with _database(args.database_url, folder) as url:
            engine = create_engine(url)
            await migrate(engine)
            sessions = session_maker(engine)
            targets = await _fill(sessions, args.contributions, args.stances)
            for new in (True, False):  # warm
                await _cpu(sessions, targets, new, postgres)
            for _ in range(args.rounds):
                old, old_server = await _cpu(sessions, targets, False, postgres)
                new, new_server = await _cpu(sessions, targets, True, postgres)
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"feedback_for {old * 1000:6.1f} ms CPU (+{old_server * 1000:.0f} server)"
                      f"   public_feedback {new * 1000:6.1f} ms CPU (+{new_server * 1000:.0f}"
                      f" server)   load {load}")
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contributions", type=int, default=200)
    parser.add_argument("--stances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    asyncio.run(main(parser.parse_args()))
