"""The in-memory search read back from its snapshot (node.hub.search_snapshot).

A SQLite hub writes its search to ``DATA_DIR/search-snapshot`` at a clean stop and reads
it back at its next start instead of filling it from SQL (22–26 s for 231,000 documents).
These tests pin down that what is read back searches exactly as what was written, that a
file cut short, damaged or written by other code is not used, and that a snapshot is used
only where it is still the search's state: the SQL watermark and the RDF index's members
as they were, and what changed in SQL after it caught up by the sync.
"""

from __future__ import annotations

import gc
import marshal
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hub_support import practice, stance
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from federation.keys import SigningKey, generate_ed25519_key
from federation.proofs import sign_document
from node.config import NodeConfig
from node.hub import aggregation, search_snapshot, wiring
from node.hub.aggregation import Aggregator
from node.hub.contribution import view_of
from node.hub.runtime import HUB
from node.hub.search import SearchFilters, SearchIndex
from node.hub.search_backends import MemorySearch
from node.hub.search_snapshot import (
    SNAPSHOT_FILE,
    MemorySnapshot,
    SnapshotReading,
    SnapshotStamp,
    SnapshotVerdict,
    accept_for,
    read_snapshot,
    write_snapshot,
)
from node.hub.tables import HubIndexState, HubMember
from node.storage.db import create_engine, session_maker
from node.storage.models import RemoteObject
from tests.engine_support import RunningNode, start_node
from tests.hub_node_support import start_hub
from tests.node_support import fresh_postgres_database

GT, DN = "guetersloh.example", "dueren.example"
QUERIES = ("Akte", "Akten", "Bauamt", "Ämter", "Posteingang", "Bearbeitung", "portal",
           "Kontakt", "e-akte -bauamt", "", '"E-Akte im"', "Standesamt OR Kämmerei")
STAMP = SnapshotStamp(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), frozenset({"https://a/actor"}),
                      contributions=5)
ANY = accept_for(None, None)


def _write(path: Path, index: SearchIndex, stamp: SnapshotStamp = STAMP, **options: Any) -> int:
    return write_snapshot(path, replace(stamp, contributions=len(index)), index.pages(),
                          **options)


def _index() -> SearchIndex:
    documents = [
        practice(GT, "e-akte", name="E-Akte im Bauamt", summary="Elektronische Aktenführung"),
        practice(DN, "portal", name="Unser Bürgerportal", content="<p>Anträge online.</p>",
                 topics=("buergerportal-online-dienste",), ags="05358008", status="piloting"),
        practice(DN, "post", name="Posteingangsbearbeitung in den Bauämtern",
                 topics=("prozessmanagement",), ags="05358008"),
        practice(GT, "kontakt", name="Kontaktformular", content="Für das Standesamt"),
        stance(DN, "s1", about=f"https://{GT}/practices/e-akte", position="agree",
               reason="Die E-Akte spart Wege in der Kämmerei."),
    ]
    return SearchIndex(view_of(document) for document in documents)


def _answers(index: SearchIndex, filters: SearchFilters | None = None) -> list[list[Any]]:
    return [[(hit.uri, hit.score, hit.view) for hit in index.search(query, filters)]
            for query in QUERIES]


def test_what_is_read_back_searches_as_what_was_written(tmp_path: Path) -> None:
    index = _index()
    path = tmp_path / SNAPSHOT_FILE
    assert _write(path, index) >= 3  # contributions, words, parts
    reading, restored = read_snapshot(path, ANY)
    assert reading == SnapshotReading(SnapshotVerdict.LOADED, STAMP, len(index))
    assert restored is not None and len(restored) == len(index)
    assert _answers(restored) == _answers(index)
    assert any(_answers(index))  # the queries find something to compare
    by_topic = SearchFilters(topic="https://praxisnetz.de/themen/prozessmanagement")
    assert _answers(restored, by_topic) == _answers(index, by_topic)


