"""What an author submits for a contribution, checked field by field.

The JSON API and ``praxisnetz publish`` both end here, so a wrong value gets the
same message naming the same field whichever way it came in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from node.storage.models import ContributionKind

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
LEIKA_PATTERN = re.compile(r"^[0-9]{14}$")
# ISO 8601 duration (xsd:duration), e.g. P6M or P1Y2M
DURATION_PATTERN = re.compile(
    r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$"
)
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?$")
PRACTICE_STATUSES = ("planned", "piloting", "in-operation", "discontinued")
POSITIONS = ("agree", "disagree", "partly")
TARGETED_KINDS = (ContributionKind.STANCE, ContributionKind.COMMENT)
MEDIA_TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
# C0 controls other than tab and line breaks, and lone surrogates (JSON may carry "\ud800"):
# PostgreSQL refuses NUL, XML (the Atom feed) the other controls, UTF-8 the surrogates.
UNSTORABLE_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
MAX_TITLE = 300
MAX_TEXT = 20_000
MAX_BODY = 200_000

KNOWN_FIELDS = frozenset(
    {
        "kind", "slug", "title", "summary", "topics", "status", "steps", "effort",
        "duration", "lessons", "legal_basis", "related_service", "about", "position",
        "language", "body", "reason", "url", "media_type", "license",
    }
)  # fmt: skip


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class ContributionInputError(ValueError):
    """One or more fields are wrong; each problem names its field."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class ContributionInput:
    kind: ContributionKind
    slug: str
    title: str
    body: str = ""
    summary: str | None = None
    topics: tuple[str, ...] = ()
    status: str | None = None
    steps: tuple[str, ...] = ()
    effort: str | None = None
    duration: str | None = None
    lessons: str | None = None
    legal_basis: tuple[str, ...] = ()
    related_service: str | None = None
    about: str | None = None
    position: str | None = None
    language: str = "de"
    reason: str | None = None  # stance: why the municipality takes this position
    url: str | None = None  # material: where the document itself is
    media_type: str | None = None  # material: the document's media type
    license: str | None = None  # material: license URL

    def as_source(self) -> dict[str, object]:
        """JSON-ready form, stored so a later edit starts from what was written."""
        return {
            "kind": self.kind.value, "slug": self.slug, "title": self.title,
            "body": self.body, "summary": self.summary, "topics": list(self.topics),
            "status": self.status, "steps": list(self.steps), "effort": self.effort,
            "duration": self.duration, "lessons": self.lessons,
            "legal_basis": list(self.legal_basis), "related_service": self.related_service,
            "about": self.about, "position": self.position, "language": self.language,
            "reason": self.reason, "url": self.url, "media_type": self.media_type,
            "license": self.license,
        }  # fmt: skip


