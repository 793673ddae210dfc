"""The verification path's string-method readers (#9 item 5) against the general ones.

Each fast reader handles only the shape nearly every signer sends and must either give
exactly what the general reader gives or step aside (None / the general path). The
corpora below are mutations of real headers: spaces and tabs, repeated parameters,
quotes, backslashes, separators inside values, changed case, cut and doubled text.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime

import pytest

from federation import httpsig_cavage, structured_fields
from federation.digest import decode_base64
from federation.httpsig_common import SignatureFormatError, parse_http_date
from federation.structured_fields import StructuredFieldError

CAVAGE = (
    'keyId="https://alpha.example/actor#main-key",algorithm="rsa-sha256",'
    'headers="(request-target) host date digest",signature="'
    + base64.b64encode(bytes(range(256))).decode()
    + '"'
)
SIGNATURE_INPUT = (
    'sig1=("@method" "@target-uri" "@authority" "date" "content-digest");'
    'created=1795348800;keyid="https://alpha.example/actor#key";alg="ed25519"'
)
SIGNATURE = "sig1=:" + base64.b64encode(bytes(range(64))).decode() + ":"
INSERTS = [" ", "\t", '"', "\\", ",", ";", "=", ":", "(", ")", "é", "\x7f", "0", "-",
           "A", "a", '","', '" "', "==", ")(", ";a=1", ";created=2", ',keyId="x"']  # fmt: skip


def _mutations(text: str, count: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    yield text
    for _ in range(count):
        mutated = text
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(mutated) + 1)
            kind = rng.randrange(5)
            if kind == 0:
                mutated = mutated[:at] + rng.choice(INSERTS) + mutated[at:]
            elif kind == 1:
                mutated = mutated[:at] + mutated[at + rng.randint(1, 4) :]
            elif kind == 2:
                mutated = mutated[:at] + mutated[at:].swapcase()
            elif kind == 3:
                mutated = mutated + "," + mutated[at:]  # a second, partial member
            else:
                mutated = mutated[:at] + mutated[:at] + mutated[at:]  # doubled text
        yield mutated


def _outcome(read: Callable[[], object]) -> object:
    try:
        return read()
    except (SignatureFormatError, StructuredFieldError, binascii.Error, ValueError) as exc:
        return type(exc)


def test_cavage_parameters_read_as_the_loop_reads_them() -> None:
    accepted = 0
    for value in _mutations(CAVAGE, 4000, seed=9):
        fast = _outcome(lambda v=value: httpsig_cavage._split_params(v))
        assert fast == _outcome(lambda v=value: httpsig_cavage._split_params_loop(v)), value
        accepted += httpsig_cavage._split_canonical(value) is not None
    assert accepted > 100  # the corpus does exercise the fast reader


@pytest.mark.parametrize("value", [
    'keyId="a",keyId="b",signature="AAAA"',  # repeated: the loop names it
    'keyId="a", signature="AAAA"',  # a space: not the canonical shape
    'keyId="a",signature="AA"AA"',
    'keyId="a",,signature="AAAA"',
    'keyId="a",signature="AAAA",',
    'keyId="a",signature=AAAA',
    'kéyId="a",signature="AAAA"',
    'keyId="a",signature="AAAA"x',
    'keyId="a"signature="AAAA"',
    '="a",signature="AAAA"',
])  # fmt: skip
def test_odd_cavage_headers_are_left_to_the_loop(value: str) -> None:
    assert httpsig_cavage._split_canonical(value) is None
    assert _outcome(lambda: httpsig_cavage._split_params(value)) == _outcome(
        lambda: httpsig_cavage._split_params_loop(value)
    )


def test_a_repeated_cavage_parameter_is_still_refused_by_name() -> None:
    with pytest.raises(SignatureFormatError, match="keyId"):
        httpsig_cavage.parse_signature_header('keyId="a",keyId="b",signature="AAAA"')


def test_signature_input_read_as_the_general_reader_reads_it() -> None:
    accepted = 0
    for value in _mutations(SIGNATURE_INPUT, 4000, seed=21):
        single = structured_fields._single_inner_list(value)
        if single is not None:
            accepted += 1
            assert single == structured_fields._inner_lists("Signature-Input", value), value
    assert accepted > 100


@pytest.mark.parametrize("value", [
    'sig1=("@method" "@method");created=1;created=2',  # repeated parameter
    'sig1=("@method"  "@path");created=1',  # two spaces
    'sig1=("@method" "a\\"b");created=1',  # an escape
    'sig1=("@method" "a;b");keyid="k;created=5"',  # separators inside strings
    'sig1=("@method" "a)b");keyid="x"',
    'sig1=("@method");created=007',  # not canonical
    'sig1=("@method");keyid=token',  # a token, not a string
    'sig1=("@method");created=1, sig2=("@path");created=2',  # two members
    'sig1=("@method");created=1,',
    'SIG1=("@method");created=1',
    'sig1=("@méthod");created=1',
    'sig1=("@method" );created=1',
    'sig1=(");created=1',
])  # fmt: skip
def test_odd_signature_inputs_are_left_to_the_general_reader(value: str) -> None:
    single = structured_fields._single_inner_list(value)
    if single is not None:  # only for what both read the same way
        assert single == structured_fields._inner_lists("Signature-Input", value)
    assert _outcome(lambda: structured_fields.parse_inner_lists("Signature-Input", value)) == (
        _outcome(lambda: structured_fields._inner_lists("Signature-Input", value))
    )


def test_separators_inside_strings_are_read_as_strings() -> None:
    value = 'sig1=("@method" "a b" "c;d");keyid="k;created=5";created=1'
    assert structured_fields._single_inner_list(value) == structured_fields._inner_lists(
        "Signature-Input", value
    )
    member = structured_fields.parse_inner_lists("Signature-Input", value)["sig1"]
    assert member.items == ("@method", "a b", "c;d")
    assert member.params == {"keyid": "k;created=5", "created": 1}


def test_signature_bytes_read_as_the_general_reader_reads_them() -> None:
    accepted = 0
    for value in _mutations(SIGNATURE, 4000, seed=33):
        single = structured_fields._single_byte_sequence(value)
        if single is not None:
            accepted += 1
            assert single == structured_fields._byte_sequences("Signature", value), value
        assert _outcome(lambda v=value: structured_fields.parse_byte_sequences("S", v)) == (
            _outcome(lambda v=value: structured_fields._byte_sequences("S", v))
        )
    assert accepted > 100


def test_strict_base64_is_exactly_b64decode_validate() -> None:
    rng = random.Random(5)
    alphabet = "AB+/=a0 \n:-_é"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert _outcome(lambda t=text: decode_base64(t)) == _outcome(
            lambda t=text: base64.b64decode(t, validate=True)
        ), text


@pytest.mark.parametrize("value", [
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sat, 29 Feb 2020 23:59:59 GMT",
    "Sun, ２2 Nov 2026 12:00:00 GMT",  # a non-ASCII digit: the email parser's business
    "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete forms go to the email parser
    "Sun Nov  6 08:49:37 1994",
    "Sun, 06 Nov 1994 08:49:37 +0200",
])  # fmt: skip
def test_http_dates_read_as_the_email_parser_reads_them(value: str) -> None:
    try:
        expected = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        expected = None
    if expected is None or expected.tzinfo is None:
        with pytest.raises(SignatureFormatError):
            parse_http_date(value)
    else:
        assert parse_http_date(value) == expected


@pytest.mark.parametrize("value", [
    "Sun, 31 Feb 2026 12:00:00 GMT",  # no such day
    "Sun, 22 Nov 2026 24:00:00 GMT",
    "Sun, 22 Nov 2026 12:00:60 GMT",
    "Sun, 22 Abc 2026 12:00:00 GMT",
    "Sun, 22 Nov 2026 12:00:00",
    "",
])  # fmt: skip
def test_impossible_http_dates_are_refused(value: str) -> None:
    with pytest.raises(SignatureFormatError):
        parse_http_date(value)


def test_structured_strings_take_printable_ascii_only() -> None:
    for code in range(0x100):
        char = chr(code)
        if 0x20 <= code <= 0x7E:
            expected = '"' + char.replace("\\", "\\\\").replace('"', '\\"') + '"'
            assert structured_fields.serialise_string(char) == expected
        else:
            with pytest.raises(StructuredFieldError):
                structured_fields.serialise_string("a" + char)
    assert structured_fields.serialise_string("") == '""'


def _general_signature_header(value: str) -> httpsig_cavage.CavageParams:
    """parse_signature_header without its readers of the usual shapes."""
    if value[:10].lower() == "signature ":
        value = value[10:]
    params = httpsig_cavage._split_params_loop(value)
    return httpsig_cavage._checked_params(params.get("keyId"), params.get("signature"),
                                          params.get("headers"), params.get("algorithm"), params)


def _outcome_and_message(read: Callable[[], object]) -> object:
    try:
        return read()
    except (SignatureFormatError, StructuredFieldError, binascii.Error, ValueError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize(("header", "in_usual_order"), [
    (CAVAGE, True),
    ("Signature " + CAVAGE, True),
    (CAVAGE.replace('algorithm="rsa-sha256",', 'algorithm="hs2019",created=1795348800,'
                    'expires=1795349800,'), False),
    (CAVAGE.replace('headers="(request-target) host date digest",', ""), False),
])
def test_cavage_headers_read_as_the_general_reader_reads_them(header: str,
                                                              in_usual_order: bool) -> None:
    usual = 0
    for value in _mutations(header, 3000, seed=len(header)):
        fast = _outcome_and_message(lambda v=value: httpsig_cavage.parse_signature_header(v))
        assert fast == _outcome_and_message(lambda v=value: _general_signature_header(v)), value
        usual += httpsig_cavage._USUAL_ORDER.fullmatch(value.removeprefix("Signature ")) is not None
    assert usual > 100 if in_usual_order else usual == 0
