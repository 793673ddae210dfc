"""Triage for a large hub: ``/api/hub/triage``, the editors' triage page and ``hub triage``
page the waiting contributions with a bounded limit, count their stances in SQL as
``editorial.feedback_for`` counts them (SQLite and PostgreSQL), link to the stances instead
of listing them, and load the objections' reasons only for the contributions shown."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from node import appkeys
from node.hub import editorial, feedback, triage
from node.hub.tables import HubDecision, HubMember
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import RemoteObject
from node.storage.tokens import create_token
from tests.node_support import fresh_postgres_database
from tests.web_support import add_staff, sign_in, web_app

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MEMBER = "https://dueren.example/actor"


def _contribution(number: int) -> dict[str, Any]:
    uri = f"https://dueren.example/practices/p{number}"
    return {"uri": uri, "kind": "Practice", "attributed_to": MEMBER, "about": None,
            "in_reply_to": None, "deleted": False, "published": NOW, "updated": NOW,
            "received_at": NOW + timedelta(minutes=number),
            "document": {"id": uri, "type": ["Article", "Practice"], "name": f"Praxis {number}",
                         "attributedTo": MEMBER}}


def _feedback(uri: str, about: str | None, *, position: str | None, kind: str = "Stance",
              reason: str = "", in_reply_to: str | None = None,
              deleted: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {"id": uri, "type": ["Note", kind], "attributedTo": MEMBER,
                                "reason": reason}
    if position is not None:
        document["position"] = position
    if about is not None:
        document["about"] = about
    return {"uri": uri, "kind": kind, "attributed_to": MEMBER, "about": about,
            "in_reply_to": in_reply_to, "deleted": deleted, "published": NOW, "updated": NOW,
            "received_at": NOW, "document": document}


async def _store(sessions: Any, rows: list[dict[str, Any]]) -> None:
    async with sessions.begin() as session:
        session.add(HubMember(actor_uri=MEMBER, name="Stadt Düren", kind="Organization",
                              ags="05358008", state="approved", applied_at=NOW))
        await session.flush()
        await session.execute(insert(RemoteObject), rows)


def _generated(targets: list[str], seed: int) -> list[dict[str, Any]]:
    """Stances of every position, ones without a known position, comments, deleted ones,
    and objects about one target replying to another."""
    chance = random.Random(seed)
    rows = []
    for number in range(400):
        target = chance.choice(targets)
        other = chance.choice(targets)
        shape = chance.randrange(6)
        uri = f"https://m{number}.example/feedback/{number}"
        if shape == 0:
            rows.append(_feedback(uri, None, position=None, kind="Comment", in_reply_to=target))
        elif shape == 1:
            rows.append(_feedback(uri, target, position=chance.choice(("maybe", None))))
        elif shape == 2:
            rows.append(_feedback(uri, target, position="disagree", in_reply_to=other,
                                  reason=f"Grund {number}"))
        else:
            rows.append(_feedback(uri, target, position=chance.choice(("agree", "disagree",
                                                                       "partly")),
                                  reason=chance.choice(("", "  ", f"Grund {number}")),
                                  deleted=chance.random() < 0.1))
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(request, tmp_path):
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/triage.db")
        await migrate(engine)
        yield session_maker(engine)
        await engine.dispose()
        return
    async with fresh_postgres_database() as url:
        engine = create_engine(url)
        await migrate(engine)
        yield session_maker(engine)
        await engine.dispose()


async def test_sql_counts_and_reasons_equal_the_document_counting(sessions) -> None:
    targets = [f"https://dueren.example/practices/p{number}" for number in range(12)]
    await _store(sessions, [_contribution(n) for n in range(12)] + _generated(targets, 7))
    async with sessions() as session:
        counted = await feedback.count_feedback_of(session, [*targets, "https://none.example/x"])
        expected = await editorial.feedback_for(session, [*targets, "https://none.example/x"])
        reasons = await feedback.reasons_about(session, targets, ("disagree", "partly"))
    for target, old in expected.items():
        new = counted[target]
        assert (new.agree, new.disagree, new.partly, new.comments) == (
            old.agree, old.disagree, old.partly, old.comments), target
    assert sum(c.agree + c.disagree + c.partly + c.comments for c in counted.values()) > 300
    for target in targets:
        old_reasons = [r for r in expected[target].reasons if r.position != "agree"]
        assert list(reasons[target]) == old_reasons, target
    assert sum(len(found) for found in reasons.values()) > 50


async def test_reasons_are_bounded_per_contribution_objections_first(sessions) -> None:
    about = "https://dueren.example/practices/p0"
    rows = [_contribution(0)]
    for number in range(9):
        position = "partly" if number < 5 else "disagree"
        rows.append(_feedback(f"https://m{number}.example/s", about, position=position,
                              reason=f"Grund {number}"))
    await _store(sessions, rows)
    async with sessions() as session:
        found = (await feedback.reasons_about(session, [about], per_target=3))[about]
    assert [r.reason for r in found] == ["Grund 5", "Grund 6", "Grund 7"]


async def test_pages_on_the_database_oldest_first_deferred_ones_included(sessions) -> None:
    """The window count and the page's ids (SQLite and PostgreSQL): decided contributions
    leave the list, deferred ones stay unless asked not to."""
    await _store(sessions, [_contribution(n) for n in range(9)])
    async with sessions.begin() as session:
        for number, decision in ((1, "accept"), (4, "decline"), (6, "defer")):
            session.add(HubDecision(contribution_uri=f"https://dueren.example/practices/p{number}",
                                    decision=decision, note="", decided_at=NOW,
                                    decided_by="test"))
    async with sessions() as session:
        first = await triage.triage_page(session, triage.TriageQuery(limit=4))
        rest = await triage.triage_page(session, triage.TriageQuery(limit=4, offset=4))
        undeferred = await triage.triage_page(session, triage.TriageQuery(include_deferred=False))
        beyond = await triage.triage_page(session, triage.TriageQuery(offset=20))
    assert [i.title for i in first.items] == ["Praxis 0", "Praxis 2", "Praxis 3", "Praxis 5"]
    assert [(i.title, i.decision) for i in rest.items] == [("Praxis 6", "defer"),
                                                            ("Praxis 7", None), ("Praxis 8", None)]
    assert (first.total, rest.total, rest.next_offset(), first.next_offset()) == (7, 7, None, 4)
    assert undeferred.total == 6 and "Praxis 6" not in [i.title for i in undeferred.items]
    assert (beyond.total, beyond.items) == (7, ())


async def test_the_page_loads_reasons_for_its_contributions_only(hub, monkeypatch) -> None:
    asked: list[list[str]] = []
    reasons_about = feedback.reasons_about

    async def recording(session, targets, *args, **kwargs):
        asked.append(list(targets))
        return await reasons_about(session, targets, *args, **kwargs)

    monkeypatch.setattr(feedback, "reasons_about", recording)
    await sign_in(hub)
    asked.clear()
    assert (await hub.get("/hub/editor?limit=2&offset=4")).status == 200
    assert asked == [["https://dueren.example/practices/p4", "https://dueren.example/practices/p5"]]


@pytest.fixture
async def hub(tmp_path, aiohttp_client):
    app = web_app(tmp_path, base_url="http://kochbuch.example", is_hub=True, slug="kochbuch")
    client = await aiohttp_client(app)
    await add_staff(app)
    rows = [_contribution(n) for n in range(7)]
    for n in range(7):
        about = f"https://dueren.example/practices/p{n}"
        rows.append(_feedback(f"https://m{n}.example/a", about, position="agree", reason="Gut"))
        rows.append(_feedback(f"https://m{n}.example/d", about, position="disagree",
                              reason=f"Einwand zu Praxis {n}"))
    await _store(app[appkeys.SESSION_MAKER], rows)
    async with app[appkeys.SESSION_MAKER].begin() as session:
        token = (await create_token(session, "redaktion", now=NOW)).token
    client.headers_for_api = {"Authorization": f"Bearer {token}"}  # type: ignore[attr-defined]
    return client


async def _api(hub, path: str) -> tuple[int, Any]:
    response = await hub.get(path, headers=hub.headers_for_api)
    return response.status, await response.json(content_type=None)


async def test_the_api_pages_the_triage_with_counts_and_a_link_to_the_stances(hub) -> None:
    status, first = await _api(hub, "/api/hub/triage?limit=3")
    assert status == 200, first
    assert (first["total"], first["limit"], first["offset"], first["previous"]) == (7, 3, 0, None)
    assert [i["title"] for i in first["items"]] == ["Praxis 0", "Praxis 1", "Praxis 2"]
    item = first["items"][0]
    assert item["feedback"] == {
        "agree": 1, "disagree": 1, "partly": 0, "comments": 0,
        "stances": "/api/hub/feedback?target=https%3A%2F%2Fdueren.example%2Fpractices%2Fp0"}
    status, stances = await _api(hub, item["feedback"]["stances"])
    assert status == 200 and {s["reason"] for s in stances["stances"]} == {
        "Gut", "Einwand zu Praxis 0"}
    status, second = await _api(hub, first["next"])
    assert [i["title"] for i in second["items"]] == ["Praxis 3", "Praxis 4", "Praxis 5"]
    status, last = await _api(hub, second["next"])
    assert [i["title"] for i in last["items"]] == ["Praxis 6"] and last["next"] is None
    assert last["previous"] == "/api/hub/triage?limit=3&offset=3"
    status, beyond = await _api(hub, "/api/hub/triage?offset=50")
    assert status == 200 and (beyond["total"], beyond["items"]) == (7, [])
    status, whole = await _api(hub, f"/api/hub/triage?limit={triage.MAX_LIMIT}")
    assert len(whole["items"]) == 7 and whole["next"] is None


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), (f"limit={triage.MAX_LIMIT + 1}", "limit"), ("limit=viele", "limit"),
    ("offset=-1", "offset"), ("offset=1e3", "offset"), ("deferred=vielleicht", "deferred"),
])
async def test_a_bad_parameter_is_refused_by_name(hub, query, field) -> None:
    status, problem = await _api(hub, f"/api/hub/triage?{query}")
    assert status == 400 and problem["field"] == field, problem
    if field != "deferred":  # the page has no deferred switch
        await sign_in(hub)
        page = await hub.get(f"/hub/editor?{query}")
        assert page.status == 400 and f"{field}: " in await page.text()


async def test_the_page_shows_one_page_with_its_reasons_and_links_to_the_others(hub) -> None:
    await sign_in(hub)
    text = await (await hub.get("/hub/editor?limit=2&offset=2&lang=en")).text()
    assert "Praxis 2" in text and "Praxis 3" in text and "Praxis 4" not in text
    assert "Einwand zu Praxis 2" in text and "Einwand zu Praxis 3" in text
    assert "Einwand zu Praxis 0" not in text and "Einwand zu Praxis 4" not in text
    assert "Contributions 3 to 4 of 7" in text
    assert 'href="/hub/editor?offset=0&amp;limit=2" rel="prev"' in text
    assert 'href="/hub/editor?offset=4&amp;limit=2" rel="next"' in text
    german = await (await hub.get("/hub/editor?lang=de")).text()
    assert "Beiträge 1 bis 7 von 7" in german and 'rel="next"' not in german


async def test_the_public_section_document_keeps_its_feedback_items(hub) -> None:
    """The section JSON-LD still lists its feedback's addresses (``Feedback.to_json``)."""
    section = "http://kochbuch.example/handbook/sections/e-akte"
    await _store_more(hub, [_feedback("https://m9.example/s", section, position="partly")])
    response = await hub.get("/handbook/sections/e-akte",
                             headers={"Accept": "application/ld+json"})
    document = await response.json(content_type=None)
    assert document["feedback"] == {"agree": 0, "disagree": 0, "partly": 1, "comments": 0,
                                    "items": ["https://m9.example/s"]}


async def _store_more(hub, rows: list[dict[str, Any]]) -> None:
    async with hub.server.app[appkeys.SESSION_MAKER].begin() as session:
        await session.execute(insert(RemoteObject), rows)
