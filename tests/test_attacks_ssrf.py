"""SSRF: every URL an attacker can make the node fetch, aimed at internal addresses.

The node runs WITHOUT ``--allow-private-network``; only the remote actors' server is
allow-listed. After each attack the node must have contacted nothing but that server
(its client's every request start is recorded, and its connector cannot leave
127.0.0.0/8 anyway), and the canary (an "internal service" on another loopback port)
must not have been reached.
"""

from __future__ import annotations

import pytest

from node.storage.models import Delivery, Following, InboxItem
from tests import attack_support
from tests.attack_support import AttackBed
from tests.node_support import issue_token, practice_input

actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed

# "{canary}" is the canary's port: loopback targets aim at a service that really listens.
INTERNAL = {
    "loopback": "http://127.0.0.1:{canary}",
    "loopback-other": "http://127.9.9.9:{canary}",
    "ipv6-loopback": "http://[::1]:{canary}",
    "ipv4-mapped-loopback": "http://[::ffff:127.0.0.1]:{canary}",
    "private-10": "http://10.0.0.1",
    "private-172": "http://172.16.0.5",
    "private-192": "http://192.168.1.10",
    "metadata": "http://169.254.169.254",
    "ipv6-unique-local": "http://[fd00::1]",
    "name-to-loopback": "http://loopback.test:{canary}",
    "localhost": "http://localhost:{canary}",
    "name-to-metadata": "http://metadata.test",
    "name-with-mixed-answers": "http://mixed.test",
}
SOME_INTERNAL = ["loopback", "ipv6-loopback", "metadata", "name-to-loopback"]


def internal(bed: AttackBed, kind: str, path: str = "/latest/meta-data") -> str:
    return INTERNAL[kind].format(canary=bed.canary.port) + path


def assert_nothing_internal_reached(bed: AttackBed) -> None:
    allowed = f"http://127.0.0.1:{bed.remote.port}/"
    strays = [url for url in bed.net.started if not url.startswith(allowed)]
    assert strays == [], f"the node started requests beyond the allow-listed server: {strays}"
    assert bed.canary.hits == []


async def api_token(bed: AttackBed) -> dict[str, str]:
    _, token = await issue_token(bed.app)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("kind", list(INTERNAL))
async def test_key_id_pointing_inside(bed: AttackBed, kind: str) -> None:
    actor = internal(bed, kind, "/users/x")
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity.update(actor=actor, id=internal(bed, kind, "/activities/1"))
    key = attack_support.SigningKey(f"{actor}#main-key", bed.mallory.keys.rsa)
    answer = await bed.post(activity, key)
    assert answer.status == 401 and "key_fetch_failed" in answer.text
    assert await bed.rows(InboxItem) == []
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("kind", SOME_INTERNAL)
async def test_actor_pointing_inside(bed: AttackBed, kind: str) -> None:
    """Alice's key, an actor URL inside: refused on its face, nothing fetched."""
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity.update(actor=internal(bed, kind, "/users/x"),
                    id=internal(bed, kind, "/activities/1"))
    answer = await bed.post(activity, bed.alice.rsa)
    assert answer.status == 401 and "actor_mismatch" in answer.text
    assert await bed.rows(InboxItem) == []
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("member", ["inReplyTo", "attachment", "image", "tag", "context"])
async def test_links_in_a_received_object_are_never_dereferenced(bed: AttackBed,
                                                                 member: str) -> None:
    links = [internal(bed, kind, "/x") for kind in INTERNAL]
    values = {
        "inReplyTo": links[0],
        "attachment": [{"type": "Document", "url": link} for link in links],
        "image": {"type": "Image", "url": links[1]},
        "tag": [{"type": "Mention", "href": link} for link in links],
        "context": links[2],
    }
    note = bed.alice.note(**{member: values[member]})
    assert await bed.deliver(bed.alice.activity("Create", note), bed.alice) == "done"
    assert await bed.remote_object(note["id"]) is not None
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("kind", SOME_INTERNAL + ["private-10", "ipv6-unique-local"])
async def test_announced_reference_pointing_inside(bed: AttackBed, kind: str) -> None:
    """An Announce of a bare id makes the node fetch it: from inside it must not."""
    target = internal(bed, kind, "/latest/meta-data/iam")
    state = await bed.deliver(bed.relay.activity("Announce", target), bed.relay)
    assert state == "rejected"  # refused for good, not retried for hours
    assert await bed.remote_object(target) is None
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("kind", SOME_INTERNAL + ["private-192", "localhost"])
async def test_follow_target_pointing_inside(bed: AttackBed, kind: str) -> None:
    answer = await bed.client.post("/api/following", headers=await api_token(bed),
                                   json={"target": internal(bed, kind, "/actor")})
    assert answer.status == 502
    assert (await answer.json(content_type=None))["field"] == "target"
    assert await bed.rows(Following) == []
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("handle", [
    "acct:admin@127.0.0.1:{canary}", "acct:admin@localhost:{canary}",
    "acct:admin@loopback.test:{canary}", "acct:admin@169.254.169.254",
    "acct:admin@[::1]:{canary}", "acct:admin@10.0.0.1",
])
async def test_webfinger_handle_pointing_inside(bed: AttackBed, handle: str) -> None:
    answer = await bed.client.post("/api/following", headers=await api_token(bed),
                                   json={"target": handle.format(canary=bed.canary.port)})
    assert answer.status in (422, 502)
    assert (await answer.json(content_type=None))["field"] == "target"
    assert await bed.rows(Following) == []
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("kind", SOME_INTERNAL)
async def test_redirect_to_an_internal_address(bed: AttackBed, kind: str) -> None:
    """The allow-listed server answers the key fetch with a redirect inside."""
    bed.remote.serve("/users/moved", b"", status=302,
                     headers={"Location": internal(bed, kind, "/users/x")})
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity.update(actor=bed.remote.url("/users/moved"),
                    id=bed.remote.url("/activities/moved-1"))
    key = attack_support.SigningKey(bed.remote.url("/users/moved#main-key"),
                                    bed.mallory.keys.rsa)
    answer = await bed.post(activity, key)
    assert answer.status == 401 and "key_fetch_failed" in answer.text
    assert bed.remote.paths() == ["/users/moved"]  # the first hop happened, the second not
    assert_nothing_internal_reached(bed)


