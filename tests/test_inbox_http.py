"""The inbox's own HTTP/1.1 door (``node.inbox_http``) in front of aiohttp.

1. ``parse_head`` and ``cannot_become_inbox_head``: which heads the door takes, and
   every kind of head it must leave to aiohttp (pure functions).
2. ``encode_response``: the bytes of an answer the door writes.
3. Over real sockets against running nodes: answered by the door, pipelining and
   hand-off with the unread bytes, chunked bodies, smuggling attempts refused by aiohttp,
   bad signatures, the body limit, ``Connection: close``, a body that trickles in, the
   idle timeout, graceful shutdown, the access log, and an unexpected exception.

Node A is the inbox under test (no workers, so stored rows stay as received); node B is
a real remote whose key signs the activities and whose actor document A fetches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from email.utils import parsedate_to_datetime
from itertools import pairwise

import pytest
from aiohttp import http_parser as aiohttp_http_parser
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from node import inbox_http, logs
from node.app import create_app
from node.config import NodeConfig
from node.inbox import problem
from node.inbox_http import (
    HEAD_LIMIT,
    MAX_FIELD_LINE,
    MAX_FIELDS,
    SINGLETON_FIELDS,
    InboxDoor,
    NodeRunner,
    cannot_become_inbox_head,
    encode_response,
    parse_head,
)
from node.storage.models import InboxItem
from tests.engine_support import (
    ACTIVITY_JSON,
    AS_CONTEXT,
    RunningNode,
    node_config,
    signed_headers,
    start_node,
)

LIMIT = 1024 * 1024

# --- 1. parse_head and cannot_become_inbox_head ------------------------------------------


def head(*fields: bytes, line: bytes = b"POST /inbox HTTP/1.1") -> bytes:
    """A head as the door passes it to parse_head: up to the CRLF of its last field; with
    a Host field unless one is given (HTTP/1.1 requires one)."""
    if not any(field.lower().startswith(b"host:") for field in fields):
        fields = (b"Host: a.example", *fields)
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields)


SIGNED = (b"Host: a.example", b"Content-Type: application/activity+json",
          b"Date: Mon, 23 Nov 2026 04:20:00 GMT", b"Digest: SHA-256=47DEQpj8HBSa+/TImW+5JCeu=",
          b'Signature: keyId="https://b.example/actor#main-key",headers="(request-target) '
          b'host date digest",signature="c2lnbmF0dXJl"')


def test_a_typical_signed_head_is_taken() -> None:
    taken = parse_head(head(*SIGNED, b"content-LENGTH: 123"), LIMIT)
    assert taken is not None
    assert (taken.inbox, taken.path, taken.content_length, taken.close) == ("shared", "/inbox", 123, False)
    assert taken.headers["content-type"] == taken.headers["CONTENT-TYPE"] == ACTIVITY_JSON
    assert taken.headers["Signature"].startswith('keyId="https://b.example/actor#main-key"')
    actor = parse_head(head(*SIGNED, b"Content-Length:\t7 ", b"Connection: Close",
                            line=b"POST /actor/inbox HTTP/1.1"), LIMIT)
    assert actor is not None
    assert (actor.inbox, actor.path, actor.content_length, actor.close) == ("actor", "/actor/inbox", 7, True)
    kept = parse_head(head(b"Content-Length: 0", b"Connection: keep-alive"), LIMIT)
    assert kept is not None and kept.close is False


@pytest.mark.parametrize("line", [b"GET /inbox HTTP/1.1", b"POST /inbox?x=1 HTTP/1.1",
                                  b"POST /inbox HTTP/1.0", b"POST /outbox HTTP/1.1",
                                  b"POST  /inbox HTTP/1.1", b"POST /inbox HTTP/1.1 "])
def test_other_request_lines_go_to_aiohttp(line) -> None:
    assert parse_head(head(b"Content-Length: 5", line=line), LIMIT) is None


@pytest.mark.parametrize("fields", [
    ("X-Name: Gütersloh".encode(),), (b"X-A: a\x00b",), (b"X-A: a\x7fb",), (b"X-A: a\nb",),
    (b"X-A: a\rb",), (b"X-A: a", b" folded"), (b"X-A: a", b"\tfolded"),
    (b"Content-Length: 5",), (b"Content-Length: 6",), (b"content-length: 6",),
    (b"Transfer-Encoding: chunked",), (b"transfer-encoding: identity",), (b"Transfer-Encoding:",),
    (b"Expect: 100-continue",), (b"Upgrade: websocket",), (b"TE: trailers",),
    (b"Connection: upgrade",), (b"Connection: keep-alive, Upgrade",),
    (b"X-Pad: " + b"x" * HEAD_LIMIT,),
])
def test_fields_it_does_not_plainly_understand_go_to_aiohttp(fields) -> None:
    assert parse_head(head(*SIGNED, *fields, b"Content-Length: 5"), LIMIT) is None
    assert parse_head(head(*SIGNED, b"Content-Length: 5"), LIMIT) is not None  # the control


@pytest.mark.parametrize("length", [b"Content-Length : 5", b"Content-Type: text/plain",
                                    b"Content-Length: +5", b"Content-Length: -1",
                                    b"Content-Length: 5 5", b"Content-Length: 0x5",
                                    b"Content-Length: 00000000005", b"Content-Length: 12345678901",
                                    f"Content-Length: {LIMIT + 1}".encode()])
def test_content_lengths_it_does_not_take(length) -> None:  # also: none at all
    assert parse_head(head(*SIGNED, length), LIMIT) is None


def test_limits_are_inclusive() -> None:
    assert parse_head(head(b"Content-Length: 100"), 100) is not None
    assert parse_head(head(b"Content-Length: 101"), 100) is None
    assert parse_head(head(b"Content-Length: 9999999999"), 10**10) is not None  # 10 digits
    pads = (b"X-Pad: " + b"x" * (MAX_FIELD_LINE - 7),) * 1  # lines of aiohttp's longest
    short = head(b"Content-Length: 5", *pads, b"X-Last: ")
    exact = head(b"Content-Length: 5", *pads, b"X-Last: " + b"x" * (HEAD_LIMIT - len(short)))
    assert len(exact) == HEAD_LIMIT and parse_head(exact, LIMIT) is not None
    assert parse_head(exact[:-2] + b"x\r\n", LIMIT) is None
    longest = head(b"Content-Length: 5", b"X-Pad: " + b"x" * (MAX_FIELD_LINE - 7))
    assert parse_head(longest, LIMIT) is not None
    assert parse_head(longest[:-2] + b"x\r\n", LIMIT) is None  # a line aiohttp refuses
    fields = [b"Content-Length: 5"] + [b"X-N: %d" % n for n in range(MAX_FIELDS - 2)]
    assert parse_head(head(*fields), LIMIT) is not None  # with Host: MAX_FIELDS in all
    assert parse_head(head(*fields, b"X-One-More: 1"), LIMIT) is None


@pytest.mark.parametrize("fields", [
    (b"Content-Length: 5", b"Host: a.example", b"Host: b.example"),
    (b"Content-Length: 5", b"User-Agent: a", b"user-agent: b"),
    (b"Content-Length: 5", b"Content-Type: a", b"Content-Type: a"),
])
def test_repeated_singleton_fields_go_to_aiohttp(fields) -> None:
    assert parse_head(head(*fields), LIMIT) is None  # aiohttp answers them 400


def test_a_head_without_host_goes_to_aiohttp() -> None:
    assert parse_head(b"POST /inbox HTTP/1.1\r\nContent-Length: 5\r\n", LIMIT) is None


def test_the_singleton_fields_are_aiohttps() -> None:
    assert SINGLETON_FIELDS == aiohttp_http_parser.SINGLETON_HEADERS


def test_cannot_become_inbox_head() -> None:
    for line in (b"POST /inbox HTTP/1.1\r\n", b"POST /actor/inbox HTTP/1.1\r\n"):
        for end in range(len(line) + 1):
            assert cannot_become_inbox_head(line[:end]) is False, line[:end]
        assert cannot_become_inbox_head(line + b"Content-Length: 5\r\nHost: a") is False
    for pending in (b"GET /", b"\n", b"POST /inbox HTTP/1.1\n", b"POST /inbox HTTP/1.0\r\n",
                    b"POST /inboxes", b"POST /inbox HTTP/1.1\r\nX-A: b\n",
                    b"POST /inbox HTTP/1.1\r\nX-Pad: " + b"x" * HEAD_LIMIT):
        assert cannot_become_inbox_head(pending) is True, pending[:40]


# --- 2. encode_response ------------------------------------------------------------------


def split_response(raw: bytes) -> tuple[str, CIMultiDict[str], bytes]:
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head_bytes.decode("latin-1").split("\r\n")
    fields = CIMultiDict((n, v.strip()) for n, _, v in (x.partition(":") for x in lines))
    return status, fields, body


def test_encode_an_empty_202() -> None:
    status, fields, body = split_response(encode_response(web.Response(status=202), close=False))
    assert status == "HTTP/1.1 202 Accepted" and body == b""
    assert fields.getall("Content-Length") == ["0"]
    assert abs(parsedate_to_datetime(fields["Date"]).timestamp() - time.time()) < 5
    assert fields["Server"] == SERVER_SOFTWARE and "Connection" not in fields


def test_encode_a_problem_and_close() -> None:
    response = problem(401, "Unauthorized", "x", headers={"Retry-After": "3"})
    status, fields, body = split_response(encode_response(response, close=True))
    assert status == "HTTP/1.1 401 Unauthorized"
    assert fields["Content-Type"].startswith("application/problem+json")
    assert fields.getall("Content-Length") == [str(len(body))] and fields["Retry-After"] == "3"
    assert json.loads(body) == {"type": "about:blank", "title": "Unauthorized", "status": 401,
                                "detail": "x"}
    assert fields.getall("Connection") == ["close"]


# --- 3. over sockets: helpers ------------------------------------------------------------


def request_bytes(path: str, headers: dict[str, str], body: bytes, *more: str,
                  length: bool = True) -> bytes:
    headers = {"Host": "127.0.0.1", **headers}  # signed_headers sets Host itself
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"Content-Length: {len(body)}"] * length + list(more)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


UNSIGNED = request_bytes("/inbox", {"Content-Type": ACTIVITY_JSON}, b"{}")  # the door: 401
GET = b"GET /.well-known/nodeinfo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # aiohttp's: 200


def follow_body(followed: str, b: RunningNode, pad: int = 0) -> tuple[bytes, str]:
    """A new Follow by B's actor of ``followed``, and its id."""
    activity_id = f"{b.url}/activities/{uuid.uuid4()}"
    document = {"@context": AS_CONTEXT, "id": activity_id, "type": "Follow", "actor": b.actor,
                "object": followed, "summary": "x" * pad}
    return json.dumps(document).encode(), activity_id


