"""A strict parser for the activities Praxisnetz accepts (their builders:
``federation.activity_builders``, in our context :data:`CONTEXT`). The parser takes
untrusted JSON (bytes or an already decoded mapping) and returns an :class:`Activity` or
raises :class:`ActivityError` naming the offending field. Documents whose ``@context`` is
ActivityStreams plus contexts that leave its terms alone are read as they are; anything
else (inline contexts such as Mastodon's, or the identity/did/GoToSocial contexts Fedify
names) is compacted into our context by pyld with the offline loader, so an unbundled
context is refused, never fetched.

Proofs are verified on :attr:`Activity.raw` (the document as received), never on the
compacted form.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from federation.strict_json import finite_float, not_a_json_constant
from federation.timestamps import TimestampError, parse_timestamp
from federation.urls import (
    OriginError,
    origin,
    same_origin,
)
from vocab import (
    ACTIVITYSTREAMS_CONTEXT_URL,
    DATA_INTEGRITY_V2_CONTEXT_URL,
    DEFAULT_CONTEXT,
    MULTIKEY_V1_CONTEXT_URL,
    PRAXISNETZ_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    UnknownContextError,
    pyld_options,
)

if TYPE_CHECKING:
    from pyld import jsonld

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
CONTEXT: tuple[str, ...] = DEFAULT_CONTEXT
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32
# The ActivityStreams context compacts the Public collection to "as:Public"; some servers
# also send the bare "Public". All three mean the same audience.
_PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})
# What federation.urls.split_url refuses anywhere in a URL (its _FORBIDDEN_URL_CHARS;
# a test holds them equal), as one regex search instead of a set lookup per character.
_FORBIDDEN_URL_CHAR = re.compile(r"[\x00-\x20\\\x7f]")
# Relative IRIs must not be resolved against anything that could pass as an http(s) URL.
_NO_BASE = "urn:praxisnetz:no-base"
# Contexts that add terms after ActivityStreams without redefining its terms: a document
# naming only these is read as it is. Other bundled contexts (identity/v1 and did/v1
# redefine "id", "type" and more) go through compaction with the offline loader.
_READ_AS_IS = frozenset({
    ACTIVITYSTREAMS_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    DATA_INTEGRITY_V2_CONTEXT_URL,
    MULTIKEY_V1_CONTEXT_URL,
    PRAXISNETZ_CONTEXT_URL,
})


class ActivityType(enum.StrEnum):
    FOLLOW = "Follow"
    ACCEPT = "Accept"
    REJECT = "Reject"
    UNDO = "Undo"
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"
    ANNOUNCE = "Announce"
    LIKE = "Like"


_TYPES_BY_NAME = {kind.value: kind for kind in ActivityType}  # ActivityType(name) costs 1 us
# JSON's scalar types: what the shape walk never descends into.
_LEAVES = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True)
class Activity:
    id: str
    type: ActivityType
    actor: str
    object_id: str
    object: Mapping[str, object] | None  # the embedded object (in our context), if any
    to: tuple[str, ...]
    cc: tuple[str, ...]
    published: datetime | None
    raw: Mapping[str, object]  # the document as received: verify proofs on this


class ActivityError(ValueError):
    """An activity that cannot be accepted; ``field`` names the member at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- parsing ---


def parse_activity(
    document: Mapping[str, object] | bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES
) -> Activity:
    """Parse and check an incoming activity (JSON bytes or a decoded JSON object)."""
    if type(document) is dict:  # what the inbox hands over: the usual shape read directly
        usual = _usual_activity(document)
        if usual is not None:
            return usual
    return _parse_general(document, max_bytes)