async def test_redirect_of_a_follow_target_to_an_internal_address(bed: AttackBed) -> None:
    bed.remote.serve("/users/moved", b"", status=301,
                     headers={"Location": internal(bed, "loopback", "/actor")})
    answer = await bed.client.post("/api/following", headers=await api_token(bed),
                                   json={"target": bed.remote.url("/users/moved")})
    assert answer.status == 502 and await bed.rows(Following) == []
    assert_nothing_internal_reached(bed)


async def test_stance_about_an_internal_url_fetches_nothing(bed: AttackBed) -> None:
    """The authoring API stores the link; neither authoring nor delivery dereferences it."""
    stance = {"kind": "stance", "slug": "zur-metadaten", "title": "Stellungnahme",
              "about": internal(bed, "metadata", "/latest/meta-data"), "position": "agree",
              "reason": "Weil es hilft.",
              "body": "Wir stimmen zu."}
    answer = await bed.client.post("/api/contributions", json=stance,
                                   headers=await api_token(bed))
    assert answer.status == 201, await answer.text()
    assert_nothing_internal_reached(bed)


@pytest.mark.parametrize("member", ["inbox", "sharedInbox"])
async def test_follower_whose_inbox_points_inside(bed: AttackBed, member: str) -> None:
    """A follower's actor document names an internal inbox: the Accept and every later
    delivery to it must be refused before connecting."""
    inside = internal(bed, "loopback", "/admin/inbox")
    if member == "inbox":
        follower = bed.remote.add_actor("inboxer", bed.alice.keys, inbox=inside)
    else:
        follower = attack_support.RemoteActorSpec(bed.remote.url("/users/inboxer"),
                                                  bed.alice.keys)
        bed.remote.serve("/users/inboxer", {**follower.document(),
                                            "endpoints": {"sharedInbox": inside}})
    assert await bed.deliver(follower.activity("Follow", bed.config.actor_url),
                             follower) == "done"
    created = await bed.client.post("/api/contributions", json=practice_input(),
                                    headers=await api_token(bed))
    assert created.status == 201
    inside_rows = await attack_support.eventually(lambda: refused_deliveries(bed, inside))
    assert all("forbidden_address" in row.last_error for row in inside_rows)
    assert_nothing_internal_reached(bed)


async def refused_deliveries(bed: AttackBed, inbox: str) -> list[Delivery]:
    """The deliveries to ``inbox`` once the worker has tried every one of them."""
    rows = await bed.rows(Delivery, Delivery.inbox_url == inbox)
    tried = [row for row in rows if row.attempts > 0]
    return tried if rows and len(tried) == len(rows) else []


@pytest.mark.parametrize("kind", SOME_INTERNAL)
async def test_followed_actor_whose_outbox_points_inside(bed: AttackBed, kind: str) -> None:
    """Backfill reads the outbox the actor document names: not when it names the inside."""
    await bed.follow_accepted_by("pager", outbox=internal(bed, kind, "/outbox"))
    assert (await bed.backfill_finished()).backfill_state == "failed"
    assert_nothing_internal_reached(bed)
