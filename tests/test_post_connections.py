"""Delivery POSTs on kept-alive connections (``federation.post_connections``).

A scripted HTTP server on 127.0.0.1 answers each request with the bytes a test gives
and counts the connections it accepted, so "kept", "closed" and "opened anew" are
checked as connection counts. Names resolve through the injected FakeDNS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fetch_support import FakeDNS, self_signed_certificate
from yarl import URL

from federation.fetch import AddressPolicy, FetchError, FetchFailure, SafeFetcher
from federation.post_connections import (
    DRAIN_BYTES,
    EXCERPT_BYTES,
    AnswerError,
    PostConnections,
    parse_head,
    request_head,
)

ALLOW = AddressPolicy(allowed_hosts=frozenset({"allowed.test"}))
OK = b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\naccepted"
Answer = Callable[[bytes], bytes]  # the request's head and body -> the raw answer


@dataclass
class Scripted:
    port: int
    answers: list[bytes | Answer]  # one per request, in order; the last one repeats
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    close_after_answer: bool = False


async def _serve(
    script: Scripted, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    script.connections += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            script.requests.append((head, body))
            answer = script.answers[min(len(script.requests), len(script.answers)) - 1]
            writer.write(answer(head) if callable(answer) else answer)
            await writer.drain()
            if script.close_after_answer:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed the connection
    finally:
        writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    script = Scripted(0, [OK])
    server = await asyncio.start_server(lambda r, w: _serve(script, r, w), "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    async with server:
        yield script


def fetcher(
    connections: PostConnections | None = None, dns: FakeDNS | None = None, timeout: float = 5.0
) -> SafeFetcher:
    # The session is never used for POSTs; None proves it.
    return SafeFetcher(
        None,
        ALLOW,
        resolve=dns or FakeDNS({"allowed.test": ["127.0.0.1"]}),  # type: ignore[arg-type]
        connections=connections,
        timeout=timeout,
    )


# --- the request and the answer's head, as bytes -------------------------------------


def test_request_head_lets_given_headers_replace_defaults_and_frames_the_body_itself() -> None:
    head = request_head(
        URL("http://a.test:8080/inbox?x=1"),
        {"host": "b.test", "Signature": "s", "Content-Length": "999"},
        host="a.test:8080",
        user_agent="UA",
        length=3,
    )
    assert head == (
        b"POST /inbox?x=1 HTTP/1.1\r\nhost: b.test\r\nSignature: s\r\n"
        b"User-Agent: UA\r\nContent-Length: 3\r\n\r\n"
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("X-Evil", "a\r\nInjected: 1"),
        ("X-Evil", "a\nb"),
        ("Bad Name", "v"),
        ("X:y", "v"),
        ("X-Nul", "a\x00"),
    ],
)
def test_request_head_refuses_header_lines_that_could_split_the_request(
    name: str, value: str
) -> None:
    with pytest.raises(ValueError):
        request_head(
            URL("http://a.test/inbox"), {name: value}, host="a.test", user_agent="UA", length=0
        )


def test_parse_head_joins_repeated_headers_and_refuses_garbage() -> None:
    status, keep, headers = parse_head(
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 5\r\nVary: a\r\nvary: b"
    )
    assert (status, keep, headers) == (429, True, {"retry-after": "5", "vary": "a, b"})
    assert parse_head(b"HTTP/1.0 200")[:2] == (200, False)
    for garbage in (
        b"HTTP/2 200 OK",
        b"HTTP/1.1 2000 OK",
        b"SSH-2.0-OpenSSH",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\n bad: fold",
    ):
        with pytest.raises(AnswerError):
            parse_head(garbage)


# --- connections: kept, closed, opened anew ------------------------------------------


async def test_a_kept_connection_carries_the_next_delivery_without_asking_dns_again(
    scripted: Scripted,
) -> None:
    dns = FakeDNS({"allowed.test": ["127.0.0.1"]})
    client = fetcher(dns=dns)
    url = f"http://allowed.test:{scripted.port}/users/1/inbox"
    first = await client.post(url, b'{"n":1}', {"Content-Type": "application/activity+json"})
    second = await client.post(url, b'{"n":2}', {})
    client.close()
    assert (first.status, first.body_excerpt, second.status) == (202, "accepted", 202)
    assert scripted.connections == 1 and dns.asked == ["allowed.test"]
    (head, body), (_, body2) = scripted.requests
    assert head.startswith(b"POST /users/1/inbox HTTP/1.1\r\n")
    assert f"Host: allowed.test:{scripted.port}".encode() in head
    assert (body, body2) == (b'{"n":1}', b'{"n":2}')


async def test_a_forbidden_address_is_refused_before_any_connection(scripted: Scripted) -> None:
    dns = FakeDNS({"evil.test": ["127.0.0.1"]})
    with pytest.raises(FetchError) as caught:
        await fetcher(dns=dns).post(f"http://evil.test:{scripted.port}/inbox", b"{}", {})
    assert caught.value.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert scripted.connections == 0


async def test_chunked_answer_gives_status_headers_and_an_excerpt_and_keeps_the_connection(
    scripted: Scripted,
) -> None:
    scripted.answers = [
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n"
        b'Accept-Signature: sig1=();alg="ed25519"\r\n'
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nslow \r\n400\r\n" + b"d" * 0x400 + b"\r\n0\r\nX-T: 1\r\n\r\n",
        OK,
    ]
    client = fetcher()
    url = f"http://allowed.test:{scripted.port}/inbox"
    busy = await client.post(url, b"{}", {})
    after = await client.post(url, b"{}", {})
    assert busy.status == 429 and busy.headers == {
        "Retry-After": "120",
        "Accept-Signature": 'sig1=();alg="ed25519"',
    }
    assert busy.body_excerpt == "slow " + "d" * (EXCERPT_BYTES - 5)
    assert after.status == 202 and scripted.connections == 1


async def test_a_long_body_is_not_read_and_its_connection_is_not_kept(scripted: Scripted) -> None:
    huge = DRAIN_BYTES + 1
    scripted.answers = [
        b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % huge + b"e" * huge,
        b"HTTP/1.1 404 No\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        OK,
    ]
    client = fetcher()
    url = f"http://allowed.test:{scripted.port}/inbox"
    statuses = [(await client.post(url, b"{}", {})).status for _ in range(3)]
    assert statuses == [500, 404, 202]
    assert scripted.connections == 3  # neither the long answer's nor the closing one's kept


async def test_a_connection_the_server_closed_while_idle_is_replaced_once(
    scripted: Scripted,
) -> None:
    scripted.close_after_answer = True  # answers once, then hangs up on the kept connection
    client = fetcher()
    url = f"http://allowed.test:{scripted.port}/inbox"
    assert (await client.post(url, b"{}", {})).status == 202
    await asyncio.sleep(0.05)  # let the close arrive, or not: either way it must work
    assert (await client.post(url, b"{}", {})).status == 202
    assert scripted.connections == 2 and len(scripted.requests) == 2


async def test_an_answer_cut_off_or_malformed_is_a_connection_failure(scripted: Scripted) -> None:
    scripted.close_after_answer = True
    scripted.answers = [b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nshort"]
    with pytest.raises(FetchError) as cut:
        await fetcher().post(f"http://allowed.test:{scripted.port}/inbox", b"{}", {})
    scripted.answers = [b"HTTP/1.1 202 OK\r\nX: " + b"h" * (20 * 1024) + b"\r\n\r\n"]
    with pytest.raises(FetchError) as too_long:
        await fetcher().post(f"http://allowed.test:{scripted.port}/inbox", b"{}", {})
    assert cut.value.failure is too_long.value.failure is FetchFailure.CONNECTION_FAILED
    assert "AnswerError" in cut.value.detail and "AnswerError" in too_long.value.detail


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped(
    scripted: Scripted,
) -> None:
    scripted.answers = [b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\nacc", OK]
    connections = PostConnections()
    client = fetcher(connections, timeout=0.3)
    url = f"http://allowed.test:{scripted.port}/inbox"
    with pytest.raises(FetchError) as caught:
        await client.post(url, b"{}", {})
    assert caught.value.failure is FetchFailure.TIMEOUT
    assert (await client.post(url, b"{}", {})).status == 202
    assert scripted.connections == 2  # the half-answered connection was not used again


async def test_a_bad_header_value_is_refused_before_sending(scripted: Scripted) -> None:
    with pytest.raises(FetchError) as caught:
        await fetcher().post(
            f"http://allowed.test:{scripted.port}/inbox",
            b"{}",
            {"Signature": "x\r\nHost: evil.test"},
        )
    assert caught.value.failure is FetchFailure.BAD_URL and scripted.connections == 0


# --- TLS: the certificate is checked for the name, the socket goes to the checked IP --


async def test_https_delivery_checks_the_certificate_for_the_name(tmp_path: Path) -> None:
    cert_path, key_path = self_signed_certificate(tmp_path, "allowed.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    script = Scripted(0, [OK])
    server = await asyncio.start_server(
        lambda r, w: _serve(script, r, w), "127.0.0.1", 0, ssl=server_context
    )
    port = server.sockets[0].getsockname()[1]
    trusting = PostConnections(ssl_context=ssl.create_default_context(cafile=str(cert_path)))
    dns = FakeDNS({"allowed.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_hosts=frozenset({"allowed.test", "other.test"}))
    client = SafeFetcher(None, policy, resolve=dns, connections=trusting)  # type: ignore[arg-type]
    async with server:
        delivered = await client.post(f"https://allowed.test:{port}/inbox", b"{}", {})
        with pytest.raises(FetchError) as wrong_name:
            await client.post(f"https://other.test:{port}/inbox", b"{}", {})
        client.close()
    assert delivered.status == 202 and len(script.requests) == 1
    assert wrong_name.value.failure is FetchFailure.CONNECTION_FAILED
    assert "certificate" in wrong_name.value.detail.lower()
