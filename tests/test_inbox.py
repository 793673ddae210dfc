"""The inbox endpoint: every limit and origin rule, tried from the outside.

Node A runs without workers so that what the inbox stored can be inspected before
anything processes it; node B is a real remote whose keys sign the requests and whose
actor document A fetches to verify them.
"""

from __future__ import annotations

import json
import uuid
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from federation.httpsig import SignatureScheme
from federation.urls import OriginError, origin
from node.config import InboxTuning
from node.inbox import INBOX_WRITER, HostRateLimiter, InboxRejected, claimed_key_host, parse_body
from node.inbox_writer import InboxWriter
from node.storage.db import create_engine
from node.storage.models import InboxItem
from tests.engine_support import (
    AS_CONTEXT,
    RunningNode,
    node_config,
    post_signed,
    signed_headers,
    start_node,
)


def activity(sender: RunningNode, kind: str, obj: object, **extra: object) -> dict:
    return {
        "@context": AS_CONTEXT,
        "id": f"{sender.url}/activities/{uuid.uuid4()}",
        "type": kind,
        "actor": sender.actor,
        "object": obj,
        **extra,
    }


def note(owner: RunningNode, **extra: object) -> dict:
    return {"id": f"{owner.url}/comments/{uuid.uuid4().hex[:8]}", "type": "Note",
            "attributedTo": owner.actor, "content": "Hallo", **extra}


