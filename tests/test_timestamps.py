"""Timestamps: millisecond versions for contributions, any fraction accepted from others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from federation.timestamps import (
    TimestampError,
    format_precise_timestamp,
    format_timestamp,
    parse_timestamp,
)
from node.authoring import next_version

MOMENT = datetime(2026, 11, 22, 19, 40, 1, 123456, tzinfo=UTC)


def test_precise_timestamps_have_milliseconds_and_whole_seconds_stay_as_they_were() -> None:
    assert format_precise_timestamp(MOMENT) == "2026-11-22T19:40:01.123Z"
    assert format_precise_timestamp(MOMENT.replace(microsecond=0)) == "2026-11-22T19:40:01.000Z"
    assert format_timestamp(MOMENT) == "2026-11-22T19:40:01Z"
    with pytest.raises(TimestampError):
        format_precise_timestamp(MOMENT.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T19:40:01.000Z", datetime(2026, 11, 22, 19, 40, 1, tzinfo=UTC)),  # Mastodon
        ("2026-11-22T19:40:01.123Z", MOMENT.replace(microsecond=123000)),
        ("2026-11-22T19:40:01.123456789Z", MOMENT),  # nanoseconds: cut to microseconds
        ("2026-11-22T20:40:01.5+01:00", MOMENT.replace(microsecond=500000)),
    ],
)
def test_fractional_seconds_from_others_are_parsed(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_a_precise_timestamp_reads_back_as_the_same_millisecond() -> None:
    assert parse_timestamp(format_precise_timestamp(MOMENT)) == MOMENT.replace(microsecond=123000)


def test_next_version_is_always_strictly_later_than_the_previous() -> None:
    previous = MOMENT.replace(microsecond=123000)
    assert next_version(None, MOMENT) == previous
    # the same millisecond, and a clock that went back: one millisecond on
    assert next_version(previous, MOMENT) == previous + timedelta(milliseconds=1)
    assert next_version(previous, MOMENT - timedelta(hours=1)) == previous + timedelta(milliseconds=1)
    # a later moment is taken as it is (to the millisecond)
    later = MOMENT + timedelta(milliseconds=2)
    assert next_version(previous, later) == later.replace(microsecond=125000)
