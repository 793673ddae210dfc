"""Remote JSON is refused where Python's parser goes beyond RFC 8259: NaN, Infinity,
and numbers beyond a double (which would be written back as ``Infinity``, not JSON)."""

from __future__ import annotations

import json

import pytest

from federation.activities import ActivityError, parse_activity
from federation.fetch import FetchError, _json_object
from federation.strict_json import finite_float, not_a_json_constant
from node import inbox

OUT_OF_RANGE = [b'{"type": "Create", "n": 1e400}', b'{"n": [1, -2.5E999]}',
                b'{"n": {"deep": 123456789e305}}']


def test_finite_float_takes_numbers_a_double_holds() -> None:
    assert finite_float("1.5e3") == 1500.0
    assert finite_float("-0.0") == 0.0
    assert finite_float("1.7976931348623157e308") == 1.7976931348623157e308
    with pytest.raises(ValueError, match="beyond the range of a double"):
        finite_float("1.8e308")
    with pytest.raises(ValueError, match="NaN is not a JSON value"):
        not_a_json_constant("NaN")


def test_what_is_taken_writes_back_as_json() -> None:
    document = json.loads(b'{"a": 1.5e3, "b": 10000000000000000000000000000, "c": 1e-400}',
                          parse_constant=not_a_json_constant, parse_float=finite_float)
    json.loads(json.dumps(document), parse_constant=not_a_json_constant)  # no Infinity in it


@pytest.mark.parametrize("body", OUT_OF_RANGE)
def test_the_inbox_refuses_a_number_beyond_a_double(body: bytes) -> None:
    with pytest.raises(inbox.InboxRejected) as rejected:
        inbox.parse_body(body)
    assert rejected.value.response.status == 400
    assert b"beyond the range of a double" in rejected.value.response.body


@pytest.mark.parametrize("body", OUT_OF_RANGE)
def test_a_fetched_document_with_such_a_number_is_not_json(body: bytes) -> None:
    with pytest.raises(FetchError, match="beyond the range of a double"):
        _json_object(body, "https://a.example/doc")


@pytest.mark.parametrize("body", OUT_OF_RANGE)
def test_an_activity_body_with_such_a_number_is_refused(body: bytes) -> None:
    with pytest.raises(ActivityError, match="beyond the range of a double") as refused:
        parse_activity(body)
    assert refused.value.field == "body"


@pytest.mark.parametrize("body", [b'{"n": NaN}', b'{"n": [-Infinity]}'])
def test_constants_are_refused_by_every_parser_with_its_own_error(body: bytes) -> None:
    with pytest.raises(inbox.InboxRejected) as rejected:
        inbox.parse_body(body)
    assert rejected.value.response.status == 400
    with pytest.raises(FetchError, match="is not a JSON value"):
        _json_object(body, "https://a.example/doc")
    with pytest.raises(ActivityError, match="is not a JSON value") as refused:
        parse_activity(body)
    assert refused.value.field == "body"