@pytest.fixture
async def nodes(tmp_path):
    a = await start_node(node_config(tmp_path, "a"), start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    c = await start_node(node_config(tmp_path, "c"), start_workers=False)
    async with aiohttp.ClientSession() as http:
        yield a, b, c, http
    for node in (a, b, c):
        await node.stop()


async def items(node: RunningNode) -> list[InboxItem]:
    return await node.rows(InboxItem)


async def test_signed_activity_is_stored_once(nodes) -> None:
    a, b, _, http = nodes
    follow = activity(b, "Follow", a.actor)
    first = await post_signed(http, a.config.shared_inbox_url, follow, b.keys.rsa)
    again = await post_signed(http, a.config.inbox_url, follow, b.keys.rsa,
                              scheme=SignatureScheme.RFC9421)
    assert first[0] == 202 and again[0] == 202
    stored = await items(a)
    assert [row.activity_uri for row in stored] == [follow["id"]]
    assert stored[0].inbox == "shared" and stored[0].state == "received"


async def test_unsigned_post_is_refused(nodes) -> None:
    a, b, _, http = nodes
    body = json.dumps(activity(b, "Follow", a.actor)).encode()
    async with http.post(a.config.inbox_url, data=body,
                         headers={"Content-Type": "application/activity+json"}) as response:
        assert response.status == 401
        assert "not signed" in (await response.json(content_type=None))["detail"]
    assert await items(a) == []


async def test_tampered_body_is_refused(nodes) -> None:
    a, b, _, http = nodes
    body = json.dumps(activity(b, "Follow", a.actor)).encode()
    headers = signed_headers(a.config.inbox_url, body, b.keys.rsa)
    tampered = body.replace(b"Follow", b"Folloz")
    async with http.post(a.config.inbox_url, data=tampered, headers=headers) as response:
        assert response.status in (400, 401)
    assert await items(a) == []


async def test_signer_must_own_the_actor(nodes) -> None:
    a, b, c, http = nodes
    spoofed = activity(c, "Follow", a.actor)  # claims to be C, signed by B
    status, _, text = await post_signed(http, a.config.inbox_url, spoofed, b.keys.rsa)
    assert status == 401 and "actor_mismatch" in text
    assert await items(a) == []


async def test_old_signature_is_refused(nodes) -> None:
    a, b, _, http = nodes
    stale = datetime.now(UTC) - timedelta(hours=13)
    status, _, text = await post_signed(http, a.config.inbox_url,
                                        activity(b, "Follow", a.actor), b.keys.rsa, now=stale)
    assert status == 401 and "too_old" in text


async def test_malformed_activity_names_the_field(nodes) -> None:
    a, b, _, http = nodes
    status, _, text = await post_signed(http, a.config.inbox_url, b"{not json", b.keys.rsa)
    assert status == 400 and json.loads(text)["field"] == "body"
    missing_actor = activity(b, "Follow", a.actor)
    del missing_actor["actor"]
    status, _, text = await post_signed(http, a.config.inbox_url, missing_actor, b.keys.rsa)
    assert status == 400 and json.loads(text)["field"] == "actor"


async def test_body_over_one_mebibyte_is_refused(nodes) -> None:
    a, b, _, http = nodes
    huge = activity(b, "Create", note(b, content="x" * (1024 * 1024)))
    status, _, _ = await post_signed(http, a.config.inbox_url, huge, b.keys.rsa)
    assert status == 413

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b"x" * (64 * 1024)

    async with http.post(a.config.inbox_url, data=chunks(),
                         headers={"Content-Type": "application/activity+json"}) as response:
        assert response.status == 413
    assert await items(a) == []


@pytest.mark.parametrize("case", ["foreign_object", "foreign_author", "foreign_delete",
                                  "foreign_undo"])
async def test_origin_rules_refuse_at_the_door(nodes, case) -> None:
    a, b, c, http = nodes
    documents = {
        # B creates an object that lives on C's origin
        "foreign_object": activity(b, "Create", note(b, id=f"{c.url}/comments/x")),
        # B updates an object on its own origin but attributed to C
        "foreign_author": activity(b, "Update", note(b, attributedTo=c.actor)),
        "foreign_delete": activity(b, "Delete", f"{c.url}/practices/e-akte"),
        "foreign_undo": activity(b, "Undo", f"{c.url}/activities/{uuid.uuid4()}"),
    }
    status, _, text = await post_signed(http, a.config.inbox_url, documents[case], b.keys.rsa)
    assert status == 403, text
    assert json.loads(text)["field"] == "object"
    assert await items(a) == []


async def test_activity_id_on_another_origin_is_refused(nodes) -> None:
    # Ids are how the inbox deduplicates: B must not take an id of C's before C uses it.
    a, b, c, http = nodes
    taken = {**activity(b, "Like", a.actor), "id": f"{c.url}/activities/{uuid.uuid4()}"}
    status, _, text = await post_signed(http, a.config.inbox_url, taken, b.keys.rsa)
    assert status == 400 and json.loads(text)["field"] == "id"
    assert await items(a) == []


async def test_rate_limit_comes_before_signature_work(tmp_path) -> None:
    tuning = InboxTuning(requests_per_host_per_minute=3)
    a = await start_node(node_config(tmp_path, "a", inbox=tuning), start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                status, _, _ = await post_signed(http, a.config.inbox_url,
                                                 activity(b, "Follow", a.actor), b.keys.rsa)
                assert status == 202
            # A forged signature naming B's key: refused by the bucket, not by the check.
            body = b'{"type": "Follow"}'
            forged = {"Signature": f'keyId="{b.actor}#main-key",signature="AAAA"',
                      "Content-Type": "application/activity+json"}
            async with http.post(a.config.inbox_url, data=body, headers=forged) as response:
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
    finally:
        await a.stop()
        await b.stop()


def test_token_bucket_refills_and_bounds_hosts() -> None:
    now = [0.0]
    limiter = HostRateLimiter(60, burst=2, max_hosts=2, monotonic=lambda: now[0])
    assert limiter.take("a").allowed and limiter.take("a").allowed
    refused = limiter.take("a")
    assert not refused.allowed and refused.retry_after_seconds == 1
    assert limiter.take("b").allowed  # another host has its own bucket
    now[0] += 1.0
    assert limiter.take("a").allowed  # one token per second came back
    limiter.take("c")
    assert len(limiter) == 2  # the least recently seen host was forgotten


def test_claimed_host_is_read_from_either_signature_scheme() -> None:
    cavage = {"Signature": 'keyId="https://Example.org/actor#main-key",signature="x"'}
    rfc = {"Signature-Input": 'sig1=("@method");keyid="https://other.example:8443/k"'}
    assert claimed_key_host(cavage) == "example.org"
    assert claimed_key_host(rfc) == "other.example:8443"
    authorization = {"Authorization": 'Signature keyId="https://third.example/a#k",signature="x"'}
    assert claimed_key_host(authorization) == "third.example"
    assert claimed_key_host({}) is None


async def test_database_trouble_answers_503_never_202(nodes, tmp_path) -> None:
    a, b, _, http = nodes
    # a database file that cannot be opened: every transaction of the writer fails
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/db.sqlite")
    with warnings.catch_warnings():  # swapping a resource on a running app, for the test
        warnings.simplefilter("ignore", DeprecationWarning)
        a.app[INBOX_WRITER] = InboxWriter(broken, queue_limit=100)
    try:
        status, headers, _ = await post_signed(http, a.config.inbox_url,
                                               activity(b, "Follow", a.actor), b.keys.rsa)
    finally:
        await a.app[INBOX_WRITER].close()
        await broken.dispose()
    assert status == 503 and int(headers["Retry-After"]) > 0
    assert await items(a) == []


async def test_full_queue_answers_503(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    config = replace(config, inbox=replace(config.inbox, queue_limit=1))
    a = await start_node(config, start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    try:
        async with aiohttp.ClientSession() as http:
            first = await post_signed(http, a.config.inbox_url,
                                      activity(b, "Follow", a.actor), b.keys.rsa)
            second = await post_signed(http, a.config.inbox_url,
                                       activity(b, "Like", a.actor), b.keys.rsa)
        assert first[0] == 202
        assert second[0] == 503 and "Retry-After" in second[1]
        assert len(await items(a)) == 1
    finally:
        await a.stop()
        await b.stop()


def test_lone_surrogates_are_refused_whether_escaped_or_raw() -> None:
    def body(name: bytes) -> bytes:
        return (b'{"@context": "https://www.w3.org/ns/activitystreams", "type": "Like", '
                b'"id": "https://a.example/1", "actor": "https://a.example/u", '
                b'"object": "https://b.example/x", "name": "' + name + b'"}')

    for lone in (b"\\ud800", b"\\uDFFF", b"x\\uDbff", b"\xed\xa0\x80"):  # the last: raw bytes
        with pytest.raises(InboxRejected) as refused:
            parse_body(body(lone))
        assert refused.value.response.status == 400, lone
    for fine in (b"\\\\ud800", b"\\ud83d\\udc4d", "Gütersloh".encode()):  # escaped \, a pair
        assert parse_body(body(fine))[1].id == "https://a.example/1"


def test_origin_refuses_what_is_not_a_string_before_its_cache() -> None:
    for value in (["https://a.example/"], {"id": "https://a.example/"}, None, 7):
        with pytest.raises(OriginError):
            origin(value)
    assert origin("https://A.example/x") == origin("https://a.example/y") == ("https", "a.example", 443)