@dataclass
class _Checker:
    raw: Mapping[str, object]
    problems: list[FieldProblem] = field(default_factory=list)

    def fail(self, name: str, message: str) -> None:
        self.problems.append(FieldProblem(name, message))

    def text(self, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str | None:
        value = self.raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # YAML reads "duration: 6" as a number
        if not isinstance(value, str):
            self.fail(name, "must be text")
            return None
        if len(value) > limit:
            self.fail(name, f"at most {limit} characters")
            return None
        if UNSTORABLE_CHARACTERS.search(value):
            self.fail(name, "contains control characters or broken Unicode")
            return None
        return value.strip()

    def text_list(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(name, "must be a list of non-empty texts")
            return ()
        if len(value) > 100:
            self.fail(name, "at most 100 entries")
            return ()
        if any(UNSTORABLE_CHARACTERS.search(v) for v in value):
            self.fail(name, "contains control characters or broken Unicode")
            return ()
        return tuple(v.strip() for v in value)

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        value = self.text(name)
        if value is not None and value not in allowed:
            self.fail(name, f"must be one of {', '.join(allowed)}")
            return None
        return value


def _check_kind(check: _Checker) -> ContributionKind | None:
    kinds = [k.value for k in ContributionKind]
    value = check.choice("kind", kinds)
    if value is None:
        if "kind" not in check.raw or check.raw.get("kind") is None:
            check.fail("kind", f"is required ({', '.join(kinds)})")
        return None
    return ContributionKind(value)


def _check_slug(check: _Checker, default_slug: str | None) -> str | None:
    value = check.text("slug") or default_slug
    if value is None:
        check.fail("slug", "is required")
        return None
    if not SLUG_PATTERN.match(value):
        check.fail("slug", "use lower-case letters, digits and inner hyphens (e.g. e-akte-bauamt)")
        return None
    return value


def _check_about(check: _Checker, kind: ContributionKind | None) -> str | None:
    about = check.text("about", limit=2048)
    if about is not None:
        if not _is_http_url(about):
            check.fail("about", "must be an http(s) URL of the practice, experience or section")
            return None
    elif kind in TARGETED_KINDS:
        check.fail("about", f"a {kind.value} needs the URL of what it is about")
    return about


def _check_kind_specific(
    check: _Checker, kind: ContributionKind | None
) -> tuple[str | None, str | None]:
    status = check.choice("status", PRACTICE_STATUSES)
    if status is not None and kind is not ContributionKind.PRACTICE:
        check.fail("status", "only a practice has a status")
    position = check.choice("position", POSITIONS)
    if kind is ContributionKind.STANCE and position is None and "position" not in check.raw:
        check.fail("position", f"a stance needs a position ({', '.join(POSITIONS)})")
    if position is not None and kind is not ContributionKind.STANCE:
        check.fail("position", "only a stance has a position")
    return status, position


def _check_topics(check: _Checker, known_topics: frozenset[str] | None) -> tuple[str, ...]:
    topics = check.text_list("topics")
    if known_topics is not None:
        unknown = [t for t in topics if t not in known_topics]
        if unknown:
            check.fail("topics", f"unknown topic(s): {', '.join(unknown)}")
    return topics


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_duration(check: _Checker) -> str | None:
    duration = check.text("duration")
    if duration is not None and not DURATION_PATTERN.match(duration):
        check.fail("duration", "an ISO 8601 duration such as P6M (six months) or P1Y")
        return None
    return duration


def _check_legal_basis(check: _Checker) -> tuple[str, ...]:
    urls = check.text_list("legal_basis")
    if any(not _is_http_url(url) for url in urls):
        check.fail(
            "legal_basis",
            "give the URL of each norm, e.g. https://www.gesetze-im-internet.de/egovg/__6.html",
        )
        return ()
    return urls


def _check_url(check: _Checker, name: str) -> str | None:
    value = check.text(name, limit=2048)
    if value is not None and not _is_http_url(value):
        check.fail(name, "must be an http(s) URL")
        return None
    return value


def _check_material(check: _Checker, kind: ContributionKind | None) -> dict[str, str | None]:
    fields = {"url": _check_url(check, "url"), "license": _check_url(check, "license")}
    media_type = check.text("media_type")
    if media_type is not None and not MEDIA_TYPE_PATTERN.match(media_type):
        check.fail("media_type", "a media type such as application/pdf")
        media_type = None
    fields["media_type"] = media_type
    if kind is not ContributionKind.MATERIAL:
        for name, value in fields.items():
            if value is not None:
                check.fail(name, "only a material has this field")
    elif fields["url"] is None and "url" not in check.raw:
        check.fail("url", "a material needs the URL of the document")
    return fields


def parse_contribution_input(
    raw: Mapping[str, object],
    *,
    default_slug: str | None = None,
    known_topics: frozenset[str] | None = None,
) -> ContributionInput:
    """Check every field and return the input, or raise with ALL problems found."""
    check = _Checker(raw)
    for name in raw:
        if name not in KNOWN_FIELDS:
            check.fail(name, "unknown field")
    kind = _check_kind(check)
    slug = _check_slug(check, default_slug)
    title = check.text("title", required=True, limit=MAX_TITLE)
    status, position = _check_kind_specific(check, kind)
    related = check.text("related_service")
    if related is not None and not LEIKA_PATTERN.match(related):
        check.fail("related_service", "a LeiKa key has 14 digits")
    language = check.text("language") or "de"
    if not LANGUAGE_PATTERN.match(language):
        check.fail("language", "a language tag such as de or en")
    values = dict(
        summary=check.text("summary"),
        topics=_check_topics(check, known_topics),
        steps=check.text_list("steps"),
        effort=check.text("effort"),
        duration=_check_duration(check),
        lessons=check.text("lessons"),
        legal_basis=_check_legal_basis(check),
        about=_check_about(check, kind),
        reason=check.text("reason"),
        **_check_material(check, kind),
        body=check.text("body", limit=MAX_BODY) or "",
    )
    if check.problems or kind is None or slug is None or title is None:
        raise ContributionInputError(check.problems)
    return ContributionInput(
        kind=kind, slug=slug, title=title, status=status, position=position,
        related_service=related, language=language, **values,  # type: ignore[arg-type]
    )  # fmt: skip
