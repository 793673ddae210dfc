"""The short soak (a hub and three members, ~300 activities, three SIGKILLs and one member
held down past the give-up point), and the test-only clock of ``praxisnetz serve``.

The full run is ``make soak`` (``python -m soak``); see docs/reliability.md.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from node.cli import CLOCK_OFFSET_FILE_ENV, CliError, shifted_clock
from node.offset_clock import OffsetFileClock
from soak.driver import SoakPlan, run_soak

SHORT = SoakPlan(members=3, activities=300, kills=3, kill_interval=3.0, after_week=30,
                 settle_steps=8, step_wait=10.0, settle_grace=60.0, seed=3)


def test_without_the_variable_serve_keeps_the_real_clock() -> None:
    assert shifted_clock(None) is None
    assert shifted_clock("  ") is None


def test_offset_file_moves_the_clock_and_follows_changes(tmp_path) -> None:
    path = tmp_path / "offset"
    clock = OffsetFileClock(path)
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)  # no file yet: real time
    path.write_text("86400\n")
    assert abs(clock() - (datetime.now(UTC) + timedelta(days=1))) < timedelta(seconds=5)
    path.write_text("604800")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # a new mtime for sure
    ahead = clock() - datetime.now(UTC)
    assert timedelta(days=7) - timedelta(seconds=5) < ahead < timedelta(days=7, seconds=5)
    assert clock().tzinfo is not None


@pytest.mark.parametrize("content", ["soon", "nan", "inf", "1e400"])
def test_a_bad_offset_file_is_refused_at_start_naming_the_variable(tmp_path, content) -> None:
    path = tmp_path / "offset"
    path.write_text(content)
    with pytest.raises(CliError, match=CLOCK_OFFSET_FILE_ENV):
        shifted_clock(str(path))


@pytest.mark.soak  # in `make test` too; `make soak-short` runs only this
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_short_soak_loses_nothing_and_duplicates_nothing(tmp_path) -> None:
    report = await run_soak(tmp_path, SHORT)
    print("\n".join(report.lines()))
    assert report.problems == []
    assert report.activities >= SHORT.activities
    assert report.kills >= SHORT.kills + 1 and report.restarts >= SHORT.kills
    assert report.lost == 0 and report.duplicated == 0
    assert report.delivered > 0 and report.gave_up_to_held_down > 0
    assert report.ok
