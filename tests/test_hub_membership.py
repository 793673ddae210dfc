"""Membership: apply by following, approval by an editor (or the auto-accept policy),
follow-back with backfill, refusal, and the member directory."""

from __future__ import annotations

import asyncio
import contextlib
import io

import aiohttp
import pytest

from node.cli import main
from node.config import ConfigError, NodeConfig
from node.hub.membership import AutoAcceptPolicy, ags_of
from node.hub.settings import HubSettings, settings_from_mapping, write_settings
from node.hub.tables import HubMember
from node.storage.models import Activity, Follower, Following, InboxState, RemoteObject
from node.workers import build_workers
from tests.engine_support import (
    RunningNode,
    eventually,
    follow,
    node_config,
    publish,
    start_node,
    unfollow,
)
from tests.hub_node_support import (
    CHURN_ORDERS,
    HubApi,
    hub_and_member_without_workers,
    issue_token,
    start_hub,
    unsigned_activity,
)


def _config(tmp_path, *, private: bool) -> NodeConfig:
    return NodeConfig(data_dir=tmp_path, base_url="https://hub.example", name="Hub",
                      slug="kochbuch", allow_private_network=private)


def test_auto_accept_names_hosts_and_loopback_only_for_a_local_federation(tmp_path) -> None:
    listed = AutoAcceptPolicy.for_hub(_config(tmp_path, private=False), ["Dueren.Example"])
    assert listed.accepts("https://dueren.example/actor")
    assert not listed.accepts("https://dueren.example.evil.test/actor")
    assert not listed.accepts("http://127.0.0.1:8471/actor")  # public hub: no loopback
    local = AutoAcceptPolicy.for_hub(_config(tmp_path, private=True), [])
    assert local.accepts("http://127.0.0.1:8471/actor") and local.accepts("http://[::1]:1/actor")
    assert local.accepts("http://localhost:8471/actor")
    for trick in ("http://127.0.0.1.nip.io/actor", "http://localhost.evil.test/actor",
                  "http://10.0.0.1/actor", "not a url"):
        assert not local.accepts(trick), trick
    strict = AutoAcceptPolicy.for_hub(_config(tmp_path, private=True), [], loopback=False)
    assert not strict.accepts("http://127.0.0.1:8471/actor")


def test_settings_name_the_bad_field() -> None:
    assert settings_from_mapping({}) == HubSettings()
    for raw, field in (({"auto_accept_hosts": "a.example"}, "hub.auto_accept_hosts"),
                       ({"auto_accept_loopback": "yes"}, "hub.auto_accept_loopback"),
                       ({"sparql_max_rows": 0}, "hub.sparql_max_rows"),
                       ({"colour": "blue"}, "hub.colour")):
        with pytest.raises(ConfigError) as caught:
            settings_from_mapping(raw)
        assert caught.value.field == field


def test_ags_is_read_from_the_municipality_key() -> None:
    key = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/05754008"
    assert ags_of({"municipalityKey": key}) == "05754008"
    assert ags_of({"municipalityKey": "https://evil.example/05754008"}) is None
    assert ags_of({}) is None


async def _state(node: RunningNode, model, column, value, attribute: str = "state"):
    rows = await node.rows(model, column == value)
    return getattr(rows[0], attribute) if rows else None


