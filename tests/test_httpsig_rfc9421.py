"""RFC 9421 appendix B: test keys, test-request, B.2.1 (rsa-pss-sha512) and B.2.6 (ed25519)."""

import base64
from datetime import UTC, datetime

import http_sfv
import pytest
from cryptography.hazmat.primitives import serialization

from federation import httpsig_rfc9421
from federation.digest import DigestCheck, check_content_digest
from federation.httpsig import (
    KeyLookup,
    RequestParts,
    SignatureAlgorithm,
    SignatureScheme,
    SignatureVerdict,
    sign_request,
    verify_request,
)
from federation.httpsig_common import (
    ComponentMissingError,
    SignatureFormatError,
    UnsupportedAlgorithmError,
    signature_matches,
)
from federation.keys import KeyAlgorithm, PublicKeyInfo, SigningKey
from federation.structured_fields import (
    StructuredFieldError,
    parse_byte_sequences,
    parse_inner_lists,
)

# B.1.2 test-key-rsa-pss. The RFC prints the private key as PKCS#8 (with the RSASSA-PSS
# algorithm identifier) under an "RSA PRIVATE KEY" label; we load the DER directly.
RSA_PSS_PRIVATE_DER = base64.b64decode("""
MIIEvgIBADALBgkqhkiG9w0BAQoEggSqMIIEpgIBAAKCAQEAr4tmm3r20Wd/Pbqv
P1s2+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry5
3mm+oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7Oyr
FAHqgDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUA
AN5WUtzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw
9lq4aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oy
c6XI2wIDAQABAoIBAQCUB8ip+kJiiZVKF8AqfB/aUP0jTAqOQewK1kKJ/iQCXBCq
pbo360gvdt05H5VZ/RDVkEgO2k73VSsbulqezKs8RFs2tEmU+JgTI9MeQJPWcP6X
aKy6LIYs0E2cWgp8GADgoBs8llBq0UhX0KffglIeek3n7Z6Gt4YFge2TAcW2WbN4
XfK7lupFyo6HHyWRiYHMMARQXLJeOSdTn5aMBP0PO4bQyk5ORxTUSeOciPJUFktQ
HkvGbym7KryEfwH8Tks0L7WhzyP60PL3xS9FNOJi9m+zztwYIXGDQuKM2GDsITeD
2mI2oHoPMyAD0wdI7BwSVW18p1h+jgfc4dlexKYRAoGBAOVfuiEiOchGghV5vn5N
RDNscAFnpHj1QgMr6/UG05RTgmcLfVsI1I4bSkbrIuVKviGGf7atlkROALOG/xRx
DLadgBEeNyHL5lz6ihQaFJLVQ0u3U4SB67J0YtVO3R6lXcIjBDHuY8SjYJ7Ci6Z6
vuDcoaEujnlrtUhaMxvSfcUJAoGBAMPsCHXte1uWNAqYad2WdLjPDlKtQJK1diCm
rqmB2g8QE99hDOHItjDBEdpyFBKOIP+NpVtM2KLhRajjcL9Ph8jrID6XUqikQuVi
4J9FV2m42jXMuioTT13idAILanYg8D3idvy/3isDVkON0X3UAVKrgMEne0hJpkPL
FYqgetvDAoGBAKLQ6JZMbSe0pPIJkSamQhsehgL5Rs51iX4m1z7+sYFAJfhvN3Q/
OGIHDRp6HjMUcxHpHw7U+S1TETxePwKLnLKj6hw8jnX2/nZRgWHzgVcY+sPsReRx
NJVf+Cfh6yOtznfX00p+JWOXdSY8glSSHJwRAMog+hFGW1AYdt7w80XBAoGBAImR
NUugqapgaEA8TrFxkJmngXYaAqpA0iYRA7kv3S4QavPBUGtFJHBNULzitydkNtVZ
3w6hgce0h9YThTo/nKc+OZDZbgfN9s7cQ75x0PQCAO4fx2P91Q+mDzDUVTeG30mE
t2m3S0dGe47JiJxifV9P3wNBNrZGSIF3mrORBVNDAoGBAI0QKn2Iv7Sgo4T/XjND
dl2kZTXqGAk8dOhpUiw/HdM3OGWbhHj2NdCzBliOmPyQtAr770GITWvbAI+IRYyF
S7Fnk6ZVVVHsxjtaHy1uJGFlaZzKR4AGNaUTOJMs6NadzCmGPAxNQQOCqoUjn4XR
rOjr9w349JooGXhOxbu8nOxX
""")
RSA_PSS_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----
"""
# B.1.4 test-key-ed25519
ED25519_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
ED25519_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
# B.2 test-request
TEST_REQUEST_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
TEST_REQUEST_BODY = b'{"hello": "world"}'
CREATED = 1618884473
SPEC_NOW = datetime.fromtimestamp(CREATED, UTC)

B21_INPUT = '();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
B21_SIGNATURE = (
    "d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Ud"
    "x7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBqJzsP"
    "LMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v"
    "6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q=="
)
B26_COMPONENTS = ("date", "@method", "@path", "@authority", "content-type", "content-length")
B26_INPUT = (
    '("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    f'"@signature-params": {B26_INPUT}'
)
B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)


def rfc_test_request(extra: dict[str, str] | None = None) -> RequestParts:
    return RequestParts("POST", "https://example.com/foo?param=Value&Pet=dog",
                        {**TEST_REQUEST_HEADERS, **(extra or {})}, TEST_REQUEST_BODY)


@pytest.fixture(scope="module")
def pss_key() -> SigningKey:
    return SigningKey("test-key-rsa-pss", serialization.load_der_private_key(RSA_PSS_PRIVATE_DER, None))


@pytest.fixture(scope="module")
def ed_key() -> SigningKey:
    return SigningKey("test-key-ed25519", serialization.load_pem_private_key(ED25519_PRIVATE_PEM, None))


def resolver_for(*infos: PublicKeyInfo):
    by_id = {info.key_id: info for info in infos}

    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return KeyLookup(by_id.get(key_id), SignatureVerdict.UNKNOWN_KEY)

    return resolve


def public_info(key_id: str, pem: bytes) -> PublicKeyInfo:
    return PublicKeyInfo(key_id, "https://example.com/actor", serialization.load_pem_public_key(pem))


def test_published_public_keys_match_the_private_keys(pss_key, ed_key):
    for key, pem in ((pss_key, RSA_PSS_PUBLIC_PEM), (ed_key, ED25519_PUBLIC_PEM)):
        derived = key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert derived == pem


def test_test_request_content_digest_matches_its_body():
    assert check_content_digest(TEST_REQUEST_HEADERS["Content-Digest"], TEST_REQUEST_BODY) is (
        DigestCheck.OK
    )


def test_b21_signature_base_and_rfc_signature_verify():
    request = rfc_test_request({"Signature-Input": f"sig-b21={B21_INPUT}",
                            "Signature": f"sig-b21=:{B21_SIGNATURE}:"})
    parsed = httpsig_rfc9421.parse_request(request)
    assert parsed.signature_base == f'"@signature-params": {B21_INPUT}'.encode()
    assert parsed.key_id == "test-key-rsa-pss"
    public = serialization.load_pem_public_key(RSA_PSS_PUBLIC_PEM)
    assert signature_matches(public, SignatureAlgorithm.RSA_PSS_SHA512, parsed.signature,
                             parsed.signature_base)
    tampered = parsed.signature_base.replace(b"b3k2", b"b3k3")
    assert not signature_matches(public, SignatureAlgorithm.RSA_PSS_SHA512, parsed.signature,
                                 tampered)


def test_b21_our_pss_signature_round_trips(pss_key):
    signature_input, signature = httpsig_rfc9421.sign(
        rfc_test_request(), pss_key, [], created=CREATED, algorithm=SignatureAlgorithm.RSA_PSS_SHA512,
        label="sig-b21", extra_params={"nonce": "b3k2pp5k7z-50gnwp.yemd"}, declare_alg=False,
    )
    assert signature_input == f"sig-b21={B21_INPUT}"
    assert signature != f"sig-b21=:{B21_SIGNATURE}:"  # PSS is randomised
    parsed = httpsig_rfc9421.parse_request(
        rfc_test_request({"Signature-Input": signature_input, "Signature": signature})
    )
    public = serialization.load_pem_public_key(RSA_PSS_PUBLIC_PEM)
    assert signature_matches(public, SignatureAlgorithm.RSA_PSS_SHA512, parsed.signature,
                             parsed.signature_base)


def test_b26_reproduces_exactly(ed_key):
    assert httpsig_rfc9421.signature_base(rfc_test_request(), B26_COMPONENTS, B26_INPUT) == (
        B26_BASE.encode()
    )
    signature_input, signature = httpsig_rfc9421.sign(
        rfc_test_request(), ed_key, B26_COMPONENTS, created=CREATED, label="sig-b26",
        declare_alg=False,
    )
    assert signature_input == f"sig-b26={B26_INPUT}"
    assert signature == f"sig-b26=:{B26_SIGNATURE}:"


async def test_b26_rfc_headers_parse_and_verify_but_policy_wants_the_digest_covered():
    request = rfc_test_request({"Signature-Input": f"sig-b26={B26_INPUT}",
                            "Signature": f"sig-b26=:{B26_SIGNATURE}:"})
    parsed = httpsig_rfc9421.parse_request(request)
    assert parsed.signature_base == B26_BASE.encode()
    public = serialization.load_pem_public_key(ED25519_PUBLIC_PEM)
    assert signature_matches(public, SignatureAlgorithm.ED25519, parsed.signature,
                             parsed.signature_base)
    result = await verify_request(
        request, resolver_for(public_info("test-key-ed25519", ED25519_PUBLIC_PEM)), now=SPEC_NOW
    )
    assert result.verdict is SignatureVerdict.MISSING_COMPONENT
    assert "content-digest" in result.detail


@pytest.mark.parametrize("algorithm", [SignatureAlgorithm.RSA_PSS_SHA512,
                                       SignatureAlgorithm.RSA_V1_5_SHA256])
async def test_rsa_algorithms_round_trip_through_verify_request(pss_key, algorithm):
    request = RequestParts("POST", "https://example.com/foo?param=Value&Pet=dog",
                           {"Content-Type": "application/json"}, TEST_REQUEST_BODY)
    headers = sign_request(request, pss_key, SignatureScheme.RFC9421, now=SPEC_NOW,
                           algorithm=algorithm)
    assert f'alg="{algorithm.value}"' in headers["Signature-Input"]
    result = await verify_request(
        request.with_headers(headers),
        resolver_for(public_info("test-key-rsa-pss", RSA_PSS_PUBLIC_PEM)), now=SPEC_NOW,
    )
    assert result.ok, result.detail


def test_derived_components_of_the_test_request():
    request = rfc_test_request()
    values = {name: httpsig_rfc9421.component_value(request, name) for name in (
        "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query")}
    assert values == {
        "@method": "POST",
        "@target-uri": "https://example.com/foo?param=Value&Pet=dog",
        "@authority": "example.com",
        "@scheme": "https",
        "@request-target": "/foo?param=Value&Pet=dog",
        "@path": "/foo",
        "@query": "?param=Value&Pet=dog",
    }


@pytest.mark.parametrize(
    "url, authority",
    [
        ("https://Example.COM:443/x", "example.com"),
        ("http://example.com:8080/x", "example.com:8080"),
        ("https://example.com:80/x", "example.com:80"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://[::1]/", "[::1]"),
        ("https://user:secret@Example.com/", "example.com"),
    ],
)
def test_authority_drops_default_port_and_lower_cases(url, authority):
    request = RequestParts("GET", url)
    assert httpsig_rfc9421.component_value(request, "@authority") == authority


@pytest.mark.parametrize("url", ["http://h:abc/", "http://h:99999/", "http://h:\u00b2/"])
def test_invalid_ports_are_malformed(url):
    with pytest.raises(SignatureFormatError, match="port"):
        httpsig_rfc9421.component_value(RequestParts("GET", url), "@authority")


@pytest.mark.parametrize(
    "signature_input, signature, field",
    [
        ('sig1=("@method";req);keyid="k"', "sig1=:AAAA:", "parameters"),
        ('sig1=("Date");keyid="k"', "sig1=:AAAA:", "lower-case"),
        ('sig1=("@method" "@method");keyid="k"', "sig1=:AAAA:", "twice"),
        ('sig1=("@status");keyid="k"', "sig1=:AAAA:", "@status"),
        ('sig1=("@method")', "sig1=:AAAA:", "keyid"),
        ('sig1=("@method");keyid="k";created="soon"', "sig1=:AAAA:", "created"),
        ('sig1=("@method");keyid="k"', "sig2=:AAAA:", "matching"),
        ('sig1=("@method");keyid="k"', "sig1=AAAA", "byte sequence"),
        ('sig1="@method"', "sig1=:AAAA:", "inner list"),
        ("not a dictionary(", "sig1=:AAAA:", "Signature-Input"),
    ],
)
def test_malformed_signature_input_names_the_problem(signature_input, signature, field):
    request = rfc_test_request({"Signature-Input": signature_input, "Signature": signature})
    with pytest.raises(SignatureFormatError, match=field):
        httpsig_rfc9421.parse_request(request)


def test_covering_an_absent_header_is_a_missing_component():
    request = rfc_test_request({"Signature-Input": 'sig1=("x-absent");keyid="k"',
                            "Signature": "sig1=:AAAA:"})
    with pytest.raises(ComponentMissingError, match="x-absent"):
        httpsig_rfc9421.parse_request(request)


def test_the_first_label_covering_the_wanted_components_is_chosen():
    request = rfc_test_request({
        "Signature-Input": 'a=();keyid="k1", b=("@method" "@authority");keyid="k2"',
        "Signature": "a=:AAAA:, b=:AAAA:",
    })
    wanted = frozenset({"@method", "@authority"})
    assert httpsig_rfc9421.parse_request(request, prefer_covering=wanted).key_id == "k2"
    assert httpsig_rfc9421.parse_request(request).key_id == "k1"


@pytest.mark.parametrize(
    "declared, key_algorithm",
    [("hmac-sha256", KeyAlgorithm.RSA), ("ed25519", KeyAlgorithm.RSA),
     ("rsa-pss-sha512", KeyAlgorithm.ED25519), ("RSA-V1_5-SHA256", KeyAlgorithm.RSA)],
)
def test_unsupported_or_mismatched_alg(declared, key_algorithm):
    with pytest.raises(UnsupportedAlgorithmError):
        httpsig_rfc9421.algorithms_for(declared, key_algorithm)


# --- structured fields: the fast reader must agree with http_sfv --------------------------

SF_INPUTS = [
    f"sig-b26={B26_INPUT}",
    f"sig-b21={B21_INPUT}, sig-b26={B26_INPUT}",
    'a=("@method" "@authority");created=-5;keyid="k;x=1";alg="ed25519"',
    'a=("@method");keyid="with \\"quote\\""',  # escapes: slow path
    'a=("@method");keyid=token',  # token: slow path
    'a=("@method"   "@path");keyid="k"',  # odd whitespace: slow path
    "a=();keyid=\"k\",b=();keyid=\"j\"",
    'a=("@method");created=007;keyid="k"',  # not canonical: serialised as created=7
    'a=("@method");created=-0;expires=0',
    'a=("@method");keyid="first";keyid="second"',  # repeated parameter: the last one wins
]


@pytest.mark.parametrize("value", SF_INPUTS)
def test_fast_structured_field_reader_agrees_with_http_sfv(value):
    reference = http_sfv.Dictionary()
    reference.parse(value.encode())
    ours = parse_inner_lists("Signature-Input", value)
    assert list(ours) == list(reference)
    for label, member in reference.items():
        assert ours[label].items == tuple(item.value for item in member)
        assert dict(ours[label].params) == dict(member.params)
        assert ours[label].serialised == str(member)


@pytest.mark.parametrize(
    "value",
    ['a=("@method");keyid="k"\n', 'a=("@method");keyid="k",', 'a=("@method" keyid="k"',
     'a=("@method");keyid="k\x01"'],
)
def test_structured_field_reader_rejects_broken_input(value):
    with pytest.raises(StructuredFieldError):
        parse_inner_lists("Signature-Input", value)


def test_signature_byte_sequences_fast_and_slow():
    assert parse_byte_sequences("Signature", "a=:AAEC:, b=:AA==:") == {"a": b"\0\1\2", "b": b"\0"}
    assert parse_byte_sequences("Signature", "a=:AAEC:;p=1") == {"a": b"\0\1\2"}
    with pytest.raises(StructuredFieldError, match="byte sequence"):
        parse_byte_sequences("Signature", 'a="text"')


@pytest.mark.parametrize("key_id", ["line\nbreak", "tab\there", "ümlaut"])
def test_key_ids_that_cannot_be_serialised_are_refused(ed_key, key_id):
    with pytest.raises(SignatureFormatError):
        httpsig_rfc9421.sign(rfc_test_request(), SigningKey(key_id, ed_key.private_key),
                             ["@method"], created=CREATED)


def test_quotes_in_key_ids_are_escaped(ed_key):
    signature_input, _ = httpsig_rfc9421.sign(
        rfc_test_request(), SigningKey('k"1', ed_key.private_key), ["@method"], created=CREATED,
        declare_alg=False)
    assert signature_input == 'sig1=("@method");created=1618884473;keyid="k\\"1"'
    parsed = parse_inner_lists("Signature-Input", signature_input)
    assert parsed["sig1"].params["keyid"] == 'k"1'