def signed_post(a: RunningNode, b: RunningNode, path: str = "/inbox", *more: str,
                pad: int = 0) -> tuple[bytes, str]:
    """A raw signed POST of a new Follow from B to A, and the activity's id."""
    body, activity_id = follow_body(a.actor, b, pad)
    return request_bytes(path, signed_headers(a.url + path, body, b.keys.rsa), body, *more), activity_id


async def read_response(reader: asyncio.StreamReader) -> tuple[int, CIMultiDict[str], bytes]:
    status, fields, _ = split_response(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    if fields.get("Transfer-Encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.readexactly(int(fields.get("Content-Length", "0")))
    return int(status.split()[1]), fields, body


async def read_to_end(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


@asynccontextmanager
async def connect(node: RunningNode) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.config.listen_port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def exchange(node: RunningNode, raw: bytes, answers: int = 1) -> list[tuple[int, CIMultiDict[str], bytes]]:
    """``raw`` in one write on a new connection; the first ``answers`` responses."""
    async with connect(node) as (reader, writer):
        writer.write(raw)
        return [await read_response(reader) for _ in range(answers)]


def door(node: RunningNode) -> InboxDoor:
    assert isinstance(node.runner.server, InboxDoor)
    return node.runner.server


async def stored(node: RunningNode) -> list[tuple[str, str]]:
    return sorted((row.activity_uri, row.inbox) for row in await node.rows(InboxItem))


async def start_own(config: NodeConfig, **runner_options) -> RunningNode:
    """Node A as start_node starts it, with NodeRunner options of the test's choosing."""
    app = create_app(config, start_workers=False)
    runner = NodeRunner(app, **{"access_log": None, **runner_options})
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.listen_port).start()
    return RunningNode(config, app, runner)


@pytest.fixture
async def b(tmp_path) -> AsyncIterator[RunningNode]:
    node = await start_node(node_config(tmp_path, "b"), start_workers=False)
    yield node
    await node.stop()


@pytest.fixture
async def a(tmp_path, b) -> AsyncIterator[RunningNode]:
    node = await start_node(node_config(tmp_path, "a"), start_workers=False)
    yield node
    await node.stop()


# --- 3. over sockets: what the door answers, what it hands off ---------------------------


async def test_a_signed_post_is_answered_by_the_door(a, b) -> None:
    (shared, shared_id), (actor, actor_id) = signed_post(a, b), signed_post(a, b, "/actor/inbox")
    for raw in (shared, actor, shared):  # the third: the same activity again
        assert (await exchange(a, raw))[0][0] == 202
    assert (door(a).answered, door(a).handed_off) == (3, 0)
    assert await stored(a) == sorted([(shared_id, "shared"), (actor_id, "actor")])


async def test_pipelined_posts_then_a_get_on_one_connection(a, b) -> None:
    (first, first_id), (second, second_id) = signed_post(a, b), signed_post(a, b, "/actor/inbox")
    async with connect(a) as (reader, writer):
        writer.write(first + second + GET)
        answers = [await read_response(reader) for _ in range(3)]
        assert [status for status, _, _ in answers] == [202, 202, 200]
        assert "links" in json.loads(answers[2][2])
        again, again_id = signed_post(a, b)  # the connection now stays aiohttp's
        writer.write(again)
        assert (await read_response(reader))[0] == 202
    assert (door(a).answered, door(a).handed_off) == (2, 1)
    assert await stored(a) == sorted([(first_id, "shared"), (second_id, "actor"),
                                      (again_id, "shared")])


async def test_a_chunked_post_is_handed_to_aiohttp_and_stored(a, b) -> None:
    body, activity_id = follow_body(a.actor, b)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:40], body[40:]))
    raw = request_bytes("/inbox", signed_headers(a.url + "/inbox", body, b.keys.rsa),
                        chunked + b"0\r\n\r\n", "Transfer-Encoding: chunked", length=False)
    assert (await exchange(a, raw))[0][0] == 202
    assert (door(a).answered, door(a).handed_off) == (0, 1)
    assert await stored(a) == [(activity_id, "shared")]