@pytest.mark.slow
async def test_editor_approves_then_the_hub_follows_back_and_backfills(tmp_path) -> None:
    hub = await start_hub(tmp_path, auto_accept_loopback=False)
    member = await start_node(node_config(tmp_path, "dueren", ags="05358008"))
    stranger = await start_node(node_config(tmp_path, "fremd"))
    try:
        async with aiohttp.ClientSession() as http:
            api = HubApi(http, hub, await issue_token(hub))
            early = await publish(member, "practice", "e-rechnung", "E-Rechnung",
                                  body="Seit 2020.", topics=("e-payment",))
            await follow(member, hub.actor)
            await follow(stranger, hub.actor)
            for node in (member, stranger):
                assert await eventually(lambda n=node: _state(hub, HubMember,
                                                              HubMember.actor_uri, n.actor))
            # pending: nothing accepted, no follow-back, the follower row gets no deliveries
            assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "pending"
            assert await _state(hub, Follower, Follower.actor_uri, member.actor) == "pending"
            assert await _state(member, Following, Following.target_uri, hub.actor) == "requested"
            assert not await hub.rows(Following, Following.target_uri == member.actor)

            status, listing = await api.call("GET", "/api/hub/members?state=pending")
            assert status == 200 and {m["actor"] for m in listing["items"]} == {
                member.actor, stranger.actor}
            mine = next(m for m in listing["items"] if m["actor"] == member.actor)
            assert mine["ags"] == "05358008" and mine["name"] == member.config.name

            status, problem = await api.call("POST", f"/api/hub/members/{mine['id']}/approve",
                                             token="wrong")
            assert status == 401
            status, problem = await api.call("POST", "/api/hub/members/99999/approve")
            assert status == 404 and problem["field"] == "member"
            handle = f"{member.config.slug}@{member.config.domain}"  # by handle, like the CLI
            status, body = await api.call("POST", f"/api/hub/members/{handle}/approve")
            assert status == 200 and body["state"] == "approved" and body["id"] == mine["id"]
            other = next(m for m in listing["items"] if m["actor"] == stranger.actor)
            status, body = await api.call("POST", f"/api/hub/members/{other['id']}/reject")
            assert status == 200 and body["state"] == "rejected"

            assert await eventually(lambda: _is(_state(member, Following, Following.target_uri,
                                                        hub.actor), "accepted"))
            assert await eventually(lambda: _is(_state(hub, Following, Following.target_uri,
                                                        member.actor), "accepted"))
            assert await eventually(lambda: hub.rows(RemoteObject, RemoteObject.uri == early),
                                    timeout=15)  # backfill after the follow-back
            assert await _state(stranger, Following, Following.target_uri, hub.actor) == "requested"
            assert await _state(hub, Follower, Follower.actor_uri, stranger.actor) == "rejected"

            async with http.get(f"{hub.url}/members",
                                headers={"Accept": "application/json"}) as response:
                directory = (await response.json())["members"]
            assert [m["actor"] for m in directory] == [member.actor]  # refused ones are not listed
            async with http.get(f"{hub.url}/members", headers={"Accept": "text/html"}) as response:
                page = await response.text()
            assert member.config.name in page and "05358008" in page and "<table>" in page

            listing = await asyncio.to_thread(_cli, "hub", "members", "--data-dir",
                                              str(hub.config.data_dir))
            assert f"approved\t05358008\t{member.config.name}\t{member.actor}" in listing

            await unfollow(member, hub.actor)  # the member withdraws
            assert await eventually(lambda: _is(_state(hub, HubMember, HubMember.actor_uri,
                                                        member.actor), "left"))
    finally:
        for node in (stranger, member, hub):
            await node.stop()


