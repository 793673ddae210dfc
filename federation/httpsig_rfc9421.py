"""RFC 9421 HTTP Message Signatures: ``Signature-Input`` and ``Signature``.

Both headers are structured-field dictionaries keyed by a signature label. The
signature base has one ``"component": value`` line per covered component and ends
with the ``"@signature-params"`` line, the serialised inner list of ``Signature-Input``.
Supported components: the request-derived ``@method @target-uri @authority @scheme
@request-target @path @query`` and plain header fields without parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import http_sfv

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
    key_fits,
    path_and_query,
    sign_bytes,
)
from federation.keys import KeyAlgorithm, SigningKey

DEFAULT_LABEL = "sig1"
_FIELD_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_ALGORITHMS = {alg.value: alg for alg in SignatureAlgorithm}


@dataclass(frozen=True)
class SignatureInput:
    """One labelled member of ``Signature-Input``."""

    label: str
    components: tuple[str, ...]
    params: dict[str, object]
    serialised: str  # the @signature-params value

    @property
    def key_id(self) -> str | None:
        value = self.params.get("keyid")
        return value if isinstance(value, str) else None


def _derived_value(request: RequestParts, name: str) -> str:
    path, query = path_and_query(request.url)
    if name == "@method":
        return request.method
    if name == "@target-uri":
        return request.url
    if name == "@authority":
        return authority_of(request.url)
    if name == "@scheme":
        return urlsplit(request.url).scheme.lower()
    if name == "@request-target":
        return path + ("?" + query if query else "")
    if name == "@path":
        return path
    if name == "@query":
        return "?" + query
    raise SignatureFormatError(f"Signature-Input: unsupported derived component {name!r}")


def component_value(request: RequestParts, name: str) -> str:
    if name.startswith("@"):
        return _derived_value(request, name)
    if not _FIELD_NAME.match(name):
        raise SignatureFormatError(f"Signature-Input: {name!r} is not a lower-case field name")
    value = request.header(name)
    if value is None:
        raise ComponentMissingError(f"covered header {name!r} is not in the request")
    return value.strip()


def signature_base(request: RequestParts, components: Sequence[str], serialised: str) -> bytes:
    if len(set(components)) != len(components):
        raise SignatureFormatError("Signature-Input: a component is listed twice")
    lines = [f'"{name}": {component_value(request, name)}' for name in components]
    lines.append(f'"@signature-params": {serialised}')
    return "\n".join(lines).encode("utf-8")


def _parse_dictionary(header: str, value: str) -> http_sfv.Dictionary:
    parsed = http_sfv.Dictionary()
    try:
        parsed.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureFormatError(f"{header}: not a structured-field dictionary") from exc
    return parsed


def _signature_input(label: str, member: object) -> SignatureInput:
    if not isinstance(member, http_sfv.InnerList):
        raise SignatureFormatError(f"Signature-Input: {label} is not an inner list")
    components = []
    for item in member:
        if not isinstance(item.value, str):
            raise SignatureFormatError(f"Signature-Input: {label} lists a non-string component")
        if len(item.params):
            raise SignatureFormatError(
                f"Signature-Input: component parameters ({item}) are not supported"
            )
        components.append(item.value)
    return SignatureInput(label, tuple(components), dict(member.params), str(member))


def parse_signature_inputs(value: str) -> list[SignatureInput]:
    members = _parse_dictionary("Signature-Input", value)
    return [_signature_input(label, member) for label, member in members.items()]


def _timestamp(params: dict[str, object], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SignatureFormatError(f"Signature-Input: {name} is not an integer")
    return datetime.fromtimestamp(value, UTC)


def _choose(inputs: list[SignatureInput], wanted: frozenset[str] | None) -> SignatureInput:
    """The first signature covering ``wanted`` components, else the first one."""
    if wanted is not None:
        for candidate in inputs:
            if wanted.issubset(candidate.components):
                return candidate
    return inputs[0]


def parse_request(
    request: RequestParts, prefer_covering: frozenset[str] | None = None
) -> ParsedSignature:
    """Take one RFC 9421 signature of the request apart (the first one whose components
    include ``prefer_covering``); raises SignatureFormatError or ComponentMissingError."""
    input_header, signature_header = request.header("Signature-Input"), request.header("Signature")
    if input_header is None or signature_header is None:
        raise SignatureFormatError("Signature-Input and Signature must both be present")
    inputs = parse_signature_inputs(input_header)
    signatures = _parse_dictionary("Signature", signature_header)
    inputs = [entry for entry in inputs if entry.label in signatures]
    if not inputs:
        raise SignatureFormatError("no Signature-Input label has a matching Signature")
    chosen = _choose(inputs, prefer_covering)
    raw = signatures[chosen.label].value
    if not isinstance(raw, bytes):
        raise SignatureFormatError(f"Signature: {chosen.label} is not a byte sequence")
    if chosen.key_id is None:
        raise SignatureFormatError(f"Signature-Input: {chosen.label} has no keyid")
    algorithm = chosen.params.get("alg")
    if algorithm is not None and not isinstance(algorithm, str):
        raise SignatureFormatError("Signature-Input: alg is not a string")
    return ParsedSignature(
        scheme=SignatureScheme.RFC9421,
        key_id=chosen.key_id,
        algorithm=algorithm,
        covered=chosen.components,
        signature=raw,
        signature_base=signature_base(request, chosen.components, chosen.serialised),
        created=_timestamp(chosen.params, "created"),
        expires=_timestamp(chosen.params, "expires"),
    )


def algorithms_for(
    declared: str | None, key_algorithm: KeyAlgorithm
) -> tuple[SignatureAlgorithm, ...]:
    """The algorithms to try; raises UnsupportedAlgorithmError. ``alg`` names are
    registry values and compared exactly, as RFC 9421 section 6.2 defines them."""
    if declared is None:
        return default_algorithms(key_algorithm)
    algorithm = _ALGORITHMS.get(declared)
    if algorithm is None:
        raise UnsupportedAlgorithmError(f"alg {declared!r} is not supported")
    if not key_fits(algorithm, key_algorithm):
        raise UnsupportedAlgorithmError(f"alg {declared!r} does not fit a {key_algorithm.value} key")
    return (algorithm,)


def signature_params(
    components: Sequence[str], params: dict[str, int | str]
) -> http_sfv.InnerList:
    inner = http_sfv.InnerList([http_sfv.Item(name) for name in components])
    for name, value in params.items():
        inner.params[name] = value
    return inner


def sign(
    request: RequestParts,
    key: SigningKey,
    components: Sequence[str],
    *,
    created: int,
    algorithm: SignatureAlgorithm | None = None,
    label: str = DEFAULT_LABEL,
    extra_params: dict[str, int | str] | None = None,
    declare_alg: bool = True,
) -> tuple[str, str]:
    """``(Signature-Input, Signature)`` values for ``request``, which must already carry
    the covered headers. ``extra_params`` (e.g. ``nonce``, ``expires``) follow ``keyid``."""
    chosen = algorithm or default_algorithms(key.algorithm)[0]
    params: dict[str, int | str] = {"created": created, "keyid": key.key_id}
    if declare_alg:
        params["alg"] = chosen.value
    params.update(extra_params or {})
    inner = signature_params(components, params)
    base = signature_base(request, list(components), str(inner))
    raw = sign_bytes(key.private_key, chosen, base)
    signature = http_sfv.Dictionary()
    signature[label] = raw
    signature_input = http_sfv.Dictionary()
    signature_input[label] = inner
    return str(signature_input), str(signature)
