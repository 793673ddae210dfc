"""The inbox's own HTTP/1.1 door in front of aiohttp, for the requests it can read at a glance.

aiohttp spends ~0.17 ms of CPU on a request before a handler runs and after it returns
(a request object, a payload stream, a task, the router, the middlewares, a response
object; a trivial handler on this 2-core machine), as much as the inbox's own checks
without the RSA verification. A busy inbox sees one kind of request again and again: a
signed ``POST`` of a small JSON body. This door reads those from the connection itself,
passes them to ``node.inbox.receive`` (the same code the aiohttp routes run) and writes
the answer; a plain ``asyncio.Protocol`` frames a request by its ``Content-Length`` for
~0.05 ms (docs/performance.md, session 9).

It takes a request only when its head is plainly well-formed (``parse_head``):

- the request line is ``POST /inbox HTTP/1.1`` or ``POST /actor/inbox HTTP/1.1``, exactly;
- the head is printable ASCII (tabs allowed) within ``HEAD_LIMIT`` bytes, lines end in
  CRLF, every field is ``token ":" OWS value OWS`` (no folded lines);
- exactly one ``Content-Length`` of at most the inbox's body limit, no
  ``Transfer-Encoding``, no ``Expect``, no ``Upgrade``, ``Connection`` only ``keep-alive``
  or ``close``.

Anything else — another path or method, a chunked body, a head it cannot read — is not
refused here: the connection is handed to aiohttp with every byte not yet consumed, and
aiohttp answers it as it answers every request (its parser, its 400s, the routes and
middlewares); the connection stays aiohttp's until it closes. So the door never decides
what a strange request means, which is where request smuggling lives.

``NodeRunner`` is ``web.AppRunner`` with this door in front; ``run_node`` is
``web.run_app`` with that runner (``praxisnetz serve``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from contextlib import suppress
from email.utils import formatdate
from functools import lru_cache
from time import time as wall_clock
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.log import access_logger as aiohttp_access_log
from aiohttp.web_log import AccessLogger as AiohttpAccessLogger
from multidict import CIMultiDict

from node import appkeys
from node.inbox import problem, receive

log = logging.getLogger("praxisnetz.inbox")

HEAD_LIMIT = 16 * 1024  # aiohttp's own limits are per line (8,190 bytes); a head is ~1.5 KiB
KEEPALIVE_SECONDS = 75.0  # web.run_app's keepalive_timeout: an idle connection is closed
_INBOXES = {b"POST /inbox HTTP/1.1": "shared", b"POST /actor/inbox HTTP/1.1": "actor"}
_REQUEST_LINES = tuple(line + b"\r\n" for line in _INBOXES)
_FIRST_BYTES = max(len(line) for line in _REQUEST_LINES)
# The fields of a head, each "token: value" and CRLF, the value printable ASCII or HTAB:
# what does not match whole (a folded line, a bare CR or LF, a control character, a space
# before the colon) goes to aiohttp. Matched against text decoded as ASCII.
_FIELDS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)+")
_HANDED_TO_AIOHTTP = frozenset({"transfer-encoding", "expect", "upgrade", "te"})
# What aiohttp's parser refuses with a 400 is handed to it, not taken: a field repeated
# that RFC 9110 allows once (aiohttp's http_parser.SINGLETON_HEADERS, a test keeps the
# two equal), no Host, more fields or longer field lines than its server allows.
SINGLETON_FIELDS = frozenset({"content-length", "content-location", "content-range",
                              "content-type", "etag", "host", "max-forwards", "server",
                              "transfer-encoding", "user-agent"})
MAX_FIELDS = 128
MAX_FIELD_LINE = 8190
_CONNECTION_VALUES = frozenset({"keep-alive", "close"})


class InboxHead(NamedTuple):  # not a frozen dataclass: one per request, built for less
    """A request head the door takes: which inbox, the fields, the body's length."""

    inbox: str  # "shared" or "actor", as node.inbox's routes name them
    path: str
    headers: CIMultiDict[str]
    content_length: int
    close: bool  # the sender asked to close the connection after the answer