def _cli(*argv: str) -> str:
    """Run ``praxisnetz`` in this process (its own event loop: call from a thread)."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert main(list(argv)) == 0
    return output.getvalue()


async def _is(value_coroutine, expected: str) -> bool:
    return (await value_coroutine) == expected


@pytest.mark.slow
async def test_a_hub_that_limits_followers_to_hosts_refuses_other_applicants(tmp_path) -> None:
    hub_config = node_config(tmp_path, "kochbuch", is_hub=True,
                             follow_allow_hosts=("nur-diese.example",))
    hub = await start_node(hub_config)
    member = await start_node(node_config(tmp_path, "dueren"))
    try:
        await follow(member, hub.actor)  # loopback would be auto-accepted, but is not allowed
        assert await eventually(lambda: _is(_state(member, Following, Following.target_uri,
                                                    hub.actor), "rejected"))
        assert not await hub.rows(HubMember)
        assert not await hub.rows(Following, Following.target_uri == member.actor)
    finally:
        for node in (member, hub):
            await node.stop()


# CHURN_ORDERS at the hub: before the receipts, "overtaken" lost the member.


@pytest.mark.slow
@pytest.mark.parametrize("order", list(CHURN_ORDERS))
async def test_leaving_and_applying_again_at_once_keeps_the_member(tmp_path, order) -> None:
    hub, member = await hub_and_member_without_workers(tmp_path)
    try:
        processor = build_workers(hub.app).processor  # with the hub's inbox hook
        first = unsigned_activity(member.actor, "Follow", hub.actor)
        assert (await processor.process(first)).state is InboxState.DONE
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "approved"
        again, last = (unsigned_activity(member.actor, "Follow", hub.actor) for _ in range(2))
        churn = [unsigned_activity(member.actor, "Undo", first), again,
                 unsigned_activity(member.actor, "Undo", again), last]
        for index in CHURN_ORDERS[order]:
            verdict = await processor.process(churn[index])
            assert verdict.state is InboxState.DONE, verdict.reason
        [follower] = await hub.rows(Follower, Follower.actor_uri == member.actor)
        assert follower.state == "accepted" and follower.follow_activity_uri == last["id"]
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "approved"

        await processor.process(unsigned_activity(member.actor, "Undo", last))  # now it leaves
        assert await hub.rows(Follower, Follower.actor_uri == member.actor) == []
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "left"
        late = await processor.process(last)  # its Follow, delivered again, changes nothing
        assert "undone before it arrived" in late.reason
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "left"
    finally:
        for node in (member, hub):
            await node.stop()


async def _hub_for_editors_and_member(tmp_path) -> tuple[RunningNode, RunningNode]:
    """A hub that approves no applicant by itself, and a municipality; no workers."""
    config = node_config(tmp_path, "kochbuch", is_hub=True, name="Kochbuch-Redaktion")
    write_settings(config.data_dir, auto_accept_hosts=(), auto_accept_loopback=False)
    hub = await start_node(config, start_workers=False)
    return hub, await start_node(node_config(tmp_path, "dueren"), start_workers=False)


@pytest.mark.slow
@pytest.mark.parametrize("undo_first", [True, False])
async def test_a_member_that_leaves_and_applies_again_needs_no_new_approval(tmp_path,
                                                                          undo_first) -> None:
    # An editor approved it once; whichever of Undo and new Follow arrives first, it ends
    # approved (before, the Undo-first order left it pending for an editor).
    hub, member = await _hub_for_editors_and_member(tmp_path)
    try:
        processor = build_workers(hub.app).processor
        first = unsigned_activity(member.actor, "Follow", hub.actor)
        await processor.process(first)
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "pending"
        async with aiohttp.ClientSession() as http:
            api = HubApi(http, hub, await issue_token(hub))
            [applicant] = await hub.rows(HubMember, HubMember.actor_uri == member.actor)
            status, body = await api.call("POST", f"/api/hub/members/{applicant.id}/approve")
            assert status == 200, body
        churn = [unsigned_activity(member.actor, "Undo", first),
                 unsigned_activity(member.actor, "Follow", hub.actor)]
        for item in churn if undo_first else reversed(churn):
            assert (await processor.process(item)).state is InboxState.DONE
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "approved"
        assert await _state(hub, Follower, Follower.actor_uri, member.actor) == "accepted"
    finally:
        for node in (member, hub):
            await node.stop()


async def _accepts_of(hub: RunningNode, follow_id: str) -> int:
    rows = await hub.rows(Activity, Activity.type == "Accept", Activity.is_local.is_(True))
    return sum(1 for row in rows if (row.document or {}).get("object", {}).get("id") == follow_id)


@pytest.mark.slow
async def test_an_editor_approving_a_refused_applicant_takes_back_the_refusal(tmp_path) -> None:
    """Refused, then approved without a new Follow: the applicant becomes a member and gets
    the Accept; its Follow, delivered again, is answered like any member's (another
    Accept) instead of being ignored as undone by the refusal; its own Undo then ends the
    membership. While refused, the same Follow delivered again stays ignored."""
    hub, member = await _hub_for_editors_and_member(tmp_path)
    try:
        processor = build_workers(hub.app).processor
        first = unsigned_activity(member.actor, "Follow", hub.actor)
        assert (await processor.process(first)).state is InboxState.DONE
        async with aiohttp.ClientSession() as http:
            api = HubApi(http, hub, await issue_token(hub))
            [applicant] = await hub.rows(HubMember, HubMember.actor_uri == member.actor)
            status, body = await api.call("POST", f"/api/hub/members/{applicant.id}/reject")
            assert status == 200 and body["state"] == "rejected", body
            refused = await processor.process(first)
            assert "undone before it arrived" in refused.reason  # a refusal holds
            assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "rejected"
            status, body = await api.call("POST", f"/api/hub/members/{applicant.id}/approve")
            assert status == 200 and body["state"] == "approved", body
        assert await _state(hub, Follower, Follower.actor_uri, member.actor) == "accepted"
        assert await _accepts_of(hub, first["id"]) == 1

        again = await processor.process(first)  # delivered again after the approval
        assert again.state is InboxState.DONE and "approved" in again.reason, again.reason
        assert await _accepts_of(hub, first["id"]) == 2
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "approved"

        left = await processor.process(unsigned_activity(member.actor, "Undo", first))
        assert left.state is InboxState.DONE, left.reason
        assert await hub.rows(Follower, Follower.actor_uri == member.actor) == []
        assert await _state(hub, HubMember, HubMember.actor_uri, member.actor) == "left"
    finally:
        for node in (member, hub):
            await node.stop()
