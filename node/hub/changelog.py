"""What changed between two editions: typed records and a German/English rendering.

Contributions are compared by id and document hash: a new id is *added*, a vanished
one *removed*, a different hash *updated* (with a text diff), the same hash in other
sections *moved*. Sections are compared by slug: *added*, *removed*, *renamed*
(a title changed), *text changed* (the editorial text), *moved* (parent or order).
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from node.hub.contribution import ContributionFormatError, view_of
from node.hub.editions import EditionManifest, IncludedContribution
from node.hub.structure import Section

_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


class ContributionChangeKind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    UPDATED = "updated"
    MOVED = "moved"


class SectionChangeKind(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"
    TEXT_CHANGED = "text-changed"
    MOVED = "moved"


@dataclass(frozen=True)
class ContributionChange:
    kind: ContributionChangeKind
    uri: str
    title: str
    sections_before: tuple[str, ...]
    sections_after: tuple[str, ...]
    old_hash: str | None
    new_hash: str | None
    diff: tuple[str, ...] = ()  # unified diff lines of the readable text, for updates


@dataclass(frozen=True)
class SectionChange:
    kind: SectionChangeKind
    slug: str
    before: Section | None
    after: Section | None
    diff: tuple[str, ...] = ()  # for editorial text changes


@dataclass(frozen=True)
class Changelog:
    from_number: int | None
    to_number: int
    sections: tuple[SectionChange, ...]
    contributions: tuple[ContributionChange, ...]
    # every section of either edition: the current ones in reading order, then removed ones
    section_order: tuple[Section, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.sections and not self.contributions

    def contributions_of(self, kind: ContributionChangeKind) -> tuple[ContributionChange, ...]:
        return tuple(change for change in self.contributions if change.kind is kind)

    def sections_of(self, kind: SectionChangeKind) -> tuple[SectionChange, ...]:
        return tuple(change for change in self.sections if change.kind is kind)

    def by_section(self) -> tuple[tuple[Section, tuple[ContributionChange, ...]], ...]:
        """Contribution changes per section (where it is now, or was if removed)."""
        grouped = []
        for section in self.section_order:
            changes = tuple(
                change
                for change in self.contributions
                if section.slug in (change.sections_after or change.sections_before)
            )
            if changes:
                grouped.append((section, changes))
        return tuple(grouped)


def changelog(previous: EditionManifest | None, current: EditionManifest) -> Changelog:
    """The changes from ``previous`` (None: an empty handbook) to ``current``."""
    before_sections = {s.section.slug: s.section for s in previous.sections} if previous else {}
    after_sections = {s.section.slug: s.section for s in current.sections}
    return Changelog(
        from_number=previous.number if previous else None,
        to_number=current.number,
        sections=_section_changes(before_sections, after_sections),
        contributions=_contribution_changes(previous, current),
        section_order=(
            *after_sections.values(),
            *(section for slug, section in before_sections.items() if slug not in after_sections),
        ),
    )


def _section_changes(
    before: Mapping[str, Section], after: Mapping[str, Section]
) -> tuple[SectionChange, ...]:
    changes: list[SectionChange] = []
    for slug, new in after.items():
        old = before.get(slug)
        if old is None:
            changes.append(SectionChange(SectionChangeKind.ADDED, slug, None, new))
            continue
        if (old.title_de, old.title_en) != (new.title_de, new.title_en):
            changes.append(SectionChange(SectionChangeKind.RENAMED, slug, old, new))
        if old.text != new.text:
            diff = _diff(old.text.splitlines(), new.text.splitlines())
            changes.append(SectionChange(SectionChangeKind.TEXT_CHANGED, slug, old, new, diff))
        if (old.parent, old.order) != (new.parent, new.order):
            changes.append(SectionChange(SectionChangeKind.MOVED, slug, old, new))
    changes.extend(
        SectionChange(SectionChangeKind.REMOVED, slug, old, None)
        for slug, old in before.items()
        if slug not in after
    )
    return tuple(changes)


def _placements(
    manifest: EditionManifest | None,
) -> tuple[dict[str, IncludedContribution], dict[str, tuple[str, ...]]]:
    documents: dict[str, IncludedContribution] = {}
    sections: dict[str, list[str]] = {}
    for manifest_section in manifest.sections if manifest else ():
        for included in manifest_section.contributions:
            documents.setdefault(included.uri, included)
            sections.setdefault(included.uri, []).append(manifest_section.section.slug)
    return documents, {uri: tuple(slugs) for uri, slugs in sections.items()}


def _contribution_changes(
    previous: EditionManifest | None, current: EditionManifest
) -> tuple[ContributionChange, ...]:
    old_docs, old_sections = _placements(previous)
    new_docs, new_sections = _placements(current)
    changes: list[ContributionChange] = []
    for uri, new in new_docs.items():
        old = old_docs.get(uri)
        where_before, where_now = old_sections.get(uri, ()), new_sections[uri]
        if old is None:
            kind, diff = ContributionChangeKind.ADDED, ()
        elif old.document_hash != new.document_hash:
            kind, diff = ContributionChangeKind.UPDATED, _diff(_readable(old), _readable(new))
        elif where_before != where_now:
            kind, diff = ContributionChangeKind.MOVED, ()
        else:
            continue
        changes.append(
            ContributionChange(
                kind, uri, _title(new), where_before, where_now,
                old.document_hash if old else None, new.document_hash, diff,
            )
        )
    for uri, old in old_docs.items():
        if uri not in new_docs:
            changes.append(
                ContributionChange(
                    ContributionChangeKind.REMOVED, uri, _title(old),
                    old_sections[uri], (), old.document_hash, None,
                )
            )
    return tuple(changes)


def _title(included: IncludedContribution) -> str:
    try:
        return view_of(included.document).title or included.uri
    except ContributionFormatError:
        return included.uri


def _readable(included: IncludedContribution) -> list[str]:
    """Title, summary and the content's sentences, one per line, for a readable diff."""
    try:
        view = view_of(included.document)
    except ContributionFormatError:
        return [included.document_hash]
    lines = [view.title, view.summary, *_SENTENCE_END_RE.split(view.content_text)]
    return [line for line in lines if line]


