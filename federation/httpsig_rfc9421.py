"""RFC 9421 HTTP Message Signatures: ``Signature-Input`` and ``Signature``.

Both headers are structured-field dictionaries keyed by a signature label. The
signature base has one ``"component": value`` line per covered component and ends
with the ``"@signature-params"`` line, the serialised inner list of ``Signature-Input``.
Supported components: the request-derived ``@method @target-uri @authority @scheme
@request-target @path @query`` and plain header fields without parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import SplitResult, urlsplit

from federation.httpsig_common import (
    ComponentMissingError,
    ParsedSignature,
    RequestParts,
    SignatureAlgorithm,
    SignatureFormatError,
    SignatureScheme,
    UnsupportedAlgorithmError,
    authority_from_parts,
    authority_of,
    default_algorithms,
    encode_base,
    from_unix_time,
    key_fits,
    sign_bytes,
)
from federation.keys import KeyAlgorithm, SigningKey
from federation.structured_fields import (
    InnerList,
    StructuredFieldError,
    parse_byte_sequences,
    parse_inner_lists,
    serialise_byte_sequence,
    serialise_inner_list,
)

DEFAULT_LABEL = "sig1"
_RFC9421 = SignatureScheme.RFC9421  # read once: each read goes through EnumType.__getattr__
_FIELD_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+\Z")
_ALGORITHMS = {alg.value: alg for alg in SignatureAlgorithm}
# Header components signers cover, known to be lower-case field names (_FIELD_NAME).
_USUAL_FIELDS = frozenset({"date", "content-digest", "content-type", "content-length", "host",
                           "digest", "accept", "user-agent"})
_DERIVED_NAMES = (
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
)


def derived_components(request: RequestParts) -> dict[str, str]:
    """The values of the request-derived components (RFC 9421 section 2.2)."""
    parts = urlsplit(request.url)
    return {name: _derived(request, name, parts) or "" for name in _DERIVED_NAMES}


def _derived(request: RequestParts, name: str, parts: SplitResult) -> str | None:
    """One derived component's value, None for a name we do not support."""
    if name == "@method":
        return request.method
    if name == "@target-uri":
        return request.url
    if name == "@authority":
        return authority_from_parts(parts, request.url)
    if name == "@scheme":
        return parts.scheme.lower()
    path, query = parts.path or "/", parts.query
    if name == "@request-target":
        return path + ("?" + query if query else "")
    if name == "@path":
        return path
    if name == "@query":
        return "?" + query
    return None


def component_value(request: RequestParts, name: str, parts: SplitResult | None = None) -> str:
    """A covered component's value; ``parts`` is ``urlsplit(request.url)`` if the caller
    has it already."""
    if name.startswith("@"):
        value = _derived(request, name, urlsplit(request.url) if parts is None else parts)
        if value is None:
            raise SignatureFormatError(f"Signature-Input: unsupported derived component {name!r}")
        return value
    if not _FIELD_NAME.match(name):
        raise SignatureFormatError(f"Signature-Input: {name!r} is not a lower-case field name")
    value = request.header(name)
    if value is None:
        raise ComponentMissingError(f"covered header {name!r} is not in the request")
    return value.strip()


def signature_base(request: RequestParts, components: Sequence[str], serialised: str) -> bytes:
    if len(set(components)) != len(components):
        raise SignatureFormatError("Signature-Input: a component is listed twice")
    # The components nearly every signer covers are read here directly (a header's
    # name, once checked to be a lower-case field name, is its key in the lower-cased
    # items); component_value answers for the rest, with the same values and errors.
    headers = request.headers._items  # type: ignore[attr-defined]  # noqa: SLF001
    lines = []
    for name in components:
        if name == "@method":
            value = request.method
        elif name == "@target-uri":
            value = request.url
        elif name == "@authority":
            value = authority_of(request.url)
        elif name in headers and name in _USUAL_FIELDS:
            value = headers[name][1].strip()
        else:
            value = component_value(request, name)
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {serialised}')
    return encode_base("\n".join(lines), "Signature-Input")


def parse_signature_inputs(value: str) -> dict[str, InnerList]:
    """``Signature-Input`` members by label."""
    try:
        return parse_inner_lists("Signature-Input", value)
    except StructuredFieldError as exc:
        raise SignatureFormatError(str(exc)) from exc


def _timestamp(params: Mapping[str, int | str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SignatureFormatError(f"Signature-Input: {name} is not an integer")
    return from_unix_time(value, f"Signature-Input: {name}")


def _choose(inputs: dict[str, InnerList], wanted: frozenset[str] | None) -> str:
    """The label of the first signature covering ``wanted`` components, else the first."""
    if wanted is not None:
        for label, member in inputs.items():
            if wanted.issubset(member.items):
                return label
    return next(iter(inputs))


def parse_request(
    request: RequestParts, prefer_covering: frozenset[str] | None = None
) -> ParsedSignature:
    """Take one RFC 9421 signature of the request apart (the first one whose components
    include ``prefer_covering``); raises SignatureFormatError or ComponentMissingError."""
    input_header, signature_header = request.header("Signature-Input"), request.header("Signature")
    if input_header is None or signature_header is None:
        raise SignatureFormatError("Signature-Input and Signature must both be present")
    try:
        signatures = parse_byte_sequences("Signature", signature_header)
    except StructuredFieldError as exc:
        raise SignatureFormatError(str(exc)) from exc
    all_inputs = parse_signature_inputs(input_header)
    if len(all_inputs) == 1 and all_inputs.keys() == signatures.keys():
        [(label, chosen)] = all_inputs.items()  # one signature, as nearly every signer sends
    else:
        inputs = {label: member for label, member in all_inputs.items() if label in signatures}
        if not inputs:
            raise SignatureFormatError("no Signature-Input label has a matching Signature")
        label = _choose(inputs, prefer_covering)
        chosen = inputs[label]
    key_id, algorithm = chosen.params.get("keyid"), chosen.params.get("alg")
    if not isinstance(key_id, str):
        raise SignatureFormatError(f"Signature-Input: {label} has no keyid string")
    if algorithm is not None and not isinstance(algorithm, str):
        raise SignatureFormatError("Signature-Input: alg is not a string")
    return ParsedSignature(  # positional: keyword arguments cost a dict per call
        _RFC9421,
        key_id,
        algorithm,
        chosen.items,
        signatures[label],
        signature_base(request, chosen.items, chosen.serialised),
        _timestamp(chosen.params, "created"),
        _timestamp(chosen.params, "expires"),
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
        raise UnsupportedAlgorithmError(
            f"alg {declared!r} does not fit a {key_algorithm.value} key"
        )
    return (algorithm,)


def signature_params(components: Sequence[str], params: dict[str, int | str]) -> str:
    """The serialised inner list that ``Signature-Input`` carries and the base ends with."""
    try:
        return serialise_inner_list(components, params)
    except StructuredFieldError as exc:
        raise SignatureFormatError(str(exc)) from exc


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
    serialised = signature_params(components, params)
    base = signature_base(request, list(components), serialised)
    raw = sign_bytes(key.private_key, chosen, base)
    return f"{label}={serialised}", serialise_byte_sequence(label, raw)
