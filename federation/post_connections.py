"""Delivery POSTs over kept-alive HTTP/1.1 connections, each checked once when opened.

A delivery is one small signed POST whose answer matters only for its status, two
headers and the start of its body. aiohttp's client builds a request object, a response
object, header multidicts, payload and timer objects for each request: about 0.3 ms of
CPU, the delivery worker's largest cost after the RSA signature. Here a request is one
``bytes`` join and one ``write``; the answer is parsed just far enough to frame it.

The safety rules are the fetcher's (``federation.fetch``), kept per connection:

- a connection is opened only to an address the caller's check permitted after DNS
  (``Checked``: resolve, then the address policy for *every* address), and the peer the
  socket reached is compared with that address again once connected; a kept connection
  stays pinned to it, so reusing it needs no second DNS answer to trust;
- redirects are answers, never followed;
- an answer's head is bounded (``MAX_HEAD_BYTES``), its body is read to at most
  ``DRAIN_BYTES`` (the first ``EXCERPT_BYTES`` kept) and a longer one closes the
  connection instead of being read; anything malformed closes it too;
- the caller bounds the whole exchange in time; a cancelled exchange closes its
  connection (it may hold half an answer).

A kept connection the server closed while idle fails before any byte of an answer;
the request then goes once more on a new connection. The first one may (rarely) have
been read by the server: receivers deduplicate deliveries by activity id.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from yarl import URL

IPAddress = IPv4Address | IPv6Address
Checked = Callable[[URL], Awaitable[list[IPAddress]]]

MAX_HEAD_BYTES = 16 * 1024
EXCERPT_BYTES = 512
# Longer bodies are not read to the end: the connection is closed instead of kept.
DRAIN_BYTES = 64 * 1024
_MAX_ADDRESSES_TRIED = 4
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_NO_BODY_STATUSES = frozenset({204, 304})


class AnswerError(Exception):
    """The peer's answer cannot be framed (malformed, too long, cut off)."""


class _Stale(Exception):
    """A kept connection ended before the first byte of an answer."""


@dataclass(frozen=True)
class PostAnswer:
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    excerpt: bytes  # the first EXCERPT_BYTES of the body


def request_head(
    target: URL, headers: Mapping[str, str], *, host: str, user_agent: str, length: int
) -> bytes:
    """The request line and headers of a POST to ``target`` (``headers`` replace the
    defaults of the same name). Refuses what could split the request (CR, LF, NUL)."""
    path = target.raw_path_qs or "/"
    if _UNSAFE_TARGET.search(path):
        raise ValueError(f"request target {path!r} holds whitespace or control characters")
    defaults = {"host": ("Host", host), "user-agent": ("User-Agent", user_agent)}
    lines = [f"POST {path} HTTP/1.1"]
    for name, value in headers.items():
        # ``in`` scans in C; a regex character class took ~10 µs per signature header.
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"header {name!r} is not a valid header line")
        lowered = name.lower()
        if lowered == "content-length" or lowered == "transfer-encoding":
            continue  # framing is ours: the length of the body we send
        defaults.pop(lowered, None)
        lines.append(f"{name}: {value}")
    lines.extend(f"{name}: {value}" for name, value in defaults.values())
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "\r\n".join(lines).encode("latin-1")


def parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    """(status, HTTP/1.1?, headers) of an answer's head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or not (code.isdigit() and code.isascii())
        or rest[3:4] not in ("", " ")
    ):
        raise AnswerError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise AnswerError(f"malformed header line: {line[:80]!r}")
        name, value = name.lower(), value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(code), version == "HTTP/1.1", headers


def _content_length(value: str) -> int:
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not (number := values.pop()).isdigit() or not number.isascii():
        raise AnswerError(f"unusable Content-Length {value[:40]!r}")
    return int(number)


class _Channel(asyncio.Protocol):
    """One connection: what arrived and not yet read, and a waiter for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received_any = False
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self.received_any = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def usable(self) -> bool:
        """Open, and nothing arrived since the last answer (stray bytes are not ours)."""
        return not self.closed and not self._eof and not self._buffer

    def send(self, head: bytes, body: bytes) -> None:
        self.received_any = False
        if self.transport is None:
            raise ConnectionError("not connected")
        self.transport.write(head + body)

    async def _more(self) -> None:
        if self._eof:
            raise (
                AnswerError("connection closed in the middle of the answer")
                if self.received_any
                else _Stale()
            )
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_until(self, marker: bytes, limit: int) -> bytes:
        """Bytes up to ``marker`` (consumed, not returned); at most ``limit`` before it."""
        while (end := self._buffer.find(marker)) < 0:
            if len(self._buffer) > limit:
                raise AnswerError(f"more than {limit} bytes without {marker!r}")
            await self._more()
        if end > limit:
            raise AnswerError(f"more than {limit} bytes without {marker!r}")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + len(marker)]
        return line

    async def read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._more()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    async def read_to_end(self, limit: int) -> bytes:
        """Everything until the peer closes, at most ``limit`` bytes."""
        while not self._eof and len(self._buffer) <= limit:
            await self._more_or_end()
        data = bytes(self._buffer[:limit])
        self._buffer.clear()
        return data

    async def _more_or_end(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_chunked(self, limit: int) -> tuple[bytes, bool]:
        """A chunked body, at most ``limit`` bytes of it: (data, read to the end?)."""
        data = bytearray()
        while True:
            size_line = (await self.read_until(b"\r\n", 1024)).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise AnswerError(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while await self.read_until(b"\r\n", 8 * 1024):
                    pass  # trailer fields, not looked at
                return bytes(data), True
            if len(data) + size > limit:
                data += await self.read_exactly(min(size, limit - len(data)))
                return bytes(data), False
            data += await self.read_exactly(size)
            if await self.read_exactly(2) != b"\r\n":
                raise AnswerError("chunk not followed by CRLF")

    async def read_answer(self) -> tuple[PostAnswer, bool]:
        """The next answer (informational ones skipped) and whether the connection can
        carry another request."""
        while True:
            status, keep, headers = parse_head(await self.read_until(b"\r\n\r\n", MAX_HEAD_BYTES))
            if not 100 <= status < 200:
                break
            if status == 101:
                raise AnswerError("the server switched protocols")
        keep = keep and "close" not in headers.get("connection", "").lower()
        encoding = headers.get("transfer-encoding")
        if status in _NO_BODY_STATUSES:
            body = b""
        elif encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise AnswerError(f"unsupported Transfer-Encoding {encoding[:40]!r}")
            body, complete = await self.read_chunked(DRAIN_BYTES)
            keep = keep and complete
        elif "content-length" in headers:
            length = _content_length(headers["content-length"])
            if length > DRAIN_BYTES:
                body, keep = await self.read_exactly(EXCERPT_BYTES), False
            else:
                body = await self.read_exactly(length)
        else:
            body, keep = await self.read_to_end(DRAIN_BYTES), False
        return PostAnswer(status, headers, body[:EXCERPT_BYTES]), keep and not self._eof


class PostConnections:
    """Kept-alive connections per (scheme, host, port), opened only to checked addresses."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle_per_origin: int = 16,
        idle_seconds: float = 30.0,
    ) -> None:
        self._ssl = ssl_context
        self._max_idle = max_idle_per_origin
        self._idle_seconds = idle_seconds
        self._idle: dict[tuple[str, str, int], list[tuple[_Channel, float]]] = {}

    async def post(self, url: URL, head: bytes, body: bytes, checked: Checked) -> PostAnswer:
        """Send one request and read its answer; OSError or AnswerError if that fails."""
        origin = (url.scheme, url.raw_host or "", url.port or 0)
        for _ in range(2):
            channel = self._take_idle(origin)
            reused = channel is not None
            if channel is None:
                channel = await self._open(url, checked)
            try:
                channel.send(head, body)
                answer, keep = await channel.read_answer()
            except _Stale:
                channel.close()
                if reused:
                    continue  # the server closed the idle connection: once more, afresh
                raise ConnectionResetError("connection closed before an answer") from None
            except BaseException:
                channel.close()  # cancelled or failed: it may hold half an answer
                raise
            self._keep(origin, channel) if keep else channel.close()
            return answer
        raise ConnectionResetError("connection closed before an answer")  # pragma: no cover

    def _take_idle(self, origin: tuple[str, str, int]) -> _Channel | None:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            channel, since = idle.pop()
            if channel.usable() and now - since < self._idle_seconds:
                return channel
            channel.close()
        return None

    def _keep(self, origin: tuple[str, str, int], channel: _Channel) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            channel.close()
            return
        idle.append((channel, asyncio.get_running_loop().time()))

    async def _open(self, url: URL, checked: Checked) -> _Channel:
        addresses = await checked(url)  # DNS and the address policy, for every address
        https = url.scheme == "https"
        if https and self._ssl is None:
            self._ssl = ssl.create_default_context()
        port = url.port or (443 if https else 80)
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses[:_MAX_ADDRESSES_TRIED]:
            try:
                _, channel = await loop.create_connection(
                    _Channel,
                    host=str(address),
                    port=port,
                    ssl=self._ssl if https else None,
                    server_hostname=url.raw_host if https else None,
                )
            except OSError as exc:
                failure = exc  # nothing was sent yet: the next address may answer
                continue
            peer = channel.transport.get_extra_info("peername") if channel.transport else None
            if peer is None or ip_address(peer[0]) != address:
                channel.close()
                raise ConnectionError(f"connected to {peer!r}, not the checked {address}")
            return channel
        raise failure or ConnectionError("no address to connect to")

    def close(self) -> None:
        """Close every kept connection (those in use close when their request ends)."""
        for idle in self._idle.values():
            for channel, _ in idle:
                channel.close()
        self._idle.clear()
