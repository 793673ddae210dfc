"""Backfill against a scripted outbox on loopback: paging by ``next`` links only, every
bound holds, and stored items pass the same origin and proof checks as the inbox."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from aiohttp import web

from federation.keys import SigningKey, actor_key_properties, generate_ed25519_key, generate_rsa_key
from federation.proofs import sign_document
from node import appkeys
from node.backfill import Backfiller, BackfillLimits, StopReason
from node.remote import RemoteDirectory
from node.storage.models import BackfillState, Following, RemoteObject
from node.workers import build_workers
from tests.engine_support import AS_CONTEXT, free_port, node_config, start_node

AP_JSON = "application/activity+json"


class Outbox:
    """A remote actor whose outbox pages the test writes."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.actor = f"{self.base}/actor"
        self.ed25519 = generate_ed25519_key()
        self.pages: dict[str, dict] = {}
        self.requested: list[str] = []
        self.collection = {"@context": AS_CONTEXT, "id": f"{self.base}/outbox",
                           "type": "OrderedCollection", "first": self.page_url(1)}

    def page_url(self, number: int) -> str:
        return f"{self.base}/outbox?page={number}"

    def page(self, number: int, items: list[dict], next_page: int | None) -> None:
        page = {"@context": AS_CONTEXT, "id": self.page_url(number),
                "type": "OrderedCollectionPage", "orderedItems": items}
        if next_page is not None:
            page["next"] = self.page_url(next_page)
        self.pages[self.page_url(number)] = page

    def create(self, slug: str, *, signed: bool = False, object_id: str | None = None) -> dict:
        obj = {"@context": AS_CONTEXT, "id": object_id or f"{self.base}/notes/{slug}",
               "type": "Note", "attributedTo": self.actor, "content": slug,
               "published": "2026-11-01T10:00:00Z"}
        if signed:
            key = SigningKey(f"{self.actor}#ed25519-key", self.ed25519)
            obj = sign_document(obj, key, created=datetime(2026, 11, 1, tzinfo=UTC))
        return {"id": f"{self.base}/activities/{slug}", "type": "Create", "actor": self.actor,
                "object": obj}

    def actor_document(self) -> dict:
        return {"@context": AS_CONTEXT, "id": self.actor, "type": "Organization",
                "inbox": f"{self.base}/inbox", "outbox": f"{self.base}/outbox",
                **actor_key_properties(self.actor, generate_rsa_key().public_key(),
                                       self.ed25519.public_key())}

    async def handle(self, request: web.Request) -> web.Response:
        url = f"{self.base}{request.path_qs}"
        self.requested.append(url)
        if request.path == "/actor":
            document = self.actor_document()
        elif request.path == "/outbox" and not request.query_string:
            document = self.collection
        elif url in self.pages:
            document = self.pages[url]
        else:
            return web.Response(status=404)
        return web.json_response(document, content_type=AP_JSON)


@pytest.fixture
async def setup(tmp_path):
    port = free_port()
    outbox = Outbox(port)
    app = web.Application()
    app.router.add_get("/{tail:.*}", outbox.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    node = await start_node(node_config(tmp_path, "follower"), start_workers=False)
    workers = build_workers(node.app)
    async with node.sessions()() as session, session.begin():
        session.add(Following(target_uri=outbox.actor, state="accepted",
                              created_at=datetime.now(UTC),
                              backfill_state=BackfillState.PENDING.value))

    def backfiller(**limits) -> Backfiller:
        directory = RemoteDirectory(session_maker=node.sessions(),
                                    fetcher=node.app[appkeys.FETCHER], clock=node.app[appkeys.CLOCK])
        return Backfiller(session_maker=node.sessions(), directory=directory,
                          processor=workers.processor, clock=node.app[appkeys.CLOCK],
                          limits=BackfillLimits(**limits))

    yield node, outbox, backfiller
    await node.stop()
    await runner.cleanup()


async def stored_uris(node) -> set[str]:  # noqa: ANN001 - RunningNode
    return {row.uri for row in await node.rows(RemoteObject)}


async def test_pages_are_followed_by_next_links(setup) -> None:
    node, outbox, backfiller = setup
    outbox.page(1, [outbox.create("a"), outbox.create("b", signed=True)], next_page=2)
    outbox.page(2, [outbox.create("c")], next_page=None)
    [report] = await backfiller().run_pending()
    assert (report.pages, report.stored, report.stopped) == (2, 3, StopReason.END)
    assert await stored_uris(node) == {f"{outbox.base}/notes/{s}" for s in "abc"}
    [row] = await node.rows(Following)
    assert row.backfill_state == "done" and row.backfill_cursor == outbox.page_url(2)


async def test_a_repeated_page_ends_the_walk(setup) -> None:
    _, outbox, backfiller = setup
    outbox.page(1, [outbox.create("a")], next_page=2)
    outbox.page(2, [outbox.create("b")], next_page=1)  # a loop
    [report] = await backfiller().run_pending()
    assert report.stopped is StopReason.REPEATED_PAGE and report.pages == 2
    assert outbox.requested.count(outbox.page_url(1)) == 1


async def test_page_and_item_limits_hold(setup) -> None:
    node, outbox, backfiller = setup
    for number in range(1, 30):  # an endless outbox
        outbox.page(number, [outbox.create(f"n{number}-{i}") for i in range(3)], number + 1)
    [report] = await backfiller(max_pages=4).run_pending()
    assert report.stopped is StopReason.PAGE_LIMIT and report.pages == 4
    async with node.sessions()() as session, session.begin():
        (await session.get(Following, 1)).backfill_state = BackfillState.PENDING.value
    [report] = await backfiller(max_items=5).run_pending()
    assert report.stopped is StopReason.ITEM_LIMIT and report.stored + report.refused == 5


async def test_next_link_to_another_origin_is_not_followed(setup) -> None:
    node, outbox, backfiller = setup
    outbox.page(1, [outbox.create("a")], next_page=None)
    outbox.pages[outbox.page_url(1)]["next"] = "http://127.0.0.2:9/outbox?page=2"
    [report] = await backfiller().run_pending()
    assert report.stopped is StopReason.FAILED and "origin" in report.detail
    assert not any("127.0.0.2" in url for url in outbox.requested)
    assert (await node.rows(Following))[0].backfill_state == "failed"


async def test_items_pass_origin_and_proof_checks(setup) -> None:
    node, outbox, backfiller = setup
    foreign = outbox.create("foreign", object_id="http://127.0.0.2:9/notes/not-theirs")
    forged = outbox.create("forged", signed=True)
    forged["object"] = copy.deepcopy(forged["object"])
    forged["object"]["content"] = "altered after signing"
    someone_else = {**outbox.create("spoof"), "actor": "http://127.0.0.2:9/actor"}
    outbox.page(1, [outbox.create("good", signed=True), foreign, forged, someone_else], None)
    [report] = await backfiller().run_pending()
    assert await stored_uris(node) == {f"{outbox.base}/notes/good"}
    assert report.stored == 1 and report.refused == 2  # the spoofed actor is skipped outright
