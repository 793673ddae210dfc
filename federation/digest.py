"""Body digests: ``Digest`` (RFC 3230, SHA-256) and ``Content-Digest`` (RFC 9530).

Algorithm names are compared case-insensitively in both headers: servers in the wild
send ``SHA-256``, ``sha-256`` and ``Sha-256`` alike. A header passes when it names at
least one algorithm we support and every supported algorithm it names matches the body.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}
# one member of Content-Digest: a token key and a byte sequence, parameters ignored
_CONTENT_DIGEST_MEMBER = re.compile(
    r"^\s*([A-Za-z0-9_.*-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;[^,]*)?\Z"
)


class DigestCheck(enum.Enum):
    OK = "ok"
    MISMATCH = "mismatch"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"  # no algorithm we know is named


# read once: each DigestCheck.OK goes through EnumType.__getattr__
_OK, _MISMATCH = DigestCheck.OK, DigestCheck.MISMATCH


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_digest(body: bytes) -> str:
    """The ``Digest`` header value Mastodon expects: ``SHA-256=<base64>``."""
    return "SHA-256=" + _b64(hashlib.sha256(body).digest())


def make_content_digest(body: bytes, algorithms: Iterable[str] = ("sha-256",)) -> str:
    """The RFC 9530 ``Content-Digest`` value, e.g. ``sha-256=:<base64>:``."""
    members = []
    for name in algorithms:
        hash_body = _HASHES.get(name.lower())
        if hash_body is None:
            raise ValueError(f"Content-Digest: unsupported algorithm {name!r}")
        members.append(f"{name.lower()}=:{_b64(hash_body(body))}:")
    return ", ".join(members)


def decode_base64(text: str) -> bytes:
    """Strict base64 (alphabet and padding only), as ``b64decode(validate=True)`` reads it.

    ``a2b_base64(strict_mode=True)`` checks in C what ``validate=True`` checks with a
    regular expression (a quarter of the cost); what it refuses goes through the old
    reading, so the result and the errors are exactly ``b64decode(validate=True)``'s.
    Raises binascii.Error or ValueError."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(text, validate=True)


def _decode(value: str) -> bytes | None:
    try:
        return decode_base64(value)
    except (binascii.Error, ValueError):
        return None


def _judge(pairs: list[tuple[str, str]], body: bytes) -> DigestCheck:
    checked = False
    for name, value in pairs:  # unsupported algorithms are passed over
        hash_body = _HASHES.get(name)
        if hash_body is None:
            continue
        claimed = _decode(value)
        if claimed is None:
            return DigestCheck.MALFORMED
        if not hmac.compare_digest(claimed, hash_body(body)):
            return DigestCheck.MISMATCH
        checked = True
    return _OK if checked else DigestCheck.UNSUPPORTED


def _one_sha256(encoded: str, body: bytes) -> DigestCheck | None:
    """The verdict for a header naming SHA-256 alone with ``encoded`` as its value, if
    that is strict base64 (what both readers below decode it as); None otherwise, for
    the reader to judge. Saves the split, the regular expression and the judge's loop
    for the one shape nearly every signer sends."""
    try:
        claimed = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return _OK if hmac.compare_digest(claimed, hashlib.sha256(body).digest()) else _MISMATCH


def check_digest(header_value: str, body: bytes) -> DigestCheck:
    """Check a ``Digest`` header (``SHA-256=<base64>[, ...]``) against the body."""
    # An empty value is malformed here (the reader below says so), not a mismatch.
    if header_value[:8] == "SHA-256=" and len(header_value) > 8 and "," not in header_value:
        verdict = _one_sha256(header_value[8:], body)
        if verdict is not None:
            return verdict
    return _digest_members(header_value, body)


def _digest_members(header_value: str, body: bytes) -> DigestCheck:
    pairs = []
    for member in header_value.split(","):
        name, sep, value = member.strip().partition("=")
        if not sep or not name or not value:
            return DigestCheck.MALFORMED
        pairs.append((name.strip().lower(), value.strip()))
    return _judge(pairs, body)


def check_content_digest(header_value: str, body: bytes) -> DigestCheck:
    """Check an RFC 9530 ``Content-Digest`` header against the body."""
    if (header_value[:9] == "sha-256=:" and header_value[-1:] == ":" and len(header_value) > 9
            and "," not in header_value):  # fmt: skip
        verdict = _one_sha256(header_value[9:-1], body)
        if verdict is not None:
            return verdict
    return _content_digest_members(header_value, body)


def _content_digest_members(header_value: str, body: bytes) -> DigestCheck:
    pairs = []
    for member in header_value.split(","):
        match = _CONTENT_DIGEST_MEMBER.match(member)
        if match is None:
            return DigestCheck.MALFORMED
        pairs.append((match.group(1).lower(), match.group(2)))
    return _judge(pairs, body)