def parse_head(head: bytes, body_limit: int) -> InboxHead | None:
    """The head (up to and with the CRLF that ends its last field, without the blank
    line) if the door takes the request; None hands the connection to aiohttp."""
    if len(head) > HEAD_LIMIT or not head.isascii():
        return None
    line_end = head.find(b"\r\n")
    inbox = _INBOXES.get(head[:line_end])
    if inbox is None:
        return None
    fields = head[line_end + 2:].decode("ascii")
    if _FIELDS.fullmatch(fields) is None:
        return None
    lines = fields[:-2].split("\r\n")  # split, not a regex: 4 µs against 22
    if len(lines) > MAX_FIELDS or max(map(len, lines)) > MAX_FIELD_LINE:
        return None
    pairs = []
    singletons = []
    for line in lines:
        name, _, value = line.partition(":")
        pairs.append((name, value.strip(" \t")))
        lowered = name.lower()
        if lowered in _HANDED_TO_AIOHTTP:
            return None
        if lowered in SINGLETON_FIELDS:
            singletons.append(lowered)
    if "host" not in singletons or len(set(singletons)) != len(singletons):
        return None
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    length_text = headers.get("Content-Length", "")  # at most one: a singleton
    if not length_text.isdigit() or len(length_text) > 10:
        return None
    length = int(length_text)
    connection = [value.strip().lower() for field in headers.getall("Connection", [])
                  for value in field.split(",")]
    if length > body_limit or not _CONNECTION_VALUES.issuperset(connection):
        return None
    path = head[:line_end].split(b" ")[1].decode("ascii")
    return InboxHead(inbox, path, headers, length, "close" in connection)


def cannot_become_inbox_head(pending: bytes) -> bool:
    """No complete head has arrived yet: True if what has cannot begin one the door
    takes (another request line, a bare LF, too long), so aiohttp should have it now
    instead of after ``HEAD_LIMIT`` bytes or the idle timeout."""
    if len(pending) > HEAD_LIMIT or pending.count(b"\n") != pending.count(b"\r\n"):
        return True
    first = pending[:_FIRST_BYTES]
    return not any(line.startswith(first) or first.startswith(line) for line in _REQUEST_LINES)


class _ReadBody:
    """The body, already read, as ``node.inbox.read_limited_body`` reads a request's."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def readany(self) -> bytes:
        body, self._body = self._body, b""
        return body

    def at_eof(self) -> bool:
        return not self._body


class DoorRequest:
    """What ``node.inbox.receive`` and the access log read of a request (``InboxRequest``)."""

    __slots__ = ("app", "headers", "path", "path_qs", "remote", "content_length", "content")
    method = "POST"
    version = HttpVersion11  # for aiohttp's own access logger ("%r")

    def __init__(self, app: web.Application, head: InboxHead, body: bytes,
                 remote: str | None) -> None:
        self.app = app
        self.headers = head.headers
        self.path = self.path_qs = head.path
        self.remote = remote
        self.content_length = head.content_length
        self.content = _ReadBody(body)


@lru_cache(maxsize=2)  # the answers of one second share their Date
def _date(second: int) -> str:
    return formatdate(second, usegmt=True)


def encode_response(response: web.Response, *, close: bool) -> bytes:
    """The answer as bytes: status line, the response's fields, length, Date, Server."""
    if response.status == 202 and response.body is None and not response.headers:
        return _accepted(int(wall_clock()), close)  # almost every answer: made once a second
    return _encoded(response, close)


@lru_cache(maxsize=4)
def _accepted(second: int, close: bool) -> bytes:
    return _encoded(web.Response(status=202), close, second)


def _encoded(response: web.Response, close: bool, second: int | None = None) -> bytes:
    body = response.body if isinstance(response.body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()
              if name.lower() not in ("content-length", "date", "server", "connection")]
    second = int(wall_clock()) if second is None else second
    lines += [f"Content-Length: {len(body)}", f"Date: {_date(second)}",
              f"Server: {SERVER_SOFTWARE}"]
    if close:
        lines.append("Connection: close")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


