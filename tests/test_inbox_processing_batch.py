"""The inbox worker's batch: the object changes of a batch in one transaction.

On SQLite the changes run on the inbox writer's thread (``node.remote.SqliteWork``), a
savepoint each; these tests use a real node (its writer running, workers not started)
and the node's own processor (``build_workers``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from node import appkeys
from node.inbox_processing import InboxProcessor, Incoming, Verdict
from node.remote import SQLITE_WORK, install_key_cache
from node.storage.models import InboxItem, InboxState, RemoteObject
from node.workers import INBOX_LEASE, build_workers, process_inbox_batch
from tests.engine_support import AS_CONTEXT, RunningNode, node_config, start_node

ACTOR = "https://remote.example/users/a"


@pytest.fixture
async def node(tmp_path):
    running = await start_node(node_config(tmp_path, "n"), start_workers=False)
    yield running
    await running.stop()


def create(number: int, actor: str = ACTOR) -> dict:
    note = f"{actor}/notes/{number}"
    return {"@context": AS_CONTEXT, "id": f"{note}/create", "type": "Create", "actor": actor,
            "object": {"id": note, "type": "Article", "attributedTo": actor,
                       "name": f"Nr. {number}", "content": "<p>x</p>"}}


async def receive(node: RunningNode, documents: list[dict], now: datetime) -> None:
    async with node.sessions()() as session, session.begin():
        for document in documents:
            session.add(InboxItem(activity_uri=document["id"], inbox="shared",
                                  actor=document["actor"], remote_host="remote.example",
                                  raw=document, received_at=now, state="received",
                                  attempts=0))


async def states(node: RunningNode) -> dict[str, str]:
    return {row.activity_uri: row.state for row in await node.rows(InboxItem)}


async def stored_uris(node: RunningNode) -> set[str]:
    return {row.uri for row in await node.rows(RemoteObject)}


def writer_engine(node: RunningNode):  # noqa: ANN201 - the writer thread's sync Engine
    from node.inbox import INBOX_WRITER

    return node.app[INBOX_WRITER].statement_engine


async def test_a_batch_of_creates_is_applied_in_one_transaction_on_the_writer_thread(node) -> None:
    now = datetime.now(UTC)
    await receive(node, [create(n) for n in range(20)], now)
    commits: list[object] = []
    event.listen(writer_engine(node), "commit", commits.append)
    processor = build_workers(node.app).processor
    assert await process_inbox_batch(processor, lambda: now, 50) == 20
    assert len(await stored_uris(node)) == 20
    assert set((await states(node)).values()) == {InboxState.DONE.value}
    # the claim, then the changes with the results (no hook to see them first): two
    # transactions on the writer's thread (one per item, a dozen aiosqlite round trips
    # each, before)
    assert len(commits) == 2


async def test_one_item_the_database_refuses_does_not_spoil_the_others(node) -> None:
    now = datetime.now(UTC)
    documents = [create(n) for n in range(5)]
    await receive(node, documents, now)
    bad = documents[2]["object"]["id"]

    def refuse_one(connection) -> None:  # noqa: ANN001 - a trigger only for this test
        connection.exec_driver_sql(
            "CREATE TEMP TRIGGER IF NOT EXISTS refuse BEFORE INSERT ON remote_objects "
            f"WHEN NEW.uri = '{bad}' BEGIN SELECT RAISE(ABORT, 'refused'); END")

    event.listen(writer_engine(node), "begin", refuse_one)
    processor = build_workers(node.app).processor
    await process_inbox_batch(processor, lambda: now, 50)
    assert await stored_uris(node) == {d["object"]["id"] for d in documents} - {bad}
    found = await states(node)
    assert found.pop(documents[2]["id"]) == InboxState.RETRY.value
    assert set(found.values()) == {InboxState.DONE.value}


async def test_a_crash_between_applying_and_committing_applies_the_batch_again(node) -> None:
    now = datetime.now(UTC)
    documents = [create(n) for n in range(6)]
    await receive(node, documents, now)
    processor = build_workers(node.app).processor

    class Crash(BaseException):
        pass

    applying = processor.apply_changes

    def apply_then_crash(changes, connection):  # noqa: ANN001, ANN202
        applying(changes, connection)
        raise Crash  # the process dies before the commit

    processor.apply_changes = apply_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await process_inbox_batch(processor, lambda: now, 50)
    assert await stored_uris(node) == set()
    assert set((await states(node)).values()) == {InboxState.PROCESSING.value}

    del processor.apply_changes  # the restarted worker, once the lease ran out
    later = now + INBOX_LEASE + timedelta(seconds=1)
    assert await process_inbox_batch(processor, lambda: later, 50) == 6
    assert await stored_uris(node) == {d["object"]["id"] for d in documents}
    assert set((await states(node)).values()) == {InboxState.DONE.value}


class RecordingHook:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def handler_for(self, activity: Incoming, directory: object) -> None:
        return None

    async def processed(self, activity: Incoming, verdict: Verdict) -> None:
        self.seen.append((activity.type, activity.id))


async def test_the_hook_sees_an_actors_activities_in_order_across_the_batch(node) -> None:
    """A Create is shown to the hook after its batch's commit; the actor's later
    self-Delete (no object change, applied while deciding) waits for that."""
    now = datetime.now(UTC)
    other = "https://other.example/users/b"
    delete_self = {"@context": AS_CONTEXT, "id": f"{ACTOR}#delete-{uuid.uuid4()}",
                   "type": "Delete", "actor": ACTOR, "object": ACTOR}
    documents = [create(1), create(2, other), delete_self, create(3, other)]
    await receive(node, documents, now)
    hook = RecordingHook()
    app, directory = node.app, install_key_cache(node.app)
    processor = InboxProcessor(config=node.config, session_maker=app[appkeys.SESSION_MAKER],
                               clock=lambda: now, keys=node.keys, directory=directory,
                               key_resolver=app[appkeys.KEY_CACHE], hook=hook,
                               sqlite=app[SQLITE_WORK])
    assert await process_inbox_batch(processor, lambda: now, 50) == 4
    mine = [activity_id for _, activity_id in hook.seen if activity_id.startswith(ACTOR)]
    assert mine == [documents[0]["id"], delete_self["id"]]
    assert [d for _, d in hook.seen if d.startswith(other)] == [documents[1]["id"],
                                                                  documents[3]["id"]]
    assert set((await states(node)).values()) == {InboxState.DONE.value}


async def test_a_change_is_checked_against_the_row_an_earlier_change_of_the_batch_wrote(
        node) -> None:
    """An Update of someone else's object in the same batch as its Create is refused:
    the rules read the row the batch's earlier savepoint wrote."""
    now = datetime.now(UTC)
    original = create(1)
    forged = {"@context": AS_CONTEXT, "id": "https://remote.example/users/m/update-1",
              "type": "Update", "actor": "https://remote.example/users/m",
              "object": {**original["object"], "attributedTo": "https://remote.example/users/m",
                         "name": "forged", "updated": "2030-01-01T00:00:00Z"}}
    await receive(node, [original, forged], now)
    processor = build_workers(node.app).processor
    await process_inbox_batch(processor, lambda: now, 50)
    async with node.sessions()() as session:
        name = await session.scalar(select(RemoteObject.document).where(
            RemoteObject.uri == original["object"]["id"]))
    assert name["name"] == "Nr. 1"
    assert (await states(node))[forged["id"]] == InboxState.REJECTED.value