async def test_the_door_answers_as_aiohttp_does(a) -> None:
    [(by_door, door_fields, door_body)] = await exchange(a, UNSIGNED)
    [(by_aiohttp, aiohttp_fields, aiohttp_body)] = await exchange(a, request_bytes(
        "/inbox", {"Content-Type": ACTIVITY_JSON}, b"2\r\n{}\r\n0\r\n\r\n",
        "Transfer-Encoding: chunked", length=False))
    assert by_door == by_aiohttp == 401 and door_body == aiohttp_body
    assert door_fields["Content-Type"] == aiohttp_fields["Content-Type"]
    assert (door(a).answered, door(a).handed_off) == (1, 1)


@pytest.mark.parametrize("smuggle", [  # CL.TE, and two Content-Lengths
    lambda hidden: request_bytes("/inbox", {}, b"0\r\n\r\n" + hidden, "Transfer-Encoding: chunked"),
    lambda hidden: request_bytes("/inbox", {}, hidden, "Content-Length: 0"),
], ids=["cl-te", "cl-cl"])
async def test_smuggling_is_refused_by_aiohttp(a, b, smuggle) -> None:
    hidden, _ = signed_post(a, b)  # stored if it were read as a request of its own
    async with connect(a) as (reader, writer):
        writer.write(smuggle(hidden))
        assert (await read_response(reader))[0] == 400
        assert b"HTTP/1.1" not in await read_to_end(reader)  # no answer to the hidden one
    assert (door(a).answered, door(a).handed_off) == (0, 1)
    assert await stored(a) == []