class InboxConnection(asyncio.Protocol):
    """One connection: requests answered in order, until one is handed to aiohttp."""

    def __init__(self, door: InboxDoor) -> None:
        self._door = door
        self._loop = door.loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[int, InboxHead] | None = None  # parsed, its body still arriving
        self.serving: asyncio.Task[None] | None = None
        # for the idle sweep: the last answer (or the connection), and the first byte of
        # the request that is arriving, if one is
        self.last_answer = self._loop.time()
        self.request_began: float | None = None
        self._paused = False  # reading, while the buffer is full
        self._writing_paused = False
        self._remote: str | None = None

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = peer[0] if isinstance(peer, tuple | list) and peer else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # as aiohttp does
        self._door.add(self)

    def data_received(self, data: bytes) -> None:
        if not self._buffer:
            self.request_began = self._loop.time()
        self._buffer += data
        if self.serving is None and not self._writing_paused:
            self._take_next()
        elif len(self._buffer) > self._door.buffer_limit and not self._paused:
            self._transport.pause_reading()  # type: ignore[union-attr]
            self._paused = True

    def pause_writing(self) -> None:
        # The sender does not read its answers: take no further request until it does.
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.serving is None and self._transport is not None:
            self._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._door.connections.discard(self)

    # --- the door

    def close_when_idle(self) -> None:
        """Close now if no request is being answered (else the answer closes it)."""
        if self.serving is None and self._transport is not None:
            self._transport.close()

    def _take_next(self) -> None:
        if self._door.closing:  # shutting down: no new request (as aiohttp's connections)
            self._transport.close()  # type: ignore[union-attr]
            return
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n", 0, HEAD_LIMIT + 4)
            if end < 0:
                if cannot_become_inbox_head(bytes(self._buffer)):
                    self._hand_off()
                return
            head = parse_head(bytes(self._buffer[:end + 2]), self._door.body_limit)
            if head is None:
                self._hand_off()
                return
            self._head = (end + 4, head)
        start, head = self._head
        if len(self._buffer) < start + head.content_length:
            return  # the body is still arriving
        body = bytes(self._buffer[start:start + head.content_length])
        del self._buffer[:start + head.content_length]
        self._head = None
        self.request_began = self._loop.time() if self._buffer else None
        self.serving = self._loop.create_task(self._answer(head, body))

    async def _answer(self, head: InboxHead, body: bytes) -> None:
        started = self._loop.time()
        request = DoorRequest(self._door.app, head, body, self._remote)
        try:
            response = await receive(request, head.inbox)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - logged with its traceback; the sender gets a 500
            log.exception("inbox request failed", extra={"path": head.path})
            response = problem(500, "Internal Server Error", "the request failed; see the node's log")
        close = head.close or self._door.closing
        transport = self._transport
        self.serving = None
        if transport is None:  # the sender left; the activity is stored all the same
            return
        transport.write(encode_response(response, close=close))
        self._door.answered += 1
        self._door.log_access(request, response, self._loop.time() - started)
        if transport.is_closing():
            return
        if close:
            transport.close()
            return
        self.last_answer = self._loop.time()
        if not self._writing_paused:
            self._resume()

    def _resume(self) -> None:
        """After an answer: read on, and take the next request if it is already here."""
        if self._paused:
            self._paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]
        if self._buffer:
            self._take_next()

    def _hand_off(self) -> None:
        """aiohttp reads the connection from the first byte not yet answered on."""
        transport = self._transport
        assert transport is not None and self.serving is None
        self._door.connections.discard(self)
        self._door.handed_off += 1
        self._transport = None
        protocol = self._door.aiohttp_server()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        pending, self._buffer = bytes(self._buffer), bytearray()
        if pending:
            protocol.data_received(pending)


