"""HTTP signatures: sign outgoing requests and verify incoming ones, in either scheme.

``verify_request`` is a pure check apart from the key resolver it is handed: it picks
the scheme (``Signature-Input`` means RFC 9421, ``Signature`` means draft-cavage-12),
checks the covered components, the body digest and the clock window, resolves the key
(refetching it once when the signature does not verify, for key rotation) and returns
a typed ``VerificationResult``. Only the web layer turns that into an HTTP status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from federation import httpsig_cavage, httpsig_rfc9421
from federation.digest import (
    DigestCheck,
    check_content_digest,
    check_digest,
    make_content_digest,
    make_digest,
)
from federation.httpsig_common import (
    ComponentMissingError,
    KeyLookup,
    KeyResolver,
    ParsedSignature,
    RequestParts,
    SignatureAlgorithm,
    SignatureFormatError,
    SignatureScheme,
    SignatureVerdict,
    TimeWindow,
    UnsupportedAlgorithmError,
    VerificationResult,
    authority_of,
    http_date,
    parse_http_date,
    signature_matches,
)
from federation.keys import PublicKeyInfo, SigningKey

__all__ = [
    "KeyLookup",
    "KeyResolver",
    "RequestParts",
    "SignatureAlgorithm",
    "SignatureScheme",
    "SignatureVerdict",
    "TimeWindow",
    "VerificationResult",
    "detect_scheme",
    "sign_request",
    "verify_request",
]

V = SignatureVerdict
CAVAGE_COVERED = ("(request-target)", "host", "date")
RFC9421_COVERED = ("@method", "@target-uri", "@authority", "date")
_RFC9421_PREFERRED = frozenset({"@method", "@authority"})
# Covering all of these meets _missing_components' rules whether or not there is a body.
_CAVAGE_COMPLETE = frozenset({"(request-target)", "host", "date", "digest"})
_RFC9421_COMPLETE = frozenset({"@method", "@authority", "@target-uri", "content-digest", "date"})
_DIGEST_CHECKS = (("digest", "Digest", check_digest),
                  ("content-digest", "Content-Digest", check_content_digest))
_VERIFIED_WITH = {algorithm: f"verified with {algorithm.value}" for algorithm in SignatureAlgorithm}
# Enum members the per-request path compares against, bound once: ``SignatureScheme.CAVAGE``
# goes through EnumType.__getattr__ on every read (about 30 reads per verification).
_CAVAGE, _RFC9421 = SignatureScheme.CAVAGE, SignatureScheme.RFC9421
_OK, _BAD_SIGNATURE = V.OK, V.BAD_SIGNATURE
_DIGEST_OK, _DIGEST_MISMATCH = DigestCheck.OK, DigestCheck.MISMATCH


def detect_scheme(request: RequestParts) -> SignatureScheme | None:
    items = request.headers._items  # type: ignore[attr-defined]  # noqa: SLF001 - as header()
    if "signature-input" in items:
        return _RFC9421
    if "signature" in items:
        return _CAVAGE
    authorization = request.header("Authorization") or ""
    if authorization[:10].lower() == "signature ":
        return _CAVAGE
    return None


def sign_request(
    request: RequestParts,
    key: SigningKey,
    scheme: SignatureScheme,
    *,
    now: datetime,
    algorithm: SignatureAlgorithm | None = None,
) -> dict[str, str]:
    """The headers to set on ``request`` (replacing same-named ones) to sign it.

    ``Date`` is always set from ``now``; ``Host`` when missing; ``Digest`` (cavage) or
    ``Content-Digest`` (RFC 9421) when there is a body. ``algorithm`` defaults to
    PKCS#1 v1.5 SHA-256 for RSA keys and Ed25519 for Ed25519 keys. Raises ValueError
    for a naive ``now`` or a key id that cannot be written into the signature header.
    """
    _require_aware(now)
    added = {"Date": http_date(now)}
    if request.header("Host") is None:
        added["Host"] = authority_of(request.url)
    if scheme is SignatureScheme.CAVAGE:
        covered = list(CAVAGE_COVERED)
        if request.body:
            added["Digest"] = make_digest(request.body)
            covered.append("digest")
        prepared = request.with_headers(added)
        added["Signature"] = httpsig_cavage.sign(prepared, key, covered, algorithm=algorithm)
        return added
    components = list(RFC9421_COVERED)
    if request.body:
        added["Content-Digest"] = make_content_digest(request.body)
        components.append("content-digest")
    prepared = request.with_headers(added)
    signature_input, signature = httpsig_rfc9421.sign(
        prepared, key, components, created=int(now.timestamp()), algorithm=algorithm
    )
    added["Signature-Input"] = signature_input
    added["Signature"] = signature
    return added


async def verify_request(
    request: RequestParts,
    resolve_key: KeyResolver,
    *,
    now: datetime,
    window: TimeWindow = TimeWindow(),  # noqa: B008 - frozen, so sharing it is safe
    expected_actor: str | None = None,
) -> VerificationResult:
    """Check the request's signature; see the module docstring for the order of checks."""
    _require_aware(now)
    scheme = detect_scheme(request)
    if scheme is None:
        return VerificationResult(V.NO_SIGNATURE, detail="the request carries no signature")
    try:
        parsed = _parse(request, scheme)
    except ComponentMissingError as exc:
        return VerificationResult(V.MISSING_COMPONENT, scheme, detail=str(exc))
    except SignatureFormatError as exc:
        return VerificationResult(V.MALFORMED, scheme, detail=str(exc))
    problem = _check_message(request, parsed, now, window)
    if problem is not None:
        verdict, detail = problem
        return VerificationResult(verdict, scheme, parsed.key_id, detail=detail)
    if expected_actor is not None and not _same_host(parsed.key_id, expected_actor):
        return VerificationResult(
            V.ACTOR_MISMATCH,
            scheme,
            parsed.key_id,
            detail=f"key {parsed.key_id} is not on the host of {expected_actor}",
        )
    # Awaited here rather than in a helper coroutine: one coroutine less per request.
    lookup = await resolve_key(parsed.key_id)
    if lookup.key is None:
        return _no_key(parsed, lookup)
    outcome = _judge(parsed, lookup.key, expected_actor)
    if outcome.verdict is not _BAD_SIGNATURE:
        return outcome
    return await _judge_with_refreshed_key(parsed, resolve_key, expected_actor, outcome)


