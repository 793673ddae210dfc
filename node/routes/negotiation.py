"""Content negotiation for object URLs: which representation an ``Accept`` header wants."""

from __future__ import annotations

import enum
from dataclasses import dataclass

AS_PROFILE = "https://www.w3.org/ns/activitystreams"


class Representation(enum.Enum):
    HTML = "text/html; charset=utf-8"
    ACTIVITY_JSON = "application/activity+json"
    AS_JSONLD = f'application/ld+json; profile="{AS_PROFILE}"'
    JSONLD = "application/ld+json"
    TURTLE = "text/turtle; charset=utf-8"

    @property
    def is_json(self) -> bool:
        return self in (
            Representation.ACTIVITY_JSON,
            Representation.AS_JSONLD,
            Representation.JSONLD,
        )


# Server preference when the client accepts several equally (browsers first).
PREFERENCE = (
    Representation.HTML,
    Representation.ACTIVITY_JSON,
    Representation.AS_JSONLD,
    Representation.JSONLD,
    Representation.TURTLE,
)
_EXACT = {
    "text/html": (Representation.HTML,),
    "application/xhtml+xml": (Representation.HTML,),
    "application/activity+json": (Representation.ACTIVITY_JSON,),
    "application/json": (Representation.ACTIVITY_JSON,),
    "text/turtle": (Representation.TURTLE,),
    "application/x-turtle": (Representation.TURTLE,),
}
_WILDCARDS = {
    "*/*": PREFERENCE,
    "text/*": (Representation.HTML, Representation.TURTLE),
    "application/*": (
        Representation.ACTIVITY_JSON,
        Representation.AS_JSONLD,
        Representation.JSONLD,
    ),
}


@dataclass(frozen=True)
class MediaRange:
    media_type: str
    params: dict[str, str]
    quality: float


def _parse_range(item: str) -> MediaRange | None:
    parts = [p.strip() for p in item.split(";")]
    media_type = parts[0].lower()
    if "/" not in media_type:
        return None
    params: dict[str, str] = {}
    quality = 1.0
    for part in parts[1:]:
        name, _, value = part.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "q":
            try:
                quality = max(0.0, min(1.0, float(value)))
            except ValueError:
                quality = 0.0
        elif name:
            params[name] = value
    return MediaRange(media_type, params, quality)


def parse_accept(header: str) -> list[MediaRange]:
    ranges = [_parse_range(item) for item in header.split(",") if item.strip()]
    return [r for r in ranges if r is not None]


def _matches(media_range: MediaRange) -> tuple[Representation, ...]:
    if media_range.media_type == "application/ld+json":
        profiles = media_range.params.get("profile", "").split()
        if AS_PROFILE in profiles:
            return (Representation.AS_JSONLD,)
        return (Representation.JSONLD,)
    return _EXACT.get(media_range.media_type) or _WILDCARDS.get(media_range.media_type, ())


def negotiate(
    accept: str | None, available: tuple[Representation, ...] = PREFERENCE
) -> Representation | None:
    """The best representation for ``accept``, or None (the caller answers 406).

    A missing header means anything; the most specific range decides a
    representation's quality, then the order of ``available`` breaks ties.
    """
    if not accept or not accept.strip():
        return available[0]
    best: dict[Representation, tuple[int, float]] = {}
    for media_range in parse_accept(accept):
        specificity = 0 if media_range.media_type.endswith("/*") else 1
        for representation in _matches(media_range):
            current = best.get(representation)
            if current is None or specificity > current[0]:
                best[representation] = (specificity, media_range.quality)
    candidates = [
        (quality, -available.index(rep), rep)
        for rep, (_, quality) in best.items()
        if quality > 0 and rep in available
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda item: (item[0], item[1]))[2]
