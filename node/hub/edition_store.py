"""Frozen editions in SQL: freeze the draft into edition N (signed, content-addressed,
never changed afterwards), read editions back, changelogs, renderings, RDF dumps, and
the Create that announces a published edition to the hub's followers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyoxigraph as ox
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.activity_builders import create
from federation.proofs import sign_document
from federation.timestamps import format_timestamp
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.hub import editorial
from node.hub.changelog import Changelog, changelog
from node.hub.editions import (
    EditionError,
    EditionManifest,
    FrozenEdition,
    freeze,
    preview,
    read_edition,
)
from node.hub.index import JsonLdToQuads
from node.hub.tables import HubEdition
from node.identity import PUBLIC
from node.outbox import follower_inboxes, record_local_activity
from node.storage.models import RemoteActor
from vocab.loader import DEFAULT_CONTEXT
from vocab.namespace import PN

Clock = Callable[[], datetime]


class EditionStoreError(ValueError):
    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True)
class StoredEdition:
    edition: FrozenEdition
    frozen_by: str
    published_at: datetime | None

    @property
    def number(self) -> int:
        return self.edition.manifest.number

    def summary_json(self) -> dict[str, Any]:
        manifest = self.edition.manifest
        return {
            "number": manifest.number, "url": manifest.url,
            "manifestHash": self.edition.manifest_hash,
            "created": format_timestamp(manifest.created), "frozenBy": self.frozen_by,
            "published": format_timestamp(self.published_at) if self.published_at else None,
            "contributions": len(manifest.contributions()),
            "sections": len(manifest.sections),
        }  # fmt: skip


def _stored(row: HubEdition) -> StoredEdition:
    return StoredEdition(read_edition(row.manifest), row.frozen_by, row.published_at)


async def get_edition(session: AsyncSession, number: int) -> StoredEdition | None:
    row = await session.get(HubEdition, number)
    return _stored(row) if row is not None else None


async def latest_edition(session: AsyncSession) -> StoredEdition | None:
    number = await session.scalar(select(func.max(HubEdition.number)))
    return await get_edition(session, number) if number is not None else None


async def list_editions(session: AsyncSession) -> list[StoredEdition]:
    rows = await session.scalars(select(HubEdition).order_by(HubEdition.number))
    return [_stored(row) for row in rows]


async def draft_preview(session: AsyncSession, config: NodeConfig, *, clock: Clock) -> EditionManifest:
    """The next edition as it would be frozen now (unsigned): the public draft."""
    draft = await editorial.draft(session, hub_actor=config.actor_url, base_url=config.base_url)
    previous = await latest_edition(session)
    return preview(draft, previous.edition if previous else None, clock=clock)


async def freeze_next(
    session: AsyncSession, config: NodeConfig, keys: NodeKeys, *, clock: Clock, frozen_by: str
) -> StoredEdition:
    """Freeze the current draft as the next edition, signed with the hub's Ed25519 key."""
    previous = await latest_edition(session)
    draft = await editorial.draft(session, hub_actor=config.actor_url, base_url=config.base_url)
    if not any(section.contributions for section in draft.sections):
        raise EditionStoreError("placements", "no accepted contribution is placed in a section")
    try:
        frozen = freeze(draft, previous.edition if previous else None, clock=clock,
                        key=keys.ed25519)
    except EditionError as exc:
        raise EditionStoreError(exc.field, exc.message) from exc
    session.add(HubEdition(number=frozen.manifest.number, manifest=dict(frozen.document),
                           manifest_hash=frozen.manifest_hash, created_at=frozen.manifest.created,
                           frozen_by=frozen_by))
    try:
        await session.flush()
    except IntegrityError as exc:
        raise EditionStoreError("number", f"edition {frozen.manifest.number} was frozen "
                                "meanwhile; freeze again", status=409) from exc
    return StoredEdition(frozen, frozen_by, None)


async def changelog_of(session: AsyncSession, number: int) -> Changelog | None:
    current = await get_edition(session, number)
    if current is None:
        return None
    previous = await get_edition(session, number - 1) if number > 1 else None
    return changelog(previous.edition.manifest if previous else None, current.edition.manifest)


