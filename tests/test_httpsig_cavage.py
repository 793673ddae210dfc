"""draft-cavage-http-signatures-12, appendix C: the test key, request and signatures."""

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from federation import httpsig_cavage
from federation.httpsig import (
    KeyLookup,
    RequestParts,
    SignatureScheme,
    SignatureVerdict,
    sign_request,
    verify_request,
)
from federation.httpsig_common import (
    ComponentMissingError,
    SignatureAlgorithm,
    SignatureFormatError,
    UnsupportedAlgorithmError,
)
from federation.keys import (
    KeyAlgorithm,
    PublicKeyInfo,
    SigningKey,
    generate_ed25519_key,
    generate_rsa_key,
)

# Appendix C: the RSA test key (1024 bit, PKCS#1) and its public half
SPEC_PRIVATE_KEY = b"""-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
"""
SPEC_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""
SPEC_DATE = "Sun, 05 Jan 2014 21:31:40 GMT"
SPEC_NOW = datetime(2014, 1, 5, 21, 31, 40, tzinfo=UTC)
SPEC_BODY = b'{"hello": "world"}'
SPEC_HEADERS = {
    "Host": "example.com",
    "Date": SPEC_DATE,
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
}
C1_SIGNATURE = (
    "SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+ibttBqtifLN7Sazz6m79cNfwwb8DMJ5cou1s7uEGKKCs+FLEEaDV5lp7"
    "q25WqS+lavg7T8hc0GppauB6hbgEKTwblDHYGEtbGmtdHgVCk9SuS13F0hZ8FD0k/5OxEPXe5WozsbM="
)
C2_SIGNATURE = (
    "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3HMbe"
    "8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0="
)
C3_SIGNATURE = (
    "vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2bEKBIvB1q52LaEU"
    "HFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH7s1dE="
)
C3_HEADERS = ("(request-target)", "host", "date", "content-type", "digest", "content-length")


def spec_request(extra: dict[str, str] | None = None) -> RequestParts:
    return RequestParts(
        "POST", "http://example.com/foo?param=value&pet=dog", {**SPEC_HEADERS, **(extra or {})},
        SPEC_BODY,
    )


@pytest.fixture(scope="module")
def spec_key() -> SigningKey:
    return SigningKey("Test", serialization.load_pem_private_key(SPEC_PRIVATE_KEY, None))


def spec_resolver():
    public = PublicKeyInfo("Test", "http://example.com/actor",
                           serialization.load_pem_public_key(SPEC_PUBLIC_KEY))

    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return KeyLookup(public if key_id == "Test" else None, SignatureVerdict.UNKNOWN_KEY)

    return resolve


def test_spec_public_key_is_the_private_keys_half(spec_key):
    derived = spec_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert derived == SPEC_PUBLIC_KEY


def test_c1_default_test(spec_key):
    assert httpsig_cavage.signing_string(spec_request(), ["date"]) == f"date: {SPEC_DATE}".encode()
    header = httpsig_cavage.sign(spec_request(), spec_key, ["date"])
    assert header == f'keyId="Test",algorithm="rsa-sha256",headers="date",signature="{C1_SIGNATURE}"'


def test_c1_without_headers_parameter_covers_date_only():
    spec_header = f'Signature keyId="Test",algorithm="rsa-sha256",signature="{C1_SIGNATURE}"'
    parsed = httpsig_cavage.parse_request(spec_request({"Authorization": spec_header}))
    assert parsed.covered == ("date",)
    assert parsed.signature_base == f"date: {SPEC_DATE}".encode()


def test_c2_basic_test(spec_key):
    covered = ["(request-target)", "host", "date"]
    assert httpsig_cavage.signing_string(spec_request(), covered) == (
        b"(request-target): post /foo?param=value&pet=dog\nhost: example.com\n"
        + f"date: {SPEC_DATE}".encode()
    )
    header = httpsig_cavage.sign(spec_request(), spec_key, covered)
    assert header == (
        'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
        f'signature="{C2_SIGNATURE}"'
    )


def test_c3_all_headers_test(spec_key):
    assert httpsig_cavage.signing_string(spec_request(), C3_HEADERS).decode() == (
        "(request-target): post /foo?param=value&pet=dog\n"
        "host: example.com\n"
        f"date: {SPEC_DATE}\n"
        "content-type: application/json\n"
        "digest: SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\n"
        "content-length: 18"
    )
    header = httpsig_cavage.sign(spec_request(), spec_key, C3_HEADERS)
    assert header.endswith(f'signature="{C3_SIGNATURE}"')


async def test_c3_spec_header_verifies_through_verify_request():
    spec_header = (
        'keyId="Test",algorithm="rsa-sha256",'
        f'headers="{" ".join(C3_HEADERS)}",signature="{C3_SIGNATURE}"'
    )
    for name, value in (("Signature", spec_header), ("Authorization", f"Signature {spec_header}")):
        result = await verify_request(spec_request({name: value}), spec_resolver(), now=SPEC_NOW)
        assert result.verdict is SignatureVerdict.OK, result.detail
        assert result.scheme is SignatureScheme.CAVAGE and result.key_id == "Test"


