"""How the inbox worker shares a busy process with the inbox (``node.workers.run_inbox``).

While requests keep coming and the inbox keeps up with them, the worker lets the inbox
go first, but after each batch only three times as long as the batch took
(``busy_pause``): processing keeps a quarter of the time instead of one batch a second
(50 items/s, so a long stream piled up to the queue limit and was answered with 503s).
While requests queue (the door is saturated) it waits longer, up to
``SATURATED_AT_MOST_SECONDS`` per batch: never starved, and the queue limit is the backstop.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from node import workers
from node.config import InboxTuning
from node.inbox_writer import DoorLoad
from node.workers import INGEST_FIRST_AT_MOST_SECONDS, INGEST_QUIET_SECONDS, busy_pause

BATCH_SECONDS = 0.04


def test_the_pause_is_three_times_the_batch_within_bounds() -> None:
    assert busy_pause(0.04) == pytest.approx(0.12)
    assert busy_pause(0.001) == INGEST_QUIET_SECONDS  # no busy-looping on tiny batches
    assert busy_pause(5.0) == INGEST_FIRST_AT_MOST_SECONDS  # one batch a second at least
    assert busy_pause(0.1, share=0.5) == pytest.approx(0.1)


async def _batches_in(seconds: float, idle_seconds: float, monkeypatch, *,
                      saturated: bool = False) -> list[tuple[float, float]]:
    """Run the worker loop for ``seconds`` with batches of BATCH_SECONDS while the inbox
    last stored a row ``idle_seconds`` ago (and is ``saturated``); each batch's (start, end)."""
    loop = asyncio.get_running_loop()
    spans: list[tuple[float, float]] = []

    async def batch(*_args: object) -> int:
        started = loop.time()
        await asyncio.sleep(BATCH_SECONDS)
        spans.append((started, loop.time()))
        return 50

    async def idle() -> DoorLoad:
        return DoorLoad(idle_seconds, saturated)

    monkeypatch.setattr(workers, "process_inbox_batch", batch)
    state = SimpleNamespace(stop=asyncio.Event(), processor=None, delivery_wake=asyncio.Event(),
                            inbox_wake=asyncio.Event())
    config = SimpleNamespace(inbox=InboxTuning())
    task = asyncio.create_task(workers.run_inbox(state, lambda: datetime.now(UTC),  # type: ignore[arg-type]
                                                 config, lambda: idle))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    state.stop.set()
    await task
    return spans


async def test_a_busy_inbox_leaves_the_worker_a_quarter_of_the_time(monkeypatch) -> None:
    spans = await _batches_in(1.5, 0.0, monkeypatch)
    # one batch a second before: 2 in 1.5 s; now one every ~0.16 s
    assert len(spans) >= 5
    gaps = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    assert min(gaps) >= 3 * BATCH_SECONDS * 0.9  # the inbox still goes first
    busy = sum(end - start for start, end in spans)
    assert busy / (spans[-1][1] - spans[0][0]) < 0.4


async def test_a_quiet_inbox_does_not_slow_the_worker(monkeypatch) -> None:
    spans = await _batches_in(0.5, math.inf, monkeypatch)
    gaps = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    assert len(spans) >= 8 and max(gaps) < BATCH_SECONDS


async def test_a_saturated_inbox_defers_processing_but_never_starves_it(monkeypatch) -> None:
    monkeypatch.setattr(workers, "SATURATED_AT_MOST_SECONDS", 0.4)
    spans = await _batches_in(1.5, 0.0, monkeypatch, saturated=True)
    gaps = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    # a busy inbox that keeps up got a batch every ~0.16 s (five or more in 1.5 s)
    assert 2 <= len(spans) <= 4
    assert min(gaps) >= 0.4 * 0.9 and max(gaps) < 0.4 + 0.2  # deferred, and still progress