# The same bytes get the same answer from the door and from aiohttp: a head aiohttp
# refuses with 400 (no Host, or two: RFC 9112 section 3.2; two of a singleton field such as
# Content-Type) is handed to it, not taken.
@pytest.mark.parametrize("change", ["no Host", "two Host", "two Content-Type"])
async def test_heads_aiohttp_refuses_are_refused_through_the_door_too(a, b, change) -> None:
    more = {"no Host": (), "two Host": ("Host: evil.example",),
            "two Content-Type": ("Content-Type: text/plain",)}[change]
    (raw, _), (to_aiohttp, _) = signed_post(a, b, "/inbox", *more), signed_post(a, b, "/inbox", *more)
    if change == "no Host":
        raw, to_aiohttp = (re.sub(rb"\r\nHost: [^\r]*", b"", x, count=1) for x in (raw, to_aiohttp))
    async with connect(a) as (reader, writer):  # on a connection handed to aiohttp by a GET
        writer.write(GET)
        assert (await read_response(reader))[0] == 200
        writer.write(to_aiohttp)
        assert (await read_response(reader))[0] == 400
    assert (await exchange(a, raw))[0][0] == 400  # the door's
    assert door(a).answered == 0 and await stored(a) == []


async def test_a_bad_signature_is_refused_by_the_door(a, b) -> None:
    body, _ = follow_body(a.actor, b)
    headers = signed_headers(a.url + "/inbox", body, b.keys.rsa)
    value, _, _ = headers["Signature"].rpartition('signature="')
    headers["Signature"] = value + 'signature="' + "A" * 344 + '"'
    [(status, fields, answer)] = await exchange(a, request_bytes("/inbox", headers, body))
    assert status == 401 and fields["Content-Type"].startswith("application/problem+json")
    assert json.loads(answer)["status"] == 401
    assert json.loads(answer)["detail"].startswith("signature not accepted")
    assert door(a).answered == 1 and await stored(a) == []


