"""bench.lean_sink: frames kept-alive requests by Content-Length, counts signed POSTs."""

from __future__ import annotations

import asyncio
import json

from yarl import URL

from bench.lean_sink import Counts, serve
from federation.post_connections import PostConnections, request_head

SIGNED = b"Signature-Input: sig1=();created=1\r\nSignature: sig1=:AAAA:\r\n"


def _post(body: bytes, extra: bytes = SIGNED, path: bytes = b"/users/1/inbox") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path, extra, len(body), body))


async def _exchange(chunks: list[bytes], counts: Counts) -> bytes:
    """Send ``chunks`` one write each on one connection; everything answered until close."""
    server = await serve(0, counts)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await asyncio.sleep(0.01)  # let the server see the connection end
        return answer
    finally:
        server.close()
        await server.wait_closed()


def test_pipelined_and_split_posts_are_each_counted_and_answered() -> None:
    counts = Counts()
    first, second = _post(b'{"a":1}'), _post(b"x" * 5000)
    stream = first + second
    answer = asyncio.run(_exchange([stream[:30], stream[30:len(first) + 9], stream[len(first) + 9:]],
                                   counts))
    assert answer.count(b"HTTP/1.1 202 Accepted") == 2
    assert (counts.posts, counts.malformed) == (2, 0)


def test_unsigned_post_is_answered_but_counted_as_malformed() -> None:
    counts = Counts()
    answer = asyncio.run(_exchange([_post(b"{}", extra=b"")], counts))
    assert answer.startswith(b"HTTP/1.1 202")
    assert (counts.posts, counts.malformed) == (0, 1)


def test_body_cut_short_by_the_client_is_malformed() -> None:
    counts = Counts()
    cut = _post(b"y" * 100)[:-10]
    answer = asyncio.run(_exchange([cut], counts))
    assert answer == b""
    assert (counts.posts, counts.malformed) == (0, 1)


def test_post_without_content_length_or_chunked_is_refused() -> None:
    for request in (b"POST /i HTTP/1.1\r\nHost: x\r\n" + SIGNED + b"\r\n",
                    b"POST /i HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + SIGNED
                    + b"\r\n0\r\n\r\n"):
        counts = Counts()
        answer = asyncio.run(_exchange([request], counts))
        assert answer.startswith(b"HTTP/1.1 400")
        assert (counts.posts, counts.malformed) == (0, 1)


def test_count_answers_json_after_posts_on_the_same_connection() -> None:
    counts = Counts()
    get = b"GET /count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = asyncio.run(_exchange([_post(b"1") + _post(b"2") + get], counts))
    body = answer.rsplit(b"\r\n\r\n", 1)[1]
    assert json.loads(body) == {"posts": 2, "malformed": 0}


def test_the_delivery_client_keeps_one_connection_for_many_posts() -> None:
    async def scenario() -> tuple[list[int], Counts]:
        counts = Counts()
        server = await serve(0, counts)
        port = server.sockets[0].getsockname()[1]
        connections = PostConnections()
        url = URL(f"http://127.0.0.1:{port}/users/3/inbox")

        async def checked(_: URL) -> list:
            from ipaddress import ip_address
            return [ip_address("127.0.0.1")]

        try:
            statuses = []
            for number in range(5):
                body = b'{"n":%d}' % number
                head = request_head(url, {"Signature": "sig1=:AA:"}, host=f"127.0.0.1:{port}",
                                    user_agent="test", length=len(body))
                statuses.append((await connections.post(url, head, body, checked)).status)
            return statuses, counts
        finally:
            connections.close()
            server.close()
            await server.wait_closed()

    statuses, counts = asyncio.run(scenario())
    assert statuses == [202] * 5
    assert (counts.posts, counts.malformed) == (5, 0)
