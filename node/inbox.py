"""The inbox endpoints: limit, rate-limit, verify, persist once, answer 202.

Order matters and is cheapest first: body size, then the token buckets (before any
key fetch or signature check, so a flood costs us nothing), then the
activity's shape, then the HTTP signature, then one INSERT that is idempotent per
activity id, committed together with the other requests' rows of the moment (group
commit, ``node.inbox_writer``) before the 202. Processing happens later in ``node.inbox_processing``. A database that
cannot take the item answers 503 with ``Retry-After``: a sender retries, nothing is
dropped behind a 202.

``receive`` runs for the aiohttp routes and for the inbox's own door in front of aiohttp
(``node.inbox_http``), which reads most inbox requests itself (``InboxRequest``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy.exc import SQLAlchemyError

from federation.activities import Activity, ActivityError, on_actor_origin, parse_activity
from federation.httpsig import RequestParts, TimeWindow, detect_scheme, verify_request
from federation.origin import OriginVerdict, may_act_on
from federation.strict_json import finite_float, not_a_json_constant
from node import appkeys
from node.client_address import TrustedProxies, of_request, trusted_proxies
from node.config import InboxTuning, NodeConfig
from node.inbox_writer import (
    InboxQueueFull,
    InboxRow,
    InboxWriter,
    InboxWriterClosed,
    running_writer,
)
from node.remote import SQLITE_WORK, SqliteWork, install_key_cache

log = logging.getLogger("praxisnetz.inbox")

ACTIVITY_MEDIA_TYPES = ("application/activity+json", "application/ld+json", "application/json")
RETRY_AFTER_BUSY_SECONDS = 30
MAX_URI_LENGTH = 2048  # the width of the activity and actor columns
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_KEY_ID = re.compile(r'keyid\s*=\s*"([^"]*)"', re.IGNORECASE)
_OWN_OBJECT_KINDS = frozenset({"Create", "Update", "Delete", "Undo"})


# --- token buckets ---------------------------------------------------------------------


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_seconds: int = 0


_ALLOWED = RateDecision(True)  # immutable: one for every request let through


class HostRateLimiter:
    """A token bucket per key (a host, an address), bounded in the number of keys it remembers."""

    def __init__(
        self,
        requests_per_minute: int,
        *,
        burst: int | None = None,
        max_hosts: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = requests_per_minute / 60.0
        self._capacity = float(burst if burst is not None else requests_per_minute)
        self._max_hosts = max_hosts
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        """How many hosts the limiter currently remembers."""
        return len(self._buckets)

    def take(self, host: str) -> RateDecision:
        now, buckets, capacity = self._monotonic(), self._buckets, self._capacity
        last = buckets.pop(host, None)
        if last is None:
            tokens = capacity
        else:  # comparisons, not min(): one builtin call less per request
            tokens = last[0] + (now - last[1]) * self._rate
            if tokens > capacity:
                tokens = capacity
        allowed = tokens >= 1.0
        buckets[host] = (tokens - 1.0, now) if allowed else (tokens, now)
        if last is None:  # only a new host makes the table grow
            while len(buckets) > self._max_hosts:
                buckets.popitem(last=False)  # forget the least recently seen host
        if allowed:
            return _ALLOWED
        wait = (1.0 - tokens) / self._rate if self._rate > 0 else 60.0
        return RateDecision(False, max(1, int(wait + 0.999)))


class InboxRateLimiter:
    """Two buckets a request must both pass: its client IP's, and its claimed host's at that IP.

    The key id is not verified when the buckets are asked (that is the point: a flood
    costs no key lookup), so the host it names is only a claim. Keyed together with the
    client IP, a client claiming another host's key id spends only its own budget; the
    real host, sending from its own address, keeps its own. The IP bucket bounds what
    one address sends in total, whatever hosts it claims.

    With ``processes`` acceptor processes (``[server] processes``) each keeps its own
    buckets with 1/``processes`` of the configured budget (rounded up), so all of them
    together never let more through than configured.
    """

    def __init__(self, tuning: InboxTuning, *, processes: int = 1,
                 monotonic: Callable[[], float] = time.monotonic):
        self._by_ip = HostRateLimiter(-(-tuning.requests_per_ip_per_minute // processes),
                                      monotonic=monotonic)
        self._by_host = HostRateLimiter(-(-tuning.requests_per_host_per_minute // processes),
                                        monotonic=monotonic)

    def take(self, claimed_host: str | None, client_ip: str) -> RateDecision:
        by_ip = self._by_ip.take(client_ip)
        if not by_ip.allowed:
            return by_ip
        return self._by_host.take(f"{claimed_host or '-'} from {client_ip}")


INBOX_RATE_LIMITER = web.AppKey("inbox_rate_limiter", InboxRateLimiter)
INBOX_WRITER = web.AppKey("inbox_writer", InboxWriter)
# Set by node.workers: nudges the inbox worker so it does not wait for its next poll.
INBOX_WAKER = web.AppKey("inbox_waker", Callable[[], None])  # type: ignore[arg-type]


def claimed_key_host(headers: dict[str, str] | InboxRequest) -> str | None:
    """The host of the key id a request claims to be signed with, without verifying it."""
    # a dict is told apart in C; isinstance(…, web.BaseRequest) goes through ABCMeta
    get = headers.get if isinstance(headers, dict) else headers.headers.get
    for name in ("Signature-Input", "Signature", "Authorization"):
        value = get(name)
        if not value:
            continue
        match = _first_key_id(value)
        if match:
            host = _host_of(match.group(1))
            if host:
                return host
    return None


def _first_key_id(value: str) -> re.Match[str] | None:
    """``_KEY_ID.search(value)``: a match can only begin where "keyid" does, so in ASCII
    text (where lower() keeps every offset) it is tried first at the first "keyid"; the
    search went through every position before it (~2 µs over a Signature-Input).
    A cavage ``Signature`` usually begins with its keyId: that is tried before."""
    match = _KEY_ID.match(value)
    if match is not None:
        return match
    if value.isascii():
        start = value.lower().find("keyid")
        if start < 0:
            return None
        match = _KEY_ID.match(value, start)
        if match is not None:
            return match
    return _KEY_ID.search(value)


@lru_cache(maxsize=4096)  # pure; the same senders' key ids come back with every request
def _host_of(key_id: str) -> str:
    return urlsplit(key_id).netloc.lower()


# --- HTTP problems ---------------------------------------------------------------------


def problem(status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
            field: str | None = None) -> web.Response:
    """An RFC 9457 problem document."""
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status,
                               "detail": detail}
    if field is not None:
        body["field"] = field
    return web.Response(
        status=status,
        # ASCII escapes: a detail may quote header bytes that were not UTF-8 (surrogates)
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )


def _busy(detail: str) -> web.Response:
    return problem(503, "Service Unavailable", detail,
                   headers={"Retry-After": str(RETRY_AFTER_BUSY_SECONDS)})


# --- the request pipeline ----------------------------------------------------------------


class _Body(Protocol):
    async def readany(self) -> bytes: ...
    def at_eof(self) -> bool: ...


class InboxRequest(Protocol):
    """What the pipeline reads of a request: an aiohttp ``web.Request`` (the routes), or
    ``node.inbox_http.DoorRequest`` (the inbox's own door in front of aiohttp)."""

    @property
    def app(self) -> web.Application: ...
    @property
    def method(self) -> str: ...
    @property
    def path_qs(self) -> str: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def headers(self) -> CIMultiDictProxy[str] | CIMultiDict[str]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> _Body: ...


class InboxRejected(Exception):
    """Stops the pipeline with a ready response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.reason)
        self.response = response


async def read_limited_body(request: InboxRequest, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise InboxRejected(problem(413, "Payload Too Large", f"the inbox takes at most {limit} bytes"))
    chunks: list[bytes] = []
    size = 0
    content = request.content
    while chunk := await content.readany():  # what arrived; b"" at the end of the body
        size += len(chunk)
        if size > limit:
            raise InboxRejected(problem(413, "Payload Too Large", f"the inbox takes at most {limit} bytes"))
        chunks.append(chunk)
        if content.at_eof():  # all read: the next readany would only say b"" (~1 us)
            break
    return b"".join(chunks)


def check_rate(request: InboxRequest, trusted: TrustedProxies) -> str:
    """Take a token from the client IP's and the claimed host's buckets; returns the host.

    The client IP is the sender's, also behind the node's reverse proxy
    (``node.client_address``: ``X-Forwarded-For`` counts only from a trusted proxy; before,
    every sender behind a proxy shared the proxy's one bucket)."""
    client_ip = of_request(request, trusted).address
    claimed = claimed_key_host(request)
    decision = request.app[INBOX_RATE_LIMITER].take(claimed, client_ip)
    if not decision.allowed:
        claim = f" claiming {claimed}" if claimed else ""
        raise InboxRejected(problem(
            429, "Too Many Requests", f"too many requests from {client_ip}{claim}",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        ))
    return claimed or client_ip


# NaN, Infinity and numbers beyond a double are refused (``federation.strict_json``)
_JSON_DECODER = json.JSONDecoder(parse_constant=not_a_json_constant,  # holds no state
                                 parse_float=finite_float)


def _decode_json(body: bytes) -> tuple[object, str | None]:
    """``json.loads(body, parse_constant=…)`` without its per-call costs, and the text it
    parsed: a body that begins with "{" and a non-NUL byte is UTF-8 by json's own
    detection (a BOM or UTF-16/32 begin otherwise), decoded as json.loads does it
    ("surrogatepass"), and parsed by one decoder made in advance instead of one made per
    call. Any other body is parsed by json.loads (no text: None)."""
    if body[:1] == b"{" and body[1:2] != b"\x00":
        text = body.decode("utf-8", "surrogatepass")
        return _JSON_DECODER.decode(text), text
    return json.loads(body, parse_constant=not_a_json_constant, parse_float=finite_float), None


class ParsedBody(NamedTuple):
    """An inbox request's body taken apart (a NamedTuple: one per request)."""

    document: dict[str, object]
    activity: Activity
    # the body as JSON text when it was UTF-8 (nearly always); stored as it is, so the
    # writer does not serialize the document again (``InboxRow.raw_json``)
    text: str | None


def parse_body(body: bytes) -> ParsedBody:
    """The JSON document, the parsed activity and the body's text, or a 400 naming the
    field."""
    try:
        document, text = _decode_json(body)
        # A lone surrogate ("\ud800") parses but is not Unicode; stored, it breaks the
        # encoders and databases behind the inbox (UnicodeEncodeError is a ValueError).
        # An ASCII body can only carry one as a \uD800–\uDFFF escape: most skip the check.
        if not body.isascii() or _SURROGATE_ESCAPE.search(body):
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InboxRejected(problem(400, "Bad Request", f"body is not JSON: {exc}", field="body")) from None
    except RecursionError:
        # "[[[[…" within the size limit exhausts the parser's stack: bad input, not a 500
        raise InboxRejected(problem(400, "Bad Request", "body is nested too deeply",
                                    field="body")) from None
    if not isinstance(document, dict):
        raise InboxRejected(problem(400, "Bad Request", "body must be a JSON object", field="body"))
    try:
        activity = parse_activity(document)
    except ActivityError as exc:
        field = getattr(exc, "field", None)
        raise InboxRejected(problem(400, "Bad Request", str(exc), field=field)) from None
    for field, value in (("id", activity.id), ("actor", activity.actor)):
        if len(value) > MAX_URI_LENGTH:  # PostgreSQL would refuse the row: 503 for ever
            raise InboxRejected(problem(400, "Bad Request",
                                        f"{field}: at most {MAX_URI_LENGTH} characters",
                                        field=field))
    return ParsedBody(document, activity, text)


def signed_parts(request: InboxRequest, config: NodeConfig, body: bytes) -> RequestParts:
    """The request as its signature covers it, built once for the scheme check and the
    verification: the URL the sender addressed (our public base URL, not whatever a
    proxy says) and ``Host`` set to this node's public host, so a request signed for
    another server (cavage covers the Host header) does not verify here. Repeated
    headers are joined by ``RequestParts``."""
    return RequestParts.with_overrides(request.method, config.base_url + request.path_qs,
                                       request.headers, body, {"Host": config.domain})


@lru_cache(maxsize=8)  # frozen; two timedeltas and the window cost ~1.5 us a request
def _clock_window(clock_skew_seconds: int) -> TimeWindow:
    return TimeWindow(max_age=timedelta(seconds=clock_skew_seconds), max_future=timedelta(hours=1))


async def check_signature(request: InboxRequest, parts: RequestParts, actor: str) -> None:
    config: NodeConfig = request.app[appkeys.CONFIG]
    window = _clock_window(config.inbox.clock_skew_seconds)
    result = await verify_request(parts, request.app[appkeys.KEY_CACHE],
                                  now=request.app[appkeys.CLOCK](), window=window,
                                  expected_actor=actor)
    if not result.ok:
        reason = f"signature not accepted: {result.verdict.value}"
        if result.detail:
            reason += f" ({result.detail})"
        raise InboxRejected(problem(401, "Unauthorized", reason))
    if result.signer is not None and result.signer != actor:
        raise InboxRejected(problem(401, "Unauthorized",
                                    f"signed by {result.signer}, but the activity's actor is {actor}"))


def origin_problem(activity: Activity) -> str | None:
    """The origin rule a received activity breaks on its face, if any (FEP-fe34).

    Only what the activity itself shows is judged here; rules that need the stored
    object (is the actor its author?) are the inbox worker's.
    """
    kind = activity.type.value
    # on the actor's origin (told by prefix): what may_act_on answers without a stored author
    if kind in _OWN_OBJECT_KINDS and not on_actor_origin(activity.object_id, activity.actor):
        verdict = may_act_on(activity.actor, kind, activity.object_id)
        if verdict is not OriginVerdict.ALLOWED:
            return f"{activity.actor} may not {kind.lower()} {activity.object_id} ({verdict.value})"
    if kind in ("Create", "Update") and activity.object is not None:
        author = activity.object.get("attributedTo")
        author = author.get("id") if isinstance(author, dict) else author
        if isinstance(author, str) and author != activity.actor:
            return f"{activity.actor} may not {kind.lower()} an object attributed to {author}"
    return None


async def persist_once(request: InboxRequest, row: InboxRow) -> bool:
    """Committed (group commit, ``node.inbox_writer``); True if the activity was new."""
    try:
        return await request.app[INBOX_WRITER].store(row)
    except (InboxQueueFull, InboxWriterClosed) as exc:
        raise InboxRejected(_busy(f"{exc}; try again later")) from None


async def receive(request: InboxRequest, inbox: str) -> web.Response:
    config: NodeConfig = request.app[appkeys.CONFIG]
    try:
        host = check_rate(request, trusted_proxies(config.server.trusted_proxies))
        body = await read_limited_body(request, config.inbox.max_body_bytes)
        parts = signed_parts(request, config, body)  # not request.url: fails on a bad Host
        if detect_scheme(parts) is None:
            return problem(401, "Unauthorized", "the request is not signed (no Signature header)")
        document, activity, text = parse_body(body)
        await check_signature(request, parts, activity.actor)
        refused = origin_problem(activity)
        if refused is not None:
            return problem(403, "Forbidden", refused, field="object")
        row = InboxRow(activity_uri=activity.id, inbox=inbox, actor=activity.actor,
                       remote_host=host, raw=document, received_at=request.app[appkeys.CLOCK](),
                       raw_json=text)
        is_new = await persist_once(request, row)
    except InboxRejected as rejected:
        return rejected.response
    except ConnectionResetError:
        raise  # the sender hung up while we read; there is no one to answer
    except (SQLAlchemyError, OSError) as exc:
        log.warning("inbox store failed error=%r", exc)
        return _busy("the node cannot store the activity right now")
    # DEBUG: the access log already has a line per request; this one cost as much again
    log.debug("inbox received activity=%s type=%s new=%s", activity.id, activity.type, is_new)
    waker = request.app.get(INBOX_WAKER)
    if waker is not None and is_new:
        waker()
    return web.Response(status=202)


async def actor_inbox(request: web.Request) -> web.Response:
    return await receive(request, "actor")


async def shared_inbox(request: web.Request) -> web.Response:
    return await receive(request, "shared")


async def _inbox_writer(app: web.Application) -> AsyncIterator[None]:
    # After the database (cleanup_ctx order); closed first, writing what is queued.
    config: NodeConfig = app[appkeys.CONFIG]
    async with running_writer(app[appkeys.DB_ENGINE], config.inbox.queue_limit,
                              config.server.processes) as writer:
        app[INBOX_WRITER] = writer
        work = app[SQLITE_WORK]
        work.runner = writer.run_sync if writer.runs_sqlite else None
        try:
            yield
        finally:
            work.runner = None  # before the writer's thread stops: sessions again


async def _install_key_cache(app: web.Application) -> None:
    # Runs after cleanup_ctx set up the database and fetcher (and maybe the workers).
    install_key_cache(app)


def add_routes(app: web.Application) -> None:
    """Register ``POST /actor/inbox`` and ``POST /inbox`` and the inbox's rate limiter."""
    config: NodeConfig = app[appkeys.CONFIG]
    app[INBOX_RATE_LIMITER] = InboxRateLimiter(config.inbox, processes=config.server.processes)
    app[SQLITE_WORK] = SqliteWork()  # the key cache's table work, on the writer's thread
    app.cleanup_ctx.append(_inbox_writer)
    app.on_startup.append(_install_key_cache)
    app.router.add_post("/actor/inbox", actor_inbox)
    app.router.add_post("/inbox", shared_inbox)
