"""A typed, read-only view of a member contribution as the hub needs it.

Contributions arrive as compacted JSON-LD documents (our context after the
ActivityStreams one, see DESIGN.md "On the wire"). Search, rendering and the
changelog read a handful of fields; this module reads them once, tolerating the
shapes JSON-LD allows (a string or a list, ``name`` or ``nameMap``), and names
the field when a document cannot be read.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

AGS_URI_PREFIX = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"
_TAG_RE = re.compile(r"<[^>]*>")
_SPACE_RE = re.compile(r"\s+")


class ContributionKind(enum.Enum):
    PRACTICE = "practice"
    EXPERIENCE = "experience"
    STANCE = "stance"
    MATERIAL = "material"
    COMMENT = "comment"
    OTHER = "other"


_KIND_BY_TYPE = {
    "Practice": ContributionKind.PRACTICE,
    "pn:Practice": ContributionKind.PRACTICE,
    "Experience": ContributionKind.EXPERIENCE,
    "pn:Experience": ContributionKind.EXPERIENCE,
    "Stance": ContributionKind.STANCE,
    "pn:Stance": ContributionKind.STANCE,
    "Material": ContributionKind.MATERIAL,
    "pn:Material": ContributionKind.MATERIAL,
    "Comment": ContributionKind.COMMENT,
    "pn:Comment": ContributionKind.COMMENT,
    "Note": ContributionKind.COMMENT,
}


class ContributionFormatError(ValueError):
    """A contribution document lacks a field the hub needs, or has it in a wrong shape."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ContributionView:
    """What the hub shows and searches of a contribution; the signed document stays as is."""

    uri: str
    kind: ContributionKind
    title: str
    summary: str
    content_text: str
    author: str
    topics: tuple[str, ...]
    municipality_key: str | None
    status: str | None
    published: str | None
    updated: str | None
    url: str | None

    @property
    def ags(self) -> str | None:
        """The 8-digit municipality key, when the document carries the DCAT-AP.de URI."""
        key = self.municipality_key
        if key and key.startswith(AGS_URI_PREFIX):
            return key[len(AGS_URI_PREFIX) :]
        return key


# The order an editor reads stances in: objections first.
STANCE_POSITIONS = ("disagree", "partly", "agree")


@dataclass(frozen=True)
class StanceReason:
    """One stance with the reason its author gave (``pn:reason``)."""

    uri: str
    author: str  # the actor who took the stance
    position: str  # one of STANCE_POSITIONS
    reason: str  # plain text, escaped by whoever shows it
    link: str  # where a person reads the stance: its ``url``, else its id


def stance_reason_of(uri: str, author: str, document: Mapping[str, Any]) -> StanceReason | None:
    """The reason of a stance document; None when it has no known position or no reason."""
    position = document.get("position")
    reason = document.get("reason")
    if position not in STANCE_POSITIONS or not isinstance(reason, str) or not reason.strip():
        return None
    try:
        url = _first_iri(document.get("url"), "url")
    except ContributionFormatError:
        url = None  # a malformed url costs the stance its page link, not its reason
    # pages link to it: a member's "javascript:" url must not become a link
    link = url if url is not None and url.startswith(("https://", "http://")) else uri
    return StanceReason(uri, author, position, reason.strip(), link)


def by_position(reasons: Sequence[StanceReason]) -> tuple[StanceReason, ...]:
    """Objections first, then partly, then agreement; stable within each."""
    return tuple(sorted(reasons, key=lambda r: STANCE_POSITIONS.index(r.position)))


def document_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical form: identifies one exact signed version."""
    try:
        canonical = rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ContributionFormatError("document", f"cannot be canonicalised: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()


def html_to_text(html: str) -> str:
    """Plain text of sanitised HTML for searching and summaries (tags dropped, spaces folded)."""
    text = _TAG_RE.sub(" ", html)
    for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"')):
        text = text.replace(entity, char)
    text = text.replace("&amp;", "&")
    return _SPACE_RE.sub(" ", text).strip()


def view_of(document: Mapping[str, Any]) -> ContributionView:
    """Read the fields the hub needs; raises ContributionFormatError naming the field."""
    if not isinstance(document, Mapping):
        raise ContributionFormatError("document", "is not a JSON object")
    uri = _required_iri(document, "id")
    author = _first_iri(document.get("attributedTo"), "attributedTo")
    if author is None:
        raise ContributionFormatError("attributedTo", "is missing")
    return ContributionView(
        uri=uri,
        kind=_kind_of(document.get("type")),
        title=_language_text(document, "name"),
        summary=html_to_text(_language_text(document, "summary")),
        content_text=html_to_text(_language_text(document, "content")),
        author=author,
        topics=_iris(document.get("topic"), "topic"),
        municipality_key=_first_iri(document.get("municipalityKey"), "municipalityKey"),
        status=_optional_string(document, "status"),
        published=_optional_string(document, "published"),
        updated=_optional_string(document, "updated"),
        url=_first_iri(document.get("url"), "url"),
    )


def _required_iri(document: Mapping[str, Any], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise ContributionFormatError(field, "must be a non-empty string")
    return value


def _optional_string(document: Mapping[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContributionFormatError(field, "must be a string")
    return value


def _kind_of(types: Any) -> ContributionKind:
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, Sequence):
        raise ContributionFormatError("type", "must be a string or a list of strings")
    kinds = [_KIND_BY_TYPE[name] for name in names if isinstance(name, str) and name in _KIND_BY_TYPE]
    # our own types say more than ActivityStreams' ("Note" with "Stance" is a stance)
    specific = [kind for kind in kinds if kind is not ContributionKind.COMMENT]
    return (specific or kinds or [ContributionKind.OTHER])[0]


def _language_text(document: Mapping[str, Any], field: str, language: str = "de") -> str:
    """``name`` as a string, else the ``nameMap`` entry in our language, else any entry."""
    value = document.get(field)
    if isinstance(value, str):
        return value
    if value is not None:
        raise ContributionFormatError(field, "must be a string")
    language_map = document.get(f"{field}Map")
    if language_map is None:
        return ""
    if not isinstance(language_map, Mapping) or not all(
        isinstance(text, str) for text in language_map.values()
    ):
        raise ContributionFormatError(f"{field}Map", "must map language tags to strings")
    return language_map.get(language) or next(iter(language_map.values()), "")


def _iri_of(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        reference = value.get("id", value.get("href"))
        if isinstance(reference, str):
            return reference
    raise ContributionFormatError(field, "must be an IRI or an object with an id")


def _iris(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(_iri_of(item, field) for item in items)


def _first_iri(value: Any, field: str) -> str | None:
    iris = _iris(value, field)
    return iris[0] if iris else None
