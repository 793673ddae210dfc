"""Renderings of an edition: accessible HTML pages (Jinja2) and a PDF (fpdf2).

HTML: a table of contents, one page per chapter and a single page with everything;
``lang="de"``, headings in order (h1 edition, h2 chapter, h3 section or
contribution of a chapter, h4 contribution of a section), every contribution
attributed to its municipality with a link to the original, its stance counts and
the reasons members gave with their stances (beside the contribution or section).
Nothing from members or editors reaches the page unescaped: templates autoescape,
member HTML is sanitised again here (the hub does not trust the member's
sanitiser) and editorial Markdown is rendered without raw HTML, then sanitised.

PDF: fpdf2 needs no system libraries. Its core fonts cover Latin-1 only, so a
Unicode TrueType font (DejaVu Sans) is used when the caller passes one
(``find_unicode_font`` looks in the usual places); otherwise text is reduced to
Latin-1, which keeps German umlauts and ß.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from node.hub.changelog import Changelog, render_html
from node.hub.contribution import (
    ContributionFormatError,
    ContributionView,
    StanceReason,
    view_of,
)
from node.hub.editions import EditionManifest, IncludedContribution
from node.hub.structure import Section

# Block and inline tags a contribution may keep; headings are dropped so that the
# page's own heading order stays intact.
CONTENT_TAGS = {
    "p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "a", "blockquote", "code",
    "pre", "table", "thead", "tbody", "tr", "th", "td", "abbr", "sub", "sup",
}
CONTENT_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"scope"}}
UNICODE_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


@dataclass(frozen=True)
class StanceCounts:
    agree: int = 0
    disagree: int = 0
    partly: int = 0


@dataclass(frozen=True)
class MemberInfo:
    """How a member is named in the handbook (from the member directory)."""

    actor: str
    name: str
    ags: str | None = None


@dataclass(frozen=True)
class ReasonLine:
    """A stance's reason with the member who gave it, as a page shows it."""

    stance: StanceReason
    member: MemberInfo


@dataclass(frozen=True)
class RenderContext:
    """What the edition itself does not carry: names of members, current stance counts and
    the reasons given with the stances (by contribution URI, and by section slug)."""

    members: Mapping[str, MemberInfo] = field(default_factory=dict)
    stances: Mapping[str, StanceCounts] = field(default_factory=dict)
    reasons: Mapping[str, Sequence[StanceReason]] = field(default_factory=dict)
    section_reasons: Mapping[str, Sequence[StanceReason]] = field(default_factory=dict)
    language: str = "de"
    changelog: Changelog | None = None
    manifest_hash: str | None = None  # None for a draft preview


@dataclass(frozen=True)
class RenderedContribution:
    uri: str
    view: ContributionView | None  # None if the document could not be read
    member: MemberInfo
    counts: StanceCounts
    content: Markup
    document_hash: str
    reasons: tuple[ReasonLine, ...] = ()


@dataclass(frozen=True)
class RenderedSection:
    section: Section
    editorial: Markup
    contributions: tuple[RenderedContribution, ...]
    reasons: tuple[ReasonLine, ...] = ()


@dataclass(frozen=True)
class RenderedChapter:
    chapter: RenderedSection
    sections: tuple[RenderedSection, ...]


STATUS_LABELS = {
    "planned": ("geplant", "planned"),
    "piloting": ("in Erprobung", "piloting"),
    "in-operation": ("im Betrieb", "in operation"),
    "discontinued": ("eingestellt", "discontinued"),
}


POSITION_LABELS = {
    "agree": ("Zustimmung", "Agree"),
    "disagree": ("Widerspruch", "Disagree"),
    "partly": ("Teilweise", "Partly"),
}


def status_label(status: str, language: str = "de") -> str:
    german, english = STATUS_LABELS.get(status, (status, status))
    return english if language == "en" else german


def position_label(position: str, language: str = "de") -> str:
    german, english = POSITION_LABELS.get(position, (position, position))
    return english if language == "en" else german


def member_info(actor: str, members: Mapping[str, MemberInfo], ags: str | None = None) -> MemberInfo:
    """The member directory's entry for an actor; for a stranger, its host as the name."""
    return members.get(actor) or MemberInfo(actor, _host_of(actor), ags)


def reason_lines(reasons: Sequence[StanceReason], members: Mapping[str, MemberInfo]) -> tuple[ReasonLine, ...]:
    return tuple(ReasonLine(reason, member_info(reason.author, members)) for reason in reasons)


def http_url(value: object) -> str:
    """Only http(s) links reach a page: a ``javascript:`` URL from a member becomes "#"."""
    if isinstance(value, str) and urlsplit(value).scheme in ("http", "https"):
        return value
    return "#"


