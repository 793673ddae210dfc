"""verify_request: every way of getting a forged or stale request past it must fail,
with the verdict that names the reason."""

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from federation import httpsig_cavage, httpsig_rfc9421
from federation.digest import make_content_digest, make_digest
from federation.httpsig import (
    KeyLookup,
    RequestParts,
    SignatureScheme,
    SignatureVerdict,
    TimeWindow,
    sign_request,
    verify_request,
)
from federation.httpsig_common import default_algorithms, sign_bytes
from federation.keys import PublicKeyInfo, SigningKey, generate_ed25519_key, generate_rsa_key

V = SignatureVerdict
ACTOR = "https://alpha.example/actor"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BODY = b'{"type": "Create", "actor": "https://alpha.example/actor"}'
INBOX = "https://beta.example/inbox"
SCHEMES = list(SignatureScheme)


class Resolver:
    """A key resolver that records its calls; ``rotated`` is what a refetch returns."""

    def __init__(self, keys: dict[str, PublicKeyInfo], rotated: dict[str, PublicKeyInfo] | None = None,
                 failure: SignatureVerdict = V.UNKNOWN_KEY) -> None:
        self.keys, self.rotated, self.failure = keys, rotated, failure
        self.calls: list[tuple[str, bool]] = []

    async def __call__(self, key_id: str, *, refresh: bool = False) -> KeyLookup:
        self.calls.append((key_id, refresh))
        source = self.rotated if refresh and self.rotated is not None else self.keys
        key = source.get(key_id)
        return KeyLookup(key, None if key else self.failure)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey(f"{ACTOR}#main-key", generate_rsa_key())


@pytest.fixture(scope="module")
def ed_key() -> SigningKey:
    return SigningKey(f"{ACTOR}#ed25519-key", generate_ed25519_key())


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request, rsa_key, ed_key) -> SigningKey:
    return rsa_key if request.param == "rsa" else ed_key


def info(key: SigningKey, owner: str = ACTOR) -> PublicKeyInfo:
    return PublicKeyInfo(key.key_id, owner, key.private_key.public_key())


def resolver(*keys: SigningKey) -> Resolver:
    return Resolver({k.key_id: info(k) for k in keys})


def signed(key: SigningKey, scheme: SignatureScheme, body: bytes = BODY,
           method: str = "POST", at: datetime = NOW) -> RequestParts:
    request = RequestParts(method, INBOX, {"Content-Type": "application/activity+json"}, body)
    return request.with_headers(sign_request(request, key, scheme, now=at))


async def verify(request: RequestParts, resolve, **kwargs):
    return await verify_request(request, resolve, now=kwargs.pop("now", NOW), **kwargs)


def replace_header(request: RequestParts, name: str, value: str) -> RequestParts:
    return request.with_headers({name: value})


