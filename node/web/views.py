"""What a page shows of a contribution, read tolerantly from its JSON-LD document.

Own documents have a known shape; remote ones may use any shape JSON-LD allows, so a
field in an unexpected shape is left out rather than failing the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from node.storage.models import ContributionKind

TOPIC_NAMESPACE = "https://w3id.org/praxisnetz/topics#"
PREF_LABEL = "http://www.w3.org/2004/02/skos/core#prefLabel"
LEIKA_PREFIX = "urn:de:fim:leika:leistung:"
STATES_BY_AGS_PREFIX = {
    "01": "Schleswig-Holstein", "02": "Hamburg", "03": "Niedersachsen", "04": "Bremen",
    "05": "Nordrhein-Westfalen", "06": "Hessen", "07": "Rheinland-Pfalz",
    "08": "Baden-Württemberg", "09": "Bayern", "10": "Saarland", "11": "Berlin",
    "12": "Brandenburg", "13": "Mecklenburg-Vorpommern", "14": "Sachsen",
    "15": "Sachsen-Anhalt", "16": "Thüringen",
}  # fmt: skip
_TYPE_TO_KIND = {
    "Practice": ContributionKind.PRACTICE, "Experience": ContributionKind.EXPERIENCE,
    "Stance": ContributionKind.STANCE, "Material": ContributionKind.MATERIAL,
    "Comment": ContributionKind.COMMENT,
}  # fmt: skip


@dataclass(frozen=True)
class TopicLabel:
    slug: str
    de: str
    en: str

    def label(self, language: str) -> str:
        return self.de if language == "de" else self.en


def load_topic_labels(path: Path | None = None) -> dict[str, TopicLabel]:
    """German and English ``skos:prefLabel`` of every topic in ``vocab/topics.ttl``."""
    # Why rdflib, imported here: publishing loads it anyway (SHACL validation), while
    # pyoxigraph would add ~10 MiB to every node's memory for this one small file.
    from rdflib import Graph, Literal, URIRef

    source = path or resources.files("vocab").joinpath("topics.ttl")
    graph = Graph().parse(data=source.read_bytes(), format="turtle")
    labels: dict[str, dict[str, str]] = {}
    for subject, label in graph.subject_objects(URIRef(PREF_LABEL)):
        if (
            isinstance(subject, URIRef)
            and subject.startswith(TOPIC_NAMESPACE)
            and isinstance(label, Literal)
            and label.language
        ):
            labels.setdefault(subject[len(TOPIC_NAMESPACE) :], {})[label.language] = str(label)
    return {
        slug: TopicLabel(slug, names.get("de", slug), names.get("en", names.get("de", slug)))
        for slug, names in labels.items()
    }


@cache
def topic_labels() -> Mapping[str, TopicLabel]:
    """The shipped topic labels, read on first use (the pages that show topics)."""
    return load_topic_labels()


def state_of(ags: str | None) -> str | None:
    return STATES_BY_AGS_PREFIX.get(ags[:2]) if ags else None


def _text(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if isinstance(value, str) and value.strip():
        return value
    language_map = document.get(f"{name}Map")
    if isinstance(language_map, Mapping):
        texts = [text for text in language_map.values() if isinstance(text, str)]
        return (
            language_map.get("de")
            if isinstance(language_map.get("de"), str)
            else (texts[0] if texts else None)
        )
    return None


def _iris(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("id"), str):
            found.append(item["id"])
    return found


def _steps(value: object) -> list[str]:
    steps = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("text"), str):
            position = item.get("position")
            steps.append((position if isinstance(position, int) else len(steps) + 1, item["text"]))
        elif isinstance(item, str):
            steps.append((len(steps) + 1, item))
    return [text for _, text in sorted(steps, key=lambda pair: pair[0])]


def kind_of(document: Mapping[str, Any]) -> ContributionKind | None:
    types = document.get("type")
    for name in types if isinstance(types, list) else [types]:
        if isinstance(name, str) and name.removeprefix("pn:") in _TYPE_TO_KIND:
            return _TYPE_TO_KIND[name.removeprefix("pn:")]
    return None


@dataclass(frozen=True)
class ContributionView:
    uri: str
    kind: ContributionKind | None
    title: str
    summary: str | None
    content: str  # HTML as published; the template sanitises it again
    steps: list[str]
    status: str | None
    topics: list[str]  # slugs of our scheme, or IRIs of other schemes
    effort: str | None
    duration: str | None
    lessons: str | None
    legal_basis: list[str]
    related_service: str | None
    about: str | None
    position: str | None
    reason: str | None
    document_url: str | None  # a material's document
    media_type: str | None
    license: str | None
    attributed_to: str | None
    published: str | None
    updated: str | None


def view_of(document: Mapping[str, Any]) -> ContributionView:
    kind = kind_of(document)
    topics = [iri.removeprefix(TOPIC_NAMESPACE) for iri in _iris(document.get("topic"))]
    services = [iri.removeprefix(LEIKA_PREFIX) for iri in _iris(document.get("relatedService"))]
    about = _iris(document.get("about")) or _iris(document.get("inReplyTo"))
    is_material = kind is ContributionKind.MATERIAL
    return ContributionView(
        uri=str(document.get("id", "")), kind=kind, title=_text(document, "name") or "",
        summary=_text(document, "summary"), content=_text(document, "content") or "",
        steps=_steps(document.get("step")), status=_text(document, "status"), topics=topics,
        effort=_text(document, "effort"), duration=_text(document, "implementationDuration"),
        lessons=_text(document, "lessonsLearned"), legal_basis=_iris(document.get("legalBasis")),
        related_service=services[0] if services else None, about=about[0] if about else None,
        position=_text(document, "position"), reason=_text(document, "reason"),
        document_url=(_iris(document.get("url")) or [None])[0] if is_material else None,
        media_type=_text(document, "mediaType") if is_material else None,
        license=(_iris(document.get("license")) or [None])[0],
        attributed_to=(_iris(document.get("attributedTo")) or [None])[0],
        published=_text(document, "published"), updated=_text(document, "updated"),
    )  # fmt: skip


@dataclass(frozen=True)
class ResponseView:
    """A stance or comment shown under what it is about, with who wrote it."""

    view: ContributionView
    author_name: str
    author_url: str | None
