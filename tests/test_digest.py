"""Digest (RFC 3230) and Content-Digest (RFC 9530): fixed examples and rejections."""

import pytest

from federation.digest import (
    DigestCheck,
    check_content_digest,
    check_digest,
    make_content_digest,
    make_digest,
)

HELLO = b'{"hello": "world"}'
HELLO_NL = b'{"hello": "world"}\n'
# RFC 9421 B.2 test-request and draft-cavage-12 appendix C, sha-256 of HELLO
HELLO_SHA256 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
# RFC 9421 B.2 test-request: Content-Digest sha-512 of HELLO
HELLO_SHA512 = "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="
# RFC 9530 section 2: sha-512 of the example content {"hello": "world"} plus newline
HELLO_NL_SHA512 = "YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg=="


def test_digest_header_reproduces_the_cavage_appendix_value():
    assert make_digest(HELLO) == f"SHA-256={HELLO_SHA256}"


def test_content_digest_reproduces_rfc9421_test_request():
    assert make_content_digest(HELLO, ["sha-512"]) == f"sha-512=:{HELLO_SHA512}:"
    assert make_content_digest(HELLO) == f"sha-256=:{HELLO_SHA256}:"


def test_rfc9530_section2_example_verifies():
    assert check_content_digest(f"sha-512=:{HELLO_NL_SHA512}:", HELLO_NL) is DigestCheck.OK
    both = make_content_digest(HELLO_NL, ["sha-256", "sha-512"])
    assert both.endswith(f"sha-512=:{HELLO_NL_SHA512}:")
    assert check_content_digest(both, HELLO_NL) is DigestCheck.OK


@pytest.mark.parametrize("name", ["SHA-256", "sha-256", "Sha-256", "sHa-256"])
def test_digest_algorithm_names_are_case_insensitive(name):
    assert check_digest(f"{name}={HELLO_SHA256}", HELLO) is DigestCheck.OK
    assert check_content_digest(f"{name}=:{HELLO_SHA256}:", HELLO) is DigestCheck.OK


def test_digest_mismatch_is_detected():
    assert check_digest(f"SHA-256={HELLO_SHA256}", HELLO_NL) is DigestCheck.MISMATCH
    assert check_content_digest(f"sha-256=:{HELLO_SHA256}:", HELLO_NL) is DigestCheck.MISMATCH


def test_every_supported_algorithm_must_match():
    value = f"sha-256=:{HELLO_SHA256}:, sha-512=:{HELLO_NL_SHA512}:"
    assert check_content_digest(value, HELLO) is DigestCheck.MISMATCH
    assert check_digest(f"SHA-256={HELLO_SHA256},SHA-512={HELLO_NL_SHA512}", HELLO) is (
        DigestCheck.MISMATCH
    )


def test_unknown_algorithms_are_ignored_next_to_a_known_one():
    value = f"md5=:AAAA:, sha-256=:{HELLO_SHA256}:"
    assert check_content_digest(value, HELLO) is DigestCheck.OK
    assert check_digest(f"MD5=abc, SHA-256={HELLO_SHA256}", HELLO) is DigestCheck.OK


def test_only_unknown_algorithms_is_unsupported():
    assert check_digest("MD5=Sd/dVLAcvNLSq16eXua5uQ==", HELLO) is DigestCheck.UNSUPPORTED
    assert check_content_digest("md5=:Sd/dVLAcvNLSq16eXua5uQ==:", HELLO) is (
        DigestCheck.UNSUPPORTED
    )


@pytest.mark.parametrize(
    "value", ["", "SHA-256", "SHA-256=", "SHA-256=not base64!", "=abc"]
)
def test_malformed_digest_header(value):
    assert check_digest(value, HELLO) is DigestCheck.MALFORMED


@pytest.mark.parametrize(
    "value", ["", f"sha-256={HELLO_SHA256}", "sha-256=:not base64!:", f"sha-256=:{HELLO_SHA256}"]
)
def test_malformed_content_digest_header(value):
    assert check_content_digest(value, HELLO) is DigestCheck.MALFORMED


def test_making_an_unknown_content_digest_is_refused():
    with pytest.raises(ValueError, match="md5"):
        make_content_digest(HELLO, ["md5"])
