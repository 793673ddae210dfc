"""A lean loopback receiver for ``bench.fanout``: counts signed POSTs, answers 202.

The fan-out benchmark measures the delivery worker, not its receivers, yet on this
2-core machine the receivers share the cores with the workers. An aiohttp application
per receiver (``bench.load_client sink``) spent ~0.5 ms of CPU per delivery: request and
response objects, routing, header multidicts. This one is an ``asyncio.Protocol`` that
frames HTTP/1.1 requests by ``Content-Length`` on kept-alive connections and answers
each POST with a fixed 202, so the cores go to the system under test.

It still looks at what arrives, so a broken worker cannot pass unnoticed: a POST counts
only with a ``Signature`` or ``Signature-Input`` header and a body of exactly the length
it declared; anything else (no length, chunked, a head too long, a connection closed in
the middle of a body) is counted as malformed and the connection closed. It does not
verify signatures. ``GET /count`` answers ``{"posts": N, "malformed": M}``.

Several ports can share one process (``--port A --port B``): each port is a receiving
server of its own to the worker (its own origin, connections and counts), while the one
process takes many requests per wake-up instead of each of four processes waking for
each request (on this 2-core machine a wake-up, not the parsing, is most of a POST's
cost).

Run: ``python -m bench.lean_sink --port PORT [--port PORT ...]`` (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 2 * 1024 * 1024
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
_REFUSED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
# Searched in the lower-cased head; the leading CRLF anchors them at a line start.
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)[ \t]*(?=\r\n|$)")
_SIGNED = re.compile(rb"\r\nsignature(?:-input)?:")
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:")
_CLOSE = re.compile(rb"\r\nconnection:[^\r]*close")


@dataclass
class Counts:
    """What every connection of this receiver saw."""

    posts: int = 0
    malformed: int = 0

    def as_json(self) -> bytes:
        body = json.dumps({"posts": self.posts, "malformed": self.malformed}).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


class _Head:
    """The parts of a request head this receiver acts on."""

    __slots__ = ("method", "path", "length", "signed", "keep", "framed")

    def __init__(self, head: bytes) -> None:
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        parts = request_line.split(b" ")
        self.method = parts[0] if len(parts) == 3 else b""
        self.path = parts[1] if len(parts) == 3 else b""
        lowered = head.lower()
        lengths = _CONTENT_LENGTH.findall(lowered)
        self.length = int(lengths[0]) if len(set(lengths)) == 1 else None
        self.signed = _SIGNED.search(lowered) is not None
        self.framed = (len(parts) == 3 and parts[2] in (b"HTTP/1.1", b"HTTP/1.0")
                       and _CHUNKED.search(lowered) is None
                       and lowered.count(b"\r\ncontent-length:") == len(lengths))
        self.keep = parts[-1] == b"HTTP/1.1" and _CLOSE.search(lowered) is None


class SinkProtocol(asyncio.Protocol):
    """One connection: requests framed by Content-Length, answered in order."""

    def __init__(self, counts: Counts) -> None:
        self._counts = counts
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: _Head | None = None  # a request whose body is still arriving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head is not None and self._head.method == b"POST":
            self._counts.malformed += 1  # closed in the middle of a body
        self._head = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answers: list[bytes] = []
        keep = self._answer_complete_requests(answers)
        if self._transport is None:
            return
        if answers:
            self._transport.write(b"".join(answers))
        if not keep:
            self._transport.close()

    def _answer_complete_requests(self, answers: list[bytes]) -> bool:
        """Answer every request the buffer holds in full; False to close the connection."""
        buffer = self._buffer
        while True:
            if self._head is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return self._refuse(answers) if len(buffer) > MAX_HEAD_BYTES else True
                head = _Head(bytes(buffer[:end]))
                del buffer[: end + 4]
                if not head.framed or (head.method == b"POST" and (
                        head.length is None or head.length > MAX_BODY_BYTES)):
                    return self._refuse(answers)
                self._head = head
            head = self._head
            length = head.length or 0
            if len(buffer) < length:
                return True  # wait for the rest of the body
            del buffer[:length]
            self._head = None
            answers.append(self._answer(head))
            if not head.keep:
                return False

    def _answer(self, head: _Head) -> bytes:
        if head.method == b"POST":
            if head.signed:
                self._counts.posts += 1
            else:
                self._counts.malformed += 1
            return ACCEPTED
        if head.method == b"GET" and head.path == b"/count":
            return self._counts.as_json()
        return _NOT_FOUND

    def _refuse(self, answers: list[bytes]) -> bool:
        self._counts.malformed += 1
        self._head = None
        self._buffer.clear()
        answers.append(_REFUSED)
        return False


async def serve(port: int, counts: Counts | None = None) -> asyncio.Server:
    """Listen on 127.0.0.1:``port`` (0: any free port); the caller closes the server."""
    shared = counts if counts is not None else Counts()
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SinkProtocol(shared), "127.0.0.1", port)


async def _serve_forever(ports: list[int]) -> None:
    servers = [await serve(port) for port in ports]  # each port counts on its own
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lean_sink")
    parser.add_argument("--port", type=int, action="append", required=True,
                        help="a port to listen on (repeat it: one process serves them all)")
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.port))


if __name__ == "__main__":
    main()
