"""draft-cavage-http-signatures-12: the ``Signature`` header most of the fediverse speaks.

The signing string is one ``name: value`` line per covered header, in the order the
``headers`` parameter lists them, joined with ``\\n``. ``(request-target)``,
``(created)`` and ``(expires)`` are pseudo-headers. Without a ``headers`` parameter
only ``date`` is covered (the appendix C.1 reading, which Mastodon follows too).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from federation.digest import decode_base64
from federation.httpsig_common import (
    ComponentMissingError,
    ParsedSignature,
    RequestParts,
    SignatureAlgorithm,
    SignatureFormatError,
    SignatureScheme,
    UnsupportedAlgorithmError,
    authority_of,
    default_algorithms,
    encode_base,
    from_unix_time,
    key_fits,
    path_and_query,
    sign_bytes,
)
from federation.keys import KeyAlgorithm, SigningKey

DEFAULT_COVERED = ("date",)
_CAVAGE = SignatureScheme.CAVAGE  # read once: each read goes through EnumType.__getattr__
# key="quoted string" or key=number, separated by commas
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([0-9]+(?:\.[0-9]+)?))\s*(?:,|\Z)')
# The canonical shape (see _split_canonical) in the order Mastodon and we send: one match
# instead of a split, four partitions and their checks. The names are distinct ASCII
# letters and no value holds '"', so _split_canonical reads this text the same way.
_USUAL_NAMES = ("keyId", "algorithm", "headers", "signature")
_USUAL_ORDER = re.compile(",".join(f'{name}="([^"]*)"' for name in _USUAL_NAMES))
_QUOTABLE = re.compile(r"^[\x20\x21\x23-\x7e]+\Z")  # printable ASCII without "
_ALGORITHMS: dict[str, tuple[SignatureAlgorithm, ...] | None] = {
    "rsa-sha256": (SignatureAlgorithm.RSA_V1_5_SHA256,),
    "hs2019": None,  # "derive it from the key", see default_algorithms
}


# Not frozen: built for every signed request, and a frozen dataclass pays an
# object.__setattr__ call per field (~10x a plain one). Nothing changes it.
@dataclass(slots=True)
class CavageParams:
    """The parameters of one ``Signature`` header, as sent."""

    key_id: str
    signature: bytes
    headers: tuple[str, ...] = DEFAULT_COVERED
    algorithm: str | None = None
    created: int | None = None
    expires: int | None = None


def _split_params(value: str) -> dict[str, str]:
    usual = _USUAL_ORDER.fullmatch(value)
    if usual is not None:
        return dict(zip(_USUAL_NAMES, usual.groups(), strict=True))
    return _split_canonical(value) or _split_params_loop(value)


def _split_canonical(value: str) -> dict[str, str] | None:
    """The shape nearly every signer sends, ``a="x",b="y"`` (ASCII-letter names, bare
    commas, every value quoted), read with string methods; None for any other text,
    which _split_params_loop then reads or refuses. Splitting at ``",`` is exact here:
    a value holds no ``"``. A regular expression pass over the ~460 characters costs
    several times this."""
    if value[-1:] != '"':
        return None
    params: dict[str, str] = {}
    for part in value[:-1].split('",'):
        name, separator, text = part.partition('="')
        if not (separator and name.isascii() and name.isalpha()) or '"' in text:
            return None
        if name in params:
            return None  # the loop names the repeated parameter
        params[name] = text
    return params


def _split_params_loop(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    position, length = 0, len(value)
    while position < length:
        match = _PARAM.match(value, position)
        end = -1 if match is None else match.end()
        if match is None or end == position:
            raise SignatureFormatError(f"Signature: cannot parse near {value[position:][:40]!r}")
        name, quoted, number = match.groups()  # one call instead of three
        if name in params:
            raise SignatureFormatError(f"Signature: parameter {name!r} given twice")
        params[name] = quoted if quoted is not None else number
        position = end
    return params


def _int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError as exc:
        raise SignatureFormatError(f"Signature: {name} is not a number") from exc


def parse_signature_header(value: str) -> CavageParams:
    """Parse a ``Signature`` header (or an ``Authorization: Signature ...`` value)."""
    if value[:10].lower() == "signature ":
        value = value[10:]
    usual = _USUAL_ORDER.fullmatch(value)
    if usual is not None:  # the parameters _split_params would find, without its dict
        key_id, algorithm, headers, signature = usual.groups()
        return _checked_params(key_id, signature, headers, algorithm, None)
    params = _split_params(value)
    return _checked_params(params.get("keyId"), params.get("signature"), params.get("headers"),
                           params.get("algorithm"), params)


def _checked_params(key_id: str | None, signature: str | None, headers: str | None,
                    algorithm: str | None, params: dict[str, str] | None) -> CavageParams:
    """The parameters checked in this order; ``params`` holds created/expires, if any."""
    if not key_id:
        raise SignatureFormatError("Signature: keyId is missing")
    if not signature:
        raise SignatureFormatError("Signature: signature is missing")
    try:
        raw_signature = decode_base64(signature)
    except (binascii.Error, ValueError) as exc:
        raise SignatureFormatError("Signature: signature is not base64") from exc
    covered = _covered(headers) if headers is not None else DEFAULT_COVERED
    if not covered:
        raise SignatureFormatError("Signature: headers is empty")
    # Positional: keyword arguments to a dataclass cost a dict per call.
    return CavageParams(
        key_id,
        raw_signature,
        covered,
        algorithm.lower() if algorithm else None,
        _int_param(params, "created") if params and "created" in params else None,
        _int_param(params, "expires") if params and "expires" in params else None,
    )


@lru_cache(maxsize=64)  # pure; a signer sends the same list with every request
def _covered(headers: str) -> tuple[str, ...]:
    return tuple(headers.lower().split())


def request_target(request: RequestParts) -> str:
    return _request_target(request.method, request.url)


@lru_cache(maxsize=1024)  # pure; a server is sent to the same few inbox URLs all the time
def _request_target(method: str, url: str) -> str:
    path, query = path_and_query(url)
    return f"{method.lower()} {path}{'?' + query if query else ''}"


def _line(request: RequestParts, name: str, created: int | None, expires: int | None) -> str:
    if name == "(request-target)":
        return f"{name}: {request_target(request)}"
    if name in ("(created)", "(expires)"):
        value = created if name == "(created)" else expires
        if value is None:
            raise ComponentMissingError(f"{name} is covered but the parameter is absent")
        return f"{name}: {value}"
    value = request.header(name)
    if value is None and name == "host":
        value = authority_of(request.url)
    if value is None:
        raise ComponentMissingError(f"covered header {name!r} is not in the request")
    return f"{name}: {value.strip()}"


def signing_string(
    request: RequestParts,
    covered: Sequence[str],
    *,
    created: int | None = None,
    expires: int | None = None,
) -> bytes:
    lines = []
    headers = request.headers._items  # type: ignore[attr-defined]  # noqa: SLF001
    for name in covered:
        name = name.lower()
        # Plain headers, the usual case, looked up here (in the lower-cased items, as
        # RequestParts.header does); the rest by _line.
        entry = None if name[:1] == "(" else headers.get(name)
        value = None if entry is None else entry[1]
        lines.append(f"{name}: {value.strip()}" if value is not None else
                     _line(request, name, created, expires))  # fmt: skip
    return encode_base("\n".join(lines), "Signature")


def parse_request(request: RequestParts) -> ParsedSignature:
    """Take the request's cavage signature apart; raises SignatureFormatError or
    ComponentMissingError."""
    header = request.header("Signature")
    if header is None:
        header = request.header("Authorization")
    if header is None:
        raise SignatureFormatError("no Signature header")
    params = parse_signature_header(header)
    created, expires = params.created, params.expires
    return ParsedSignature(  # positional: keyword arguments cost a dict per call
        _CAVAGE,
        params.key_id,
        params.algorithm,
        params.headers,
        params.signature,
        signing_string(request, params.headers, created=created, expires=expires),
        None if created is None else _timestamp(created, "created"),
        None if expires is None else _timestamp(expires, "expires"),
    )


def _timestamp(value: int | None, field_name: str) -> datetime | None:
    return None if value is None else from_unix_time(value, f"Signature: {field_name}")


def _fitting(declared: str | None, key_algorithm: KeyAlgorithm) -> tuple[SignatureAlgorithm, ...]:
    explicit = _ALGORITHMS.get(declared) if declared is not None else None
    candidates = explicit or default_algorithms(key_algorithm)
    return tuple(alg for alg in candidates if key_fits(alg, key_algorithm))


# Every (declared name, key type) answer, worked out once: it is asked for every request.
_FITTING = {
    (declared, key_algorithm): _fitting(declared, key_algorithm)
    for declared in (None, *_ALGORITHMS)
    for key_algorithm in KeyAlgorithm
}


def algorithms_for(
    declared: str | None, key_algorithm: KeyAlgorithm
) -> tuple[SignatureAlgorithm, ...]:
    """The algorithms to try for a declared name; raises UnsupportedAlgorithmError."""
    fitting = _FITTING.get((declared, key_algorithm))
    if fitting is None:
        raise UnsupportedAlgorithmError(f"algorithm {declared!r} is not supported")
    if not fitting:
        raise UnsupportedAlgorithmError(
            f"algorithm {declared!r} does not fit a {key_algorithm.value} key"
        )
    return fitting


def sign(
    request: RequestParts,
    key: SigningKey,
    covered: Sequence[str],
    *,
    algorithm: SignatureAlgorithm | None = None,
) -> str:
    """The ``Signature`` header value for ``request`` (which must already carry the
    covered headers). RSA keys sign as ``rsa-sha256``; other algorithms as ``hs2019``."""
    if not _QUOTABLE.match(key.key_id):
        raise ValueError(f"key id {key.key_id!r} cannot be quoted in a Signature header")
    chosen = algorithm or default_algorithms(key.algorithm)[0]
    name = "rsa-sha256" if chosen is SignatureAlgorithm.RSA_V1_5_SHA256 else "hs2019"
    raw = sign_bytes(key.private_key, chosen, signing_string(request, covered))
    return (
        f'keyId="{key.key_id}",algorithm="{name}",'
        f'headers="{" ".join(h.lower() for h in covered)}",'
        f'signature="{base64.b64encode(raw).decode("ascii")}"'
    )