def _require_aware(now: datetime) -> None:
    zone = now.tzinfo  # UTC, what the clock returns, always has an offset
    if zone is not UTC and (zone is None or now.utcoffset() is None):
        raise ValueError("now must be a timezone-aware datetime (the clock returns aware UTC)")


def _parse(request: RequestParts, scheme: SignatureScheme) -> ParsedSignature:
    if scheme is _CAVAGE:
        return httpsig_cavage.parse_request(request)
    return httpsig_rfc9421.parse_request(request, prefer_covering=_RFC9421_PREFERRED)


def _check_message(
    request: RequestParts, parsed: ParsedSignature, now: datetime, window: TimeWindow
) -> tuple[SignatureVerdict, str] | None:
    """Everything that can be checked without the key: coverage, digest, clock."""
    missing = _missing_components(parsed, bool(request.body))
    if missing:
        return V.MISSING_COMPONENT, f"the signature must cover {', '.join(missing)}"
    return _check_digests(request, parsed) or _check_clock(request, parsed, now, window)


def _missing_components(parsed: ParsedSignature, has_body: bool) -> list[str]:
    # What Mastodon-style and our own signers cover satisfies every rule below at once.
    complete = _CAVAGE_COMPLETE if parsed.scheme is _CAVAGE else _RFC9421_COMPLETE
    if complete.issubset(parsed.covered):
        return []
    covered = set(parsed.covered)
    if parsed.scheme is _CAVAGE:
        required = ["(request-target)", "host"]
        # Some cavage signers (bovine) cover the RFC 9530 Content-Digest instead.
        if has_body and not covered & {"digest", "content-digest"}:
            required.append("digest")
        timed = "date" in covered or ("(created)" in covered and parsed.created is not None)
        time_name = "date or (created)"
    else:
        required = ["@method", "@authority"] + (["content-digest"] if has_body else [])
        if not covered & {"@target-uri", "@path"}:
            required.append("@target-uri")
        timed = "date" in covered or parsed.created is not None
        time_name = "date (or a created parameter)"
    missing = [name for name in required if name not in covered]
    return missing if timed else [*missing, time_name]