def _parse_general(document: Mapping[str, object] | bytes, max_bytes: int) -> Activity:
    """Every document, every check in its order; the first fault raises ActivityError."""
    raw = _decode(document, max_bytes) if isinstance(document, bytes | bytearray) else document
    if not isinstance(raw, Mapping):
        raise ActivityError("body", "an activity must be a JSON object")
    contexts = _check_shape(raw)
    readable = _in_our_context(raw, contexts)
    # The id and the object's id are usually on the actor's origin: checked by prefix
    # (``on_actor_origin``), not parsed, with the same verdicts as parsing gives.
    prefix = _actor_prefix(readable.get("actor"))
    activity_id = _read_url(readable.get("id"), "id", prefix)
    kind = _read_type(readable.get("type"))
    actor = _read_reference(readable.get("actor"), "actor")
    if not (_has_prefix(activity_id, prefix) or same_origin(activity_id, actor)):
        # activities are deduplicated by id: a foreign id could shadow the real activity
        raise ActivityError("id", "an activity's id must be on its actor's origin")
    object_id, embedded = _read_object(readable.get("object"), prefix)
    return _checked_activity({
        "id": activity_id,
        "type": kind,
        "actor": actor,
        "object_id": object_id,
        "object": embedded,
        "to": _read_audience(readable.get("to"), "to"),
        "cc": _read_audience(readable.get("cc"), "cc"),
        "published": _read_published(readable.get("published")),
        "raw": raw,
    })


def _usual_activity(raw: dict[str, object]) -> Activity | None:
    """The activity _parse_general makes of ``raw``, for the shape nearly every sender
    uses: contexts read as they are, a string actor with a valid URL, id and object id
    (a string or an embedded object's ``id``) on the actor's origin told by prefix, a
    known type string, audiences of strings, no ``published`` or a valid one. None for
    anything else, which _parse_general then reads or refuses (it alone names faults:
    every step here either reaches _parse_general's answer or steps aside). Saves the
    ABC checks, the second prefix test and the re-validation of the actor."""
    contexts = _check_shape(raw)  # _parse_general's first step: raises as it would
    if "@context" not in raw:
        return None
    for context in contexts:
        if context != ACTIVITYSTREAMS_CONTEXT_URL and not _is_read_as_is(context):
            return None
    actor, activity_id, kind = raw.get("actor"), raw.get("id"), raw.get("type")
    if type(actor) is not str or type(activity_id) is not str or type(kind) is not str:
        return None
    prefix = _url_prefix(actor)  # None: not a valid URL
    kind = _TYPES_BY_NAME.get(kind)
    if prefix is None or kind is None or not _has_prefix(activity_id, prefix):
        return None
    embedded = raw.get("object")
    if type(embedded) is dict:
        object_id = embedded.get("id")
    else:
        object_id, embedded = embedded, None
    if type(object_id) is not str or not _has_prefix(object_id, prefix):
        return None
    to, cc = _usual_audience(raw.get("to")), _usual_audience(raw.get("cc"))
    published = raw.get("published")
    if to is None or cc is None or (published is not None and type(published) is not str):
        return None
    if published is not None:
        try:
            published = parse_timestamp(published)
        except TimestampError:
            return None
    return _checked_activity({"id": activity_id, "type": kind, "actor": actor,
                              "object_id": object_id, "object": embedded, "to": to, "cc": cc,
                              "published": published, "raw": raw})


def _usual_audience(value: object) -> tuple[str, ...] | None:
    """_read_audience's answer for absent audiences and strings or lists of strings
    (validity from the cached _url_prefix: None exactly where ``origin`` refuses);
    None for anything else or any invalid entry."""
    if value is None:
        return ()
    entries = [value] if type(value) is str else value
    if type(entries) is not list:
        return None
    audience = []
    for entry in entries:
        if type(entry) is not str:
            return None
        if entry in _PUBLIC_ALIASES:
            audience.append(PUBLIC)
        elif _url_prefix(entry) is None:
            return None
        else:
            audience.append(entry)
    return tuple(audience)


def _checked_activity(fields: dict[str, object]) -> Activity:
    """``Activity(**fields)`` for fields parse_activity has checked. A frozen dataclass's
    ``__init__`` pays an ``object.__setattr__`` call per field (~1.3 µs of every inbox
    request for nine): the same instance, its fields set in one update. Activity has no
    ``__post_init__`` and no slots (a test holds both, and the two ways equal)."""
    activity = object.__new__(Activity)
    activity.__dict__.update(fields)
    return activity