def flip_signature_byte(request: RequestParts, scheme: SignatureScheme) -> RequestParts:
    pattern = r'signature="([^"]+)"' if scheme is SignatureScheme.CAVAGE else r":([^:]+):"
    header = request.header("Signature")
    encoded = re.search(pattern, header).group(1)
    raw = bytearray(base64.b64decode(encoded))
    raw[len(raw) // 2] ^= 0x01
    return replace_header(request, "Signature",
                          header.replace(encoded, base64.b64encode(bytes(raw)).decode()))


def replace_key_id(request: RequestParts, scheme: SignatureScheme, new_id: str) -> RequestParts:
    name = "Signature" if scheme is SignatureScheme.CAVAGE else "Signature-Input"
    field = "keyId" if scheme is SignatureScheme.CAVAGE else "keyid"
    value = re.sub(rf'{field}="[^"]+"', f'{field}="{new_id}"', request.header(name))
    return replace_header(request, name, value)


# --- the untouched request verifies ---------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_signed_request_verifies(key, scheme):
    resolve = resolver(key)
    result = await verify(signed(key, scheme), resolve, expected_actor=ACTOR)
    assert result.verdict is V.OK, result.detail
    assert (result.scheme, result.key_id, result.signer) == (scheme, key.key_id, ACTOR)
    assert resolve.calls == [(key.key_id, False)]  # no refetch when all is well


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_signed_get_without_body_verifies(key, scheme):
    request = signed(key, scheme, body=b"", method="GET")
    assert request.header("Digest") is None and request.header("Content-Digest") is None
    assert (await verify(request, resolver(key))).ok


# --- tampering ------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_changing_the_date_is_a_bad_signature(key, scheme):
    forged = replace_header(signed(key, scheme), "Date", "Sun, 22 Nov 2026 12:00:01 GMT")
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


async def test_changing_the_host_header_is_a_bad_cavage_signature(key):
    forged = replace_header(signed(key, SignatureScheme.CAVAGE), "Host", "evil.example")
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


async def test_changing_the_authority_is_a_bad_rfc9421_signature(key):
    # RFC 9421 takes @authority from the target URI, which the web layer builds from Host.
    request = signed(key, SignatureScheme.RFC9421)
    forged = RequestParts(request.method, "https://evil.example/inbox", request.headers,
                          request.body)
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_changing_the_body_is_a_digest_mismatch(key, scheme):
    request = signed(key, scheme)
    forged = RequestParts(request.method, request.url, request.headers, BODY + b" ")
    assert (await verify(forged, resolver(key))).verdict is V.DIGEST_MISMATCH


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_changing_body_and_digest_together_is_a_bad_signature(key, scheme):
    request = signed(key, scheme)
    body = b'{"type": "Delete"}'
    digest = ({"Digest": make_digest(body)} if scheme is SignatureScheme.CAVAGE
              else {"Content-Digest": make_content_digest(body)})
    forged = RequestParts(request.method, request.url, {**request.headers, **digest}, body)
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("change", ["method", "path"])
async def test_changing_the_request_line_is_a_bad_signature(key, scheme, change):
    request = signed(key, scheme)
    method, url = request.method, request.url
    if change == "method":
        method = "PUT"
    else:
        url = "https://beta.example/other-inbox"
    forged = RequestParts(method, url, request.headers, request.body)
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_one_flipped_signature_byte_is_a_bad_signature(key, scheme):
    resolve = resolver(key)
    result = await verify(flip_signature_byte(signed(key, scheme), scheme), resolve)
    assert result.verdict is V.BAD_SIGNATURE
    assert resolve.calls == [(key.key_id, False), (key.key_id, True)]  # one refetch, no more


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_key_id_changed_to_an_unknown_key(key, scheme):
    forged = replace_key_id(signed(key, scheme), scheme, f"{ACTOR}#other-key")
    result = await verify(forged, resolver(key))
    assert result.verdict is V.UNKNOWN_KEY
    assert result.key_id == f"{ACTOR}#other-key"


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_key_id_changed_to_another_key_of_the_actor(rsa_key, scheme):
    other = SigningKey(f"{ACTOR}#second-key", generate_rsa_key())
    forged = replace_key_id(signed(rsa_key, scheme), scheme, other.key_id)
    assert (await verify(forged, resolver(rsa_key, other))).verdict is V.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_key_id_on_another_host_than_the_actor(key, scheme):
    resolve = resolver(key)
    forged = replace_key_id(signed(key, scheme), scheme, "https://evil.example/actor#main-key")
    result = await verify(forged, resolve, expected_actor=ACTOR)
    assert result.verdict is V.ACTOR_MISMATCH
    assert resolve.calls == []  # refused before any key is fetched


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_key_owned_by_someone_else_than_the_actor(key, scheme):
    resolve = Resolver({key.key_id: info(key, owner="https://alpha.example/other")})
    result = await verify(signed(key, scheme), resolve, expected_actor=ACTOR)
    assert result.verdict is V.ACTOR_MISMATCH
    assert result.signer == "https://alpha.example/other"


async def test_created_parameter_is_covered_by_the_rfc9421_signature(key):
    request = signed(key, SignatureScheme.RFC9421)
    created = int(NOW.timestamp())
    forged = replace_header(request, "Signature-Input",
                            request.header("Signature-Input").replace(str(created), str(created - 5)))
    assert (await verify(forged, resolver(key))).verdict is V.BAD_SIGNATURE


# --- the clock ------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_stale_and_future_signatures(key, scheme):
    request = signed(key, scheme)
    stale = await verify(request, resolver(key), now=NOW + timedelta(hours=12, seconds=1))
    future = await verify(request, resolver(key), now=NOW - timedelta(hours=1, seconds=1))
    edge_old = await verify(request, resolver(key), now=NOW + timedelta(hours=12))
    edge_future = await verify(request, resolver(key), now=NOW - timedelta(hours=1))
    assert (stale.verdict, future.verdict) == (V.TOO_OLD, V.IN_FUTURE)
    assert edge_old.ok and edge_future.ok


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_window_is_configurable(rsa_key, scheme):
    request = signed(rsa_key, scheme)
    tight = TimeWindow(max_age=timedelta(seconds=30), max_future=timedelta(seconds=5))
    late = await verify(request, resolver(rsa_key), now=NOW + timedelta(seconds=31), window=tight)
    early = await verify(request, resolver(rsa_key), now=NOW - timedelta(seconds=6), window=tight)
    assert (late.verdict, early.verdict) == (V.TOO_OLD, V.IN_FUTURE)


async def test_cavage_date_moved_into_the_window_still_fails(rsa_key):
    old = signed(rsa_key, SignatureScheme.CAVAGE, at=NOW - timedelta(days=2))
    refreshed_date = replace_header(old, "Date", "Sun, 22 Nov 2026 12:00:00 GMT")
    assert (await verify(old, resolver(rsa_key))).verdict is V.TOO_OLD
    assert (await verify(refreshed_date, resolver(rsa_key))).verdict is V.BAD_SIGNATURE


async def test_expired_rfc9421_signature_is_too_old(ed_key):
    request = RequestParts("GET", INBOX, {"Host": "beta.example"})
    components = ["@method", "@target-uri", "@authority"]
    signature_input, signature = httpsig_rfc9421.sign(
        request, ed_key, components, created=int(NOW.timestamp()) - 60,
        extra_params={"expires": int(NOW.timestamp()) - 1},
    )
    forged = request.with_headers({"Signature-Input": signature_input, "Signature": signature})
    result = await verify(forged, resolver(ed_key))
    assert result.verdict is V.TOO_OLD and "expired" in result.detail


# --- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_rotated_key_is_refetched_once_and_accepted(scheme):
    old = SigningKey(f"{ACTOR}#main-key", generate_ed25519_key())
    new = SigningKey(old.key_id, generate_ed25519_key())
    resolve = Resolver({old.key_id: info(old)}, rotated={new.key_id: info(new)})
    result = await verify(signed(new, scheme), resolve)
    assert result.ok
    assert resolve.calls == [(new.key_id, False), (new.key_id, True)]


async def test_rotation_that_removes_the_key_stays_a_bad_signature(ed_key):
    resolve = Resolver({ed_key.key_id: info(ed_key)}, rotated={})
    forged = flip_signature_byte(signed(ed_key, SignatureScheme.RFC9421), SignatureScheme.RFC9421)
    assert (await verify(forged, resolve)).verdict is V.BAD_SIGNATURE


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_key_fetch_failure_is_reported(key, scheme):
    resolve = Resolver({}, failure=V.KEY_FETCH_FAILED)
    assert (await verify(signed(key, scheme), resolve)).verdict is V.KEY_FETCH_FAILED


async def test_declared_algorithm_must_fit_the_key(ed_key):
    request = signed(ed_key, SignatureScheme.CAVAGE)
    forged = replace_header(request, "Signature", request.header("Signature").replace(
        'algorithm="hs2019"', 'algorithm="rsa-sha256"'))
    assert (await verify(forged, resolver(ed_key))).verdict is V.UNSUPPORTED_ALGORITHM
    request = signed(ed_key, SignatureScheme.RFC9421)
    forged = replace_header(request, "Signature-Input", request.header("Signature-Input").replace(
        'alg="ed25519"', 'alg="hmac-sha256"'))
    assert (await verify(forged, resolver(ed_key))).verdict is V.UNSUPPORTED_ALGORITHM


# --- coverage and shape ---------------------------------------------------------------


def cavage_signed(key: SigningKey, covered: list[str], extra: dict[str, str] | None = None,
                  body: bytes = BODY) -> RequestParts:
    headers = {"Host": "beta.example", "Date": "Sun, 22 Nov 2026 12:00:00 GMT",
               "Digest": make_digest(body), **(extra or {})}
    request = RequestParts("POST", INBOX, headers, body)
    return request.with_headers({"Signature": httpsig_cavage.sign(request, key, covered)})


@pytest.mark.parametrize(
    "covered, missing",
    [
        (["(request-target)", "host", "date"], "digest"),
        (["(request-target)", "date", "digest"], "host"),
        (["host", "date", "digest"], "(request-target)"),
        (["(request-target)", "host", "digest"], "date"),
    ],
)
async def test_cavage_required_components(ed_key, covered, missing):
    result = await verify(cavage_signed(ed_key, covered), resolver(ed_key))
    assert result.verdict is V.MISSING_COMPONENT
    assert missing in result.detail


def rfc9421_signed(key: SigningKey, components: list[str], created_offset: int | None = 0,
                   body: bytes = BODY) -> RequestParts:
    headers = {"Host": "beta.example", "Date": "Sun, 22 Nov 2026 12:00:00 GMT",
               "Content-Digest": make_content_digest(body)}
    request = RequestParts("POST", INBOX, headers, body)
    signature_input, signature = httpsig_rfc9421.sign(
        request, key, components, created=int(NOW.timestamp()) + (created_offset or 0))
    if created_offset is None:  # strip the created parameter (it is signed, so re-sign)
        inner = httpsig_rfc9421.signature_params(components, {"keyid": key.key_id})
        base = httpsig_rfc9421.signature_base(request, components, str(inner))
        raw = sign_bytes(key.private_key, default_algorithms(key.algorithm)[0], base)
        signature_input = f"sig1={inner}"
        signature = f"sig1=:{base64.b64encode(raw).decode()}:"
    return request.with_headers({"Signature-Input": signature_input, "Signature": signature})


@pytest.mark.parametrize(
    "components, missing",
    [
        (["@method", "@target-uri", "@authority"], "content-digest"),
        (["@method", "@target-uri", "content-digest"], "@authority"),
        (["@target-uri", "@authority", "content-digest"], "@method"),
        (["@method", "@authority", "content-digest"], "@target-uri"),
    ],
)
async def test_rfc9421_required_components(ed_key, components, missing):
    result = await verify(rfc9421_signed(ed_key, components), resolver(ed_key))
    assert result.verdict is V.MISSING_COMPONENT
    assert missing in result.detail


async def test_rfc9421_accepts_path_instead_of_target_uri(ed_key):
    request = rfc9421_signed(ed_key, ["@method", "@path", "@authority", "content-digest"])
    assert (await verify(request, resolver(ed_key))).ok


async def test_rfc9421_without_created_must_cover_date(ed_key):
    bare = ["@method", "@target-uri", "@authority", "content-digest"]
    without_date = await verify(rfc9421_signed(ed_key, bare, created_offset=None), resolver(ed_key))
    with_date = await verify(rfc9421_signed(ed_key, [*bare, "date"], created_offset=None),
                             resolver(ed_key))
    assert without_date.verdict is V.MISSING_COMPONENT and "date" in without_date.detail
    assert with_date.ok, with_date.detail


async def test_unsupported_covered_digest_algorithm(ed_key):
    covered = ["(request-target)", "host", "date", "digest"]
    request = cavage_signed(ed_key, covered, extra={"Digest": "MD5=Sd/dVLAcvNLSq16eXua5uQ=="})
    assert (await verify(request, resolver(ed_key))).verdict is V.UNSUPPORTED_ALGORITHM


async def test_no_signature_and_malformed_signatures():
    plain = RequestParts("POST", INBOX, {"Host": "beta.example"}, BODY)
    assert (await verify(plain, Resolver({}))).verdict is V.NO_SIGNATURE
    broken = plain.with_headers({"Signature": 'keyId="k",signature=!!'})
    assert (await verify(broken, Resolver({}))).verdict is V.MALFORMED
    only_input = plain.with_headers({"Signature-Input": 'sig1=("@method");keyid="k"'})
    assert (await verify(only_input, Resolver({}))).verdict is V.MALFORMED


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_unparseable_date_is_malformed(ed_key, scheme):
    request = replace_header(signed(ed_key, scheme), "Date", "yesterday")
    result = await verify(request, resolver(ed_key))
    assert result.verdict is V.MALFORMED and "Date" in result.detail


async def test_header_lookup_ignores_case(ed_key):
    request = signed(ed_key, SignatureScheme.CAVAGE)
    lowered = RequestParts(request.method, request.url,
                           {k.lower(): v for k, v in request.headers.items()}, request.body)
    upper = RequestParts(request.method, request.url,
                         {k.upper(): v for k, v in request.headers.items()}, request.body)
    assert (await verify(lowered, resolver(ed_key))).ok
    assert (await verify(upper, resolver(ed_key))).ok


async def test_repeated_headers_from_a_multidict_are_joined(ed_key):
    request = signed(ed_key, SignatureScheme.RFC9421)
    headers = CIMultiDict(request.headers)
    headers.add("Accept", "application/activity+json")
    headers.add("accept", "application/ld+json")
    parts = RequestParts(request.method, request.url, headers, request.body)
    assert parts.header("ACCEPT") == "application/activity+json, application/ld+json"
    assert (await verify(parts, resolver(ed_key))).ok


@pytest.mark.parametrize(
    "header, value",
    [
        ("Signature", 'keyId="k",headers="(created) host",created=99999999999999999999,signature="AA=="'),
        ("Signature-Input", 'sig1=("@method");keyid="k";created=999999999999999'),
        ("Signature-Input", 'sig1=("@method");keyid="k";expires=-999999999999999'),
    ],
)
async def test_absurd_timestamps_are_malformed_not_a_crash(header, value):
    headers = {"Host": "beta.example", header: value}
    if header == "Signature-Input":
        headers["Signature"] = "sig1=:AAAA:"
    result = await verify(RequestParts("GET", INBOX, headers), Resolver({}))
    assert result.verdict is V.MALFORMED
    assert "time" in result.detail


_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=120)
_FUZZ_SIGNATURE_INPUT = st.one_of(
    _HEADER_TEXT,
    st.builds(lambda components, params: f"sig1=({components}){params}",
              st.text(alphabet='"@abcdefghijklmnopqrstuvwxyz- ;=', max_size=40),
              st.text(alphabet='";=keyidcreatdxpsalg0123456789-', max_size=40)),
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(signature=_HEADER_TEXT, signature_input=st.none() | _FUZZ_SIGNATURE_INPUT,
       date=st.none() | _HEADER_TEXT, digest=st.none() | _HEADER_TEXT)
async def test_arbitrary_header_values_never_raise(signature, signature_input, date, digest):
    headers = {"Host": "beta.example", "Signature": signature}
    for name, value in (("Signature-Input", signature_input), ("Date", date), ("Digest", digest),
                        ("Content-Digest", digest)):
        if value is not None:
            headers[name] = value
    result = await verify(RequestParts("POST", INBOX, headers, BODY), Resolver({}))
    assert isinstance(result.verdict, SignatureVerdict)
    assert result.verdict is not V.OK


async def test_a_naive_clock_is_refused_loudly(ed_key):
    naive = datetime(2026, 11, 22, 12, 0)
    request = RequestParts("POST", INBOX, {}, BODY)
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_request(request, ed_key, SignatureScheme.RFC9421, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await verify_request(signed(ed_key, SignatureScheme.RFC9421), resolver(ed_key), now=naive)


def test_key_ids_that_cannot_be_quoted_are_refused_by_the_cavage_signer(ed_key):
    request = RequestParts("POST", INBOX, {}, BODY)
    with pytest.raises(ValueError, match="key id"):
        sign_request(request, SigningKey('https://a.example/"x"', ed_key.private_key),
                     SignatureScheme.CAVAGE, now=NOW)


@pytest.mark.parametrize(
    "scheme, header",
    [(SignatureScheme.CAVAGE, name) for name in ("Host", "Date", "Signature", "Digest")]
    + [(SignatureScheme.RFC9421, name)
       for name in ("Date", "Signature", "Signature-Input", "Content-Digest")],
)
async def test_undecodable_bytes_in_covered_headers_are_refused_not_a_crash(ed_key, scheme,
                                                                         header):
    """aiohttp hands bytes that are not UTF-8 on as surrogates (surrogateescape)."""
    request = signed(ed_key, scheme)
    raw = request.header(header).encode()
    garbled = (raw[:6] + b"\xff\xfe" + raw[6:]).decode("utf-8", "surrogateescape")
    result = await verify(replace_header(request, header, garbled), resolver(ed_key))
    assert result.verdict in (V.MALFORMED, V.DIGEST_MISMATCH), result
