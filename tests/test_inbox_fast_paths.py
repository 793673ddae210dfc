"""The inbox's per-request shortcuts answer as the general code they replace.

The JSON decoding of a body against ``json.loads``; ``RequestParts.with_overrides``
against ``with_headers``; the origin check of ``origin_problem`` by prefix against
``may_act_on``; the access log's timestamp and quoting against the formats before.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import logging
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from federation.activities import parse_activity
from federation.httpsig_common import RequestParts
from federation.strict_json import finite_float, not_a_json_constant
from node import inbox
from node.logs import KeyValueFormatter, _timestamp

AS = "https://www.w3.org/ns/activitystreams"

BODIES = [
    b'{"a": 1}',
    b"{}",
    b"{",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -Infinity}',
    b'{"a": 1e400}',
    b'{"a": [0.5, -1E+999]}',
    b'{"a": 1.5e3, "b": 10000000000000000000000000000}',
    b'{"a": "\\ud800"}',
    b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes
    b'{"a": "\xff"}',
    b'{"a": "\xc3\xa4"}',
    b'{"a": 1} x',
    b'{"a": 1}\n',
    b"{\x00}",
    codecs.BOM_UTF8 + b'{"a": 1}',
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-32"),
    b" {}",
    b"[1]",
    b"",
]


def _slow(body: bytes) -> tuple[str, object]:
    try:
        return "ok", json.loads(body, parse_constant=not_a_json_constant, parse_float=finite_float)
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def _fast(body: bytes) -> tuple[str, object]:
    try:
        return "ok", inbox._decode_json(body)[0]
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("body", BODIES)
def test_decoding_a_body_answers_as_json_loads(body: bytes) -> None:
    assert _fast(body) == _slow(body)


@pytest.mark.parametrize("body", BODIES)
def test_the_text_handed_on_is_the_json_that_was_parsed(body: bytes) -> None:
    # The writer stores this text instead of serializing the document again: it must
    # read back as the very document (or be absent, and the document is serialized).
    try:
        document, text = inbox._decode_json(body)
    except (UnicodeDecodeError, ValueError):
        return
    if text is not None:
        assert json.loads(text) == document
        assert text.encode("utf-8", "surrogatepass") == body


@pytest.mark.parametrize("body", BODIES)
def test_parse_body_refuses_what_it_refused(body: bytes) -> None:
    outcome = _slow(body)
    if outcome[0] != "ok" or not isinstance(outcome[1], dict):
        with pytest.raises(inbox.InboxRejected) as rejected:
            inbox.parse_body(body)
        assert rejected.value.response.status == 400


@pytest.mark.parametrize("headers", [
    CIMultiDict([("Host", "evil.example"), ("Date", "x"), ("signature", "s")]),
    CIMultiDict([("X-A", "1"), ("x-a", "2"), ("HOST", "a"), ("host", "b")]),
    CIMultiDict(),
    {"Content-Type": "application/json"},
    {"Date": "a", "date": "b", "DATE": "c", "Host": "h"},
])
def test_with_overrides_is_with_headers_in_one_copy(headers) -> None:  # noqa: ANN001
    slow = RequestParts("POST", "https://n.example/inbox", headers, b"{}").with_headers(
        {"Host": "n.example"})
    fast = RequestParts.with_overrides("POST", "https://n.example/inbox", headers, b"{}",
                                       {"Host": "n.example"})
    assert fast == slow and repr(fast) == repr(slow) and type(fast) is RequestParts
    assert fast.header("host") == "n.example"
    assert dict(fast.headers.items()) == dict(slow.headers.items())
    # the values of a repeated name are joined in order, under the last spelling
    expected: dict[str, tuple[str, str]] = {}
    for name, value in headers.items():
        key = name.lower()
        expected[key] = (name, f"{expected[key][1]}, {value}") if key in expected else (name, value)
    expected["host"] = ("Host", "n.example")
    assert fast.headers._items == expected  # noqa: SLF001
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.url = "https://evil.example/inbox"  # type: ignore[misc]


def _activity(kind: str, object_id: str, actor: str = "https://a.example/u"):  # noqa: ANN202
    return parse_activity({"@context": AS, "id": f"{actor}/act", "type": kind, "actor": actor,
                           "object": object_id})


@pytest.mark.parametrize("kind", ["Create", "Update", "Delete", "Undo", "Follow", "Like"])
@pytest.mark.parametrize("object_id", [
    "https://a.example/u/1", "https://b.example/u/1", "https://a.example:444/u/1",
    "http://a.example/u/1", "https://A.EXAMPLE/u/1", "https://a.example./u/1",
])
def test_origin_problem_by_prefix_matches_may_act_on(kind: str, object_id: str) -> None:
    from federation.origin import OriginVerdict, may_act_on

    activity = _activity(kind, object_id)
    verdict = may_act_on(activity.actor, kind, activity.object_id)
    assert (inbox.origin_problem(activity) is None) == (verdict is OriginVerdict.ALLOWED)


@pytest.mark.parametrize("created", [0.0, 1_795_000_000.0, 1_795_000_000.5, 1_795_000_000.9999996,
                                     1_795_000_000.123456, 253_402_300_799.0])
def test_the_log_timestamp_is_the_format_it_was(created: float) -> None:
    old = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _timestamp(created) == old


def test_log_values_are_quoted_where_they_were() -> None:
    record = logging.LogRecord("praxisnetz.http", logging.INFO, __file__, 0, "request", None,
                               None)
    for key, value in {"empty": "", "space": "a b", "quote": 'a"b', "eq": "a=b", "nl": "a\nb",
                       "plain": "/actor/inbox", "number": 202, "tab": "a\tb"}.items():
        setattr(record, key, value)
    line = KeyValueFormatter().format(record)
    assert ' empty="" ' in line and ' space="a b" ' in line and ' quote="a\\"b" ' in line
    assert ' eq="a=b" ' in line and ' nl="a\\nb" ' in line
    assert " plain=/actor/inbox " in line and " number=202 " in line
    assert " tab=a\tb" in line  # a tab was never quoted


@pytest.mark.parametrize("value", [
    'keyId="https://a.example/u#k",signature="x"',
    'sig1=("@method");created=1;keyid="https://b.example/k"',
    'sig1=("keyid");keyid="https://c.example/k"',  # "keyid" first where no match begins
    'KEYID = "https://d.example/k"', 'keyid\t=\x1c"https://e.example/k"',
    'keyid="unterminated', 'nothing here', '', 'keyid="a" keyid="b"',
    'x=("k\u0130");keyid="https://f.example/k"',  # lower() of U+0130 is two characters
    '\u212aeyid="https://g.example/k"',  # the Kelvin sign matches "k" case-insensitively
    'keyi\u212a keyid="https://h.example/k"',
])
def test_the_first_key_id_is_the_searchs(value: str) -> None:
    fast, slow = inbox._first_key_id(value), inbox._KEY_ID.search(value)
    assert (fast and (fast.span(), fast.group(1))) == (slow and (slow.span(), slow.group(1)))


def test_a_request_from_a_peer_gets_one_address_object_per_peer() -> None:
    from node.client_address import SEEN_LIMIT, AddressSource, ClientAddress, TrustedProxies

    trusted = TrustedProxies(())
    first = trusted.as_peer("192.0.2.1")
    assert first == ClientAddress("192.0.2.1", AddressSource.PEER)
    assert trusted.as_peer("192.0.2.1") is first
    for n in range(SEEN_LIMIT + 5):
        assert trusted.as_peer(f"10.0.{n // 256}.{n % 256}").address == f"10.0.{n // 256}.{n % 256}"
    assert len(trusted._peers) <= SEEN_LIMIT  # noqa: SLF001 - clients choose them: bounded


@pytest.mark.parametrize("base_url", ["https://n.example", "http://127.0.0.1:8080",
                                      "https://N.Example:8443/sub", "http://[::1]:8080"])
def test_the_public_host_is_the_configs_domain(base_url: str, tmp_path) -> None:  # noqa: ANN001
    from urllib.parse import urlsplit

    from node.config import NodeConfig

    # the inbox reads config.domain per request: made once, the base URL's netloc
    config = NodeConfig(data_dir=tmp_path, base_url=base_url, name="N", slug="n")
    assert config.domain == urlsplit(config.base_url).netloc
    assert config.domain is config.domain


def test_the_clock_window_is_the_configured_one() -> None:
    from datetime import timedelta

    window = inbox._clock_window(600)
    assert window.max_age == timedelta(seconds=600) and window.max_future == timedelta(hours=1)
    assert inbox._clock_window(600) is window and inbox._clock_window(60).max_age.seconds == 60
