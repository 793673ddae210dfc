"""Aggregation: approved members' contributions from SQL into the RDF index and search.

SQL (``remote_objects``) is the source of truth; the inbox and backfill write there.
The ``Aggregator`` catches the derived indexes up with it from a watermark kept in
``hub_index_state``: the inbox hook wakes it after each processed activity (while
woken again and again it syncs at most every ``MIN_SYNC_INTERVAL``, and once after the
last wake), and it also polls, so objects that arrive by backfill (which has no hook) are indexed too.
A member approved later gets its whole history indexed at once; one who left is
dropped. ``rebuild`` starts both indexes afresh from SQL (``praxisnetz hub reindex``).
Only the process holding the on-disk index (the web process) moves the SQL watermark;
an aggregator without the index keeps its own in memory (a ``praxisnetz worker`` of the
hub runs none: it answers no requests).

``run`` fills the indexes first (``start``), in the background: a national hub reads SQL
for half a minute at every start (the in-memory search) and for a minute and a half when
the RDF index is rebuilt, and answers everything else meanwhile. ``readiness`` says which
queries would see only part of the documents until then; the web layer answers those 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, cast, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.hub.contribution import ContributionFormatError, ContributionView, view_of
from node.hub.index import HubIndex, IndexInputError, RebuildReport
from node.hub.search_backends import SearchBackend
from node.hub.search_snapshot import SearchSnapshot, SnapshotVerdict, accept_for
from node.hub.tables import HubIndexState, HubMember, HubMembershipVersion, MemberState
from node.hub.warm_answers import QUIET_SECONDS, AnswerWarmer
from node.storage.db import READS_ONLY
from node.storage.models import InboxItem, InboxState, RemoteObject

log = logging.getLogger("praxisnetz.hub.aggregation")

POLL_SECONDS = 2.0
# While woken again and again (a burst of Creates: the inbox hook wakes it per item), a
# sync starts at most this long after the previous one began: tens of syncs a burst, not
# one per item (each is four queries even when no member's object changed).
MIN_SYNC_INTERVAL = 0.15
PAGE_SIZE = 5_000  # documents read from SQL at a time during a rebuild
# Transactions that commit a little after the watermark was taken still get seen.
OVERLAP = timedelta(seconds=5)
# received_at comparisons are strict; one tick below an in-flight item's time keeps it in.
TICK = timedelta(microseconds=1)
STATE_ROW = 1
FILL_RETRY_SECONDS = 30.0  # a start-up fill that failed (the database away) is tried again


class FillStopped(Exception):
    """The hub stopped while the indexes were being filled."""


@dataclass(frozen=True)
class Readiness:
    """Which queries see every document now; a fill's progress while one is under way."""

    search: bool  # the search holds every approved member's documents
    sparql: bool  # the RDF index is not being rebuilt
    documents_read: int = 0
    documents_expected: int | None = None


@dataclass(frozen=True)
class SyncReport:
    indexed: int
    removed: int
    skipped: int
    new_members: int


def next_watermark(started: datetime, oldest_in_flight: datetime | None,
                   previous: datetime | None) -> datetime:
    """Where the next sync starts reading ``received_at`` from.

    An object is stamped while its inbox item is being processed and committed a moment
    later; a sync that ran in between did not see it, and a watermark past the stamp would
    skip it for good (a slow transaction, or a clock step: the soak's one missing
    contribution). So the watermark stays below every item still being processed — each
    such item's object will be stamped no earlier than the item arrived — and never moves
    back: an item claimed after this sync read the items is stamped after that, too.
    """
    until = started - OVERLAP
    if oldest_in_flight is not None and oldest_in_flight - TICK < until:
        until = oldest_in_flight - TICK
    return until if previous is None or until > previous else previous


async def _oldest_in_flight(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(InboxItem.received_at)).where(
        InboxItem.state == InboxState.PROCESSING.value))


_APPROVED_MEMBERS = select(HubMember.actor_uri).where(HubMember.state == MemberState.APPROVED.value)


