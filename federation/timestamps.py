"""xsd:dateTime values as the fediverse writes them: UTC with a ``Z`` suffix.

Activities and proofs carry whole seconds; a contribution's ``published``/``updated``
carry milliseconds (``format_precise_timestamp``), so that two edits within one second
are two versions. Parsing accepts any fraction (Mastodon sends ``.000Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MILLISECOND = timedelta(milliseconds=1)


class TimestampError(ValueError):
    """A timestamp that is not an aware xsd:dateTime."""


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimestampError("timestamp must be timezone-aware")
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """``2026-11-22T10:00:00Z`` for an aware datetime (converted to UTC, sub-seconds dropped)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_milliseconds(moment: datetime) -> datetime:
    """The aware UTC moment with its microseconds cut to whole milliseconds."""
    moment = _utc(moment)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def format_precise_timestamp(moment: datetime) -> str:
    """``2026-11-22T10:00:00.123Z``: UTC with milliseconds (further digits dropped)."""
    moment = to_milliseconds(moment)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: object) -> datetime:
    """Parse an xsd:dateTime with an explicit offset into an aware UTC datetime."""
    if not isinstance(text, str) or len(text) > 64:
        raise TimestampError("timestamp must be a string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimestampError(f"not an ISO 8601 date-time: {text!r}") from exc
    if "T" not in text or moment.tzinfo is None:
        raise TimestampError(f"date-time needs a time and a timezone: {text!r}")
    return moment.astimezone(UTC)
