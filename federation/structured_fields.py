"""The few RFC 8941 structured-field shapes HTTP message signatures use, made fast.

``Signature-Input`` is a dictionary of inner lists of strings with integer/string
parameters; ``Signature`` a dictionary of byte sequences. Signers nearly always send
them in canonical form, which a strict regular expression reads in microseconds; any
other spelling (escapes, tokens, booleans, odd whitespace) goes to the complete but
slower ``http_sfv`` parser. For canonical input the raw member text *is* its
serialisation, which is what RFC 9421's ``@signature-params`` line needs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import http_sfv

from federation.digest import decode_base64

_KEY = r"[a-z*][a-z0-9_\-.*]{0,63}"
_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # printable ASCII without " and \
_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"  # canonical only: "007" and "-0" take the slow path
_PARAMS = rf"(?:;{_KEY}=(?:{_INTEGER}|{_STRING}))*"
_INNER_LIST_MEMBER = re.compile(
    rf"(?P<label>{_KEY})=(?P<value>\((?P<items>(?:{_STRING}(?: {_STRING})*)?)\)"
    rf"(?P<params>{_PARAMS}))(?:[ \t]*,[ \t]*|[ \t]*\Z)"
)
_BYTES_MEMBER = re.compile(
    rf"(?P<label>{_KEY})=:(?P<value>[A-Za-z0-9+/]*={{0,2}}):(?:[ \t]*,[ \t]*|[ \t]*\Z)"
)
_ITEM = re.compile(_STRING)
_PARAM = re.compile(rf";({_KEY})=({_INTEGER}|{_STRING})")
_KEY_ONLY = re.compile(rf"^{_KEY}\Z")
# One member of _INNER_LIST_MEMBER and nothing else (the blanks strip() would take);
# groups: label, serialised value, listed strings, parameters.
_ONE_INNER_LIST = re.compile(
    rf"[ \t]*({_KEY})=(\(((?:{_STRING}(?: {_STRING})*)?)\)({_PARAMS}))[ \t]*"
)
# A parameter of _PARAMS: key, then an integer or a string's content (the other empty).
_PARAM_PARTS = re.compile(rf';({_KEY})=(?:({_INTEGER})|"([\x20\x21\x23-\x5b\x5d-\x7e]*)")')


class StructuredFieldError(ValueError):
    """A structured field could not be parsed; the message names the header."""


# Not frozen: built for every signed request, and a frozen dataclass pays an
# object.__setattr__ call per field (~10x a plain one). Nothing changes it.
@dataclass(slots=True)
class InnerList:
    """An inner list of strings with parameters, and its canonical serialisation."""

    items: tuple[str, ...]
    params: Mapping[str, int | str]
    serialised: str


def _fast_members(pattern: re.Pattern[str], value: str) -> list[re.Match[str]] | None:
    matches, position, text = [], 0, value.strip(" \t")
    if text.endswith(","):
        return None  # a trailing comma is invalid; let the full parser say so
    while position < len(text):
        match = pattern.match(text, position)
        if match is None:
            return None
        matches.append(match)
        position = match.end()
    labels = [match.group("label") for match in matches]
    return matches if matches and len(set(labels)) == len(labels) else None


def _parse_slow(header: str, value: str) -> http_sfv.Dictionary:
    parsed = http_sfv.Dictionary()
    try:
        parsed.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise StructuredFieldError(f"{header}: not a structured-field dictionary") from exc
    return parsed


def _param_value(raw: str) -> int | str:
    return raw[1:-1] if raw.startswith('"') else int(raw)


def _fast_inner_lists(value: str) -> dict[str, InnerList] | None:
    """Canonical ``Signature-Input`` text read by regular expression; None otherwise."""
    result: dict[str, InnerList] = {}
    for match in _fast_members(_INNER_LIST_MEMBER, value) or ():
        items = tuple(item[1:-1] for item in _ITEM.findall(match.group("items")))
        raw_params = _PARAM.findall(match.group("params"))
        params = {key: _param_value(raw) for key, raw in raw_params}
        if len(params) != len(raw_params):
            return None  # a repeated parameter: the last one wins, the text is not canonical
        result[match.group("label")] = InnerList(items, params, match.group("value"))
    return result or None


def _single_inner_list(value: str) -> dict[str, InnerList] | None:
    """``label=("a" "b");k=v``, the one-signature ``Signature-Input`` nearly every request
    carries, read by one match and one ``findall`` over the parameters; None for anything
    else (more members, other spellings), which the general path then reads. The match
    admits exactly one member of _INNER_LIST_MEMBER, so what it accepts the general path
    reads the same way: a string holds no '"', so '" "' stands only between two."""
    whole = _ONE_INNER_LIST.fullmatch(value)
    if whole is None:
        return None
    label, serialised, listed, params_text = whole.groups()
    pairs = _PARAM_PARTS.findall(params_text)
    params: dict[str, int | str] = {}
    for key, number, text in pairs:  # a loop: a comprehension is one more frame
        params[key] = int(number) if number else text
    if len(params) != len(pairs):
        return None  # a repeated parameter: the general path decides about it
    items = tuple(listed[1:-1].split('" "')) if listed else ()
    return {label: InnerList(items, params, serialised)}


def parse_inner_lists(header: str, value: str) -> dict[str, InnerList]:
    """A dictionary whose members are inner lists of strings (``Signature-Input``)."""
    return _single_inner_list(value) or _inner_lists(header, value)


def _inner_lists(header: str, value: str) -> dict[str, InnerList]:
    fast = _fast_inner_lists(value)
    if fast is not None:
        return fast
    return {
        label: _from_sfv(header, label, member)
        for label, member in _parse_slow(header, value).items()
    }


def _from_sfv(header: str, label: str, member: object) -> InnerList:
    if not isinstance(member, http_sfv.InnerList):
        raise StructuredFieldError(f"{header}: {label} is not an inner list")
    items = []
    for item in member:
        if not isinstance(item.value, str):
            raise StructuredFieldError(f"{header}: {label} lists a non-string component")
        if len(item.params):
            raise StructuredFieldError(f"{header}: component parameters ({item}) are not supported")
        items.append(item.value)
    params = {}
    for key, param in member.params.items():
        if isinstance(param, bool) or not isinstance(param, int | str):
            raise StructuredFieldError(f"{header}: parameter {key} has an unsupported type")
        params[key] = param
    return InnerList(tuple(items), params, str(member))


def _single_byte_sequence(value: str) -> dict[str, bytes] | None:
    """``label=:base64:``, the one-signature ``Signature`` nearly every request carries,
    read with string methods (a regular expression over the ~350 base64 characters costs
    as much as decoding them); None for anything else. The strict decode admits only
    what _BYTES_MEMBER admits, so the answer is the one the general path gives."""
    label, separator, rest = value.strip(" \t").partition("=:")
    if not separator or rest[-1:] != ":" or _KEY_ONLY.match(label) is None:
        return None
    try:
        return {label: binascii.a2b_base64(rest[:-1], strict_mode=True)}
    except (binascii.Error, ValueError):
        return None


def parse_byte_sequences(header: str, value: str) -> dict[str, bytes]:
    """A dictionary whose members are byte sequences (``Signature``)."""
    return _single_byte_sequence(value) or _byte_sequences(header, value)


def _byte_sequences(header: str, value: str) -> dict[str, bytes]:
    fast = _fast_members(_BYTES_MEMBER, value)
    if fast is not None:
        try:
            return {m.group("label"): decode_base64(m.group("value")) for m in fast}
        except (binascii.Error, ValueError) as exc:
            raise StructuredFieldError(f"{header}: invalid base64") from exc
    result = {}
    for label, member in _parse_slow(header, value).items():
        if not isinstance(member, http_sfv.Item) or not isinstance(member.value, bytes):
            raise StructuredFieldError(f"{header}: {label} is not a byte sequence")
        result[label] = member.value
    return result


def serialise_string(value: str) -> str:
    if not (value.isascii() and value.isprintable()):  # exactly \x20-\x7e, without a regex
        raise StructuredFieldError(f"{value!r} cannot be a structured-field string")
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def serialise_inner_list(items: Sequence[str], params: Mapping[str, int | str]) -> str:
    parts = ["(", " ".join(serialise_string(item) for item in items), ")"]
    for key, value in params.items():
        if not _KEY_ONLY.match(key):
            raise StructuredFieldError(f"{key!r} is not a structured-field key")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise StructuredFieldError(f"parameter {key} must be an integer or a string")
        parts.append(
            f";{key}={value}" if isinstance(value, int) else f";{key}={serialise_string(value)}"
        )
    return "".join(parts)


def serialise_byte_sequence(label: str, value: bytes) -> str:
    return f"{label}=:{base64.b64encode(value).decode('ascii')}:"