def _check_digests(
    request: RequestParts, parsed: ParsedSignature
) -> tuple[SignatureVerdict, str] | None:
    items = request.headers._items  # type: ignore[attr-defined]  # noqa: SLF001 - as header()
    for key, header, check in _DIGEST_CHECKS:
        entry = items.get(key)
        if entry is None:
            continue
        outcome = check(entry[1], request.body)
        if outcome is _DIGEST_OK:
            continue
        if outcome is _DIGEST_MISMATCH:
            return V.DIGEST_MISMATCH, f"{header} does not match the body"
        if outcome is DigestCheck.MALFORMED:
            return V.MALFORMED, f"{header} cannot be parsed"
        if outcome is DigestCheck.UNSUPPORTED and key in parsed.covered:
            return V.UNSUPPORTED_ALGORITHM, f"{header} names no supported digest algorithm"
    return None


def _check_clock(
    request: RequestParts, parsed: ParsedSignature, now: datetime, window: TimeWindow
) -> tuple[SignatureVerdict, str] | None:
    if "date" in parsed.covered:
        try:
            date = parse_http_date(request.header("Date") or "")
        except SignatureFormatError as exc:
            return V.MALFORMED, str(exc)
        problem = _outside_window("Date", date, now, window)
        if problem is not None:
            return problem
    if parsed.created is not None:
        problem = _outside_window("created", parsed.created, now, window)
        if problem is not None:
            return problem
    if parsed.expires is not None and parsed.expires < now:
        return V.TOO_OLD, f"the signature expired at {parsed.expires.isoformat()}"
    return None


def _outside_window(
    name: str, moment: datetime, now: datetime, window: TimeWindow
) -> tuple[SignatureVerdict, str] | None:
    age = now - moment
    if age > window.max_age:
        return V.TOO_OLD, f"{name} {moment.isoformat()} is older than {window.max_age}"
    if -age > window.max_future:
        return V.IN_FUTURE, f"{name} {moment.isoformat()} lies in the future"
    return None


@lru_cache(maxsize=4096)  # pure; a sender's key id and actor come back with every request
def _same_host(key_id: str, actor: str) -> bool:
    try:
        return bool(urlsplit(key_id).hostname) and authority_of(key_id) == authority_of(actor)
    except (ValueError, SignatureFormatError):
        return False


async def _judge_with_refreshed_key(
    parsed: ParsedSignature,
    resolve_key: KeyResolver,
    expected_actor: str | None,
    outcome: VerificationResult,
) -> VerificationResult:
    """The key may have been rotated since we cached it: fetch it again, once."""
    refreshed = await resolve_key(parsed.key_id, refresh=True)
    if refreshed.key is None:
        return outcome
    return _judge(parsed, refreshed.key, expected_actor)


def _no_key(parsed: ParsedSignature, lookup: KeyLookup) -> VerificationResult:
    verdict = lookup.verdict if lookup.verdict is V.KEY_FETCH_FAILED else V.UNKNOWN_KEY
    return VerificationResult(
        verdict, parsed.scheme, parsed.key_id, detail=f"no key found for {parsed.key_id}"
    )


def _judge(
    parsed: ParsedSignature, key: PublicKeyInfo, expected_actor: str | None
) -> VerificationResult:
    scheme, key_id, owner = parsed.scheme, parsed.key_id, key.owner
    if expected_actor is not None and owner != expected_actor:
        return VerificationResult(
            V.ACTOR_MISMATCH,
            scheme,
            key_id,
            owner,
            f"the key belongs to {owner}, not {expected_actor}",
        )
    module = httpsig_cavage if scheme is _CAVAGE else httpsig_rfc9421
    try:
        candidates = module.algorithms_for(parsed.algorithm, key.algorithm)
    except UnsupportedAlgorithmError as exc:
        return VerificationResult(V.UNSUPPORTED_ALGORITHM, scheme, key_id, owner, str(exc))
    for algorithm in candidates:
        if signature_matches(key.public_key, algorithm, parsed.signature, parsed.signature_base):
            return VerificationResult(_OK, scheme, key_id, owner, _VERIFIED_WITH[algorithm])
    return VerificationResult(
        V.BAD_SIGNATURE, scheme, key_id, owner, "the signature does not verify with the key"
    )
