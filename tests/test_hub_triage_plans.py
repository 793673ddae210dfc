"""The triage at hub scale: a page's ids come from a walk of the partial index of
contributions in arrival order that stops after the page, not from a scan and a sort of
every contribution; the total counts the partial index by author and the decision rows;
the statements carry no bound value, so PostgreSQL never runs them on a generic plan.
Checked in the planners' own words (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL after ``VACUUM ANALYZE``, as autovacuum would), and the count against a
brute-force count on generated data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from node.hub import triage
from node.hub.tables import HubDecision, HubMember
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import RemoteObject
from tests.node_support import fresh_postgres_database

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
KINDS = ("Practice", "Experience", "Material", "Stance", "Comment", "Note")
STATES = ("approved", "approved", "approved", "pending", "rejected", "left")
DECISIONS = (None, None, None, "accept", "decline", "defer")


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/triage.db")
        await migrate(engine)
        yield engine
        await engine.dispose()
        return
    async with fresh_postgres_database() as url:
        engine = create_engine(url)
        await migrate(engine)
        yield engine
        await engine.dispose()


def _generated(seed: int, rows: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                               list[dict[str, Any]]]:
    """Members in every state, objects of every kind (some deleted, some by strangers),
    and decisions of every kind, some about objects that are no contribution."""
    chance = random.Random(seed)
    members = [{"actor_uri": f"https://m{n}.example/actor", "name": f"Kommune {n}",
                "state": STATES[n % len(STATES)], "applied_at": NOW} for n in range(30)]
    objects, decisions = [], []
    for number in range(rows):
        author = f"https://m{chance.randrange(34)}.example/actor"  # 30..33: no member
        uri = f"https://x.example/objects/{number}"
        objects.append({"uri": uri, "kind": chance.choice(KINDS), "attributed_to": author,
                        "deleted": chance.random() < 0.1, "published": NOW, "updated": NOW,
                        "received_at": NOW + timedelta(seconds=chance.randrange(rows)),
                        "document": {"id": uri, "name": f"Objekt {number}"},
                        "about": None, "in_reply_to": None})
        decision = chance.choice(DECISIONS)
        if decision:
            decisions.append({"contribution_uri": uri, "decision": decision, "note": "",
                              "decided_at": NOW, "decided_by": "test"})
    return members, objects, decisions


async def _fill(engine, seed: int = 3, rows: int = 3_000) -> None:
    members, objects, decisions = _generated(seed, rows)
    async with engine.begin() as connection:
        await connection.execute(insert(HubMember), members)
        await connection.execute(insert(RemoteObject), objects)
        await connection.execute(insert(HubDecision), decisions)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))


_BRUTE_FORCE = """
SELECT count(*) FROM remote_objects r
JOIN hub_members m ON m.actor_uri = r.attributed_to AND m.state = 'approved'
LEFT JOIN hub_decisions d ON d.contribution_uri = r.uri
WHERE r.kind IN ('Practice', 'Experience', 'Material') AND NOT r.deleted
  AND (d.decision IS NULL {deferred})"""


async def test_the_count_and_the_pages_are_the_waiting_contributions(engine) -> None:
    await _fill(engine)
    sessions = session_maker(engine)
    async with sessions() as session:
        for include_deferred in (True, False):
            deferred = "OR d.decision = 'defer'" if include_deferred else ""
            expected = await session.scalar(text(_BRUTE_FORCE.format(deferred=deferred)))
            assert 200 < expected < 1_500
            assert await triage.waiting_count(session, include_deferred) == expected
            shown: list[str] = []
            for offset in range(0, expected + 200, 200):
                page = await triage.triage_page(session, triage.TriageQuery(
                    include_deferred=include_deferred, limit=200, offset=offset))
                assert page.total == expected
                shown += [item.uri for item in page.items]
            assert len(shown) == len(set(shown)) == expected
            received = [item.received for item in (await triage.triage_page(
                session, triage.TriageQuery(limit=200))).items]
            assert received == sorted(received)


async def _plans(engine, query: triage.TriageQuery) -> list[tuple[str, Any, str]]:
    """Each statement ``triage_page`` ran, its bound values, and the planner's plan."""
    statements: list[tuple[str, Any]] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with session_maker(engine)() as session:
            await triage.triage_page(session, query)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    async with engine.connect() as connection:
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = await connection.exec_driver_sql(explain + statement, parameters)
                plans.append((statement, parameters, "\n".join(str(r[-1]) for r in rows)))
    return plans


@pytest.mark.parametrize("include_deferred, analyzed", [(True, False), (False, False),
                                                        (True, True)])
async def test_a_page_walks_the_index_and_the_count_counts_an_index(
        engine, include_deferred, analyzed) -> None:
    """Also once ANALYZE has run on SQLite (nodes never run it; an operator may): with its
    statistics a join with the members went from the members and sorted."""
    await _fill(engine)
    if analyzed and engine.dialect.name == "sqlite":
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    plans = await _plans(engine, triage.TriageQuery(include_deferred=include_deferred))
    ids, written, decided = plans[0], plans[1], plans[2]
    assert ids[0].lstrip().startswith("SELECT remote_objects.id \nFROM remote_objects")
    if engine.dialect.name == "sqlite":
        assert "SCAN remote_objects USING INDEX ix_remote_objects_contributions_received" in (
            ids[2]), ids[2]
        assert "TEMP B-TREE" not in ids[2], ids[2]
        assert "USING INDEX ix_remote_objects_contributions_author" in written[2], written[2]
        assert decided[2].startswith("SCAN hub_decisions"), decided[2]
    else:
        assert "Index Scan using ix_remote_objects_contributions_received" in ids[2], ids[2]
        assert "Sort" not in ids[2] and "Seq Scan on remote_objects" not in ids[2], ids[2]
        assert "Index Only Scan using ix_remote_objects_contributions_author" in written[2], (
            written[2])


async def test_the_page_and_the_count_carry_no_bound_value(engine) -> None:
    """PostgreSQL switches a prepared statement to a generic plan after five runs; one made
    without the offset's value had not found the last page at 100,000 contributions after
    54 s. Statements without bound values are planned with their values each time."""
    await _fill(engine, rows=600)
    plans = await _plans(engine, triage.TriageQuery(limit=7, offset=11))
    for statement, parameters, _ in plans[:3]:
        assert not parameters, (statement, parameters)
    assert "LIMIT 7 OFFSET 11" in plans[0][0]