def _approved_objects() -> Any:
    return (
        select(RemoteObject)
        .join(HubMember, HubMember.actor_uri == RemoteObject.attributed_to)
        .where(HubMember.state == MemberState.APPROVED.value)
    )


async def _changed_since(session: AsyncSession, since: datetime | None,
                         approved: set[str]) -> list[RemoteObject]:
    """The ``approved`` members' objects received after ``since`` (a new version) or
    deleted after it, each once; all of them without ``since``. Two queries, each read
    through its index (migration 0011), the members checked here: their OR, joined to
    the members, read every approved member's objects at each sync (333-537 ms on SQLite,
    ~100 ms on PostgreSQL with 231,000 documents; joined, SQLite still chose that path)."""
    if since is None:
        return list(await session.scalars(_approved_objects()))
    changed: dict[int, RemoteObject] = {}
    for condition in (RemoteObject.received_at > since,
                      and_(RemoteObject.deleted.is_(True), RemoteObject.updated > since)):
        rows = await session.scalars(select(RemoteObject).where(condition))
        changed.update((row.id, row) for row in rows if row.attributed_to in approved)
    return list(changed.values())


async def member_documents(
    session: AsyncSession, members: Iterable[str] | None = None
) -> list[tuple[str, Mapping[str, Any]]]:
    """(member actor, signed document) of every live object of approved members."""
    query = _live_member_objects(RemoteObject)
    if members is not None:
        query = query.where(RemoteObject.attributed_to.in_(list(members)))
    rows = await session.scalars(query.order_by(RemoteObject.attributed_to, RemoteObject.id))
    return [(row.attributed_to, row.document) for row in rows if row.document and row.attributed_to]


async def member_document_pages(
    session: AsyncSession, page_size: int = PAGE_SIZE
) -> AsyncIterator[list[tuple[str, Mapping[str, Any]]]]:
    """The same documents as ``member_documents``, in pages of ``page_size``, streamed
    from SQL: only the two columns, no ORM objects, never all documents at once. The
    ``session`` must not have begun: its transaction only reads (``READS_ONLY``), so on
    SQLite the inbox and the workers write while the pages are read. The documents are
    read as text and parsed on a thread: on the event loop, 5,000 of them kept every
    request waiting."""
    await session.connection(execution_options=READS_ONLY)
    query = (
        _live_member_objects(RemoteObject.attributed_to, cast(RemoteObject.document, Text))
        .order_by(RemoteObject.attributed_to, RemoteObject.id)
        .execution_options(yield_per=page_size)
    )
    result = await session.stream(query)
    async for page in result.partitions(page_size):
        yield await asyncio.to_thread(_parsed, page)


def _parsed(page: Iterable[Any]) -> list[tuple[str, Mapping[str, Any]]]:
    parsed = []
    for member, text in page:
        document = json.loads(text) if text else None
        if document and member:
            parsed.append((member, document))
    return parsed


def _live_member_objects(*columns: Any) -> Any:
    """``columns`` of the approved members' objects that are not deleted."""
    return (
        select(*columns)
        .join(HubMember, HubMember.actor_uri == RemoteObject.attributed_to)
        .where(HubMember.state == MemberState.APPROVED.value, RemoteObject.deleted.is_(False))
    )


async def _live_document_count(session: AsyncSession) -> int:
    """How many documents ``member_document_pages`` will read (for the fill's progress)."""
    return int(await session.scalar(_live_member_objects(func.count(RemoteObject.id))) or 0)


def _views(documents: Iterable[tuple[str, Mapping[str, Any]]]) -> list[ContributionView]:
    views = []
    for _, document in documents:
        try:
            views.append(view_of(document))
        except ContributionFormatError:
            continue  # the RDF index reports it; search simply leaves it out
    return views


