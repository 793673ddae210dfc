"""WebFinger (RFC 7033): the JRD a node serves, and resolving ``acct:`` handles.

A handle resolves to whatever actor URL the handle's host names under ``rel=self``
with an ActivityPub media type. That URL may live on another host (Mastodon's
``WEB_DOMAIN`` setups do this); whoever fetches the actor must still apply the origin
rules to it, and a resolved actor URL is only as trustworthy as the host asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yarl import URL

from federation.fetch import AP_MEDIA_TYPE, SafeFetcher, is_activitypub_media_type

WEBFINGER_PATH = "/.well-known/webfinger"
JRD_MEDIA_TYPE = "application/jrd+json"
PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"

# The user part is kept to RFC 3986 "unreserved" characters: anything else is either a
# mistake or an attempt to smuggle syntax into the URL built from it.
_USER = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::(?P<port>[0-9]{{1,5}}))?")


class WebFingerError(ValueError):
    """A handle or a WebFinger answer could not be used; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Handle:
    user: str
    host: str  # lower-case, with ":port" when one was given

    @property
    def acct(self) -> str:
        return f"acct:{self.user}@{self.host}"


def webfinger_document(
    handle_user: str,
    host: str,
    actor_url: str,
    *,
    profile_url: str | None = None,
    aliases: Iterable[str] = (),
) -> dict[str, object]:
    """The JRD for ``acct:handle_user@host``, pointing at the actor (and profile page)."""
    links: list[dict[str, str]] = [{"rel": "self", "type": AP_MEDIA_TYPE, "href": actor_url}]
    all_aliases = [actor_url]
    if profile_url is not None:
        links.append({"rel": PROFILE_PAGE_REL, "type": "text/html", "href": profile_url})
        all_aliases.append(profile_url)
    all_aliases.extend(alias for alias in aliases if alias not in all_aliases)
    return {"subject": f"acct:{handle_user}@{host}", "aliases": all_aliases, "links": links}


def parse_handle(text: str) -> tuple[str, str]:
    """``acct:slug@host``, ``@slug@host`` or ``slug@host`` → ``(slug, host)``.

    The host is lower-cased and may carry a port (local federations run on ports).
    Raises WebFingerError naming the part that is wrong.
    """
    handle = _parse(text)
    return handle.user, handle.host


def _parse(text: str) -> Handle:
    if not isinstance(text, str):
        raise WebFingerError("handle", "must be a string")
    value = text.strip()
    if value[:5].lower() == "acct:":
        value = value[5:]
    elif value.startswith("@"):
        value = value[1:]
    user, at, host = value.rpartition("@")
    if not at:
        raise WebFingerError("handle", f"{text!r} is not of the form user@host")
    if not _USER.fullmatch(user):
        raise WebFingerError("handle.user", f"{user!r} is not a valid user name")
    host = host.lower()
    match = _HOST.fullmatch(host)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise WebFingerError("handle.host", f"{host!r} is not a valid host name")
    return Handle(user, host)


def webfinger_url(handle: str, *, scheme: str = "https") -> str:
    """The URL to ask for ``handle``: ``{scheme}://host/.well-known/webfinger?resource=acct:…``."""
    if scheme not in ("http", "https"):
        raise WebFingerError("scheme", "must be http or https")
    parsed = _parse(handle)
    base = URL(f"{scheme}://{parsed.host}{WEBFINGER_PATH}")
    return str(base.with_query({"resource": parsed.acct}))


def actor_link(jrd: Mapping[str, object]) -> str:
    """The ``href`` of the ``rel=self`` link with an ActivityPub media type."""
    links = jrd.get("links")
    if not isinstance(links, list):
        raise WebFingerError("links", "the answer has no list of links")
    for link in links:
        if not isinstance(link, Mapping) or link.get("rel") != "self":
            continue
        media_type, href = link.get("type"), link.get("href")
        if isinstance(media_type, str) and is_activitypub_media_type(media_type):
            if not _is_http_url(href):
                raise WebFingerError("links.href", f"{href!r} is not an http(s) URL")
            return str(href)
    raise WebFingerError("links", "no rel=self link with an ActivityPub media type")


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = URL(value)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.raw_host)


async def resolve_handle(fetcher: SafeFetcher, handle: str, *, scheme: str = "https") -> str:
    """The actor URL for ``handle``, asked of the handle's host via WebFinger.

    Raises WebFingerError for a bad handle or answer, FetchError when the host cannot
    be asked (address policy, timeout, HTTP error, …).
    """
    url = webfinger_url(handle, scheme=scheme)
    answer = await fetcher.get_json(url, accept=f"{JRD_MEDIA_TYPE}, application/json")
    return actor_link(answer.document)


async def resolve_actor_reference(fetcher: SafeFetcher, text: str, *, scheme: str = "https") -> str:
    """An actor URL from either a handle or an actor URL (returned as it is)."""
    value = text.strip() if isinstance(text, str) else text
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return await resolve_handle(fetcher, value, scheme=scheme)