async def test_shapes_are_checked_before_the_transaction_and_not_for_a_refused_origin(
        tmp_path, monkeypatch) -> None:
    """Validating a contribution (1–2 ms) happens while deciding, on the event loop's
    thread, not on the inbox writer's while it holds the write lock; an object whose
    origin refuses it is not validated at all."""
    import threading

    import vocab.validate
    from tests.test_inbox_processing import activity, authored_practice

    a = await start_node(node_config(tmp_path, "a"), start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    try:
        practice = await authored_practice(b)
        stranger = "https://elsewhere.example/users/x"
        foreign = activity(stranger, "Create", {**practice, "attributedTo": stranger})
        good = activity(b.actor, "Create", practice)
        threads: list[str] = []
        validate = vocab.validate.validate

        def recording(document, uri):  # noqa: ANN001, ANN202
            threads.append(threading.current_thread().name)
            return validate(document, uri)

        monkeypatch.setattr(vocab.validate, "validate", recording)
        now = datetime.now(UTC)
        await receive(a, [good, foreign], now)
        processor = build_workers(a.app).processor
        assert await process_inbox_batch(processor, lambda: now, 50) == 2
        assert threads == [threading.main_thread().name]
        found = await states(a)
        assert found[good["id"]] == InboxState.DONE.value
        assert found[foreign["id"]] == InboxState.REJECTED.value
        assert await stored_uris(a) == {practice["id"]}
    finally:
        await a.stop()
        await b.stop()