def test_a_restored_index_takes_changes_as_before(tmp_path: Path) -> None:
    index = _index()
    path = tmp_path / SNAPSHOT_FILE
    _write(path, index)
    _, restored = read_snapshot(path, ANY)
    assert restored is not None
    for each in (index, restored):
        # a removal needs each contribution's own terms; a new stem must reach the
        # sorted list that prefix queries walk
        assert each.remove(f"https://{GT}/practices/e-akte")
        each.add(view_of(practice(GT, "neu", name="Zuständigkeitsfinder")))
    assert _answers(restored) == _answers(index)
    assert [hit.uri for hit in restored.search("Zuständigkeit")] == [
        f"https://{GT}/practices/neu"]
    assert f"https://{GT}/practices/e-akte" not in {
        hit.uri for hit in restored.search("Akte")}


def test_pages_are_bounded(tmp_path: Path) -> None:
    index = SearchIndex(view_of(practice(GT, f"p{n}", name=f"Praxis {n} Akte"))
                        for n in range(25))
    pages = list(index.pages(rows=10))
    assert [len(page.content) for page in pages if page.kind == "contributions"] == [10, 10, 5]
    path = tmp_path / SNAPSHOT_FILE
    _write(path, index)
    _, restored = read_snapshot(path, ANY)
    assert restored is not None and _answers(restored) == _answers(index)


def test_a_missing_file_is_no_snapshot(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path / SNAPSHOT_FILE, ANY) == (
        SnapshotReading(SnapshotVerdict.MISSING), None)


@pytest.mark.parametrize("damage", ["cut short", "a byte changed", "not ours", "header only",
                                    "a page of another kind"])
