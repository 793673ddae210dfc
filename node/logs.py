"""Structured logs: one ``key=value`` line per record (or JSON lines with ``PRAXISNETZ_LOG_JSON=1``)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from time import time as wall_clock

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


# A value is quoted (as a JSON string) if it is empty or holds one of these.
_NEEDS_QUOTES = re.compile(r'[ "=\n]')


def _timestamp(created: float) -> str:
    """``2026-11-23T04:20:00.123456Z``, as ``strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` writes it
    (the access log writes one per request). The microseconds are rounded as
    ``datetime.fromtimestamp`` rounds them (half to even, carried into the second), and
    the date and time of the whole second are made once per second, not per line."""
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1.0, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1.0, micro + 1_000_000
    return f"{_second(whole)}.{micro:06d}Z"


@lru_cache(maxsize=4)  # the lines of one second share it; thread-safe, unlike a hand cache
def _second(whole: float) -> str:
    return datetime.fromtimestamp(whole, UTC).isoformat()[:-6]  # without "+00:00"


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


# The access log quotes the same few methods, paths and peers again and again; the
# cache is bounded, so a flood of distinct paths only evicts.
_quoted = lru_cache(maxsize=1024)(_quote)


@lru_cache(maxsize=16)
def _line_head(level_name: str, logger_name: str) -> str:
    """What follows the timestamp up to the method's value: the same on every line."""
    return f" level={_quote(level_name.lower())} logger={_quote(logger_name)} msg=request method="


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quote(value)}" for key, value in _fields(record).items())


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


class StructuredStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stream handler ``configure_logging`` installs: marks the one handler whose
    lines ``AccessLogger`` may write itself."""

    def write_line(self, line: str, as_record: Callable[[], logging.LogRecord]) -> None:
        """What ``handle`` and ``emit`` do with a record whose formatted text is ``line``
        (``as_record`` makes the record only for an error report)."""
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except RecursionError:  # as StreamHandler.emit: see CPython issue 36272
            raise
        except Exception:  # noqa: BLE001 - reported as logging reports a failed emit
            self.handleError(as_record())
        finally:
            self.release()


def _only_handler(logger: logging.Logger) -> StructuredStreamHandler | None:
    """The one handler a record of ``logger`` at INFO reaches, if it is our key=value
    stream handler without filters and nothing else would see the record; else None."""
    if logger.disabled or logger.filters:
        return None
    found: StructuredStreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (found is not None or type(handler) is not StructuredStreamHandler
                    or handler.filters or handler.level > logging.INFO
                    or type(handler.formatter) is not KeyValueFormatter):  # fmt: skip
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


class AccessLogger(AbstractAccessLogger):
    """One structured line per request (key=value pairs), written by aiohttp after the
    response went out; the status is the one sent, also for an exception aiohttp turned
    into a response.

    When the record would reach only our key=value handler (``configure_logging``), the
    line is written to its stream directly, the same text ``KeyValueFormatter`` makes
    from the record: a LogRecord, the handler chain and the formatter's generic walk
    over the record's attributes cost ~20 µs a request. Any other set-up (JSON lines,
    more handlers, filters, pytest's capture) gets the record as before.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        method, path, status = request.method, request.path, response.status
        ms, remote, pid = round(time * 1000, 1), request.remote, os.getpid()

        def fields() -> dict[str, object]:
            return {"method": method, "path": path, "status": status, "ms": ms,
                    "remote": remote, "pid": pid}

        handler = _only_handler(self.logger)
        if handler is None:
            self.logger.handle(self._record(fields()))
            return
        # The level's name is read per line, as a record reads it (addLevelName may change
        # it); the status, the milliseconds and the pid are numbers: never quoted.
        head = _line_head(logging.getLevelName(logging.INFO), self.logger.name)
        handler.write_line(
            f"ts={_timestamp(wall_clock())}{head}{_quoted(method)} path={_quoted(path)}"
            f" status={status} ms={ms} remote={_quoted(remote)} pid={pid}",
            lambda: self._record(fields()))

    def _record(self, fields: dict[str, object]) -> logging.LogRecord:
        # Made directly: ``Logger.info`` would walk the stack to find its caller.
        return self.logger.makeRecord(self.logger.name, logging.INFO, __file__, 0, "request",
                                      None, None, extra=fields)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def configure_logging(level: str | None = None) -> None:
    """Log to stderr in the structured format; called once by the CLI, never on import."""
    handler = StructuredStreamHandler(sys.stderr)
    as_json = os.environ.get("PRAXISNETZ_LOG_JSON", "") in ("1", "true")
    handler.setFormatter(JsonLinesFormatter() if as_json else KeyValueFormatter())
    # Neither format writes the thread's or process's name or the pid of a record (the
    # access log gives "pid" itself): not looking them up saves ~2 us a record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PRAXISNETZ_LOG_LEVEL", "INFO").upper())
