"""Received Follows and Undos of them, so that whether an actor follows does not depend
on the order in which they arrive.

A follower's Undo(Follow) and its next Follow are separate deliveries; they go side by
side, and a retried one comes late, so a receiver may see Follow F2 before Undo(F1), or
an older Follow after a newer one. Every received Follow id and every undone Follow id
is therefore kept (in ``activities``, not local: a ``Follow`` row whose object is the
followed actor, an ``Undo`` row whose object is the undone Follow's id). The rule, the
same whatever the order: **an actor follows while one of its received Follows is not
undone**. A Follow whose Undo came first is never applied; an Undo of one Follow leaves
the follower row alone while another Follow of that actor stands.

A relation can also end without an Undo: the follower's actor is deleted, or we refuse
its Follow. The follower never undoes such a Follow, so its receipt would stand for ever
and keep the actor following after its next Follow and Undo. ``end_follows`` therefore
records the end itself, as an Undo receipt of every Follow received until then.

Receipts are kept for ``[inbox] receipt_retention_days`` and then pruned in settled
pairs (``prune_receipts``, run by ``node.pruning``).

A deleted actor leaves a mark of its own (``record_actor_deleted``), kept for good like
the tombstones of deleted objects: a Follow it sent before its Delete may arrive after it
(a retry), signed with a key this node still holds, and would make it a follower again.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import Activity

FOLLOW = "Follow"
UNDO = "Undo"
DELETE = "Delete"
RECEIPT_TYPES = (FOLLOW, UNDO)


async def _exists(session: AsyncSession, uri: str) -> bool:
    return await session.scalar(select(Activity.id).where(Activity.uri == uri)) is not None


async def _remember(session: AsyncSession, uri: str, kind: str, actor: str, object_uri: str,
                    *, now: datetime) -> None:
    """Keep the receipt once (a retried item is processed again)."""
    if await _exists(session, uri):
        return
    session.add(Activity(uri=uri, type=kind, actor=actor, object_uri=object_uri,
                         document={"id": uri, "type": kind, "actor": actor,
                                   "object": object_uri},
                         is_local=False, created_at=now))
    await session.flush()


async def was_undone(session: AsyncSession, actor: str, follow_id: str) -> bool:
    query = select(Activity.id).where(Activity.object_uri == follow_id, Activity.type == UNDO,
                                      Activity.actor == actor, Activity.is_local.is_(False))
    return await session.scalar(query.limit(1)) is not None


async def record_follow(session: AsyncSession, actor: str, follow_id: str, followed: str,
                        *, now: datetime) -> bool:
    """Remember a received Follow; False if it was undone before it arrived (ignore it)."""
    if await was_undone(session, actor, follow_id):
        return False
    await _remember(session, follow_id, FOLLOW, actor, followed, now=now)
    return True


async def record_undo(session: AsyncSession, actor: str, undo_id: str, follow_id: str,
                      *, now: datetime) -> None:
    """Remember that ``actor`` undid ``follow_id`` (also before that Follow arrived)."""
    await _remember(session, undo_id, UNDO, actor, follow_id, now=now)


async def standing_follow(session: AsyncSession, actor: str, followed: str,
                          current: str | None) -> str | None:
    """The id of a Follow of ``followed`` by ``actor`` that is not undone, or None.

    ``current`` (the follower row's Follow) is preferred; it counts even without a
    receipt, since rows older than these receipts have none.
    """
    received = list(await session.scalars(
        select(Activity.uri).where(Activity.object_uri == followed, Activity.type == FOLLOW,
                                   Activity.actor == actor, Activity.is_local.is_(False))
        .order_by(Activity.id.desc())))
    candidates = ([current] if current else []) + [uri for uri in received if uri != current]
    if not candidates:
        return None
    undone = set(await session.scalars(
        select(Activity.object_uri).where(Activity.object_uri.in_(candidates),
                                          Activity.type == UNDO, Activity.actor == actor,
                                          Activity.is_local.is_(False))))
    return next((uri for uri in candidates if uri not in undone), None)


async def end_follows(session: AsyncSession, actor: str, followed: str | None,
                      *, now: datetime) -> int:
    """The relation of ``actor`` to ``followed`` (None: to anything) ended without an Undo:
    its actor was deleted, or we refused it. Every received Follow of it that still stands
    is marked undone; returns how many.

    Marked, not deleted: the same Follow delivered again is then ignored like one whose
    Undo came first, and the pruner forgets the pair after the retention window. Follows
    that arrive later are new and count as usual.
    """
    query = select(Activity.uri).where(
        Activity.actor == actor, Activity.type == FOLLOW, Activity.is_local.is_(False))
    if followed is not None:
        query = query.where(Activity.object_uri == followed)
    received = list(await session.scalars(query))
    if not received:
        return 0
    undone = set(await session.scalars(
        select(Activity.object_uri).where(Activity.object_uri.in_(received),
                                          Activity.type == UNDO, Activity.actor == actor,
                                          Activity.is_local.is_(False))))
    standing = [uri for uri in received if uri not in undone]
    for follow_id in standing:
        # Our own id for a receipt no one sent: it cannot meet an id the actor chooses.
        await record_undo(session, actor, f"urn:uuid:{uuid.uuid4()}", follow_id, now=now)
    return len(standing)


def _deleted_mark(actor: str) -> str:
    # Our own id, one per actor, so the check is a lookup in the unique uri index (an
    # actor URL itself may fill the column); not same-origin, so no Undo can remove it.
    return f"urn:praxisnetz:deleted-actor:{hashlib.sha256(actor.encode()).hexdigest()}"


async def record_actor_deleted(session: AsyncSession, actor: str, *, now: datetime) -> None:
    """Remember that ``actor`` sent a Delete of itself (once, also if it is sent again)."""
    await _remember(session, _deleted_mark(actor), DELETE, actor, actor, now=now)


async def actor_deleted(session: AsyncSession, actor: str) -> bool:
    return await _exists(session, _deleted_mark(actor))


async def forget_actor_deleted(session: AsyncSession, actor: str) -> None:
    """The actor answers again at its address (re-created): it is no longer deleted."""
    await session.execute(delete(Activity).where(Activity.uri == _deleted_mark(actor)))


@dataclass(frozen=True)
class ReceiptsPruned:
    undos: int  # Undo receipts past the window
    follows: int  # the Follow receipts they undid


async def prune_receipts(session: AsyncSession, cutoff: datetime, limit: int) -> ReceiptsPruned:
    """Forget settled pairs: Undo receipts received before ``cutoff`` (at most ``limit``)
    together with the Follow receipts they undid.

    A receipt matters only while a delivery it must be ordered against may still come;
    the sender's retries end long before ``cutoff`` (``[inbox] receipt_retention_days``).
    The Undo goes together with its Follow, never alone: without it the Follow would
    stand again. (A Follow is recorded only before its Undo, so it is older still.)
    Follow receipts that are not undone stay whatever their age: one of them may be the
    Follow that stands, for a follower of this node, a hub member or a topic group.
    """
    undos = (await session.execute(
        select(Activity.id, Activity.actor, Activity.object_uri)
        .where(Activity.is_local.is_(False), Activity.type == UNDO, Activity.created_at < cutoff)
        .limit(limit))).all()
    if not undos:
        return ReceiptsPruned(undos=0, follows=0)
    undone = {(actor, follow_id) for _, actor, follow_id in undos}
    follows = (await session.execute(
        select(Activity.id, Activity.actor, Activity.uri)
        .where(Activity.is_local.is_(False), Activity.type == FOLLOW,
               Activity.uri.in_([follow_id for _, follow_id in undone])))).all()
    # only the undoing actor's own Follow (an Undo by someone else never undid it)
    follow_ids = [row_id for row_id, actor, uri in follows if (actor, uri) in undone]
    await session.execute(delete(Activity).where(
        Activity.id.in_([row_id for row_id, _, _ in undos] + follow_ids)))
    return ReceiptsPruned(undos=len(undos), follows=len(follow_ids))