def test_a_damaged_file_is_not_used(tmp_path: Path, damage: str) -> None:
    path = tmp_path / SNAPSHOT_FILE
    _write(path, _index())
    data = bytearray(path.read_bytes())
    if damage == "cut short":
        data = data[:-7]
    elif damage == "a byte changed":
        data[len(data) // 2] ^= 0x01
    elif damage == "not ours":
        data[:5] = b"PK\x03\x04\x00"
    elif damage == "header only":
        data = data[:len(search_snapshot._MAGIC)]
    else:  # a record with a sound CRC that the format does not write
        data = data[:len(search_snapshot._MAGIC)] + _record(_header()) + _record(("rows", []))
    path.write_bytes(bytes(data))
    reading, restored = read_snapshot(path, ANY)
    assert reading.verdict is SnapshotVerdict.DAMAGED and restored is None


def _header() -> dict[str, object]:
    return {"marker": search_snapshot.code_marker(), "watermark": None, "members": [],
            "contributions": 0}


def _record(value: object) -> bytes:
    data = marshal.dumps(value, 4)
    return search_snapshot._RECORD_HEAD.pack(len(data), search_snapshot.zlib.crc32(data)) + data


def test_an_unreadable_file_is_not_used(tmp_path: Path) -> None:
    (tmp_path / SNAPSHOT_FILE).mkdir()  # open() fails, as on a disk error
    reading, restored = read_snapshot(tmp_path / SNAPSHOT_FILE, ANY)
    assert reading.verdict is SnapshotVerdict.DAMAGED and restored is None


def test_a_file_of_other_code_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_FILE
    _write(path, _index(), marker="written by an older praxisnetz")
    reading, restored = read_snapshot(path, ANY)
    assert reading.verdict is SnapshotVerdict.OTHER_CODE and restored is None


def test_the_marker_names_the_code_that_decides_what_the_index_holds() -> None:
    marker = search_snapshot.code_marker()
    search_snapshot.code_marker.cache_clear()
    assert search_snapshot.code_marker() == marker  # the same code: the same marker
    assert len(marker) == 64


def test_the_holder_of_the_index_takes_only_a_snapshot_of_where_the_index_is() -> None:
    holder = accept_for(STAMP.watermark, STAMP.members)
    assert holder(STAMP) is SnapshotVerdict.LOADED
    later = replace(STAMP, watermark=datetime(2026, 11, 25, 3, 1, tzinfo=UTC))
    assert holder(later) is SnapshotVerdict.OTHER_WATERMARK
    assert holder(replace(STAMP, watermark=None)) is SnapshotVerdict.OTHER_WATERMARK
    other = replace(STAMP, members=frozenset({"https://b/actor"}))
    assert holder(other) is SnapshotVerdict.OTHER_MEMBERS
    assert ANY(later) is ANY(other) is SnapshotVerdict.LOADED  # a process without the index


def test_a_write_that_fails_leaves_the_file_before_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / SNAPSHOT_FILE
    _write(path, _index())
    before = path.read_bytes()
    dumps, calls = marshal.dumps, []

    def failing(value: object, version: int) -> bytes:
        calls.append(value)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return dumps(value, version)

    monkeypatch.setattr(search_snapshot.marshal, "dumps", failing)
    with pytest.raises(OSError):
        _write(path, _index())  # header, contributions, then the failure
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [SNAPSHOT_FILE]  # no partial file left


async def test_a_rejected_snapshot_leaves_the_search_as_it_was(tmp_path: Path) -> None:
    search = MemorySearch(_index())
    held = search.index
    snapshot = MemorySnapshot(tmp_path / SNAPSHOT_FILE, search)
    _write(snapshot.path, SearchIndex())
    reading = await snapshot.restore(accept_for(None, frozenset()))
    assert reading.verdict is SnapshotVerdict.OTHER_WATERMARK
    assert search.index is held


# --- a hub on SQLite, stopped and started again

MEMBER, NEWCOMER = f"https://{DN}/actor", f"https://{GT}/actor"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TITLES = ("E-Akte im Bauamt", "E-Akte im Standesamt", "E-Akte in der Kämmerei")
KEY = SigningKey(f"{MEMBER}#ed25519-key", generate_ed25519_key())


def _object(host: str, slug: str, name: str, received: datetime) -> RemoteObject:
    document = practice(host, slug, name=name)
    return RemoteObject(uri=document["id"], kind="Practice", attributed_to=f"https://{host}/actor",
                        document=sign_document(document, KEY, created=NOW), deleted=False,
                        received_at=received, updated=received)


@asynccontextmanager
async def _database(kind: str) -> AsyncIterator[str]:
    """The hub's database URL: SQLite's default (""), or a throw-away PostgreSQL one."""
    if kind == "sqlite":
        yield ""
    else:
        async with fresh_postgres_database() as url:
            yield url


DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"])


async def _stopped_hub(tmp_path: Path, database_url: str = "") -> NodeConfig:
    """A hub whose member has three practices, indexed, searched, and stopped cleanly."""
    hub = await start_hub(tmp_path, database_url=database_url)
    async with hub.sessions()() as session, session.begin():
        session.add(HubMember(actor_uri=MEMBER, name="Stadt Düren", kind="Organization",
                              ags="05358008", state="approved", applied_at=NOW))
        for number, title in enumerate(TITLES):
            session.add(_object(DN, f"akte-{number}", title, NOW))
    await hub.app[HUB].aggregator.sync()
    await hub.stop()
    gc.collect()  # the index's store (and its lock) goes with its last reference
    return hub.config


class CountedFill:
    """``member_document_pages``, counting the fills from SQL."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._pages = aggregation.member_document_pages
        monkeypatch.setattr(aggregation, "member_document_pages", self)

    def __call__(self, session: Any, page_size: int = aggregation.PAGE_SIZE) -> Any:
        self.calls += 1
        return self._pages(session, page_size)


async def _titles(hub: RunningNode, query: str = "Akte") -> set[str]:
    await hub.app[HUB].aggregator.caught_up.wait()
    hits = await hub.app[HUB].aggregator.search.search(query)
    return {hit.view.title for hit in hits}


@DATABASES
async def test_a_hub_stopped_cleanly_starts_with_its_search_as_it_was(
        tmp_path: Path, monkeypatch, caplog, database: str) -> None:
    """In memory: read back from the file; PostgreSQL's table: not compared with SQL."""
    async with _database(database) as url:
        config = await _stopped_hub(tmp_path, url)
        assert (config.data_dir / SNAPSHOT_FILE).is_file()
        fills = CountedFill(monkeypatch)
        caplog.set_level("INFO", logger="praxisnetz.hub.aggregation")
        hub = await start_node(config)
        try:
            assert await _titles(hub) == set(TITLES)
            assert fills.calls == 0  # not one document read from SQL for the search
            assert ("hub search as at its clean stop, from its snapshot contributions=3"
                    in caplog.text)
            assert hub.app[HUB].aggregator.readiness.search
        finally:
            await hub.stop()


@DATABASES
async def test_what_changed_while_the_hub_was_stopped_is_caught_up(
        tmp_path: Path, monkeypatch, database: str) -> None:
    async with _database(database) as url:
        config = await _stopped_hub(tmp_path, url)
        await _in_sql(config, _new_and_deleted)
        fills = CountedFill(monkeypatch)
        hub = await start_node(config)
        try:
            assert await _titles(hub) == {TITLES[1], TITLES[2], "E-Akte im Ordnungsamt"}
            assert fills.calls == 0
        finally:
            await hub.stop()


async def _new_and_deleted(session: AsyncSession) -> None:
    later = datetime.now(UTC)  # after the watermark the last sync left
    session.add(_object(DN, "akte-3", "E-Akte im Ordnungsamt", later))
    await session.execute(update(RemoteObject).where(
        RemoteObject.uri == f"https://{DN}/practices/akte-0").values(deleted=True, updated=later))


async def _in_sql(config: NodeConfig, change: Callable[[AsyncSession], Awaitable[object]]) -> None:
    """``change`` in a transaction on the stopped hub's database."""
    engine = create_engine(config.database_url)
    try:
        async with session_maker(engine)() as session, session.begin():
            await change(session)
    finally:
        await engine.dispose()


@DATABASES
async def test_a_snapshot_behind_the_index_is_not_used(tmp_path: Path, monkeypatch,
                                                      caplog, database: str) -> None:
    """As after a hub that read it, synced, and was killed: the watermark moved on."""
    async with _database(database) as url:
        config = await _stopped_hub(tmp_path, url)
        await _in_sql(config, lambda session: session.execute(
            update(HubIndexState).values(synced_until=datetime.now(UTC))))
        await _starts_from_sql(config, monkeypatch, caplog,
                               because="the index was synced after it was written")


async def test_a_table_changed_by_hand_while_the_hub_was_stopped_is_compared(
        tmp_path: Path, monkeypatch, caplog) -> None:
    """PostgreSQL: rows deleted from ``hub_search`` by hand; the start compares the table
    with SQL again and writes them back."""
    async with _database("postgresql") as url:
        config = await _stopped_hub(tmp_path, url)
        await _in_sql(config, lambda session: session.execute(
            text("DELETE FROM hub_search WHERE title = :title"), {"title": TITLES[0]}))
        await _starts_from_sql(config, monkeypatch, caplog,
                               because="the search's table holds other rows")


async def _starts_from_sql(config: NodeConfig, monkeypatch: pytest.MonkeyPatch,
                           caplog: pytest.LogCaptureFixture, *, because: str) -> None:
    """The hub started again fills (or compares) its search from SQL once, logging
    ``because``, and its search holds the three practices."""
    fills = CountedFill(monkeypatch)
    caplog.set_level("INFO", logger="praxisnetz.hub.aggregation")
    hub = await start_node(config)
    try:
        assert await _titles(hub) == set(TITLES)
        assert fills.calls == 1
        assert because in caplog.text
    finally:
        await hub.stop()


async def test_a_snapshot_of_other_members_than_the_index_holds_is_not_used(
        tmp_path: Path, monkeypatch) -> None:
    config = await _stopped_hub(tmp_path)
    path = config.data_dir / SNAPSHOT_FILE
    reading, index = read_snapshot(path, ANY)
    assert index is not None and reading.stamp is not None
    _write(path, index, replace(reading.stamp, members=frozenset({NEWCOMER})))
    fills = CountedFill(monkeypatch)
    hub = await start_node(config)
    try:
        assert await _titles(hub) == set(TITLES)
        assert fills.calls == 1
    finally:
        await hub.stop()


async def test_a_hub_stopped_before_its_first_sync_writes_no_snapshot(tmp_path: Path,
                                                                      monkeypatch) -> None:
    config = await _stopped_hub(tmp_path)
    path = config.data_dir / SNAPSHOT_FILE
    path.unlink()

    async def failing_sync(self: Aggregator) -> None:
        raise OSError("the database is away")

    monkeypatch.setattr(Aggregator, "sync", failing_sync)
    monkeypatch.setattr(wiring, "START_GRACE_SECONDS", 0.0)
    hub = await start_node(config)
    await hub.stop()
    assert not path.exists()  # its search may be behind the watermark: no snapshot


async def test_a_process_without_the_index_syncs_from_the_snapshots_watermark(
        tmp_path: Path, caplog) -> None:
    """A second ``serve`` of the hub, which finds the RDF index held: it takes the
    snapshot's members and watermark as its own."""
    config = await _stopped_hub(tmp_path)
    engine = create_engine(config.database_url)
    sessions = session_maker(engine)
    later = datetime.now(UTC)
    async with sessions() as session, session.begin():
        session.add(HubMember(actor_uri=NEWCOMER, name="Stadt Gütersloh", kind="Organization",
                              ags="05754008", state="approved", applied_at=NOW))
        session.add(_object(GT, "akte", "E-Akte im Jugendamt", NOW))  # a newcomer's history
        session.add(_object(DN, "akte-3", "E-Akte im Ordnungsamt", later))
        # the process with the index moved SQL's watermark on; one without must not take
        # it (it would miss akte-3, which it never saw)
        await session.execute(update(HubIndexState).values(synced_until=later))
    search = MemorySearch()
    aggregator = Aggregator(sessions=sessions, index=None, search=search,
                            clock=lambda: datetime.now(UTC), warm_after=None,
                            snapshot=MemorySnapshot(config.data_dir / SNAPSHOT_FILE, search))
    caplog.set_level("INFO", logger="praxisnetz.hub.aggregation")
    try:
        await aggregator.start()
        # the newcomer's history and akte-3, not again the three the snapshot holds
        assert "hub index synced indexed=2 removed=0 skipped=0 new_members=1" in caplog.text
        hits = await search.search("Akte")
        assert {hit.view.title for hit in hits} == {*TITLES, "E-Akte im Jugendamt",
                                                    "E-Akte im Ordnungsamt"}
        await aggregator.save_search_snapshot()  # a process without the index writes none
    finally:
        await engine.dispose()


async def test_a_hub_whose_snapshot_cannot_be_read_or_written_still_starts_and_stops(
        tmp_path: Path, monkeypatch, caplog) -> None:
    config = await _stopped_hub(tmp_path)
    path = config.data_dir / SNAPSHOT_FILE
    path.unlink()
    path.mkdir()  # neither read nor replaced by a file
    fills = CountedFill(monkeypatch)
    caplog.set_level("INFO", logger="praxisnetz.hub.aggregation")
    hub = await start_node(config)
    try:
        assert await _titles(hub) == set(TITLES)
        assert fills.calls == 1  # filled from SQL
    finally:
        await hub.stop()
    assert "hub search snapshot not written" in caplog.text
    assert path.is_dir() and os.listdir(path.parent).count(SNAPSHOT_FILE) == 1
    assert not [name for name in os.listdir(path.parent) if name.endswith(".tmp")]
