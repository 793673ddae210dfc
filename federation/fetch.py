"""Safe fetching of remote documents: the fetcher every outgoing request goes through.

Every URL in an incoming document is chosen by whoever sent it, so the fetcher:

- resolves the host name itself and checks *every* address against an
  :class:`AddressPolicy` (public unicast only, unless the operator allow-lists hosts or
  networks for a local federation), then connects to exactly the address it checked
  (the request URL carries the IP literal; ``Host`` and the TLS server name carry the
  name), so there is no gap between check and connect for DNS rebinding;
- follows redirects itself, at most ``max_redirects``, and checks each hop again;
- counts the body while streaming and stops at ``max_bytes`` (after decompression);
- bounds the whole exchange, DNS and all hops included, by ``timeout`` seconds;
- accepts only ActivityPub media types for ActivityPub documents (CVE-2024-25623) and
  requires the document's ``id`` to be the URL it came from (CVE-2024-23832);
- turns every failure into a :class:`FetchError` with a :class:`FetchFailure`.

Because connections go to IP literals, the session's own resolver is never used and any
``aiohttp.ClientSession`` will do; :func:`make_client_session` builds a suitable one.
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from federation.addresses import (  # re-exported: callers import the policy from here too
    AddressPolicy,
    IPAddress,
    ip_literal,
    normalise_host,
    system_resolve,
)
from federation.httpsig import RequestParts
from federation.origin import fetched_id_matches
from federation.post_connections import AnswerError, PostConnections, request_head
from federation.strict_json import finite_float, not_a_json_constant

Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]
Sign = Callable[[RequestParts], Mapping[str, str]]

AS_PROFILE = "https://www.w3.org/ns/activitystreams"
AP_MEDIA_TYPE = "application/activity+json"
AP_ACCEPT = f'{AP_MEDIA_TYPE}, application/ld+json; profile="{AS_PROFILE}"'
JSON_MEDIA_TYPES = frozenset({"application/json", "application/jrd+json"})

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_REPORTED_POST_HEADERS = (("Retry-After", "retry-after"), ("Accept-Signature", "accept-signature"))
_CHUNK_BYTES = 64 * 1024
# A host may resolve to many addresses; trying a few covers IPv6/IPv4 fallback.
_MAX_ADDRESSES_TRIED = 4

# --- results and errors -------------------------------------------------------------


class FetchFailure(enum.Enum):
    BAD_URL = "bad_url"
    FORBIDDEN_ADDRESS = "forbidden_address"
    DNS_FAILED = "dns_failed"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    HTTP_ERROR = "http_error"
    WRONG_MEDIA_TYPE = "wrong_media_type"
    NOT_JSON = "not_json"
    ID_MISMATCH = "id_mismatch"


class FetchError(Exception):
    """A fetch that did not produce what was asked for, and why."""

    def __init__(
        self, failure: FetchFailure, url: str, *, status: int | None = None, detail: str = ""
    ) -> None:
        self.failure = failure
        self.url = url
        self.status = status
        self.detail = detail
        suffix = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{failure.value}: {url}{suffix}: {detail}")


@dataclass(frozen=True)
class FetchedDocument:
    url: str  # the final URL, after redirects, without fragment
    status: int
    media_type: str
    document: Mapping[str, object]


@dataclass(frozen=True)
class PostOutcome:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # Retry-After, Accept-Signature
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class _Response:
    url: URL
    status: int
    headers: Mapping[str, str]
    body: bytes


# --- media types and bodies ---------------------------------------------------------


_MEDIA_PARAMETER = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """(``type/subtype`` lower-cased, parameters) of a Content-Type header value."""
    if not content_type:
        return "", {}
    mime, _, rest = content_type.partition(";")
    mime = mime.strip().lower()
    params: dict[str, str] = {}
    for name, value in _MEDIA_PARAMETER.findall(";" + rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.lower()] = value.strip()
    return (mime if "/" in mime else ""), params


def is_activitypub_media_type(content_type: str | None) -> bool:
    return _is_activitypub(*parse_media_type(content_type))


def _is_activitypub(mime: str, params: Mapping[str, str]) -> bool:
    if mime == AP_MEDIA_TYPE:
        return True
    return mime == "application/ld+json" and AS_PROFILE in params.get("profile", "").split()


def _id_matches(final_url: str, document: Mapping[str, object]) -> bool:
    # The exact string is the common case and needs no parsing; anything else gets the
    # normalising comparison of the origin rules (host case, default port, IDNA).
    return document.get("id") == final_url or fetched_id_matches(final_url, document)


def _json_object(body: bytes, url: str) -> dict[str, object]:
    try:
        value = json.loads(body, parse_constant=not_a_json_constant, parse_float=finite_float)
        # A lone surrogate ("\ud800") parses but is not Unicode: no database or encoder
        # downstream can store it, so such a document is refused here, once.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays are a cheap way to crash a parser
        raise FetchError(FetchFailure.NOT_JSON, url, detail=f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise FetchError(FetchFailure.NOT_JSON, url, detail="body is not a JSON object")
    return value


def parse_fetch_url(url: str) -> URL:
    """An absolute http(s) URL without credentials, fragment removed; else BAD_URL."""
    if not isinstance(url, str):
        raise FetchError(FetchFailure.BAD_URL, repr(url), detail="URL must be a string")
    try:
        parsed = URL(url)
        parsed.port  # noqa: B018 -- yarl validates the port lazily
    except (ValueError, TypeError) as exc:
        raise FetchError(FetchFailure.BAD_URL, url, detail=f"unparseable URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError(FetchFailure.BAD_URL, url, detail="scheme must be http or https")
    if not parsed.raw_host:
        raise FetchError(FetchFailure.BAD_URL, url, detail="URL has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise FetchError(FetchFailure.BAD_URL, url, detail="URL carries credentials")
    return parsed.with_fragment(None)


def make_client_session(*, limit_per_host: int = 8) -> aiohttp.ClientSession:
    """The client session a node hands to :class:`SafeFetcher` (one per process).

    No cookies (remote servers must not be able to set state), no proxy from the
    environment, and a per-host connection limit so one host cannot take all slots.
    The session's DNS resolver is irrelevant: the fetcher connects to checked IPs.
    """
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=limit_per_host)
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )


# --- the fetcher --------------------------------------------------------------------


class SafeFetcher:
    """GET documents and POST deliveries under the address policy and limits."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: AddressPolicy,
        *,
        resolve: Resolve | None = None,
        sign: Sign | None = None,
        max_bytes: int = 1 << 20,
        timeout: float = 10.0,
        max_redirects: int = 3,
        user_agent: str = "Praxisnetz/0.1",
        connections: PostConnections | None = None,
    ) -> None:
        if max_bytes < 1 or timeout <= 0 or max_redirects < 0:
            raise ValueError("max_bytes and timeout must be positive, max_redirects not negative")
        self._session = session
        self._policy = policy
        self._resolve = resolve or system_resolve
        self._sign = sign
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._user_agent = user_agent
        # Deliveries do not go through the session: see federation.post_connections.
        self._connections = connections or PostConnections()

    @property
    def policy(self) -> AddressPolicy:
        return self._policy

    async def get_document(
        self,
        url: str,
        *,
        accept: str = AP_ACCEPT,
        require_id_match: bool = True,
        signed: bool = True,
    ) -> FetchedDocument:
        """An ActivityPub document; its ``id`` must be the final URL unless told otherwise."""
        response = await self._within_time_limit(url, self._get_following(url, accept, signed))
        final_url = str(response.url)
        content_type = response.headers.get("Content-Type")
        media_type, params = parse_media_type(content_type)
        if not _is_activitypub(media_type, params):
            raise FetchError(
                FetchFailure.WRONG_MEDIA_TYPE,
                final_url,
                status=response.status,
                detail=f"{content_type!r} is not an ActivityPub media type",
            )
        document = _json_object(response.body, final_url)
        if require_id_match and not _id_matches(final_url, document):
            raise FetchError(
                FetchFailure.ID_MISMATCH,
                final_url,
                status=response.status,
                detail=f"document id {document.get('id')!r} is not the URL it was fetched from",
            )
        return FetchedDocument(final_url, response.status, media_type, document)

    async def get_json(self, url: str, *, accept: str = "application/json") -> FetchedDocument:
        """A plain JSON object (WebFinger JRD, NodeInfo): same guards, no id check, unsigned."""
        response = await self._within_time_limit(url, self._get_following(url, accept, False))
        final_url = str(response.url)
        media_type, _ = parse_media_type(response.headers.get("Content-Type"))
        if media_type not in JSON_MEDIA_TYPES:
            raise FetchError(
                FetchFailure.WRONG_MEDIA_TYPE,
                final_url,
                status=response.status,
                detail=f"{media_type or 'no media type'!r} is not JSON",
            )
        return FetchedDocument(
            final_url, response.status, media_type, _json_object(response.body, final_url)
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostOutcome:
        """Deliver ``body``; redirects are reported, not followed. The caller signs.

        Sent on a kept-alive connection (``federation.post_connections``): DNS and the
        address policy are checked whenever a connection is opened, and only then.
        """
        target = parse_fetch_url(url)
        try:
            head = request_head(
                target,
                headers,
                host=target.host_port_subcomponent or "",
                user_agent=self._user_agent,
                length=len(body),
            )
        except (ValueError, UnicodeEncodeError) as exc:
            raise FetchError(FetchFailure.BAD_URL, url, detail=str(exc)) from exc
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._connections.post(target, head, body, self._checked_addresses)
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise FetchError(
                FetchFailure.TIMEOUT, url, detail=f"no complete answer within {self._timeout} s"
            ) from exc
        except (OSError, AnswerError) as exc:
            raise FetchError(
                FetchFailure.CONNECTION_FAILED, url, detail=f"{type(exc).__name__}: {exc}"
            ) from exc
        reported = {
            name: answer.headers[lowered]
            for name, lowered in _REPORTED_POST_HEADERS
            if lowered in answer.headers
        }
        return PostOutcome(
            answer.status, reported, answer.excerpt.decode("utf-8", errors="replace")
        )

    def close(self) -> None:
        """Close the kept delivery connections (the session is its owner's to close)."""
        self._connections.close()

    # --- internals ---

    async def _within_time_limit(self, url: str, work: Awaitable[_Response]) -> _Response:
        try:
            async with asyncio.timeout(self._timeout):
                return await work
        except TimeoutError as exc:
            raise FetchError(
                FetchFailure.TIMEOUT, url, detail=f"no complete answer within {self._timeout} s"
            ) from exc

    async def _get_following(self, url: str, accept: str, signed: bool) -> _Response:
        current = parse_fetch_url(url)
        redirects = 0
        while True:
            response = await self._exchange("GET", current, {"Accept": accept}, b"", signed=signed)
            if response.status not in _REDIRECT_STATUSES:
                break
            if redirects == self._max_redirects:
                raise FetchError(
                    FetchFailure.TOO_MANY_REDIRECTS,
                    url,
                    status=response.status,
                    detail=f"more than {self._max_redirects} redirects",
                )
            redirects += 1
            current = redirect_target(current, response.status, response.headers.get("Location"))
        if not 200 <= response.status < 300:
            raise FetchError(
                FetchFailure.HTTP_ERROR,
                str(current),
                status=response.status,
                detail="not a 2xx answer",
            )
        return response

    async def _checked_addresses(self, url: URL) -> list[IPAddress]:
        """Resolve the host and insist that every address it names is permitted."""
        host = normalise_host(url.raw_host or "")
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = ip_literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = list(await self._resolve(host, port))
            except (OSError, UnicodeError) as exc:
                raise FetchError(FetchFailure.DNS_FAILED, str(url), detail=str(exc)) from exc
        if not addresses:
            raise FetchError(FetchFailure.DNS_FAILED, str(url), detail="no addresses")
        refused = [address for address in addresses if not self._policy.permits(host, address)]
        if refused:
            # One bad address refuses the host: mixing public and private answers is a trick.
            raise FetchError(
                FetchFailure.FORBIDDEN_ADDRESS,
                str(url),
                detail=f"{host} resolves to {refused[0]}, which the address policy does not permit",
            )
        return addresses

    def _request_headers(
        self, method: str, url: URL, extra: Mapping[str, str], body: bytes, signed: bool
    ) -> CIMultiDict[str]:
        headers = CIMultiDict(
            {"Host": url.host_port_subcomponent or "", "User-Agent": self._user_agent}
        )
        headers.update(extra)  # replaces same-named headers whatever their case
        if signed and self._sign is not None:
            headers.update(self._sign(RequestParts(method, str(url), headers, body)))
        return headers

    async def _exchange(
        self, method: str, url: URL, extra: Mapping[str, str], body: bytes, *, signed: bool
    ) -> _Response:
        addresses = await self._checked_addresses(url)
        headers = self._request_headers(method, url, extra, body, signed)
        failure: aiohttp.ClientConnectorError | None = None
        for address in addresses[:_MAX_ADDRESSES_TRIED]:
            try:
                return await self._send(method, url, address, headers, body)
            except aiohttp.ClientConnectorError as exc:
                failure = exc  # nothing was sent yet: the next address may answer
        raise FetchError(FetchFailure.CONNECTION_FAILED, str(url), detail=str(failure))

    async def _send(
        self, method: str, url: URL, address: IPAddress, headers: Mapping[str, str], body: bytes
    ) -> _Response:
        pinned = url.with_host(str(address))
        server_name = url.raw_host if url.scheme == "https" else None
        try:
            async with self._session.request(
                method,
                pinned,
                headers=headers,
                data=body if method != "GET" else None,
                allow_redirects=False,
                raise_for_status=False,
                server_hostname=server_name,
            ) as response:
                payload = await self._read_payload(method, url, response)
                return _Response(url, response.status, CIMultiDict(response.headers), payload)
        except aiohttp.ClientConnectorError:
            raise
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise FetchError(
                FetchFailure.CONNECTION_FAILED, str(url), detail=f"{type(exc).__name__}: {exc}"
            ) from exc

    async def _read_payload(self, method: str, url: URL, response: aiohttp.ClientResponse) -> bytes:
        if not 200 <= response.status < 300:
            return b""  # redirects and errors: the body is never looked at
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            raise FetchError(
                FetchFailure.TOO_LARGE,
                str(url),
                status=response.status,
                detail=f"announced {declared} bytes, limit is {self._max_bytes}",
            )
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            total += len(chunk)
            if total > self._max_bytes:
                raise FetchError(
                    FetchFailure.TOO_LARGE,
                    str(url),
                    status=response.status,
                    detail=f"body exceeds the limit of {self._max_bytes} bytes",
                )
            chunks.append(chunk)
        return b"".join(chunks)


def redirect_target(current: URL, status: int, location: str | None) -> URL:
    """The next hop of a redirect: absolute, http(s), no credentials, no https→http."""
    if not location:
        raise FetchError(
            FetchFailure.HTTP_ERROR,
            str(current),
            status=status,
            detail="redirect without a Location header",
        )
    try:
        joined = current.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise FetchError(
            FetchFailure.BAD_URL, str(current), detail=f"unusable Location {location!r}"
        ) from exc
    target = parse_fetch_url(str(joined))
    if current.scheme == "https" and target.scheme != "https":
        raise FetchError(
            FetchFailure.BAD_URL, str(target), detail="redirect from https down to http refused"
        )
    return target