def _diff(old: list[str], new: list[str]) -> tuple[str, ...]:
    lines = difflib.unified_diff(old, new, lineterm="", n=1)
    return tuple(line for line in lines if not line.startswith(("---", "+++")))


_LABELS = {
    "de": {
        "title": "Änderungen in Ausgabe {to}",
        "since": "gegenüber Ausgabe {frm}",
        "first": "erste Ausgabe",
        "none": "Keine Änderungen.",
        "sections": "Abschnitte",
        "contributions": "Beiträge",
        ContributionChangeKind.ADDED: "neu",
        ContributionChangeKind.REMOVED: "entfernt",
        ContributionChangeKind.UPDATED: "aktualisiert",
        ContributionChangeKind.MOVED: "verschoben",
        SectionChangeKind.ADDED: "neuer Abschnitt",
        SectionChangeKind.REMOVED: "Abschnitt entfernt",
        SectionChangeKind.RENAMED: "umbenannt",
        SectionChangeKind.TEXT_CHANGED: "Text geändert",
        SectionChangeKind.MOVED: "verschoben",
    },
    "en": {
        "title": "Changes in edition {to}",
        "since": "since edition {frm}",
        "first": "first edition",
        "none": "No changes.",
        "sections": "Sections",
        "contributions": "Contributions",
        ContributionChangeKind.ADDED: "added",
        ContributionChangeKind.REMOVED: "removed",
        ContributionChangeKind.UPDATED: "updated",
        ContributionChangeKind.MOVED: "moved",
        SectionChangeKind.ADDED: "section added",
        SectionChangeKind.REMOVED: "section removed",
        SectionChangeKind.RENAMED: "renamed",
        SectionChangeKind.TEXT_CHANGED: "text changed",
        SectionChangeKind.MOVED: "moved",
    },
}


def _labels(language: str) -> Mapping[object, str]:
    return _LABELS["en" if language == "en" else "de"]


def _section_line(change: SectionChange, language: str) -> str:
    labels = _labels(language)
    shown = change.after or change.before
    assert shown is not None
    title = shown.title(language)
    if change.kind is SectionChangeKind.RENAMED and change.before is not None:
        return f"{labels[change.kind]}: „{change.before.title(language)}“ → „{title}“"
    return f"{labels[change.kind]}: „{title}“ ({change.slug})"


def _contribution_line(change: ContributionChange, language: str) -> str:
    labels = _labels(language)
    line = f"{labels[change.kind]}: „{change.title}“ <{change.uri}>"
    if change.kind is ContributionChangeKind.MOVED:
        line += f" ({', '.join(change.sections_before)} → {', '.join(change.sections_after)})"
    return line


def render_markdown(log: Changelog, language: str = "de") -> str:
    """The changelog as Markdown, contribution changes grouped by section."""
    labels = _labels(language)
    since = labels["since"].format(frm=log.from_number) if log.from_number else labels["first"]
    out = [f"# {labels['title'].format(to=log.to_number)} ({since})", ""]
    if log.is_empty:
        return "\n".join([*out, labels["none"], ""])
    if log.sections:
        out += [f"## {labels['sections']}", ""]
        out += [f"- {_section_line(change, language)}" for change in log.sections]
        out.append("")
    for section, changes in log.by_section():
        out += [f"## {labels['contributions']}: {section.title(language)}", ""]
        for change in changes:
            out.append(f"- {_contribution_line(change, language)}")
            if change.diff:
                out += ["", "  ```diff", *(f"  {line}" for line in change.diff), "  ```"]
        out.append("")
    return "\n".join(out)


def render_html(log: Changelog, language: str = "de") -> Markup:
    """The changelog as an HTML fragment (h2, h3); all member and editor text is escaped."""
    labels = _labels(language)
    since = labels["since"].format(frm=log.from_number) if log.from_number else labels["first"]
    title = f"{labels['title'].format(to=log.to_number)} ({since})"
    out = [f'<section class="changelog" lang="{escape(language)}"><h2>{escape(title)}</h2>']
    if log.is_empty:
        out.append(f"<p>{escape(labels['none'])}</p>")
    if log.sections:
        out.append(f"<h3>{escape(labels['sections'])}</h3><ul>")
        out += [f"<li>{escape(_section_line(c, language))}</li>" for c in log.sections]
        out.append("</ul>")
    for section, changes in log.by_section():
        heading = f"{labels['contributions']}: {section.title(language)}"
        out.append(f"<h3>{escape(heading)}</h3><ul>")
        for change in changes:
            out.append(f"<li>{escape(_contribution_line(change, language))}")
            if change.diff:
                out.append(f"<pre>{escape(chr(10).join(change.diff))}</pre>")
            out.append("</li>")
        out.append("</ul>")
    out.append("</section>")
    return Markup("".join(out))