class InboxDoor:
    """The listening socket's protocol factory: an ``InboxConnection`` per connection, and
    ``web.Server``'s shutdown calls for both kinds of connection."""

    def __init__(self, app: web.Application, aiohttp_server: web.Server, *,
                 access_logger: AbstractAccessLogger | None,
                 keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.app = app
        self.aiohttp_server = aiohttp_server
        self.loop = asyncio.get_running_loop()
        self.body_limit = app[appkeys.CONFIG].inbox.max_body_bytes
        self.buffer_limit = HEAD_LIMIT + self.body_limit  # beyond it, stop reading a while
        self.keepalive_seconds = keepalive_seconds
        self.connections: set[InboxConnection] = set()
        self.closing = False
        self.answered = 0  # requests the door answered itself (tests, benchmarks)
        self.handed_off = 0  # connections it handed to aiohttp
        self._access_logger = access_logger
        # idle connections live between keepalive_seconds and a quarter more
        self._sweep_every = keepalive_seconds / 4
        self._sweep: asyncio.TimerHandle | None = None

    def __call__(self) -> InboxConnection:
        return InboxConnection(self)

    def add(self, connection: InboxConnection) -> None:
        self.connections.add(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self._sweep_every, self._close_idle)

    def _close_idle(self) -> None:
        """Close the connections idle for ``keepalive_seconds`` since their last answer, and
        those whose request has not fully arrived that long after its first byte
        (one timer for all: a timer per request cost ~2% of the door's CPU)."""
        self._sweep = None
        quiet_since = self.loop.time() - self.keepalive_seconds
        for connection in list(self.connections):
            began = connection.request_began
            if connection.serving is None and (
                    connection.last_answer if began is None else began) <= quiet_since:
                connection.close_when_idle()
        if self.connections:
            self._sweep = self.loop.call_later(self._sweep_every, self._close_idle)

    def log_access(self, request: DoorRequest, response: web.Response, seconds: float) -> None:
        logger = self._access_logger
        if logger is not None and logger.enabled:
            try:
                logger.log(request, response, seconds)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - as aiohttp's handler: a log line must not stop answering
                log.exception("inbox: the access log failed")

    def pre_shutdown(self) -> None:
        self.closing = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.aiohttp_server.pre_shutdown()
        for connection in list(self.connections):
            connection.close_when_idle()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout``) for the answers in progress, as aiohttp does for its."""
        answering = [c.serving for c in self.connections if c.serving is not None]
        if answering:
            await asyncio.wait(answering, timeout=timeout)
        await self.aiohttp_server.shutdown(timeout)


class NodeRunner(web.AppRunner):
    """``web.AppRunner`` whose sites listen through the inbox door (``InboxDoor``)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs = self._kwargs  # aiohttp's defaults where the runner was given none
        access_log = kwargs.get("access_log", aiohttp_access_log)
        logger_class: type[AbstractAccessLogger] = kwargs["access_log_class"]
        access_logger = (logger_class(access_log, kwargs.get("access_log_format",
                                                             AiohttpAccessLogger.LOG_FORMAT))
                         if access_log is not None else None)
        door = InboxDoor(self.app, server, access_logger=access_logger,
                         keepalive_seconds=kwargs.get("keepalive_timeout", KEEPALIVE_SECONDS))
        return door  # type: ignore[return-value]  # what BaseRunner calls of a web.Server


def run_node(app: web.Application, *, host: str, port: int, reuse_port: bool | None,
             runner_options: dict[str, Any]) -> None:
    """``web.run_app(app, host=…, port=…)`` with ``NodeRunner``: until SIGINT or SIGTERM,
    then a graceful shutdown (answers in progress finish, the cleanup contexts run)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def serve() -> None:
        runner = NodeRunner(app, handle_signals=True,
                            **{"keepalive_timeout": KEEPALIVE_SECONDS, **runner_options})
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
            await site.start()
            print(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)", flush=True)
            await asyncio.Event().wait()  # until a signal ends the loop (web.GracefulExit)
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()  # the runner's cleanup runs in serve's finally
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_the_rest(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
