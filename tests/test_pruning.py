"""Pruning processed inbox items, settled Follow/Undo receipts and settled outgoing
deliveries after their retention windows: old rows go, rows inside the window stay, and a
sender's retry inside the window is still recognised as a duplicate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from node import incoming_follows
from node.config import ConfigError, DeliveryTuning, InboxTuning, load_config
from node.delivery_queue import list_deliveries
from node.inbox_writer import InboxRow, running_writer
from node.pruning import (
    Pruned,
    prune_deliveries_once,
    prune_once,
    retention_of,
    run_pruner,
    settled_retention_of,
)
from node.status import node_status
from node.storage.db import migrate, session_maker
from node.storage.models import Activity, Delivery, DeliveryState, InboxItem, InboxState
from tests.node_support import database_engine

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=14)
OLD = NOW - WINDOW - timedelta(hours=1)
RECENT = NOW - WINDOW + timedelta(hours=1)
ALICE = "https://a.example/actors/alice"
MALLORY = "https://a.example/actors/mallory"
US = "https://n.example/actor"


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path):
    # PostgreSQL when PRAXISNETZ_TEST_POSTGRES_URL is set (skipped otherwise)
    async for engine in database_engine(request.param, tmp_path):
        await migrate(engine)
        yield engine


@pytest.fixture
def sessions(engine):
    return session_maker(engine)


def _item(uri: str, received: datetime, state: InboxState) -> InboxItem:
    return InboxItem(activity_uri=uri, inbox="shared", actor=ALICE, remote_host="a.example",
                     raw={"id": uri, "type": "Create"}, received_at=received, state=state.value,
                     attempts=1)


async def _add(sessions, *rows) -> None:
    async with sessions() as session, session.begin():
        session.add_all(rows)


async def _uris(sessions, model, column) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(column)))


async def test_processed_items_past_the_window_are_deleted(sessions) -> None:
    await _add(sessions,
               _item("old-done", OLD, InboxState.DONE),
               _item("old-rejected", OLD, InboxState.REJECTED),
               _item("recent-done", RECENT, InboxState.DONE),
               # waiting items are never pruned, however old
               _item("old-received", OLD, InboxState.RECEIVED),
               _item("old-retry", OLD, InboxState.RETRY),
               _item("old-processing", OLD, InboxState.PROCESSING))
    pruned = await prune_once(sessions, now=NOW, retention=WINDOW)
    assert pruned == Pruned(inbox_items=2)
    assert await _uris(sessions, InboxItem, InboxItem.activity_uri) == {
        "recent-done", "old-received", "old-retry", "old-processing"}
    assert await prune_once(sessions, now=NOW, retention=WINDOW) == Pruned()


async def test_a_retry_inside_the_window_is_still_a_duplicate(engine, sessions) -> None:
    await _add(sessions, _item("https://a.example/activities/1", RECENT, InboxState.DONE),
               _item("https://a.example/activities/2", OLD, InboxState.DONE))
    await prune_once(sessions, now=NOW, retention=WINDOW)

    def retry(uri: str) -> InboxRow:
        return InboxRow(activity_uri=uri, inbox="shared", actor=ALICE, remote_host="a.example",
                        raw={"id": uri}, received_at=NOW)

    async with running_writer(engine, queue_limit=100) as writer:
        assert await writer.store(retry("https://a.example/activities/1")) is False
        # past the window the id is forgotten: the sender gave up long ago
        assert await writer.store(retry("https://a.example/activities/2")) is True


async def test_many_rows_go_in_several_small_transactions(sessions) -> None:
    await _add(sessions, *(_item(f"old-{n}", OLD, InboxState.DONE) for n in range(7)))
    pruned = await prune_once(sessions, now=NOW, retention=WINDOW, batch=3)
    assert pruned.inbox_items == 7
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 0


async def _follow(sessions, actor: str, follow_id: str, at: datetime) -> bool:
    async with sessions() as session, session.begin():
        return await incoming_follows.record_follow(session, actor, follow_id, US, now=at)


async def _undo(sessions, actor: str, undo_id: str, follow_id: str, at: datetime) -> None:
    async with sessions() as session, session.begin():
        await incoming_follows.record_undo(session, actor, undo_id, follow_id, now=at)


async def test_settled_follow_undo_pairs_go_together(sessions) -> None:
    await _follow(sessions, ALICE, "F1", OLD - timedelta(days=3))
    await _undo(sessions, ALICE, "U1", "F1", OLD)  # settled long ago
    await _follow(sessions, ALICE, "F2", OLD - timedelta(days=1))  # standing: never undone
    await _follow(sessions, ALICE, "F3", OLD)
    await _undo(sessions, ALICE, "U3", "F3", RECENT)  # undone inside the window
    await _undo(sessions, ALICE, "U4", "F4", OLD)  # its Follow never came
    pruned = await prune_once(sessions, now=NOW, retention=WINDOW)
    assert pruned == Pruned(undo_receipts=2, follow_receipts=1)
    assert await _uris(sessions, Activity, Activity.uri) == {"F2", "F3", "U3"}
    async with sessions() as session:
        # the standing Follow is still the one that stands; F3 stays undone
        assert await incoming_follows.standing_follow(session, ALICE, US, "F3") == "F2"


async def test_a_follow_inside_the_window_after_its_undo_is_still_ignored(sessions) -> None:
    await _undo(sessions, ALICE, "U5", "F5", RECENT)  # the Undo overtook its Follow
    await prune_once(sessions, now=NOW, retention=WINDOW)
    assert await _follow(sessions, ALICE, "F5", NOW) is False


async def test_an_undo_by_another_actor_takes_no_follow_receipt_along(sessions) -> None:
    await _follow(sessions, ALICE, "F6", OLD - timedelta(days=1))
    await _undo(sessions, MALLORY, "U6", "F6", OLD)
    pruned = await prune_once(sessions, now=NOW, retention=WINDOW)
    assert pruned == Pruned(undo_receipts=1)
    assert await _uris(sessions, Activity, Activity.uri) == {"F6"}


async def test_ended_follows_stand_no_more_and_are_pruned_as_settled_pairs(sessions) -> None:
    # A refusal or the actor's deletion ends its Follows without any Undo from it.
    group = f"{US}/topics/e-akte"
    await _follow(sessions, ALICE, "F7", OLD - timedelta(days=2))
    await _follow(sessions, ALICE, "F8", OLD - timedelta(days=1))
    await _undo(sessions, ALICE, "U8", "F8", OLD - timedelta(days=1))  # already undone
    async with sessions() as session, session.begin():
        session.add(Activity(uri="G1", type="Follow", actor=ALICE, object_uri=group,
                             document={}, is_local=False, created_at=OLD))
        assert await incoming_follows.end_follows(session, ALICE, US, now=OLD) == 1  # F7
    async with sessions() as session:
        assert await incoming_follows.standing_follow(session, ALICE, US, "F7") is None
        assert await incoming_follows.standing_follow(session, ALICE, group, None) == "G1"
    assert await _follow(sessions, ALICE, "F7", NOW) is False  # delivered again: ignored
    assert await _follow(sessions, ALICE, "F9", NOW) is True  # a new Follow counts
    async with sessions() as session, session.begin():
        assert await incoming_follows.end_follows(session, ALICE, None, now=RECENT) == 2
    pruned = await prune_once(sessions, now=NOW, retention=WINDOW)
    # F7 and F8 settled before the window; G1 and F9 ended inside it, their marks stay
    assert pruned == Pruned(undo_receipts=2, follow_receipts=2)
    async with sessions() as session:
        left = set(await session.scalars(select(Activity.object_uri).where(
            Activity.type == "Undo")))
    assert left == {"G1", "F9"}


async def test_likes_and_local_activities_stay(sessions) -> None:
    like = Activity(uri="L1", type="Like", actor=ALICE, object_uri="x", document={},
                    is_local=False, created_at=OLD)
    own = Activity(uri="C1", type="Undo", actor=US, object_uri="x", document={},
                   is_local=True, created_at=OLD)
    await _add(sessions, like, own)
    assert await prune_once(sessions, now=NOW, retention=WINDOW) == Pruned()
    assert await _uris(sessions, Activity, Activity.uri) == {"L1", "C1"}


async def test_the_worker_loop_prunes_then_stops(sessions) -> None:
    await _add(sessions, _item("old-done", OLD, InboxState.DONE))
    stop = asyncio.Event()

    def clock() -> datetime:
        stop.set()  # one pass, then the loop sees the stop
        return NOW

    await run_pruner(stop, sessions, clock, InboxTuning(), DeliveryTuning(), interval=3600)
    assert await _uris(sessions, InboxItem, InboxItem.activity_uri) == set()


def test_the_retention_comes_from_the_inbox_settings() -> None:
    assert retention_of(InboxTuning()) == timedelta(days=14)
    assert retention_of(InboxTuning(receipt_retention_days=2.5)) == timedelta(days=2.5)


@pytest.mark.parametrize("table, setting", [("inbox", "receipt_retention_days"),
                                            ("delivery", "settled_retention_days")])
def test_a_retention_below_a_day_is_refused_naming_the_field(tmp_path, table, setting) -> None:
    (tmp_path / "praxisnetz.toml").write_text(
        'base_url = "https://n.example"\nname = "N"\nslug = "n"\n'
        f"[{table}]\n{setting} = 0.5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.field == f"{table}.{setting}"


# --- outgoing deliveries: settled rows (delivered, failed for good, given up) after
# [delivery] settled_retention_days; waiting rows stay however old, and the operator views
# then show only what is left

SETTLED_WINDOW = timedelta(days=30)
SETTLED_OLD = NOW - SETTLED_WINDOW - timedelta(hours=1)
SETTLED_RECENT = NOW - SETTLED_WINDOW + timedelta(hours=1)


async def _deliveries(sessions, *rows: tuple[str, DeliveryState, datetime | None]) -> None:
    """One local activity with a delivery per (inbox name, state, finished_at)."""
    async with sessions() as session, session.begin():
        activity = Activity(uri="https://n.example/a/1", type="Create", actor="https://n.example/actor",
                            object_uri="https://n.example/c/1", document={}, is_local=True,
                            created_at=SETTLED_OLD - timedelta(days=5))
        session.add(activity)
        await session.flush()
        session.add_all(
            Delivery(activity_id=activity.id, inbox_url=f"https://{name}.example/inbox",
                     host=f"{name}.example", state=state.value, attempts=1,
                     next_attempt_at=SETTLED_OLD - timedelta(days=5), created_at=SETTLED_OLD - timedelta(days=5),
                     finished_at=finished)
            for name, state, finished in rows)


async def _hosts_left(sessions) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(Delivery.host)))


async def test_settled_deliveries_past_the_window_are_deleted(sessions) -> None:
    await _deliveries(
        sessions,
        ("old-delivered", DeliveryState.DELIVERED, SETTLED_OLD),
        ("old-gaveup", DeliveryState.GAVE_UP, SETTLED_OLD),
        ("old-failed", DeliveryState.FAILED, SETTLED_OLD),  # for good (404, 410)
        ("recent-delivered", DeliveryState.DELIVERED, SETTLED_RECENT),
        ("recent-gaveup", DeliveryState.GAVE_UP, SETTLED_RECENT),
        ("recent-failed", DeliveryState.FAILED, SETTLED_RECENT),
        # waiting rows (also a retry or a requeued row) are never pruned, however old
        ("pending", DeliveryState.PENDING, None),
        ("in-flight", DeliveryState.IN_FLIGHT, None),
    )
    assert await prune_deliveries_once(sessions, now=NOW, retention=SETTLED_WINDOW) == 3
    assert await _hosts_left(sessions) == {
        "recent-delivered.example", "recent-gaveup.example", "pending.example",
        "in-flight.example", "recent-failed.example"}
    assert await prune_deliveries_once(sessions, now=NOW, retention=SETTLED_WINDOW) == 0
    async with sessions() as session:  # the outgoing activity itself stays (the outbox)
        assert await session.scalar(select(Activity.uri)) == "https://n.example/a/1"


async def test_a_backlog_goes_in_several_batches(sessions) -> None:
    await _deliveries(sessions, *((f"h{n}", DeliveryState.DELIVERED, SETTLED_OLD) for n in range(7)),
                      ("recent", DeliveryState.DELIVERED, SETTLED_RECENT))
    assert await prune_deliveries_once(sessions, now=NOW, retention=SETTLED_WINDOW, batch=3) == 7
    assert await _hosts_left(sessions) == {"recent.example"}


async def test_the_operator_views_show_only_what_is_left(sessions) -> None:
    await _deliveries(sessions, ("old", DeliveryState.GAVE_UP, SETTLED_OLD),
                      ("recent", DeliveryState.GAVE_UP, SETTLED_RECENT),
                      ("done", DeliveryState.DELIVERED, SETTLED_OLD))
    await prune_deliveries_once(sessions, now=NOW, retention=SETTLED_WINDOW)
    async with sessions() as session:
        listed = await list_deliveries(session)  # `praxisnetz deliveries list`
        status = await node_status(session)
    assert [row.host for row in listed] == ["recent.example"]
    # the counts are of the last settled_retention_days, not since the node began
    assert status.deliveries == {"gave_up": 1}


async def test_the_worker_loop_prunes_deliveries(sessions) -> None:
    await _deliveries(sessions, ("old", DeliveryState.DELIVERED, NOW - timedelta(days=3)),
                      ("recent", DeliveryState.DELIVERED, NOW - timedelta(hours=12)))
    stop = asyncio.Event()

    def clock() -> datetime:
        stop.set()  # one pass, then the loop sees the stop
        return NOW

    await run_pruner(stop, sessions, clock, InboxTuning(),
                     DeliveryTuning(settled_retention_days=2), interval=3600)
    assert await _hosts_left(sessions) == {"recent.example"}


def test_the_retention_comes_from_the_delivery_settings() -> None:
    assert settled_retention_of(DeliveryTuning()) == timedelta(days=30)
    assert settled_retention_of(DeliveryTuning(settled_retention_days=7)) == timedelta(days=7)
    assert Pruned(deliveries=3).total == 3