async def test_the_body_limit_is_inclusive_and_beyond_it_aiohttp_answers_413(tmp_path, b) -> None:
    config = node_config(tmp_path, "a")
    probe, _ = follow_body(config.actor_url, b, pad=100)
    a = await start_own(replace(config, inbox=replace(config.inbox, max_body_bytes=len(probe))))
    try:
        (at_limit, at_limit_id), (over, _) = signed_post(a, b, pad=100), signed_post(a, b, pad=101)
        (first, _, _), (second, _, answer) = await exchange(a, at_limit + over, 2)
        assert first == 202 and second == 413 and json.loads(answer)["status"] == 413
        assert (door(a).answered, door(a).handed_off) == (1, 1)
        assert await stored(a) == [(at_limit_id, "shared")]
    finally:
        await a.stop()


async def test_connection_close_is_honoured(a, b) -> None:
    raw, _ = signed_post(a, b, "/inbox", "Connection: close")
    async with connect(a) as (reader, writer):
        writer.write(raw)
        status, fields, _ = await read_response(reader)
        assert status == 202 and fields.getall("Connection") == ["close"]
        assert await read_to_end(reader, 2) == b""


async def test_a_body_that_arrives_in_pieces(a, b) -> None:
    raw, activity_id = signed_post(a, b)
    split = raw.index(b"\r\n\r\n") + 4
    third = (len(raw) - split) // 3
    async with connect(a) as (reader, writer):
        cuts = [0, split, split + third, split + 2 * third, len(raw)]  # the head, 3 pieces
        for start, end in pairwise(cuts):
            writer.write(raw[start:end])
            await writer.drain()
            await asyncio.sleep(0.05)
        assert (await read_response(reader))[0] == 202
    assert (door(a).answered, door(a).handed_off) == (1, 0)
    assert await stored(a) == [(activity_id, "shared")]


# --- 3. over sockets: idle connections, shutdown, the access log, failures ---------------


async def test_idle_and_trickling_connections_are_closed(tmp_path) -> None:
    a = await start_own(node_config(tmp_path, "a"), keepalive_timeout=0.4)
    try:
        assert door(a).keepalive_seconds == 0.4
        async with connect(a) as (reader, writer):
            writer.write(UNSIGNED)
            assert (await read_response(reader))[0] == 401  # answered by the door
            started = time.monotonic()
            assert await read_to_end(reader, 2) == b""
            assert 0.3 < time.monotonic() - started < 1.0
        async with connect(a) as (reader, writer):
            started = time.monotonic()

            async def trickle() -> None:
                writer.write(b"POST /inbox HTTP/1.1\r\n")
                for _ in range(30):
                    await asyncio.sleep(0.05)
                    writer.write(b"X-Slow: y\r\n")

            trickling = asyncio.create_task(trickle())
            try:
                assert await read_to_end(reader, 2) == b""
                assert time.monotonic() - started < 1.0
            finally:
                trickling.cancel()
        assert door(a).connections == set() and door(a).handed_off == 0
    finally:
        await a.stop()


