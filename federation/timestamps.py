"""xsd:dateTime values as the fediverse writes them: UTC, whole seconds, ``Z`` suffix."""

from __future__ import annotations

from datetime import UTC, datetime


class TimestampError(ValueError):
    """A timestamp that is not an aware xsd:dateTime."""


def format_timestamp(moment: datetime) -> str:
    """``2026-11-22T10:00:00Z`` for an aware datetime (converted to UTC, sub-seconds dropped)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimestampError("timestamp must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
