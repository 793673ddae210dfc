"""The access log writes the line ``KeyValueFormatter`` would make from the record.

``node.logs.AccessLogger`` writes straight to our key=value handler's stream when that
handler alone would see the record; these tests hold the direct line equal to the
record's formatted text, and check that every other set-up still gets the record.
"""

from __future__ import annotations

import io
import logging
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.logs import (
    AccessLogger,
    JsonLinesFormatter,
    KeyValueFormatter,
    StructuredStreamHandler,
    _timestamp,
)

TS = re.compile(r"^ts=\S+ ")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    parent = logging.getLogger("praxisnetz.test_logs_access")
    parent.propagate = False  # neither pytest's capture nor the root's handlers see it
    child = logging.getLogger("praxisnetz.test_logs_access.http")
    yield child
    for each in (parent, child):
        each.handlers[:] = []
        each.filters[:] = []
        each.propagate = True
        each.disabled = False
        each.setLevel(logging.NOTSET)


def _handler(kind: type[logging.StreamHandler], formatter: logging.Formatter  # type: ignore[type-arg]
             ) -> logging.StreamHandler:  # type: ignore[type-arg]
    handler = kind(io.StringIO())
    handler.setFormatter(formatter)
    return handler


def _request(path: str, remote: str | None) -> web.Request:
    request = make_mocked_request("POST", path)
    # the mocked transport's peer is a Mock: set what aiohttp would read from the socket
    request._cache["remote"] = remote  # noqa: SLF001 - reify's cache, the test's own request
    return request


def _lines(handler: logging.StreamHandler) -> list[str]:  # type: ignore[type-arg]
    return handler.stream.getvalue().splitlines()


@pytest.mark.parametrize(("path", "remote", "status"), [
    ("/actor/inbox", "203.0.113.7", 202),
    ("/a path/with spaces", "::1", 404),
    ('/quote"and=equals', None, 500),
    ("/", "", 401),
])
def test_the_direct_line_is_the_records_formatted_text(
        logger: logging.Logger, path: str, remote: str | None, status: int) -> None:
    direct = _handler(StructuredStreamHandler, KeyValueFormatter())
    logger.parent.handlers[:] = [direct]  # type: ignore[union-attr]
    AccessLogger(logger, "").log(_request(path, remote), web.Response(status=status), 0.01234)
    # A plain StreamHandler is not ours: the record goes through the formatter
    formatted = _handler(logging.StreamHandler, KeyValueFormatter())
    logger.parent.handlers[:] = [formatted]  # type: ignore[union-attr]
    AccessLogger(logger, "").log(_request(path, remote), web.Response(status=status), 0.01234)
    [line], [expected] = _lines(direct), _lines(formatted)
    assert TS.sub("", line) == TS.sub("", expected)
    assert f"status={status} ms=12.3 " in line
    assert line.startswith("ts=") and line.split(" ", 1)[0][-1] == "Z"


def _written_directly(logger: logging.Logger) -> bool:
    """True if AccessLogger wrote without a record (the record path calls makeRecord)."""
    made: list[logging.LogRecord] = []
    original = logger.makeRecord

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = original(*args, **kwargs)  # type: ignore[arg-type]
        made.append(record)
        return record

    logger.makeRecord = counting  # type: ignore[method-assign]
    try:
        AccessLogger(logger, "").log(_request("/inbox", "192.0.2.1"), web.Response(status=202), 0.001)
    finally:
        del logger.makeRecord
    return not made


def test_every_other_set_up_gets_the_record(logger: logging.Logger) -> None:
    ours = _handler(StructuredStreamHandler, KeyValueFormatter())
    logger.parent.handlers[:] = [ours]  # type: ignore[union-attr]
    assert _written_directly(logger)
    second = _handler(logging.StreamHandler, KeyValueFormatter())
    logger.handlers[:] = [second]  # a second handler must see the line too
    assert not _written_directly(logger)
    assert len(_lines(second)) == 1 and len(_lines(ours)) == 2
    logger.handlers[:] = []
    ours.setFormatter(JsonLinesFormatter())  # PRAXISNETZ_LOG_JSON=1
    assert not _written_directly(logger)
    ours.setFormatter(KeyValueFormatter())
    ours.addFilter(lambda record: False)
    assert not _written_directly(logger)
    assert len(_lines(ours)) == 3  # the filter kept its line out
    ours.filters[:] = []
    logger.addFilter(lambda record: True)
    assert not _written_directly(logger)
    logger.filters[:] = []
    ours.setLevel(logging.WARNING)
    assert not _written_directly(logger)
    assert len(_lines(ours)) == 4  # the level kept its line out
    ours.setLevel(logging.NOTSET)
    assert _written_directly(logger)
    logger.disabled = True
    assert not _written_directly(logger)
    assert len(_lines(ours)) == 5  # a disabled logger wrote nothing


def test_a_failing_stream_is_reported_as_logging_reports_it(
        logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = StructuredStreamHandler(Broken())
    handler.setFormatter(KeyValueFormatter())
    logger.parent.handlers[:] = [handler]  # type: ignore[union-attr]
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    AccessLogger(logger, "").log(_request("/inbox", "192.0.2.1"), web.Response(status=202), 0.001)
    assert [(r.getMessage(), r.status) for r in reported] == [("request", 202)]  # type: ignore[attr-defined]


def test_the_timestamp_is_strftimes_for_any_moment() -> None:
    rng = random.Random(9)
    moments = [rng.uniform(0, 4e9) for _ in range(20_000)]
    seconds = [1_795_000_000 + n + rng.random() * 1e-5 for n in range(2_000)]  # near a whole
    edges = [0.0, 0.0000005, 0.0000015, 0.0000025, 1.0000005, 1_795_000_000.5,
             1_795_000_000.9999996, 1_795_000_000.9999994, 253_402_300_799.0]
    for created in [*moments, *seconds, *[s - 1e-5 for s in seconds], *edges]:
        expected = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert _timestamp(created) == expected


def test_the_cached_line_head_follows_a_renamed_level_and_quotes_as_before(
        logger: logging.Logger) -> None:
    direct = _handler(StructuredStreamHandler, KeyValueFormatter())
    logger.parent.handlers[:] = [direct]  # type: ignore[union-attr]
    access = AccessLogger(logger, "")
    access.log(_request("/inbox", "192.0.2.1"), web.Response(status=202), 0.001)
    logging.addLevelName(logging.INFO, "NOTE WORTHY")
    try:
        access.log(_request('/x "y"', None), web.Response(status=202), 0.001)
    finally:
        logging.addLevelName(logging.INFO, "INFO")
    first, second = _lines(direct)
    assert " level=info logger=praxisnetz.test_logs_access.http msg=request method=POST" in first
    assert ' level="note worthy" ' in second
    assert ' path="/x \\"y\\"" ' in second and " remote=None " in second
