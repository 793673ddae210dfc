"""A hub answers while it fills its indexes after a start (node.hub.aggregation, wiring).

A national hub reads its whole database at every start (the in-memory search: 23 s for
231,000 documents) and rebuilds the RDF index when it must (78 s). It used to answer
nothing meanwhile. Now it answers at once after ``START_GRACE_SECONDS``; search and SPARQL
answer 503 while they would see only part of the documents, and say how far the fill is.
Here the fill is held after its first page (pages of one document) to look at a hub in
the middle of it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from federation.keys import SigningKey, generate_ed25519_key
from federation.proofs import sign_document
from node.app import create_app
from node.hub import aggregation, wiring
from node.hub.index import HubIndex
from node.hub.query_runner import ThreadRunner
from node.hub.runtime import HUB
from node.hub.search import SearchIndex
from node.hub.search_snapshot import SNAPSHOT_FILE
from node.hub.tables import HubMember
from node.storage.models import RemoteObject
from node.workers import INGEST_ELSEWHERE
from tests.engine_support import RunningNode, eventually, start_node
from tests.hub_node_support import issue_token, start_hub
from tests.hub_support import bundled_contexts, practice
from tests.node_support import fresh_postgres_database

pytestmark = pytest.mark.slow

MEMBER = "https://dueren.example/actor"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TITLES = ("E-Akte im Bauamt", "E-Akte im Standesamt", "E-Akte in der Kämmerei")
ASK_ALL = ("ASK { <https://dueren.example/practices/akte-2> a pn:Practice }")


class HeldFill:
    """``member_document_pages`` one document a page, held after the first page until
    ``release``; it can fail its first ``failures`` calls as a database away would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, failures: int = 0) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.failures = failures
        self._pages = aggregation.member_document_pages
        monkeypatch.setattr(aggregation, "member_document_pages", self)
        monkeypatch.setattr(wiring, "START_GRACE_SECONDS", 0.0)

    async def __call__(self, session: Any, page_size: int = 1) -> AsyncIterator[list[Any]]:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT …", {}, Exception("database is locked"))
        async for page in self._pages(session, page_size=1):
            yield page
            self.reached.set()
            await self.release.wait()


async def _seeded_hub(tmp_path: Path, database_url: str = "") -> RunningNode:
    """A hub whose member has three practices in SQL, indexed and searchable, stopped."""
    hub = await start_hub(tmp_path, database_url=database_url)
    key = SigningKey(f"{MEMBER}#ed25519-key", generate_ed25519_key())
    async with hub.sessions()() as session, session.begin():
        session.add(HubMember(actor_uri=MEMBER, name="Stadt Düren", kind="Organization",
                              ags="05358008", state="approved", applied_at=NOW))
        for number, title in enumerate(TITLES):
            document = practice("dueren.example", f"akte-{number}", name=title)
            session.add(RemoteObject(uri=document["id"], kind="Practice", attributed_to=MEMBER,
                                     document=sign_document(document, key, created=NOW),
                                     deleted=False, received_at=NOW, updated=NOW))
    await hub.app[HUB].aggregator.sync()
    await hub.stop()
    gc.collect()  # the index's store (and its lock) goes with its last reference
    # As after a crash, or a first start of new code: no snapshot of the search to read
    # back (tests/test_search_snapshot.py), so the start fills it from SQL (PostgreSQL:
    # compares its table with SQL).
    (hub.config.data_dir / SNAPSHOT_FILE).unlink()
    return hub


async def _get(http: aiohttp.ClientSession, url: str, *, accept: str = "application/json",
               **params: str) -> tuple[int, str, dict[str, str]]:
    async with http.get(url, params=params, headers={"Accept": accept}) as response:
        return response.status, await response.text(), dict(response.headers)


async def _ask(http: aiohttp.ClientSession, hub: RunningNode) -> tuple[int, object]:
    """The status, and the ASK's answer (or the error's text)."""
    status, text, _ = await _get(http, f"{hub.url}/sparql", query=ASK_ALL,
                                 accept="application/sparql-results+json")
    return status, json.loads(text)["boolean"] if status == 200 else text


async def _index_state(http: aiohttp.ClientSession, hub: RunningNode,
                       headers: dict[str, str]) -> dict[str, object]:
    async with http.get(f"{hub.url}/api/hub/index", headers=headers) as response:
        assert response.status == 200
        return await response.json()