def _decode(body: bytes | bytearray, max_bytes: int) -> object:
    if len(body) > max_bytes:
        raise ActivityError("body", f"larger than {max_bytes} bytes")
    try:
        return json.loads(bytes(body).decode("utf-8"), parse_constant=not_a_json_constant,
                          parse_float=finite_float)
    except UnicodeDecodeError as exc:
        raise ActivityError("body", "not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ActivityError("body", f"not JSON: {exc.msg} at position {exc.pos}") from exc
    except ValueError as exc:  # what federation.strict_json refuses
        raise ActivityError("body", str(exc)) from exc
    except RecursionError as exc:
        raise ActivityError("body", f"nested deeper than {MAX_DEPTH} levels") from exc


def _check_shape(document: Mapping[str, object]) -> list[object]:
    """Refuse nesting deeper than MAX_DEPTH; return every ``@context`` value, at any depth.

    A value at depth MAX_DEPTH + 1 is too deep, whatever it is: so is every non-empty
    container at depth MAX_DEPTH. Recursive, as the depth is bounded: the walk goes at
    most MAX_DEPTH calls deep before it refuses, so no document exhausts the stack
    (a work list of (value, depth) tuples cost twice as much for a usual activity)."""
    contexts: list[object] = []
    _walk_shape(document, 1, contexts)
    return contexts


def _walk_shape(value: object, depth: int, contexts: list[object]) -> None:
    children: Iterable[object]
    kind = type(value)  # JSON's dict and list first: the ABC check costs ~0.4 us a call
    if kind is list:
        children = value  # type: ignore[assignment]
    elif kind is dict or isinstance(value, Mapping):
        if "@context" in value:  # type: ignore[operator]
            contexts.append(value["@context"])  # type: ignore[index]
        children = value.values()  # type: ignore[attr-defined]
    elif isinstance(value, list | tuple):
        children = value
    else:
        return
    if depth >= MAX_DEPTH and children:
        raise ActivityError("body", f"nested deeper than {MAX_DEPTH} levels")
    for child in children:
        if type(child) not in _LEAVES:  # strings, most of a document, are passed over here
            _walk_shape(child, depth + 1, contexts)


def _is_read_as_is(context: object) -> bool:
    """ActivityStreams first, then only contexts that leave its terms alone."""
    if context == ACTIVITYSTREAMS_CONTEXT_URL:  # the usual case: [it] passes every check
        return True
    entries = [context] if isinstance(context, str) else context
    if not isinstance(entries, list) or not entries or entries[0] != ACTIVITYSTREAMS_CONTEXT_URL:
        return False
    if not all(isinstance(entry, str) for entry in entries) or len(set(entries)) != len(entries):
        return False
    return set(entries) <= _READ_AS_IS


def _in_our_context(raw: Mapping[str, object], contexts: list[object]) -> Mapping[str, object]:
    if "@context" not in raw:
        raise ActivityError("@context", "missing; ActivityStreams documents must name it")
    # embedded objects may carry their own @context (signed objects do): all must be known
    if all(_is_read_as_is(context) for context in contexts):
        return raw
    # why lazy: pyld (with requests, urllib3, lxml) is needed only for this fallback
    from pyld import jsonld

    try:
        return jsonld.compact(dict(raw), {"@context": list(CONTEXT)}, pyld_options(_NO_BASE))
    except jsonld.JsonLdError as exc:
        raise ActivityError("@context", _describe_jsonld_error(exc)) from exc
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # pyld has no complete input validation; whatever it trips over is bad JSON-LD
        raise ActivityError(
            "@context", f"not processable as JSON-LD ({type(exc).__name__})"
        ) from exc


def _describe_jsonld_error(error: jsonld.JsonLdError) -> str:
    from pyld import jsonld  # loaded already: only the fallback raises its errors

    cause: object = error
    innermost = error
    for _ in range(8):  # pyld nests its errors a few levels deep
        if isinstance(cause, UnknownContextError):
            return f"remote context {cause.url!r} is not bundled and is never fetched"
        if isinstance(cause, jsonld.JsonLdError):
            innermost = cause
        details = getattr(cause, "details", None)
        nested = details.get("cause") if isinstance(details, dict) else None
        cause = nested if nested is not None else getattr(cause, "cause", None)
        if cause is None:
            break
    code = getattr(innermost, "code", None) or getattr(innermost, "type", "error")
    details = getattr(innermost, "details", None)
    context = details.get("context") if isinstance(details, dict) else None
    where = f" at context {context!r}" if isinstance(context, str) else ""
    return f"invalid JSON-LD ({code}){where}"


def _read_url(value: object, field: str, prefix: str | None = None) -> str:
    if not isinstance(value, str):
        raise ActivityError(field, "must be a URL string")
    if _has_prefix(value, prefix):
        return value  # valid, with the origin of the URL the prefix was made from
    try:
        origin(value)
    except OriginError as exc:
        raise ActivityError(field, f"not an absolute http(s) URL: {exc}") from exc
    return value


def on_actor_origin(url: str, actor: str) -> bool:
    """True if ``url`` is certainly a valid http(s) URL on the origin of the valid URL
    ``actor``, told without parsing ``url``: it begins with the actor's
    ``scheme://host[:port]/`` and holds no character ``federation.urls`` refuses. False
    means "parse both to know" (``federation.urls.origin``), not "foreign"."""
    return _has_prefix(url, _url_prefix(actor))


def _has_prefix(url: str, prefix: str | None) -> bool:
    # urlsplit takes the authority up to the first "/", so every URL that begins with
    # the prefix splits into the prefix's scheme and netloc: the same validity checks
    # and the same origin as the URL the prefix came from. Anything split_url refuses
    # outside the scheme and netloc is one of the forbidden characters, checked here.
    return (prefix is not None and url.startswith(prefix)
            and _FORBIDDEN_URL_CHAR.search(url) is None)


def _actor_prefix(value: object) -> str | None:
    """The ``scheme://netloc/`` of the activity's actor if it names a valid URL."""
    value = _single(value)
    if isinstance(value, Mapping):
        value = value.get("id")
    return _url_prefix(value) if isinstance(value, str) else None


@lru_cache(maxsize=4096)  # pure; the same actors send again and again
def _url_prefix(url: str) -> str | None:
    try:
        origin(url)
    except OriginError:
        return None
    parts = urlsplit(url)  # scheme lowercased, netloc as written
    return f"{parts.scheme}://{parts.netloc}/"


def _single(value: object) -> object:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _read_reference(value: object, field: str) -> str:
    value = _single(value)
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None:
        raise ActivityError(field, "missing")
    return _read_url(value, field)


def _read_type(value: object) -> ActivityType:
    if type(value) is str and value in _TYPES_BY_NAME:  # the usual "Create": one lookup
        return _TYPES_BY_NAME[value]
    if value is None:
        raise ActivityError("type", "missing")
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ActivityError("type", "must be a string or a list of strings")
    known = [_TYPES_BY_NAME[name] for name in names if name in _TYPES_BY_NAME]
    if len(known) != 1:
        raise ActivityError("type", f"unsupported activity type {value!r}")
    return known[0]


def _read_object(value: object, prefix: str | None = None
                 ) -> tuple[str, Mapping[str, object] | None]:
    value = _single(value)
    if isinstance(value, Mapping):
        if "id" not in value:
            raise ActivityError("object", "the embedded object has no id")
        return _read_url(value["id"], "object", prefix), value
    if value is None:
        raise ActivityError("object", "missing")
    return _read_url(value, "object", prefix), None


def _read_audience(value: object, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    entries = value if isinstance(value, list) else [value]
    audience = []
    for entry in entries:
        if isinstance(entry, Mapping):
            entry = entry.get("id")
        if isinstance(entry, str) and entry in _PUBLIC_ALIASES:
            audience.append(PUBLIC)
        else:
            audience.append(_read_url(entry, field))
    return tuple(audience)


def _read_published(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except TimestampError as exc:
        raise ActivityError("published", str(exc)) from exc
