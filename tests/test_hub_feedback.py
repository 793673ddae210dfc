"""Stances with their reasons where editors decide: ``/api/hub/feedback`` pages them newest
first with the municipality, position, reason, times and link, checks its parameters, and
shows the current state a member's Update or Delete left (through the hub's inbox
worker, as a member's activities arrive)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from node.hub import editorial, feedback, triage
from node.hub.tables import HubMember
from node.storage.models import Activity, InboxState, RemoteObject
from node.workers import build_workers
from tests.engine_support import RunningNode, delete_contribution, publish
from tests.hub_node_support import (
    HubApi,
    hub_and_member_without_workers,
    issue_token,
    start_hub,
    unsigned_activity,
)
from tests.hub_support import practice, stance
from tests.node_support import fresh_postgres_database

pytestmark = pytest.mark.slow

MEMBER = "https://dueren.example/actor"
STRANGER = "https://fremd.example/actor"
PRACTICE = "https://dueren.example/practices/e-akte"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _stance(slug: str, position: str, reason: str, *, hours: int,
            host: str = "dueren.example") -> dict[str, Any]:
    document = stance(host, slug, about=PRACTICE, position=position, reason=reason)
    document["published"] = (NOW + timedelta(hours=hours)).isoformat()
    document["url"] = f"https://{host}/s/{slug}"
    return document


async def _store(hub: RunningNode, documents: list[dict[str, Any]]) -> None:
    """An approved member and documents as the inbox worker keeps them (current versions)."""
    async with hub.sessions()() as session, session.begin():
        session.add(HubMember(actor_uri=MEMBER, name="Stadt Düren", kind="Organization",
                              ags="05358008", state="approved", applied_at=NOW))
        for document in documents:
            kind = "Stance" if "Stance" in document["type"] else "Practice"
            when = datetime.fromisoformat(document["published"].replace("Z", "+00:00"))
            session.add(RemoteObject(
                uri=document["id"], kind=kind, attributed_to=document["attributedTo"],
                about=document.get("about"), document=document, deleted=False,
                received_at=NOW, published=when, updated=when))


async def _hub_api(tmp_path, database_url: str = "") -> AsyncIterator[HubApi]:
    hub = await start_hub(tmp_path, database_url=database_url)
    try:
        async with aiohttp.ClientSession() as http:
            yield HubApi(http, hub, await issue_token(hub))
    finally:
        await hub.stop()


@pytest.fixture
async def api(tmp_path):
    async for ready in _hub_api(tmp_path):
        yield ready


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_database_api(request, tmp_path):
    """The API on SQLite, and on PostgreSQL when a test database is configured (the
    position is read out of the JSON document in SQL: JSON_EXTRACT there, ->> here)."""
    if request.param == "sqlite":
        async for ready in _hub_api(tmp_path):
            yield ready
        return
    async with fresh_postgres_database() as url:
        async for ready in _hub_api(tmp_path, url):
            yield ready


async def test_feedback_pages_the_stances_newest_first_with_their_reasons(any_database_api) -> None:
    api = any_database_api
    await _store(api.hub, [
        practice("dueren.example", "e-akte", name="E-Akte"),
        _stance("alt", "disagree", "Zu teuer.", hours=1),
        _stance("ohne", "agree", "", hours=2),
        _stance("html", "partly", "Erst <b>Schulung</b>", hours=3),
        _stance("fremd", "disagree", "Nicht bei uns.", hours=4, host="fremd.example"),
    ])
    status, body = await api.call("GET", f"/api/hub/feedback?target={PRACTICE}&limit=2")
    assert status == 200, body
    assert (body["agree"], body["disagree"], body["partly"], body["total"]) == (1, 2, 1, 4)
    first, second = body["stances"]
    assert first == {"id": "https://fremd.example/stances/fremd", "actor": STRANGER,
                     "municipality": "fremd.example", "ags": None, "position": "disagree",
                     "reason": "Nicht bei uns.", "published": (NOW + timedelta(hours=4)).isoformat(),
                     "updated": (NOW + timedelta(hours=4)).isoformat(),
                     "url": "https://fremd.example/s/fremd"}
    assert (second["municipality"], second["ags"]) == ("Stadt Düren", "05358008")
    assert second["reason"] == "Erst <b>Schulung</b>"  # JSON carries text; pages escape it
    status, rest = await api.call("GET", body["next"])
    assert [s["id"].rsplit("/", 1)[1] for s in rest["stances"]] == ["ohne", "alt"]
    assert rest["stances"][0]["reason"] == "" and rest["next"] is None and rest["offset"] == 2

    status, objections = await api.call(
        "GET", f"/api/hub/feedback?target={PRACTICE}&position=disagree&position=partly&limit=1")
    assert objections["total"] == 3 and objections["agree"] == 1  # counts stay whole
    assert "position=disagree&position=partly" in objections["next"]
    status, again = await api.call("GET", objections["next"])
    assert [s["position"] for s in again["stances"]] == ["partly"]


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=zehn", "limit"), ("limit=-1", "limit"),
    ("limit=%C2%B2", "limit"), ("offset=-5", "offset"), ("offset=1.5", "offset"),
    ("offset=" + "9" * 5000, "offset"), ("position=maybe", "position"),
])
async def test_a_bad_parameter_is_refused_by_name(api, query, field) -> None:
    status, problem = await api.call("GET", f"/api/hub/feedback?target={PRACTICE}&{query}")
    assert status == 400 and problem["field"] == field, problem
    status, fine = await api.call("GET", f"/api/hub/feedback?target={PRACTICE}&limit=100")
    assert status == 200 and fine["limit"] == 100 and fine["stances"] == []


# --- through the hub's inbox worker ------------------------------------------------------


async def _deliver(hub: RunningNode, member: RunningNode, uri: str, kind: str) -> None:
    """Hand the member's own latest activity of ``kind`` about ``uri`` to the hub's worker."""
    async with member.sessions()() as session:
        document = await session.scalar(
            select(Activity.document).where(Activity.object_uri == uri, Activity.type == kind)
            .order_by(Activity.id.desc()).limit(1))
    verdict = await build_workers(hub.app).processor.process(document)
    assert verdict.state is InboxState.DONE, verdict.reason


async def _reasons(api: HubApi, target: str) -> list[tuple[str, str]]:
    status, body = await api.call("GET", f"/api/hub/feedback?target={target}")
    assert status == 200, body
    return [(s["position"], s["reason"]) for s in body["stances"]]


async def _triage_reasons(hub: RunningNode) -> list[str]:
    """The reasons the triage page shows beside the one waiting contribution."""
    async with hub.sessions()() as session:
        [item] = (await triage.triage_page(session)).items
        reasons = await feedback.reasons_about(session, [item.uri])
    return [reason.reason for reason in reasons[item.uri]]


async def test_an_update_replaces_the_reason_and_a_delete_removes_it(tmp_path) -> None:
    hub, member = await hub_and_member_without_workers(tmp_path)
    try:
        processor = build_workers(hub.app).processor
        joined = await processor.process(unsigned_activity(member.actor, "Follow", hub.actor))
        assert joined.state is InboxState.DONE
        about = await publish(member, "practice", "e-akte", "E-Akte im Bauamt", body="Digital.")
        await _deliver(hub, member, about, "Create")
        fields = {"about": about, "position": "disagree", "body": "Einwand"}
        uri = await publish(member, "stance", "einwand", "Einwand", reason="Zu teuer.", **fields)
        await _deliver(hub, member, uri, "Create")
        async with aiohttp.ClientSession() as http:
            api = HubApi(http, hub, await issue_token(hub))
            assert await _reasons(api, about) == [("disagree", "Zu teuer.")]

            await publish(member, "stance", "einwand", "Einwand", reason="Erst nach der Schulung.",
                          **{**fields, "position": "partly"})
            await _deliver(hub, member, uri, "Update")
            assert await _reasons(api, about) == [("partly", "Erst nach der Schulung.")]
            assert await _triage_reasons(hub) == ["Erst nach der Schulung."]
            status, body = await api.call("GET", f"/api/hub/feedback?target={about}")
            assert (body["disagree"], body["partly"]) == (0, 1)
            times = {name: datetime.fromisoformat(body["stances"][0][name])
                     for name in ("published", "updated")}
            assert times["updated"] > times["published"]  # the Update's version

            await delete_contribution(member, "einwand")
            await _deliver(hub, member, uri, "Delete")
            assert await _reasons(api, about) == []
            assert await _triage_reasons(hub) == []
            status, body = await api.call("GET", f"/api/hub/feedback?target={about}")
            assert (body["partly"], body["total"]) == (0, 0)
    finally:
        for node in (member, hub):
            await node.stop()


async def test_counts_agree_with_the_editorial_counting(api) -> None:
    """The page's SQL counting and ``editorial.feedback_for`` count alike, comments too."""
    comment = {**_stance("kommentar", "agree", "", hours=5), "type": ["Note", "Comment"]}
    del comment["position"]
    await _store(api.hub, [_stance("a", "agree", "Gut.", hours=1), comment])
    async with api.hub.sessions()() as session:
        await session.execute(RemoteObject.__table__.update()
                              .where(RemoteObject.uri == comment["id"]).values(kind="Comment"))
        await session.commit()
        counted = await feedback.count_feedback(session, PRACTICE)
        expected = (await editorial.feedback_for(session, [PRACTICE]))[PRACTICE]
    assert (counted.agree, counted.disagree, counted.partly, counted.comments) == (
        expected.agree, expected.disagree, expected.partly, expected.comments) == (1, 0, 0, 1)