async def test_c2_is_refused_by_policy_because_the_body_digest_is_not_covered():
    spec_header = (
        'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
        f'signature="{C2_SIGNATURE}"'
    )
    result = await verify_request(spec_request({"Signature": spec_header}), spec_resolver(),
                                  now=SPEC_NOW)
    assert result.verdict is SignatureVerdict.MISSING_COMPONENT
    assert "digest" in result.detail


async def test_hs2019_is_accepted_for_rsa_and_ed25519(spec_key):
    c3 = f'keyId="Test",algorithm="hs2019",headers="{" ".join(C3_HEADERS)}",signature="{C3_SIGNATURE}"'
    result = await verify_request(spec_request({"Signature": c3}), spec_resolver(), now=SPEC_NOW)
    assert result.ok, result.detail
    ed_key = SigningKey("https://a.example/actor#ed", generate_ed25519_key())
    headers = sign_request(spec_request(), ed_key, SignatureScheme.CAVAGE, now=SPEC_NOW)
    assert 'algorithm="hs2019"' in headers["Signature"]
    public = PublicKeyInfo(ed_key.key_id, "https://a.example/actor", ed_key.private_key.public_key())

    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return KeyLookup(public)

    assert (await verify_request(spec_request(headers), resolve, now=SPEC_NOW)).ok


@pytest.mark.parametrize(
    "value, field",
    [
        ('algorithm="rsa-sha256",signature="AAAA"', "keyId"),
        ('keyId="Test",algorithm="rsa-sha256"', "signature"),
        ('keyId="Test",signature="not base64!"', "base64"),
        ('keyId="Test",keyId="Other",signature="AAAA"', "twice"),
        ('keyId="Test" signature="AAAA"', "parse"),
        ('keyId="Test",headers="",signature="AAAA"', "headers"),
    ],
)
def test_malformed_signature_headers_name_the_field(value, field):
    with pytest.raises(SignatureFormatError, match=field):
        httpsig_cavage.parse_signature_header(value)


def test_covering_an_absent_header_is_a_missing_component():
    with pytest.raises(ComponentMissingError, match="x-absent"):
        httpsig_cavage.signing_string(spec_request(), ["date", "x-absent"])
    with pytest.raises(ComponentMissingError, match="created"):
        httpsig_cavage.signing_string(spec_request(), ["(created)"])


def test_created_and_expires_pseudo_headers():
    value = httpsig_cavage.signing_string(
        spec_request(), ["(created)", "(expires)"], created=1402170695, expires=1402170699
    )
    assert value == b"(created): 1402170695\n(expires): 1402170699"


@pytest.mark.parametrize(
    "declared, key_algorithm, expected",
    [
        ("rsa-sha256", KeyAlgorithm.RSA, (SignatureAlgorithm.RSA_V1_5_SHA256,)),
        ("hs2019", KeyAlgorithm.ED25519, (SignatureAlgorithm.ED25519,)),
        (None, KeyAlgorithm.RSA,
         (SignatureAlgorithm.RSA_V1_5_SHA256, SignatureAlgorithm.RSA_PSS_SHA512)),
    ],
)
def test_algorithm_names(declared, key_algorithm, expected):
    assert httpsig_cavage.algorithms_for(declared, key_algorithm) == expected


@pytest.mark.parametrize(
    "declared, key_algorithm",
    [("hmac-sha256", KeyAlgorithm.RSA), ("rsa-sha1", KeyAlgorithm.RSA),
     ("rsa-sha256", KeyAlgorithm.ED25519)],
)
def test_unsupported_algorithms(declared, key_algorithm):
    with pytest.raises(UnsupportedAlgorithmError):
        httpsig_cavage.algorithms_for(declared, key_algorithm)


def test_algorithm_names_are_lower_cased_when_parsed():
    parsed = httpsig_cavage.parse_signature_header('keyId="k",algorithm="RSA-SHA256",signature="AA=="')
    assert parsed.algorithm == "rsa-sha256"


async def test_hs2019_with_rsa_pss_verifies():
    key = SigningKey("Test", generate_rsa_key())  # the 1024-bit spec key is too small for PSS
    public = PublicKeyInfo("Test", "http://example.com/actor", key.private_key.public_key())

    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return KeyLookup(public)

    headers = sign_request(spec_request(), key, SignatureScheme.CAVAGE, now=SPEC_NOW,
                           algorithm=SignatureAlgorithm.RSA_PSS_SHA512)
    assert 'algorithm="hs2019"' in headers["Signature"]
    result = await verify_request(spec_request(headers), resolve, now=SPEC_NOW)
    assert result.ok and result.detail == "verified with rsa-pss-sha512"
    pss_as_rsa_sha256 = headers["Signature"].replace('"hs2019"', '"rsa-sha256"')
    result = await verify_request(spec_request({**headers, "Signature": pss_as_rsa_sha256}),
                                  resolve, now=SPEC_NOW)
    assert result.verdict is SignatureVerdict.BAD_SIGNATURE


def test_pss_with_a_too_small_key_is_a_typed_error(spec_key):
    with pytest.raises(UnsupportedAlgorithmError, match="rsa-pss-sha512"):
        sign_request(spec_request(), spec_key, SignatureScheme.CAVAGE, now=SPEC_NOW,
                     algorithm=SignatureAlgorithm.RSA_PSS_SHA512)