def edition_object(stored: StoredEdition) -> dict[str, Any]:
    """What the announcement carries: the edition's identity, not its (large) manifest."""
    manifest = stored.edition.manifest
    return {
        "id": manifest.url,
        "type": "Edition",
        "attributedTo": manifest.hub,
        "name": f"Handbuch, Ausgabe {manifest.number}",
        "editionNumber": manifest.number,
        "url": manifest.url,
        "published": format_timestamp(manifest.created),
        "attachment": [{"type": "Link", "href": f"{manifest.url}/manifest.json",
                        "mediaType": "application/ld+json"},
                       {"type": "Link", "href": f"{manifest.url}.pdf",
                        "mediaType": "application/pdf"}],
        "to": [PUBLIC],
    }


async def publish_edition(
    session: AsyncSession, number: int, config: NodeConfig, keys: NodeKeys, *, now: datetime
) -> str | None:
    """Announce the edition to the hub's followers (once); returns the Create's id."""
    row = await session.get(HubEdition, number)
    if row is None:
        raise EditionStoreError("number", f"no edition {number}", status=404)
    if row.published_at is not None:
        return None
    activity = create(config.actor_url, {**edition_object(_stored(row)), "cc": [config.followers_url]},
                      activity_id=f"{config.base_url}/activities/{uuid.uuid4()}", published=now)
    activity["@context"] = list(DEFAULT_CONTEXT)
    signed = sign_document(activity, keys.ed25519, created=now)
    await record_local_activity(session, signed, await follower_inboxes(session), now=now)
    row.published_at = now
    return str(signed["id"])


# The signed manifest and the keys that verify it, as JSON literals in the dump.
SIGNED_MANIFEST = ox.NamedNode(str(PN.signedManifest))
VERIFICATION_KEYS = ox.NamedNode(str(PN.verificationKeys))
RDF_JSON = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON")


async def signer_documents(session: AsyncSession, stored: StoredEdition,
                           hub_actor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The key parts (id, publicKey, assertionMethod) of the hub's and every author's actor."""
    authors = {c.document.get("attributedTo") for c in stored.edition.manifest.contributions()}
    rows = await session.scalars(select(RemoteActor).where(
        RemoteActor.uri.in_([a for a in authors if isinstance(a, str)])))
    documents = [hub_actor, *(row.document for row in rows if row.document)]
    return [{key: doc[key] for key in ("id", "publicKey", "assertionMethod") if key in doc}
            for doc in documents]


def rdf_dump(stored: StoredEdition, contexts: dict[str, Any],
             signers: Sequence[Mapping[str, Any]], media_type: str = "text/turtle") -> bytes:
    """The manifest as RDF (Turtle or N-Quads). The signed originals ride along as JSON
    literals (``includedContributions`` is ``@json``); so do the signed manifest and the
    signers' keys, so that every proof verifies from the dump alone."""
    document = dict(stored.edition.document)
    quads = JsonLdToQuads(contexts).quads(document, ox.DefaultGraph())
    edition = ox.NamedNode(stored.edition.manifest.url)
    for predicate, value in ((SIGNED_MANIFEST, document), (VERIFICATION_KEYS, list(signers))):
        literal = ox.Literal(json.dumps(value, ensure_ascii=False, sort_keys=True), datatype=RDF_JSON)
        quads.append(ox.Quad(edition, predicate, literal, ox.DefaultGraph()))
    if media_type == "application/n-quads":
        return ox.serialize(quads, format=ox.RdfFormat.N_QUADS)
    return ox.serialize([ox.Triple(q.subject, q.predicate, q.object) for q in quads],
                        format=ox.RdfFormat.TURTLE)


def read_rdf_dump(data: bytes, media_type: str = "application/n-quads") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The signed manifest and the signers' key documents carried in a dump."""
    rdf_format = ox.RdfFormat.N_QUADS if media_type == "application/n-quads" else ox.RdfFormat.TURTLE
    found: dict[str, Any] = {}
    for quad in ox.parse(data, format=rdf_format):
        if quad.predicate in (SIGNED_MANIFEST, VERIFICATION_KEYS) and isinstance(quad.object, ox.Literal):
            found[quad.predicate.value] = json.loads(quad.object.value)
    try:
        return found[SIGNED_MANIFEST.value], found[VERIFICATION_KEYS.value]
    except KeyError as exc:
        raise EditionStoreError("dump", f"no {exc.args[0]} in the RDF dump") from None