async def test_graceful_shutdown(tmp_path, monkeypatch) -> None:
    answering, events = asyncio.Event(), []

    async def slow_receive(request, inbox: str) -> web.Response:
        answering.set()
        await asyncio.sleep(0.3)
        events.append("answered")
        return web.Response(status=202)

    async def cleanup() -> None:
        await a.runner.cleanup()
        events.append("cleaned up")

    monkeypatch.setattr(inbox_http, "receive", slow_receive)
    a = await start_node(node_config(tmp_path, "a"), start_workers=False)
    async with connect(a) as (idle, idle_w), connect(a) as (aio, aio_w), \
            connect(a) as (busy, busy_w):
        idle_w.write(UNSIGNED)  # answered by the door, then idle
        assert (await read_response(idle))[0] == 202
        aio_w.write(GET)  # handed to aiohttp, then idle
        assert (await read_response(aio))[0] == 200
        answering.clear()
        events.clear()
        busy_w.write(UNSIGNED)
        await asyncio.wait_for(answering.wait(), 5)
        cleaning = asyncio.create_task(cleanup())
        assert await read_to_end(idle) == b"" and await read_to_end(aio) == b""
        status, fields, _ = await read_response(busy)  # the answer in progress finishes
        assert status == 202 and fields.get("Connection") == "close"
        assert await read_to_end(busy) == b""
        await asyncio.wait_for(cleaning, 5)
    assert events == ["answered", "cleaned up"]  # cleanup waited for the answer


async def test_the_access_log_has_a_line_per_request(tmp_path, b, caplog) -> None:
    name = "praxisnetz.access-test"
    caplog.set_level(logging.INFO, logger=name)
    a = await start_own(node_config(tmp_path, "a"), access_log=logging.getLogger(name),
                        access_log_class=logs.AccessLogger)
    try:
        raw, _ = signed_post(a, b)
        assert [status for status, _, _ in await exchange(a, raw + GET, 2)] == [202, 200]
        lines = [(r.method, r.path, r.status, r.remote)  # type: ignore[attr-defined]
                 for r in caplog.records if r.name == name]
        assert lines == [("POST", "/inbox", 202, "127.0.0.1"),
                         ("GET", "/.well-known/nodeinfo", 200, "127.0.0.1")]
    finally:
        await a.stop()


# Given access_log= but not access_log_class, the door logs through aiohttp's own
# AccessLogger with aiohttp's default format, as aiohttp does for the requests it answers.
async def test_aiohttps_access_logger_gets_a_line_from_the_door_too(tmp_path, caplog) -> None:
    name = "praxisnetz.access-test"
    caplog.set_level(logging.INFO, logger=name)
    a = await start_own(node_config(tmp_path, "a"), access_log=logging.getLogger(name))
    try:
        assert [status for status, _, _ in await exchange(a, UNSIGNED + GET, 2)] == [401, 200]
        lines = [r.getMessage() for r in caplog.records if r.name == name]
        assert '"GET /.well-known/nodeinfo HTTP/1.1" 200' in lines[1]  # aiohttp's line
        assert '"POST /inbox HTTP/1.1" 401' in lines[0], lines  # the door's line
    finally:
        await a.stop()


async def test_an_unexpected_exception_is_a_500_and_logged(a, b, monkeypatch, caplog) -> None:
    real, calls = inbox_http.receive, []

    async def fails_once(request, inbox: str) -> web.Response:
        calls.append(inbox)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return await real(request, inbox)

    monkeypatch.setattr(inbox_http, "receive", fails_once)
    (first, _), (second, second_id) = signed_post(a, b), signed_post(a, b)
    (status, fields, answer), (then, _, _) = await exchange(a, first + second, 2)
    assert status == 500 and fields["Content-Type"].startswith("application/problem+json")
    assert json.loads(answer)["status"] == 500 and "boom" not in answer.decode()
    assert then == 202  # the connection stayed usable
    errors = [r for r in caplog.records if r.name == "praxisnetz.inbox" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and isinstance(errors[0].exc_info[1], RuntimeError)
    assert await stored(a) == [(second_id, "shared")]
