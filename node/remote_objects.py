"""Other nodes' objects in ``remote_objects``: create, update and delete under the origin rules.

Used by the inbox worker and by backfill, so both obey the same rules:
- an object may only be created, updated or deleted by an actor of its own origin
  (``federation.origin.may_act_on``), and updated or deleted only by its stored author;
- an Update older than the stored version (``updated``) is ignored; of two different
  versions with the same ``updated`` the one with the greater content hash is kept, so
  every receiver ends with the same version whatever the order of arrival;
- a Delete of an unknown object leaves a tombstone row (nothing is fetched), and a
  tombstone refuses any later Create or Update of that id;
- a Practice, Experience, Stance, Material or Comment is stored only if it passes the
  vocabulary's shapes (``vocab.validate``): readers (the hub index, the pages, the
  replies) rely on what the shapes promise, so an off-shape version is refused and the
  stored one, if any, stays.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from federation.origin import OriginVerdict, may_act_on
from federation.timestamps import TimestampError, parse_timestamp
from node.storage.models import RemoteObject

# ActivityStreams display types; the more specific (our) type is the object's kind.
_GENERIC_TYPES = frozenset({"Article", "Note", "Document", "Page", "Object"})
# The vocabulary's object types (compact names; also recognised as pn: or full IRIs).
VOCABULARY_KINDS = frozenset({"Practice", "Experience", "Stance", "Material", "Comment"})
_VOCABULARY_PREFIXES = ("https://w3id.org/praxisnetz#", "pn:")


class ObjectVerdict(enum.Enum):
    STORED = "stored"
    UPDATED = "updated"
    DELETED = "deleted"
    TOMBSTONE_RECORDED = "tombstone_recorded"  # Delete of an object never seen
    DUPLICATE = "duplicate"  # the same version again
    STALE = "stale"  # an Update not newer than what is stored
    REFUSED_DELETED = "refused_deleted"  # a tombstone blocks this id
    REFUSED_ORIGIN = "refused_origin"  # object id not on the actor's origin
    REFUSED_AUTHOR = "refused_author"  # attributedTo / stored author is someone else
    REFUSED_SHAPES = "refused_shapes"  # one of our types, but it fails the vocabulary shapes
    MALFORMED = "malformed"


_ACCEPTED = frozenset({
    ObjectVerdict.STORED, ObjectVerdict.UPDATED, ObjectVerdict.DELETED,
    ObjectVerdict.TOMBSTONE_RECORDED, ObjectVerdict.DUPLICATE, ObjectVerdict.STALE,
})


@dataclass(frozen=True)
class ObjectResult:
    verdict: ObjectVerdict
    object_id: str | None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """True when the activity was handled as the rules say (even if it changed nothing)."""
        return self.verdict in _ACCEPTED


def reference(value: object) -> str | None:
    """The id of a link that is given either as a string or as an object with ``id``."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def object_kind(document: Mapping[str, Any]) -> str | None:
    kinds = document.get("type")
    names = [k for k in (kinds if isinstance(kinds, list) else [kinds]) if isinstance(k, str)]
    specific = [name for name in names if name not in _GENERIC_TYPES]
    return (specific or names or [None])[0]


