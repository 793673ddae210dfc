"""The verification path's shortcuts give what the plain code gives (#9 item 5).

The draft-cavage parameters are read in one regular-expression pass when the header is
well formed; the stepwise reader, which names the problem, must agree with it on every
input. Public keys are loaded once per PEM text.
"""

from __future__ import annotations

import pytest

from federation import httpsig_cavage
from federation.httpsig_common import RequestParts, SignatureFormatError
from federation.keys import (
    KeyFormatError,
    generate_rsa_key,
    load_public_key_pem,
    public_key_pem,
)

HEADERS = [
    'keyId="https://a.example/actor#main-key",algorithm="rsa-sha256",'
    'headers="(request-target) host date digest",signature="AAAA"',
    'keyId="k", signature="AA==" ,created=1402170695, expires=1402170699.5',
    'keyId="k",signature="AA==",',  # a trailing comma, read as before
    'keyId="a,b=\\"c",signature="AA=="',  # a comma and = inside a quoted value
    'keyId="",headers="",signature=""',
    'keyId="k",keyId="l",signature="AA=="',  # twice
    'keyId="k" signature="AA=="',  # no comma
    'keyId="k",,signature="AA=="',
    'keyId=k,signature="AA=="',  # a token, not a string
    "",
    " ",
    'keyId="k",signature="AA==" junk',
]


def _stepwise(value: str) -> dict[str, str] | str:
    try:
        return httpsig_cavage._split_params_stepwise(value)
    except SignatureFormatError as exc:
        return f"error: {exc}"


def _fast(value: str) -> dict[str, str] | str:
    try:
        return httpsig_cavage._split_params(value)
    except SignatureFormatError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("value", HEADERS)
def test_one_pass_and_stepwise_reading_agree(value: str) -> None:
    assert _fast(value) == _stepwise(value)


def test_the_one_pass_reading_is_taken_for_a_usual_header() -> None:
    assert httpsig_cavage._ALL_PARAMS.fullmatch(HEADERS[0])
    assert _fast(HEADERS[0])["headers"] == "(request-target) host date digest"


def test_header_lookup_ignores_case_and_joins_repeated_values() -> None:
    request = RequestParts("POST", "https://b.example/inbox",
                           {"Date": "x", "DATE": "y", "Digest": "d"})  # fmt: skip
    assert request.header("date") == "x, y" and request.header("dIGEST") == "d"
    assert request.header("signature") is None


def test_a_pem_text_is_loaded_once() -> None:
    pem = public_key_pem(generate_rsa_key().public_key())
    first = load_public_key_pem(pem)
    assert load_public_key_pem(pem) is first
    assert public_key_pem(first) == pem


def test_a_bad_pem_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(KeyFormatError):
            load_public_key_pem("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
