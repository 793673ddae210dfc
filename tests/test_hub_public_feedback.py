"""The public pages' stances (``public_feedback``, ``feedback_items``) are what
``editorial.feedback_for`` gave them: the same counts, the same reasons in the same
order, the same section JSON-LD, on generated stances with updated, deleted, reasonless
and odd ones, comments and replies, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.hub import editorial
from node.hub.public_feedback import feedback_items, public_feedback
from node.storage.db import migrate, session_maker
from node.storage.models import RemoteObject
from tests.hub_support import stance
from tests.node_support import database_engine

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
SECTION = "https://hub.example/handbook/sections/e-akte"
TARGETS = [f"https://m{i}.example/practices/p{i}" for i in range(6)] + [SECTION]
REASONS = ["Zu teuer.", "", "   ", "Erst <b>Schulung</b>", None, "Gut."]
POSITIONS = ["agree", "disagree", "partly", "unknown", 3]


@pytest.fixture(params=["sqlite", "postgres"])
async def sessions(request: pytest.FixtureRequest,
                   tmp_path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async for engine in database_engine(request.param, tmp_path):
        await migrate(engine)
        yield session_maker(engine)


def _document(rng: random.Random, number: int) -> tuple[str, dict[str, Any], str | None]:
    """A stance (odd positions and reasons included) or a comment, about a target or
    replying to one (now and then about one target and replying to another)."""
    host = f"m{rng.randrange(12)}.example"
    about = rng.choice(TARGETS)
    if rng.random() < 0.2:
        comment = {"id": f"https://{host}/notes/{number}", "type": "Note",
                   "attributedTo": f"https://{host}/actor", "inReplyTo": about,
                   "content": "Frage"}
        return "Comment", comment, about
    document = stance(host, f"s{number}", about=about, position="agree")
    document["position"] = rng.choice(POSITIONS)
    reason = rng.choice(REASONS)
    if reason is None:
        del document["reason"]
    else:
        document["reason"] = reason
    if rng.random() < 0.3:
        document["url"] = rng.choice([f"https://{host}/s/{number}", "javascript:alert(1)"])
    replying = rng.choice(TARGETS) if rng.random() < 0.1 else None
    return "Stance", document, replying


async def _generate(sessions: async_sessionmaker[AsyncSession], seed: int) -> None:
    rng = random.Random(seed)
    async with sessions() as session, session.begin():
        for number in range(300):
            kind, document, replying = _document(rng, number)
            session.add(RemoteObject(
                uri=document["id"], kind=kind, attributed_to=document["attributedTo"],
                about=document.get("about"), in_reply_to=replying, document=document,
                deleted=rng.random() < 0.1, received_at=NOW, published=NOW, updated=NOW))
    async with sessions() as session, session.begin():
        # an Update replaces the document (position and reason), as the inbox worker does
        for number in rng.sample(range(300), 40):
            document = stance(f"m{number % 12}.example", f"s{number}", about=rng.choice(TARGETS),
                              position=rng.choice(["agree", "disagree", "partly"]),
                              reason=rng.choice(["Geändert.", ""]))
            await session.execute(update(RemoteObject)
                                  .where(RemoteObject.uri == document["id"])
                                  .values(document=document, about=document["about"]))


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_pages_get_what_feedback_for_gave(sessions, seed: int) -> None:
    await _generate(sessions, seed)
    async with sessions() as session:
        old = await editorial.feedback_for(session, TARGETS)
        new = await public_feedback(session, TARGETS)
        section = await feedback_items(session, SECTION)
        alone = (await editorial.feedback_for(session, [SECTION]))[SECTION]  # as the route asks
    assert sum(len(f.items) for f in old.values()) > 150  # the data has stances to compare
    assert any(f.reasons for f in old.values())
    for target in TARGETS:
        before, counts = old[target], new.counts_of(target)
        assert (counts.agree, counts.disagree, counts.partly, counts.comments) == (
            before.agree, before.disagree, before.partly, before.comments)
        assert new.reasons_of(target) == tuple(before.reasons)
    # the section document carries the counts and every item's id, byte for byte
    assert json.dumps(section.to_json()) == json.dumps(alone.to_json())
    assert alone.items != old[SECTION].items  # a reply about another target counts here


async def test_no_stances_no_reasons(sessions) -> None:
    async with sessions() as session:
        found = await public_feedback(session, TARGETS)
        section = await feedback_items(session, SECTION)
    assert all(found.reasons_of(target) == () for target in TARGETS)
    assert found.counts_of(SECTION).of(("agree", "disagree", "partly")) == 0
    assert section.to_json() == editorial.Feedback().to_json()
