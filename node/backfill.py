"""Backfill: when our Follow is accepted, read the followed actor's outbox history.

Paging follows the collection's own ``first``/``next`` links (servers disagree about
paging parameters, so URLs are never built here), stops on a repeated page and is
bounded in pages and items. Every item goes through the same rules as the inbox:
objects must share the actor's origin (``node.remote_objects``), and a relayed
object is only stored when its author's proof holds or it was fetched from its origin.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.origin import same_origin
from federation.proofs import ProofVerdict
from node.inbox_processing import InboxProcessor, carried_object
from node.remote import RemoteDirectory, RemoteError
from node.remote_objects import (
    ObjectResult,
    ObjectVerdict,
    apply_create,
    apply_delete,
    apply_update,
    reference,
)
from node.storage.models import BackfillState, Following, FollowingState

log = logging.getLogger("praxisnetz.backfill")


@dataclass(frozen=True)
class BackfillLimits:
    max_pages: int = 20
    max_items: int = 1000


class StopReason(enum.Enum):
    END = "end"  # no next page
    REPEATED_PAGE = "repeated_page"
    PAGE_LIMIT = "page_limit"
    ITEM_LIMIT = "item_limit"
    FAILED = "failed"


@dataclass(frozen=True)
class BackfillReport:
    target: str
    pages: int
    stored: int
    refused: int
    stopped: StopReason
    detail: str = ""


def _link(value: object) -> str | None:
    return reference(value)


def page_items(page: Mapping[str, Any]) -> list[object]:
    items = page.get("orderedItems", page.get("items", []))
    return list(items) if isinstance(items, list) else [items]


class Backfiller:
    """Reads one followed actor's outbox into ``remote_objects``."""

    def __init__(
        self,
        *,
        session_maker: async_sessionmaker[AsyncSession],
        directory: RemoteDirectory,
        processor: InboxProcessor,
        clock: Callable[[], datetime],
        limits: BackfillLimits = BackfillLimits(),  # noqa: B008 - frozen
    ) -> None:
        self._sessions = session_maker
        self._directory = directory
        self._processor = processor
        self._clock = clock
        self._limits = limits

    async def pending(self) -> list[int]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(Following.id).where(
                    Following.backfill_state == BackfillState.PENDING.value,
                    Following.state == FollowingState.ACCEPTED.value,
                )
            )
            return [row_id for (row_id,) in rows]

    async def run_pending(self) -> list[BackfillReport]:
        return [await self.backfill(following_id) for following_id in await self.pending()]

    async def _set_state(self, following_id: int, state: BackfillState,
                         cursor: str | None = None) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Following, following_id)
            if row is not None:
                row.backfill_state = state.value
                if cursor is not None:
                    row.backfill_cursor = cursor

    async def backfill(self, following_id: int) -> BackfillReport:
        async with self._sessions() as session:
            row = await session.get(Following, following_id)
            target = row.target_uri if row is not None else ""
        if not target:
            return BackfillReport("", 0, 0, 0, StopReason.FAILED, "follow relation gone")
        await self._set_state(following_id, BackfillState.RUNNING)
        try:
            report = await self.read_outbox(target, following_id)
        except RemoteError as exc:
            report = BackfillReport(target, 0, 0, 0, StopReason.FAILED, str(exc))
        final = BackfillState.FAILED if report.stopped is StopReason.FAILED else BackfillState.DONE
        await self._set_state(following_id, final)
        log.info("backfill target=%s pages=%s stored=%s refused=%s stopped=%s %s",
                 report.target, report.pages, report.stored, report.refused,
                 report.stopped.value, report.detail)
        return report

    async def read_outbox(self, target: str, following_id: int | None = None) -> BackfillReport:
        actor = await self._directory.actor(target)
        if actor.outbox is None:
            return BackfillReport(target, 0, 0, 0, StopReason.END, "actor has no outbox")
        collection = await self._directory.fetch(actor.outbox)
        first = collection.get("first")
        page: Mapping[str, Any] | None = collection if "orderedItems" in collection or \
            "items" in collection else None
        next_url = None if page is not None else _link(first)
        if page is None and isinstance(first, Mapping) and "orderedItems" in first:
            page, next_url = first, None  # an embedded first page
        seen: set[str] = set()
        pages = stored = refused = 0
        while True:
            if page is None:
                if next_url is None:
                    return BackfillReport(target, pages, stored, refused, StopReason.END)
                if next_url in seen:
                    return BackfillReport(target, pages, stored, refused, StopReason.REPEATED_PAGE)
                if pages >= self._limits.max_pages:
                    return BackfillReport(target, pages, stored, refused, StopReason.PAGE_LIMIT)
                if not same_origin(next_url, target):
                    return BackfillReport(target, pages, stored, refused, StopReason.FAILED,
                                          f"next page {next_url} is not on the actor's origin")
                seen.add(next_url)
                page = await self._directory.fetch(next_url)
                if following_id is not None:
                    await self._set_state(following_id, BackfillState.RUNNING, cursor=next_url)
            pages += 1
            for item in page_items(page):
                if stored + refused >= self._limits.max_items:
                    return BackfillReport(target, pages, stored, refused, StopReason.ITEM_LIMIT)
                result = await self.store_item(target, item)
                if result is None:
                    continue
                if result.accepted:
                    stored += 1
                else:
                    refused += 1
            next_url = _link(page.get("next"))
            page = None

    async def store_item(self, target: str, item: object) -> ObjectResult | None:
        """Apply one outbox item; None for items that carry no content (Follow, Like…)."""
        if not isinstance(item, Mapping):
            return None
        kind = item.get("type")
        actor = reference(item.get("actor")) or target
        if actor != target:
            return None  # an outbox only speaks for its own actor
        obj = item.get("object")
        if kind == "Delete" and reference(obj):
            async with self._sessions() as session, session.begin():
                return await apply_delete(session, actor, reference(obj), now=self._clock())
        if kind == "Announce" and obj is not None:
            trusted = await self._processor.trusted_relayed_object(actor, obj)
            trusted = carried_object(trusted) if trusted is not None else None  # FEP-1b12
            author = reference(trusted.get("attributedTo")) if trusted else None
            if trusted is None or author is None:
                return None
            return await self._store(author, trusted, "Create")
        if kind not in ("Create", "Update"):
            return None
        if isinstance(obj, str) and same_origin(obj, actor):
            obj = await self._directory.fetch(obj)
        if not isinstance(obj, Mapping):
            return None
        proof = await self._processor.verify_proof(obj)
        if proof is not None and proof.verdict in (ProofVerdict.BAD_PROOF,
                                                   ProofVerdict.AUTHOR_MISMATCH):
            # Altered or misattributed after signing: never store it.
            return ObjectResult(ObjectVerdict.REFUSED_AUTHOR, reference(obj),
                                f"proof does not hold: {proof.verdict.value}")
        return await self._store(actor, obj, str(kind))

    async def _store(self, actor: str, obj: Mapping[str, Any], kind: str) -> ObjectResult:
        async with self._sessions() as session, session.begin():
            if kind == "Update":
                return await apply_update(session, actor, obj, now=self._clock())
            return await apply_create(session, actor, obj, now=self._clock())