def sanitise_content(html: str) -> Markup:
    return Markup(nh3.clean(html, tags=CONTENT_TAGS, attributes=CONTENT_ATTRIBUTES))


def markdown_to_html(text: str) -> Markup:
    rendered = MarkdownIt("commonmark", {"html": False}).render(text)
    return sanitise_content(rendered)


class EditionRenderer:
    """Renders editions with the package's templates; build one and reuse it."""

    def __init__(self) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.PackageLoader("node.hub", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.filters["http_url"] = http_url
        self._environment.filters["status_label"] = status_label
        self._environment.filters["position_label"] = position_label

    def single_page(self, manifest: EditionManifest, context: RenderContext | None = None) -> str:
        """The whole edition on one page."""
        context = context or RenderContext()
        chapters = chapters_of(manifest, context)
        return self._render(manifest, context, chapters, page="all")

    def pages(self, manifest: EditionManifest, context: RenderContext | None = None) -> dict[str, str]:
        """Multi-page edition: ``index.html`` (contents, changelog), ``all.html``, and
        ``kapitel/{slug}.html`` for each chapter."""
        context = context or RenderContext()
        chapters = chapters_of(manifest, context)
        pages = {
            "index.html": self._render(manifest, context, chapters, page="index"),
            "all.html": self._render(manifest, context, chapters, page="all"),
        }
        for chapter in chapters:
            path = f"kapitel/{chapter.chapter.section.slug}.html"
            pages[path] = self._render(manifest, context, chapters, page="chapter", only=chapter)
        return pages

    def _render(
        self,
        manifest: EditionManifest,
        context: RenderContext,
        chapters: Sequence[RenderedChapter],
        *,
        page: str,
        only: RenderedChapter | None = None,
    ) -> str:
        template = self._environment.get_template("edition.html.j2")
        return template.render(
            manifest=manifest,
            chapters=chapters,
            shown=[only] if only is not None else (chapters if page == "all" else []),
            page=page,
            language=context.language,
            en=context.language == "en",
            changelog=render_html(context.changelog, context.language) if context.changelog else None,
            prefix="../" if page == "chapter" else "",
            manifest_hash=context.manifest_hash,
        )


def chapters_of(manifest: EditionManifest, context: RenderContext) -> tuple[RenderedChapter, ...]:
    """Group the manifest's sections (in reading order) into chapters for the templates."""
    rendered = {s.section.slug: _rendered_section(s.section, s.contributions, context) for s in manifest.sections}
    chapters = []
    for manifest_section in manifest.sections:
        section = manifest_section.section
        if section.parent is None or section.parent not in rendered:
            children = tuple(
                rendered[s.section.slug] for s in manifest.sections if s.section.parent == section.slug
            )
            chapters.append(RenderedChapter(rendered[section.slug], children))
    return tuple(chapters)


def _rendered_section(
    section: Section, contributions: Sequence[IncludedContribution], context: RenderContext
) -> RenderedSection:
    return RenderedSection(
        section,
        markdown_to_html(section.text),
        tuple(_rendered_contribution(c, context) for c in contributions),
        reason_lines(context.section_reasons.get(section.slug, ()), context.members),
    )


def _rendered_contribution(included: IncludedContribution, context: RenderContext) -> RenderedContribution:
    try:
        view: ContributionView | None = view_of(included.document)
    except ContributionFormatError:
        view = None
    author = view.author if view else ""
    member = member_info(author, context.members, view.ags if view else None)
    content = included.document.get("content")
    return RenderedContribution(
        uri=included.uri,
        view=view,
        member=member,
        counts=context.stances.get(included.uri, StanceCounts()),
        content=sanitise_content(content) if isinstance(content, str) else Markup(""),
        document_hash=included.document_hash,
        reasons=reason_lines(context.reasons.get(included.uri, ()), context.members),
    )


def _host_of(actor: str) -> str:
    return actor.split("//", 1)[-1].split("/", 1)[0] if actor else "?"


class PdfUnavailable(RuntimeError):
    """The PDF renderer cannot run here; the message says what is missing."""


def find_unicode_font(candidates: Sequence[Path] = UNICODE_FONT_CANDIDATES) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def render_pdf(
    manifest: EditionManifest,
    context: RenderContext | None = None,
    *,
    font_path: Path | None = None,
    compress: bool = True,
) -> bytes:
    """The edition as a PDF (contents, chapters, sections, contributions with attribution)."""
    context = context or RenderContext()
    try:
        from node.hub.pdf import write_pdf  # fpdf2 is imported only when a PDF is asked for
    except ImportError as exc:  # the optional renderer is not installed
        raise PdfUnavailable(f"PDF rendering needs the fpdf2 package: {exc}") from exc
    return write_pdf(manifest, chapters_of(manifest, context), font_path=font_path, compress=compress)
