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


def test_the_key_type_check_answers_as_isinstance() -> None:
    from unittest import mock

    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from federation import httpsig_common

    rsa_key = generate_rsa_key().public_key()
    ed_key = ed25519.Ed25519PrivateKey.generate().public_key()
    claims_rsa = mock.Mock(spec=rsa.RSAPublicKey)  # its __class__ claims the ABC
    for value in (rsa_key, ed_key, claims_rsa, object(), "key", None, rsa_key, ed_key):
        for abc in (rsa.RSAPublicKey, ed25519.Ed25519PublicKey):
            known: set[type] = set()
            for _ in range(2):  # the second time from what the first remembered
                assert httpsig_common._is_key_of(value, abc, known) is isinstance(value, abc)
    assert type(claims_rsa) not in httpsig_common._RSA_PUBLIC_CLASSES
