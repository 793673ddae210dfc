"""The verification path's shortcuts give what the plain code gives (#9 item 5):
header lookups straight into the lower-cased items, public keys loaded once per PEM."""

from __future__ import annotations

import pytest

from federation.httpsig_common import RequestParts
from federation.keys import (
    KeyFormatError,
    generate_rsa_key,
    load_public_key_pem,
    public_key_pem,
)


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
