"""The handbook's structure: chapters and their sections.

A section is one flat record with an optional parent (a chapter is a section
without a parent), which is how the database and the CLI
(``hub section add SLUG TITLE --parent SLUG``) see it. ``HandbookStructure``
checks the whole tree once (unique slugs, parents exist, two levels) and gives
the reading order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG_LENGTH = 80


class StructureError(ValueError):
    """The structure is inconsistent; ``field`` names the offending field or slug."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Section:
    """One chapter (``parent is None``) or section of the handbook."""

    slug: str
    title_de: str
    title_en: str = ""
    order: int = 0
    parent: str | None = None
    text: str = ""  # editorial text, Markdown

    def title(self, language: str = "de") -> str:
        return self.title_en if language == "en" and self.title_en else self.title_de


@dataclass(frozen=True)
class Chapter:
    """A top-level section with its sections in order."""

    section: Section
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class HandbookStructure:
    sections: tuple[Section, ...]

    def __post_init__(self) -> None:
        _check(self.sections)

    def get(self, slug: str) -> Section | None:
        return next((section for section in self.sections if section.slug == slug), None)

    def chapters(self) -> tuple[Chapter, ...]:
        tops = sorted((s for s in self.sections if s.parent is None), key=_order_key)
        return tuple(Chapter(top, self.children(top.slug)) for top in tops)

    def children(self, slug: str) -> tuple[Section, ...]:
        return tuple(sorted((s for s in self.sections if s.parent == slug), key=_order_key))

    def reading_order(self) -> tuple[Section, ...]:
        """Chapters in order, each followed by its sections: the order of an edition."""
        ordered: list[Section] = []
        for chapter in self.chapters():
            ordered.append(chapter.section)
            ordered.extend(chapter.sections)
        return tuple(ordered)

    def with_section(self, section: Section) -> HandbookStructure:
        """A new structure with ``section`` added, or replacing the one with its slug."""
        others = tuple(s for s in self.sections if s.slug != section.slug)
        return HandbookStructure(others + (section,))

    def without_section(self, slug: str) -> HandbookStructure:
        if self.children(slug):
            raise StructureError(slug, "still has sections; move or remove them first")
        return HandbookStructure(tuple(s for s in self.sections if s.slug != slug))

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "slug": s.slug,
                "title_de": s.title_de,
                "title_en": s.title_en,
                "order": s.order,
                "parent": s.parent,
                "text": s.text,
            }
            for s in self.reading_order()
        ]

    @classmethod
    def from_json(cls, items: Iterable[Mapping[str, Any]]) -> HandbookStructure:
        return cls(tuple(_section_from_json(index, item) for index, item in enumerate(items)))


def _order_key(section: Section) -> tuple[int, str]:
    return (section.order, section.slug)


def _section_from_json(index: int, item: Mapping[str, Any]) -> Section:
    if not isinstance(item, Mapping):
        raise StructureError(f"sections[{index}]", "must be an object")
    strings = {}
    for field in ("slug", "title_de", "title_en", "text"):
        value = item.get(field, "")
        if not isinstance(value, str):
            raise StructureError(f"sections[{index}].{field}", "must be a string")
        strings[field] = value
    order, parent = item.get("order", 0), item.get("parent")
    if not isinstance(order, int) or isinstance(order, bool):
        raise StructureError(f"sections[{index}].order", "must be an integer")
    if parent is not None and not isinstance(parent, str):
        raise StructureError(f"sections[{index}].parent", "must be a slug or null")
    return Section(order=order, parent=parent, **strings)


def _check(sections: tuple[Section, ...]) -> None:
    by_slug: dict[str, Section] = {}
    for section in sections:
        if not SLUG_RE.match(section.slug) or len(section.slug) > MAX_SLUG_LENGTH:
            raise StructureError(
                section.slug or "slug", "a slug is lower-case letters, digits and single hyphens"
            )
        if section.slug in by_slug:
            raise StructureError(section.slug, "slug is used twice")
        if not section.title_de.strip():
            raise StructureError(section.slug, "needs a German title")
        by_slug[section.slug] = section
    for section in sections:
        if section.parent is None:
            continue
        parent = by_slug.get(section.parent)
        if parent is None:
            raise StructureError(section.slug, f"parent {section.parent!r} does not exist")
        if parent.parent is not None:
            raise StructureError(section.slug, "sections nest two levels deep at most")


def default_structure() -> HandbookStructure:
    """The structure a new hub starts with: the chapters of the E-Government "Kochbuch"."""
    chapters = [
        ("strategie", "Strategie und Steuerung", "Strategy and governance"),
        ("organisation", "Organisation und Personal", "Organisation and staff"),
        ("prozesse", "Prozessmanagement", "Process management"),
        ("e-akte", "E-Akte und Dokumentenmanagement", "E-file and document management"),
        ("kommunikation", "Elektronische Kommunikation", "Electronic communication"),
        ("online-dienste", "Bürgerportal und Online-Dienste", "Citizen portal and online services"),
        ("e-payment", "E-Payment", "E-payment"),
        ("recht", "Rechtliche Grundlagen", "Legal basis"),
        ("infrastruktur", "IT-Infrastruktur und Sicherheit", "IT infrastructure and security"),
        ("zusammenarbeit", "Interkommunale Zusammenarbeit", "Inter-municipal cooperation"),
    ]
    sections = [
        Section(slug, de, en, order=(index + 1) * 10)
        for index, (slug, de, en) in enumerate(chapters)
    ]
    sections.append(
        Section(
            "einleitung",
            "Einleitung",
            "Introduction",
            order=0,
            text="Dieses Handbuch sammelt erprobte Wege zur digitalen Kommunalverwaltung.",
        )
    )
    sections.append(
        Section("e-akte-einfuehrung", "Einführung der E-Akte", "Introducing the e-file", 10, "e-akte")
    )
    sections.append(
        Section("e-akte-scannen", "Scannen und Posteingang", "Scanning and incoming mail", 20, "e-akte")
    )
    return HandbookStructure(tuple(sections))

