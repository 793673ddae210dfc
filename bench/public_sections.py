"""CPU of the stances one public handbook page reads (the draft, handbook, edition pages):
``editorial.feedback_for`` (every stance document of each contribution) against
``public_feedback`` (counts grouped in SQL, only the reasons' stances, a few columns).

    .venv/bin/python -m bench.public_sections [--contributions 200] [--stances 20]
        [--database-url postgresql+asyncpg://...] [--rounds 5]

Prints the process CPU per page read (SQLite: the database's work included; PostgreSQL:
the client's only) and the 1-minute load average, old and new alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

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


async def _cpu(sessions, targets: list[str], new: bool) -> float:
    async with sessions() as session:
        started = time.process_time()
        if new:
            await public_feedback(session, targets)
        else:
            await editorial.feedback_for(session, targets)
        return time.process_time() - started


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        engine = create_engine(url)
        await migrate(engine)
        sessions = session_maker(engine)
        targets = await _fill(sessions, args.contributions, args.stances)
        await _cpu(sessions, targets, True), await _cpu(sessions, targets, False)  # warm
        for _ in range(args.rounds):
            old = await _cpu(sessions, targets, False)
            new = await _cpu(sessions, targets, True)
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"feedback_for {old * 1000:7.1f} ms CPU   public_feedback "
                  f"{new * 1000:7.1f} ms CPU   load {load}")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contributions", type=int, default=200)
    parser.add_argument("--stances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    asyncio.run(main(parser.parse_args()))