class Aggregator:
    """Keeps the RDF index (when this process holds it) and the search index current."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        index: HubIndex | None,
        search: SearchBackend,
        clock: Callable[[], datetime],
        warm_after: float | None = QUIET_SECONDS,
        min_interval: float = MIN_SYNC_INTERVAL,
        snapshot: SearchSnapshot | None = None,
    ) -> None:
        self._sessions = sessions
        self.index = index
        self.search = search
        # the search's file from the last clean stop (node.hub.search_snapshot)
        self._snapshot = snapshot
        self._clock = clock
        self._members: set[str] = set()
        # hub_membership_version when ``_members`` was last read from SQL (None: the
        # members are the index's, which may differ from SQL's, until a sync reads them)
        self._members_version: int | None = None
        self._since: datetime | None = None
        self._wake = asyncio.Event()
        self._min_interval = min_interval
        self._lock = asyncio.Lock()
        # The example queries' answers, made ready once the index is quiet (warm_answers).
        self._warmer = AnswerWarmer(quiet_seconds=warm_after) if warm_after is not None else None
        self._warming: asyncio.Future[int] | None = None
        self._stop: asyncio.Event | None = None  # the hub's, once ``run`` has it
        self._filled = False  # ``start`` has filled the indexes (False again if a rebuild failed)
        # Set once the start's fill and a sync after it are done: the hub is caught up.
        self.caught_up = asyncio.Event()
        self._search_whole = False  # a refill of the search has ended
        self._index_whole = False  # ``start`` found the index whole, or a rebuild ended
        self._progress: tuple[int, int | None] = (0, None)
        self._synced = False  # the last sync ended without an error

    @property
    def readiness(self) -> Readiness:
        """A search backend that kept its rows from before the start (PostgreSQL)
        answers in full during the start's refill; the in-memory one is empty until its
        first refill ends."""
        read, expected = self._progress
        return Readiness(search=self._search_whole,
                         sparql=self._index_whole, documents_read=read,
                         documents_expected=expected)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """Fill the search index; rebuild the RDF index if it is empty or lacks its record
        of statements about other nodes (``HubIndex.claims_complete``), else catch up."""
        await self._fill()
        await self.sync()
        self.caught_up.set()

    async def _fill(self) -> None:
        async with self._lock:
            await self._fill_at_start()
        self._filled = True

    async def _fill_at_start(self) -> None:
        started = self._clock()
        # An index without its record of what documents state about other nodes (written
        # before that record was kept, or the file lost), or with one that may be a write
        # behind (the hub stopped during a write: ``claims_record``), is rebuilt once, so
        # that removing a document removes exactly what it added from then on.
        incomplete = (self.index is not None and not self.index.is_empty()
                      and not self.index.claims_complete)
        if incomplete:
            log.warning("index has no whole record of its documents' statements about "
                        "other nodes (none, or a write behind): rebuilding it once from SQL")
        rebuild_index = self.index is not None and (self.index.is_empty() or incomplete)
        self._index_whole = self.index is not None and not rebuild_index
        self._search_whole = self._search_whole or await self.search.kept_from_before()
        async with self._sessions() as session:
            approved = set(await session.scalars(_APPROVED_MEMBERS))
            in_flight = await _oldest_in_flight(session)
            watermark = await self._watermark(session)
        # The members are those the index holds, not those SQL approves: a member dropped
        # from the index and approved again before a sync saw it (or before a crash) is
        # new to the first sync, which loads its history again; one still in the index
        # but no longer approved is dropped by it.
        index = self.index
        self._members = set(await asyncio.to_thread(index.members)) \
            if index is not None and not rebuild_index else approved
        self._members_version = None
        if not rebuild_index and await self._restore_search(watermark):
            return
        # An empty index stays untouched while SQL has nothing for it either.
        _, documents = await self._refill(rebuild_index=rebuild_index, even_if_empty=incomplete)
        if self.index is None or (rebuild_index and documents):
            # All of SQL is in now, but for objects still being committed.
            await self._save_watermark(next_watermark(started, in_flight, None))

    async def _restore_search(self, watermark: datetime | None) -> bool:
        """The search as the snapshot of the last clean stop holds it, if that is still
        its state; False (the search is to be filled from SQL) if there is none or not."""
        if self._snapshot is None:
            return False
        holder = self.index is not None
        reading = await self._snapshot.restore(
            accept_for(watermark, frozenset(self._members)) if holder else accept_for(None, None))
        if reading.verdict is not SnapshotVerdict.LOADED or reading.stamp is None:
            log.info("hub fills its search from SQL: its snapshot %s (%s)",
                     self._snapshot.path, reading.verdict.value)
            return False
        if not holder:  # its own watermark: where the snapshot's search is
            self._members, self._since = set(reading.stamp.members), reading.stamp.watermark
        self._search_whole = True
        log.info("hub search as at its clean stop, from its snapshot contributions=%s",
                 reading.contributions)
        return True

    async def save_search_snapshot(self) -> None:
        """At a clean stop (nothing syncs any more): the search into its snapshot, if this
        process holds the RDF index and both indexes are whole and synced."""
        index = self.index
        if (self._snapshot is None or index is None or not self._filled or not self._synced
                or not self._search_whole or not self._index_whole):
            return
        began = asyncio.get_running_loop().time()
        async with self._lock:
            try:
                async with self._sessions() as session:
                    watermark = await self._watermark(session)
                members = frozenset(await asyncio.to_thread(index.members))
                pages = await self._snapshot.save(watermark, members)
            except (OSError, SQLAlchemyError) as exc:  # the next start fills from SQL
                log.warning("hub search snapshot not written path=%s error=%r",
                            self._snapshot.path, exc)
                return
        log.info("hub search snapshot written pages=%s seconds=%.1f", pages,
                 asyncio.get_running_loop().time() - began)

    async def rebuild(self) -> RebuildReport:
        """Both indexes afresh from SQL; the watermark moves to now."""
        async with self._lock:
            started = self._clock()
            async with self._sessions() as session:
                in_flight = await _oldest_in_flight(session)
            try:
                report, _ = await self._refill(rebuild_index=self.index is not None,
                                               even_if_empty=True)
            except BaseException:
                self._filled = False  # the index is part rebuilt: ``run`` fills it again
                raise
            await self._save_watermark(next_watermark(started, in_flight, None))
        return report

    async def _refill(self, *, rebuild_index: bool, even_if_empty: bool) -> tuple[RebuildReport, int]:
        """Search, and the RDF index if asked, afresh from SQL, reading a page at a time
        (a national hub's documents do not fit in memory at once); the report and the
        number of documents read. Stopped part way (``FillStopped``, or an error), the
        search keeps what it held and a rebuilt index stays marked incomplete, so that
        the next start rebuilds it."""
        read = 0
        index = self.index if rebuild_index else None
        what = "search index and RDF index" if index is not None else "search index"
        # A national hub's first start reads for minutes (~90 s for 231,000 documents):
        # the operator sees why its search does not answer yet.
        log.info("hub filling its %s from SQL", what)
        began = asyncio.get_running_loop().time()
        if index is not None:
            self._index_whole = False
        async with self._sessions() as session:
            self._progress = (0, await _live_document_count(session))
        rebuild = await asyncio.to_thread(index.start_rebuild) \
            if index is not None and even_if_empty else None
        whole = False
        try:
            # The search takes a page at a time too; what the pages held is what it holds
            # afterwards, and an error on the way leaves it as it was.
            async with self._sessions() as session, self.search.refill() as search:
                async for page in member_document_pages(session):
                    if self._stop is not None and self._stop.is_set():
                        log.info("hub stopped filling its %s documents=%s", what, read)
                        raise FillStopped
                    read += len(page)
                    # 5,000 documents parsed: off the event loop, which answers requests
                    await search.add(await asyncio.to_thread(_views, page))
                    if index is not None and rebuild is None:
                        rebuild = await asyncio.to_thread(index.start_rebuild)
                    if rebuild is not None:
                        await asyncio.to_thread(rebuild.add, page)
                    self._progress = (read, self._progress[1])
            whole = True
        finally:
            report = await asyncio.to_thread(rebuild.finish, whole=whole) \
                if rebuild is not None else RebuildReport(0, ())
        for skipped in report.skipped:
            log.warning("not indexed uri=%s field=%s %s", skipped.uri, skipped.field, skipped.message)
        log.info("hub filled its %s documents=%s indexed=%s seconds=%.1f", what, read,
                 report.indexed, asyncio.get_running_loop().time() - began)
        self._search_whole = True
        self._index_whole = self.index is not None
        return report, read

    async def sync(self) -> SyncReport:
        """Apply what changed in SQL since the watermark (one sync at a time)."""
        async with self._lock:
            self._synced = False
            started = self._clock()
            async with self._sessions() as session:
                since = await self._watermark(session)
                in_flight = await _oldest_in_flight(session)
                version, approved = await self._approved_members(session)
                new_members = approved - self._members
                changed = await _changed_since(session, since, approved)
                history = await member_documents(session, new_members) if new_members else []
                former = self._members - approved
                dropped = list(await session.scalars(select(RemoteObject.uri).where(
                    RemoteObject.attributed_to.in_(former)))) if former else []
            report = await self._apply(changed, history, len(new_members))
            await self._drop_members(former, dropped)
            self._members, self._members_version = approved, version
            await self._save_watermark(next_watermark(started, in_flight, since))
            self._synced = True
        if report.indexed or report.removed:
            log.info("hub index synced indexed=%s removed=%s skipped=%s new_members=%s",
                     report.indexed, report.removed, report.skipped, report.new_members)
        return report

    async def _approved_members(self, session: AsyncSession) -> tuple[int, set[str]]:
        """The membership's version and the approved members' actor ids: read from SQL
        only if the version moved since they were last read (the version first, so that
        a change committed between the two reads is seen again by the next sync)."""
        version = await session.scalar(select(HubMembershipVersion.version)
                                       .where(HubMembershipVersion.id == 1)) or 0
        if version == self._members_version:
            return version, self._members
        return version, set(await session.scalars(_APPROVED_MEMBERS))

    async def _apply(self, changed: list[RemoteObject],
                     history: list[tuple[str, Mapping[str, Any]]], new_members: int) -> SyncReport:
        gone = [row.uri for row in changed if row.deleted or not row.document]
        joined = {member for member, _ in history}
        live = [(row.attributed_to, row.document) for row in changed
                if not row.deleted and row.document and row.attributed_to
                and row.attributed_to not in joined]  # a new member's history has them
        # Oxigraph work off the event loop (a member's backfill can be hundreds of documents).
        refused = await asyncio.to_thread(self._index_changes, gone, history, live)
        removed = await self.search.remove(gone)
        views = []
        for _, document in [*history, *live]:
            if document.get("id") in refused:
                continue
            try:
                views.append(view_of(document))
            except ContributionFormatError as exc:
                refused.add(str(document.get("id")))
                log.warning("not searchable uri=%s %s", document.get("id"), exc)
        await self.search.add(views)
        return SyncReport(len(views), removed, len(refused), new_members)

    def _index_changes(self, gone: list[str], history: list[tuple[str, Mapping[str, Any]]],
                       live: list[tuple[str, Mapping[str, Any]]]) -> set[str]:
        """Apply removals and additions to the RDF index; the ids it refused.

        A new member's whole history goes in as one batch (``replace_member``, ~10x
        faster than one document at a time); a batch with a bad document is retried
        document by document, so only that one is left out.
        """
        refused: set[str] = set()
        if self.index is None:
            return refused
        for uri in gone:
            self.index.remove_contribution(uri)
        by_member: dict[str, list[Mapping[str, Any]]] = {}
        for member, document in history:
            by_member.setdefault(member, []).append(document)
        single = list(live)
        for member, documents in by_member.items():
            try:
                self.index.replace_member(member, documents)
            except IndexInputError:
                single.extend((member, document) for document in documents)
        for member, document in single:
            try:
                self.index.add_contribution(member, document)
            except IndexInputError as exc:
                refused.add(str(document.get("id")))
                log.warning("not indexed uri=%s %s", document.get("id"), exc)
        return refused

    async def _drop_members(self, former: set[str], uris: list[str]) -> None:
        """Members who left or were refused: their graphs and search entries go."""
        await self.search.remove(uris)
        if self.index is not None and former:
            index = self.index
            await asyncio.to_thread(lambda: [index.replace_member(actor, []) for actor in former])
        if former:
            log.info("hub index dropped members=%s contributions=%s", len(former), len(uris))

    async def _watermark(self, session: AsyncSession) -> datetime | None:
        if self.index is None:  # this process keeps only search: its own watermark
            return self._since
        state = await session.get(HubIndexState, STATE_ROW)
        return state.synced_until if state is not None else None

    async def _save_watermark(self, until: datetime) -> None:
        # The SQL watermark belongs to the process that holds the RDF index.
        self._since = until
        if self.index is None:
            return
        async with self._sessions() as session, session.begin():
            state = await session.get(HubIndexState, STATE_ROW)
            if state is None:
                session.add(HubIndexState(id=STATE_ROW, synced_until=until))
            else:
                state.synced_until = until

    async def run(self, stop: asyncio.Event) -> None:
        """Fill the indexes (``start``), then sync whenever woken (at most every
        ``min_interval``), and every ``POLL_SECONDS`` (backfill has no hook)."""
        loop = asyncio.get_running_loop()
        self._stop = stop
        try:
            while not stop.is_set():
                began = loop.time()
                if not self._filled and not await self._try_fill(stop):
                    continue
                try:
                    await self.sync()
                    self.caught_up.set()
                except Exception:  # noqa: BLE001 - the index must outlive one failed round
                    log.exception("hub index sync failed")
                self._warm_if_due()
                if await _first_of(stop, self._wake, POLL_SECONDS) is self._wake:
                    # Woken: wait out the rest of the interval; the wakes meanwhile are
                    # all served by the one sync after it (their changes were committed
                    # before they woke it, and the event is cleared before it reads).
                    await _first_of(stop, None, began + self._min_interval - loop.time())
                self._wake.clear()
        finally:
            if self._warmer is not None:
                self._warmer.stop.set()  # a warm-up under way starts no further query

    async def _try_fill(self, stop: asyncio.Event) -> bool:
        """``start``'s fill; False if the hub stopped during it, or (after
        ``FILL_RETRY_SECONDS``) if it failed."""
        try:
            await self._fill()
            return True
        except FillStopped:
            return False
        except Exception:  # noqa: BLE001 - a hub without its indexes still answers the rest
            log.exception("hub could not fill its indexes; trying again in %.0f s",
                          FILL_RETRY_SECONDS)
        await _first_of(stop, None, FILL_RETRY_SECONDS)
        return False

    def _warm_if_due(self) -> None:
        """Start warming the example answers in a thread (one warm-up at a time)."""
        index = self.index
        if index is None or self._warmer is None or (
                self._warming is not None and not self._warming.done()):
            return
        if self._warmer.due(index):
            self._warming = asyncio.ensure_future(asyncio.to_thread(self._warmer.warm, index))


async def _first_of(stop: asyncio.Event, wake: asyncio.Event | None,
                    timeout: float) -> asyncio.Event | None:
    """Wait until ``stop`` or ``wake`` is set or ``timeout`` passed; the event set first
    (``stop`` when both are), None on the timeout."""
    if timeout <= 0 or stop.is_set():
        return stop if stop.is_set() else (wake if wake is not None and wake.is_set() else None)
    events = [event for event in (stop, wake) if event is not None]
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return next((event for event in events if event.is_set()), None)
