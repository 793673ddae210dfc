"""Shared builders for the hub tests: contribution documents and an index with bundled contexts."""

from __future__ import annotations

from typing import Any

from node.hub.index import HubIndex
from node.hub.query_runner import QueryRunner
from vocab import loader

AGS_PREFIX = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"
TOPIC_PREFIX = "https://w3id.org/praxisnetz/topics#"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def bundled_contexts() -> dict[str, Any]:
    return {url: loader.load_bundled_document(url) for url in loader.bundled_context_urls()}


def make_index(runner: QueryRunner | None = None, path=None) -> HubIndex:
    return HubIndex(path, contexts=bundled_contexts(), runner=runner)


def actor(host: str) -> str:
    return f"https://{host}/actor"


def practice(
    host: str,
    slug: str,
    *,
    name: str,
    summary: str = "",
    content: str = "",
    topics: tuple[str, ...] = ("e-akte",),
    status: str = "in-operation",
    ags: str = "05754008",
    steps: tuple[str, ...] = ("Ist-Prozesse aufnehmen", "Pilotbereich wählen"),
    published: str = "2026-11-01T10:00:00Z",
) -> dict[str, Any]:
    base = f"https://{host}"
    return {
        "@context": list(loader.DEFAULT_CONTEXT),
        "id": f"{base}/practices/{slug}",
        "type": ["Article", "Practice"],
        "attributedTo": actor(host),
        "name": name,
        "summary": summary,
        "content": content,
        "contentMap": {"de": content},
        "status": status,
        "topic": [TOPIC_PREFIX + topic for topic in topics],
        "step": [
            {"type": "HowToStep", "position": index + 1, "text": text}
            for index, text in enumerate(steps)
        ],
        "municipalityKey": AGS_PREFIX + ags,
        "published": published,
        "url": f"{base}/practices/{slug}",
        "to": [PUBLIC],
        "cc": [f"{base}/actor/followers"],
    }


def stance(host: str, slug: str, *, about: str, position: str, reason: str = "") -> dict[str, Any]:
    base = f"https://{host}"
    return {
        "@context": list(loader.DEFAULT_CONTEXT),
        "id": f"{base}/stances/{slug}",
        "type": ["Note", "Stance"],
        "attributedTo": actor(host),
        "about": about,
        "position": position,
        "reason": reason,
        "content": reason,
        "published": "2026-11-02T10:00:00Z",
        "to": [PUBLIC],
    }