def _timestamp(document: Mapping[str, Any], name: str) -> datetime | None:
    value = document.get(name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except TimestampError:
        return None


def with_context(document: Mapping[str, Any], context: object) -> Mapping[str, Any]:
    """The object with the ``@context`` it was read in, so that it stands on its own
    (an embedded object inherits the activity's; the hub index needs one)."""
    if "@context" in document or context is None:
        return document
    return {"@context": context, **document}


def vocabulary_kind(document: Mapping[str, Any]) -> str | None:
    """Which of the vocabulary's types the object claims, if any."""
    kinds = document.get("type")
    for name in kinds if isinstance(kinds, list) else [kinds]:
        if isinstance(name, str):
            local = name
            for prefix in _VOCABULARY_PREFIXES:
                local = local.removeprefix(prefix)
            if local in VOCABULARY_KINDS:
                return local
    return None


def shape_problems(document: Mapping[str, Any]) -> list[str]:
    """Why an object of the vocabulary's types fails its shapes; [] if it passes (or is
    not of those types: a Note is not ours to check)."""
    kind = vocabulary_kind(document)
    if kind is None:
        return []
    # why lazy: rdflib and pyld (~0.3 s) only once a contribution arrives, not at start
    from vocab.validate import validate

    report = validate(dict(document), reference(document))
    if not report.checked_types:
        return [f"type: {kind} is not defined by the object's @context (the Praxisnetz "
                "context is missing), so it is not a Praxisnetz object"]
    return [f"{problem.field}: {problem.message_en}" for problem in report.violations]


def problems_before_storing(actor: str, document: Mapping[str, Any]) -> list[str] | None:
    """The document's ``shape_problems`` found ahead of ``create_object`` or
    ``update_object``; None (not looked for) when its origin or ``attributedTo`` already
    refuses it, so a refused object costs no validation, as before."""
    if _check_author(actor, "Create", document, None) is not None:
        return None
    return shape_problems(document)


def _refused_shapes(object_id: str | None, document: Mapping[str, Any],
                    problems: list[str] | None) -> ObjectResult | None:
    if problems is None:
        problems = shape_problems(document)
    if not problems:
        return None
    return ObjectResult(ObjectVerdict.REFUSED_SHAPES, object_id,
                        "fails the vocabulary shapes: " + "; ".join(problems))


def version_of(document: Mapping[str, Any]) -> datetime | None:
    """When this version was made: ``updated``, else ``published``."""
    return _timestamp(document, "updated") or _timestamp(document, "published")


def content_hash(document: Mapping[str, Any] | None) -> str:
    """SHA-256 of the document as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def wins_tie(incoming: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Of two versions with the same ``updated``, whether the incoming one replaces the stored.

    Arrival order differs between receivers (parallel deliveries, retries, backfill), so
    "the later arrival wins" would leave followers with different versions. A rule on the
    documents alone converges: every receiver keeps the one with the greater hash.
    """
    return stored is None or content_hash(incoming) > content_hash(stored)


@dataclass(frozen=True)
class StoredObject:
    """What the rules read of a stored ``remote_objects`` row."""

    attributed_to: str | None
    deleted: bool
    document: dict[str, Any] | None
    updated: datetime | None


_OBJECTS = RemoteObject.__table__
_FIND = select(_OBJECTS.c.attributed_to, _OBJECTS.c.deleted, _OBJECTS.c.document,
               _OBJECTS.c.updated).where(_OBJECTS.c.uri == bindparam("uri"))


# Built once: a statement whose values come as parameters is compiled once and cached;
# ``.values(**columns)`` made a new statement (and cache key) for every row.
_INSERT = insert(_OBJECTS)
_UPDATE = update(_OBJECTS).where(_OBJECTS.c.uri == bindparam("object_uri"))


def find(connection: Connection, object_id: str) -> StoredObject | None:
    row = connection.execute(_FIND, {"uri": object_id}).first()
    return None if row is None else StoredObject(*row)


def _check_author(actor: str, activity_type: str, document: Mapping[str, Any],
                  stored: StoredObject | None) -> ObjectResult | None:
    object_id = reference(document)
    if object_id is None:
        return ObjectResult(ObjectVerdict.MALFORMED, None, "object has no id")
    verdict = may_act_on(actor, activity_type, object_id,
                         object_author=stored.attributed_to if stored is not None else None)
    if verdict is OriginVerdict.FOREIGN_OBJECT or verdict is OriginVerdict.INVALID_URL:
        return ObjectResult(ObjectVerdict.REFUSED_ORIGIN, object_id,
                            f"{actor} may not {activity_type.lower()} {object_id}: {verdict.value}")
    if verdict is not OriginVerdict.ALLOWED:
        return ObjectResult(ObjectVerdict.REFUSED_AUTHOR, object_id,
                            f"{object_id} belongs to {stored.attributed_to if stored else '?'}")
    # every listed author counts: [actor, someone else] would make the actor speak for them
    authors = document.get("attributedTo")
    for entry in authors if isinstance(authors, list) else [authors]:
        author = reference(entry)
        if (entry is not None and author is None) or (author is not None and author != actor):
            return ObjectResult(ObjectVerdict.REFUSED_AUTHOR, object_id,
                                f"attributedTo names {author or entry!r}, but the actor is {actor}")
    return None


def _columns(actor: str, document: Mapping[str, Any], now: datetime) -> dict[str, object]:
    """The row's columns for this version of the object."""
    return {"kind": object_kind(document),
            "attributed_to": reference(document.get("attributedTo")) or actor,
            "in_reply_to": reference(document.get("inReplyTo")),
            "about": reference(document.get("about")), "document": dict(document),
            "published": _timestamp(document, "published"), "updated": version_of(document),
            "received_at": now}


def create_object(connection: Connection, actor: str, document: Mapping[str, Any],
                  *, now: datetime, problems: list[str] | None = None) -> ObjectResult:
    """Store a new remote object (a Create, or a trusted relayed or backfilled copy), in
    the caller's transaction (Core statements: no ORM objects, no flush).

    ``problems``: the document's ``shape_problems`` if the caller found them already
    (the inbox worker, before the transaction: validating takes 1–2 ms of CPU, which
    then holds neither the write lock nor the inbox writer's thread); else found here,
    when the rules come to them."""
    object_id = reference(document)
    stored = find(connection, object_id) if object_id else None
    refused = _check_author(actor, "Create", document, stored)
    if refused is not None:
        return refused
    if stored is not None:
        if stored.deleted:
            return ObjectResult(ObjectVerdict.REFUSED_DELETED, object_id, "deleted before")
        return _update_stored(connection, actor, document, stored, now=now, problems=problems)
    refused = _refused_shapes(object_id, document, problems)
    if refused is not None:
        return refused
    connection.execute(_INSERT, {"uri": object_id, "deleted": False,
                                 **_columns(actor, document, now)})
    return ObjectResult(ObjectVerdict.STORED, object_id)


def update_object(connection: Connection, actor: str, document: Mapping[str, Any],
                  *, now: datetime, problems: list[str] | None = None) -> ObjectResult:
    """Replace a remote object by a newer version (an Update), in the caller's transaction
    (``problems`` as for ``create_object``)."""
    object_id = reference(document)
    stored = find(connection, object_id) if object_id is not None else None
    refused = _check_author(actor, "Update", document, stored)
    if refused is not None:
        return refused
    if stored is None:
        return create_object(connection, actor, document, now=now, problems=problems)
    return _update_stored(connection, actor, document, stored, now=now, problems=problems)


def _update_stored(connection: Connection, actor: str, document: Mapping[str, Any],
                   stored: StoredObject, *, now: datetime,
                   problems: list[str] | None) -> ObjectResult:
    object_id = reference(document)
    refused = _check_author(actor, "Update", document, stored)
    if refused is not None:
        return refused
    if stored.deleted:
        return ObjectResult(ObjectVerdict.REFUSED_DELETED, object_id, "deleted before")
    incoming, current = version_of(document), stored.updated
    if current is not None and (incoming is None or incoming < current):
        return ObjectResult(ObjectVerdict.STALE, object_id,
                            f"stored version {current.isoformat()} is newer")
    if stored.document == dict(document):
        return ObjectResult(ObjectVerdict.DUPLICATE, object_id, "same version")
    if incoming == current and not wins_tie(document, stored.document):
        return ObjectResult(ObjectVerdict.STALE, object_id,
                            "same updated as the stored version, which wins the tie")
    refused = _refused_shapes(object_id, document, problems)
    if refused is not None:
        return refused
    connection.execute(_UPDATE, {"object_uri": object_id, **_columns(actor, document, now)})
    return ObjectResult(ObjectVerdict.UPDATED, object_id)


def delete_object(connection: Connection, actor: str, object_id: str,
                  *, now: datetime) -> ObjectResult:
    """Mark the object deleted; an unknown id gets a tombstone, without any fetch."""
    stored = find(connection, object_id)
    refused = _check_author(actor, "Delete", {"id": object_id}, stored)
    if refused is not None:
        return refused
    if stored is None:
        connection.execute(_INSERT, {"uri": object_id, "attributed_to": actor, "deleted": True,
                                     "document": None, "received_at": now, "updated": now})
        return ObjectResult(ObjectVerdict.TOMBSTONE_RECORDED, object_id)
    if stored.deleted:
        return ObjectResult(ObjectVerdict.DUPLICATE, object_id, "already deleted")
    connection.execute(_UPDATE, {"object_uri": object_id, "deleted": True, "document": None,
                                 "updated": now})
    return ObjectResult(ObjectVerdict.DELETED, object_id)


# The same rules in an async session's transaction (backfill): one hand-off to run_sync.

async def apply_create(session: AsyncSession, actor: str, document: Mapping[str, Any],
                       *, now: datetime) -> ObjectResult:
    return await session.run_sync(
        lambda sync: create_object(sync.connection(), actor, document, now=now))


async def apply_update(session: AsyncSession, actor: str, document: Mapping[str, Any],
                       *, now: datetime) -> ObjectResult:
    return await session.run_sync(
        lambda sync: update_object(sync.connection(), actor, document, now=now))


async def apply_delete(session: AsyncSession, actor: str, object_id: str,
                       *, now: datetime) -> ObjectResult:
    return await session.run_sync(
        lambda sync: delete_object(sync.connection(), actor, object_id, now=now))


ObjectOperation = Callable[..., ObjectResult]  # create_object, update_object, delete_object


@dataclass(frozen=True)
class ObjectChange:
    """What the inbox worker decided to do to ``remote_objects``: applied later, in a
    transaction with the other changes of its batch, where the rules above check it
    against the stored row. ``target`` is the object, or the id of the object to delete."""

    operation: ObjectOperation
    actor: str
    target: Mapping[str, Any] | str

    def apply(self, connection: Connection, now: datetime) -> ObjectResult:
        return self.operation(connection, self.actor, self.target, now=now)


@dataclass(frozen=True)
class ObjectVersion(ObjectChange):
    """A create or update, with the object's shape problems found before the
    transaction (``problems_before_storing``)."""

    problems: list[str] | None = None

    @classmethod
    def of(cls, operation: ObjectOperation, actor: str,
           document: Mapping[str, Any]) -> ObjectVersion:
        return cls(operation, actor, document, problems_before_storing(actor, document))

    def apply(self, connection: Connection, now: datetime) -> ObjectResult:
        return self.operation(connection, self.actor, self.target, now=now,
                              problems=self.problems)