async def test_a_restarted_hub_answers_while_its_search_fills(tmp_path, monkeypatch) -> None:
    stopped = await _seeded_hub(tmp_path)
    held = HeldFill(monkeypatch)
    hub = await start_node(stopped.config)  # returns at once: the grace is 0 here
    try:
        await asyncio.wait_for(held.reached.wait(), 10)
        async with aiohttp.ClientSession() as http:
            status, _, _ = await _get(http, f"{hub.url}/.well-known/nodeinfo")
            assert status == 200
            status, text, headers = await _get(http, f"{hub.url}/search", q="Akte")
            assert status == 503 and headers["Retry-After"] == "15", text
            assert "filling its search index" in text and "(1 of 3 documents read)" in text
            status, text, _ = await _get(http, f"{hub.url}/search", q="Akte",
                                         accept="text/html")
            assert status == 503 and "1 von 3 Dokumenten gelesen" in text, text
            # the RDF index on disk was whole when the hub stopped: SPARQL answers
            assert await _ask(http, hub) == (200, True)
            headers = {"Authorization": f"Bearer {await issue_token(hub)}"}
            async with http.post(f"{hub.url}/api/hub/reindex", headers=headers) as response:
                problem = await response.json(content_type=None)
                assert response.status == 409 and "still filling" in problem["detail"]
            assert await _index_state(http, hub, headers) == {
                "caughtUp": False, "search": False, "sparql": True, "holdsIndex": True,
                "documentsRead": 1, "documentsExpected": 3}
            # and the fill's reading holds no write lock: the database takes writes
            await asyncio.wait_for(_write_something(hub), 2)
            held.release.set()
            await asyncio.wait_for(hub.app[HUB].aggregator.caught_up.wait(), 10)
            status, text, _ = await _get(http, f"{hub.url}/search", q="Akte")
            assert status == 200 and '"total": 3' in text, text
            state = await _index_state(http, hub, headers)
            assert (state["caughtUp"], state["search"], state["sparql"]) == (True, True, True)
            async with http.get(f"{hub.url}/api/hub/index") as response:
                assert response.status == 401  # an admin's token, as the whole hub API
    finally:
        held.release.set()
        await hub.stop()


