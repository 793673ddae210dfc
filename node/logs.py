"""Structured logs: one ``key=value`` line per record (or JSON lines with ``PRAXISNETZ_LOG_JSON=1``)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


# A value is quoted (as a JSON string) if it is empty or holds one of these.
_NEEDS_QUOTES = re.compile(r'[ "=\n]')


def _timestamp(created: float) -> str:
    """``2026-11-23T04:20:00.123456Z``: ``isoformat`` with the fraction always written
    (a third of ``strftime``'s cost; the access log writes one per request)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": _timestamp(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _quote(value: object) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quote(value)}" for key, value in _fields(record).items())


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def configure_logging(level: str | None = None) -> None:
    """Log to stderr in the structured format; called once by the CLI, never on import."""
    handler = logging.StreamHandler(sys.stderr)
    as_json = os.environ.get("PRAXISNETZ_LOG_JSON", "") in ("1", "true")
    handler.setFormatter(JsonLinesFormatter() if as_json else KeyValueFormatter())
    # Neither format writes the thread's or process's name or the pid of a record (the
    # access log gives "pid" itself): not looking them up saves ~2 us a record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PRAXISNETZ_LOG_LEVEL", "INFO").upper())