async def test_the_fill_parses_and_indexes_off_the_event_loop(tmp_path, monkeypatch) -> None:
    # On the loop, a page of 5,000 documents kept every request waiting: GET answered in
    # 0.6-1 s while a full-size hub's search filled (docs/performance.md, session 20).
    stopped = await _seeded_hub(tmp_path)
    threads: dict[str, list[int]] = {"view_of": [], "SearchIndex.add": []}

    def recorded(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            threads[name].append(threading.get_ident())
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(aggregation, "view_of", recorded("view_of", aggregation.view_of))
    monkeypatch.setattr(SearchIndex, "add", recorded("SearchIndex.add", SearchIndex.add))
    hub = await start_node(stopped.config)  # a restart: nothing changed since, no sync adds
    try:
        assert hub.app[HUB].aggregator.readiness.search
        loop_thread = threading.get_ident()
        assert len(threads["view_of"]) == len(threads["SearchIndex.add"]) == 3, threads
        assert loop_thread not in threads["view_of"] + threads["SearchIndex.add"]
    finally:
        await hub.stop()


async def test_a_small_hub_starts_with_whole_indexes(tmp_path) -> None:
    # the grace: a fill of moments ends before the hub answers, as it always did
    stopped = await _seeded_hub(tmp_path)
    hub = await start_node(stopped.config)
    try:
        readiness = hub.app[HUB].aggregator.readiness
        assert readiness.search and readiness.sparql
        assert readiness.documents_read == readiness.documents_expected == 3
    finally:
        await hub.stop()


async def test_sparql_answers_503_while_the_index_is_rebuilt(tmp_path, monkeypatch) -> None:
    stopped = await _seeded_hub(tmp_path)
    (stopped.config.data_dir / "index.claims.json").unlink()  # as before the record was kept
    held = HeldFill(monkeypatch)
    hub = await start_node(stopped.config)
    try:
        await asyncio.wait_for(held.reached.wait(), 10)
        async with aiohttp.ClientSession() as http:
            status, text = await _ask(http, hub)
            assert status == 503 and "filling its RDF index" in text, text
            held.release.set()
            await asyncio.wait_for(hub.app[HUB].aggregator.caught_up.wait(), 10)
            assert await _ask(http, hub) == (200, True)
    finally:
        held.release.set()
        await hub.stop()


async def test_a_hub_stopped_during_a_rebuild_rebuilds_at_its_next_start(tmp_path,
                                                                       monkeypatch) -> None:
    stopped = await _seeded_hub(tmp_path)
    index_dir = stopped.config.data_dir / wiring.INDEX_DIR
    (stopped.config.data_dir / "index.claims.json").unlink()
    held = HeldFill(monkeypatch)
    hub = await start_node(stopped.config)
    await asyncio.wait_for(held.reached.wait(), 10)
    stopping = asyncio.create_task(hub.stop())
    assert await eventually(lambda: _true(hub.app[HUB].stop.is_set()))
    held.release.set()  # the fill sees the stop before its next page
    await asyncio.wait_for(stopping, 10)
    gc.collect()
    index = HubIndex(index_dir, contexts=bundled_contexts(), runner=ThreadRunner())
    assert not index.claims_complete and index.count() == 1  # one page of three, marked
    del index
    gc.collect()
    monkeypatch.undo()
    hub = await start_node(stopped.config)
    try:
        index = hub.app[HUB].aggregator.index
        assert index is not None and index.claims_complete and index.count() == 3
    finally:
        await hub.stop()


async def test_a_failed_fill_is_tried_again(tmp_path, monkeypatch, caplog) -> None:
    stopped = await _seeded_hub(tmp_path)
    held = HeldFill(monkeypatch, failures=1)
    held.release.set()
    monkeypatch.setattr(aggregation, "FILL_RETRY_SECONDS", 0.05)
    caplog.set_level(logging.INFO, logger="praxisnetz.hub")
    hub = await start_node(stopped.config)
    try:
        await asyncio.wait_for(hub.app[HUB].aggregator.caught_up.wait(), 10)
        assert "hub could not fill its indexes; trying again" in caplog.text
        assert "database is locked" in caplog.text
        assert "hub answering while it fills its indexes" in caplog.text
        assert hub.app[HUB].aggregator.readiness.search
    finally:
        await hub.stop()


async def test_a_rebuild_that_fails_part_way_answers_503_and_is_done_again(
        tmp_path, monkeypatch) -> None:
    stopped = await _seeded_hub(tmp_path)
    hub = await start_node(stopped.config)
    try:
        aggregator = hub.app[HUB].aggregator
        held = HeldFill(monkeypatch, failures=1)
        held.release.set()
        monkeypatch.setattr(aggregation, "FILL_RETRY_SECONDS", 0.05)
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {await issue_token(hub)}"}
            async with http.post(f"{hub.url}/api/hub/reindex", headers=headers) as response:
                problem = await response.json(content_type=None)
                assert response.status == 503, problem
                assert "rebuilds its index again by itself" in problem["detail"]
            assert not aggregator.readiness.sparql
            assert aggregator.readiness.search  # the search kept what it held
            assert await eventually(lambda: _true(aggregator.readiness.sparql))
            assert await _ask(http, hub) == (200, True)
            assert aggregator.index is not None and aggregator.index.count() == 3
    finally:
        await hub.stop()


async def test_a_worker_process_of_the_hub_fills_nothing_and_leaves_the_index_to_serve(
        tmp_path, caplog) -> None:
    # ``praxisnetz worker`` (run_standalone) answers no requests; started before serve,
    # it used to take the RDF index, and it filled a search in memory nobody asked.
    stopped = await _seeded_hub(tmp_path)
    caplog.set_level(logging.INFO, logger="praxisnetz.hub")
    app = create_app(stopped.config, start_workers=True)
    app[INGEST_ELSEWHERE] = True  # as run_standalone sets it
    worker = web.AppRunner(app, handle_signals=False)
    await worker.setup()
    try:
        assert app[HUB].aggregator.index is None
        hub = await start_node(stopped.config)  # after the worker
        try:
            assert hub.app[HUB].aggregator.index is not None
            assert hub.app[HUB].aggregator.readiness.search
            assert not app[HUB].aggregator.caught_up.is_set()
            assert caplog.text.count("hub filling its search index") == 1  # serve's only
        finally:
            await hub.stop()
    finally:
        await worker.cleanup()


async def test_search_on_postgresql_answers_in_full_during_the_fill(tmp_path,
                                                                    monkeypatch) -> None:
    # PostgreSQL keeps the search's rows across restarts: the start's refill compares
    # them in one transaction while the rows it had answer. An empty table (a hub
    # upgraded from before it, or whose first fill was stopped) answers 503 meanwhile.
    async with fresh_postgres_database() as url:
        stopped = await _seeded_hub(tmp_path, url)
        for emptied in (False, True):
            if emptied:
                async with stopped.sessions()() as session, session.begin():
                    await session.execute(text("DELETE FROM hub_search"))
            held = HeldFill(monkeypatch)
            hub = await start_node(stopped.config)
            try:
                await asyncio.wait_for(held.reached.wait(), 10)
                async with aiohttp.ClientSession() as http:
                    status, body, _ = await _get(http, f"{hub.url}/search", q="Akte")
                    if emptied:
                        assert status == 503 and "(1 of 3 documents read)" in body, body
                    else:
                        assert status == 200 and '"total": 3' in body, body
            finally:
                held.release.set()
                await hub.stop()
                gc.collect()


async def _write_something(hub: RunningNode) -> None:
    async with hub.sessions()() as session, session.begin():
        session.add(HubMember(actor_uri="https://halle.example/actor", name="Halle (Saale)",
                              kind="Organization", ags="15002000", state="pending",
                              applied_at=NOW))


async def _true(value: bool) -> bool:
    return value
