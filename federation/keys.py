"""Key material: generate, store, load, publish and parse actor keys.

RSA-2048 keys sign HTTP requests (what Mastodon and most of the fediverse verify);
Ed25519 keys sign object integrity proofs (FEP-8b32) and may sign RFC 9421 requests.
RSA is published as ``publicKey``/``publicKeyPem`` (security v1), Ed25519 as a
``Multikey`` under ``assertionMethod`` (FEP-521a).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# multicodec "ed25519-pub" (0xed) as an unsigned varint
_ED25519_PUB_PREFIX = b"\xed\x01"
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class KeyAlgorithm(enum.Enum):
    RSA = "rsa"
    ED25519 = "ed25519"


class KeyFormatError(ValueError):
    """A key document or encoding could not be understood."""


@dataclass(frozen=True)
class PublicKeyInfo:
    """A public key as published by an actor: its id, its owner and the key itself."""

    key_id: str
    owner: str
    public_key: PublicKey

    # Cached (in the instance dict, which a frozen dataclass still has): the type check
    # behind it is an ABC isinstance, and a cached key is asked for it on every request.
    @cached_property
    def algorithm(self) -> KeyAlgorithm:
        return algorithm_of(self.public_key)


@dataclass(frozen=True)
class SigningKey:
    """A private key together with the key id under which its public half is published."""

    key_id: str
    private_key: PrivateKey

    @cached_property  # as PublicKeyInfo.algorithm
    def algorithm(self) -> KeyAlgorithm:
        return algorithm_of(self.private_key)


def algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyAlgorithm.RSA
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyAlgorithm.ED25519
    raise KeyFormatError(f"unsupported key type {type(key).__name__}")


def generate_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def save_private_key(path: Path, key: PrivateKey) -> None:
    """Write a private key as unencrypted PKCS#8 PEM, readable by the owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start so the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyFormatError(f"{path}: only RSA and Ed25519 keys are supported")
    return key


def public_key_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key_pem(pem: str) -> PublicKey:
    """The key object of a PEM text; the same text gives the same (immutable) object.

    Loading an RSA key costs tens of microseconds, and actors on one server often share
    a key (or a document is read again): the last 1,024 texts are kept."""
    return _load_public_key_pem(pem)


@lru_cache(maxsize=1024)  # bounded: the texts come from remote documents
def _load_public_key_pem(pem: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError) as exc:
        raise KeyFormatError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyFormatError("only RSA and Ed25519 public keys are supported")
    return key


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58_ALPHABET.find(char)
        if index < 0:
            raise KeyFormatError(f"invalid base58 character {char!r}")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_ones = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_ones + body


def ed25519_to_multibase(key: ed25519.Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + b58encode(_ED25519_PUB_PREFIX + raw)


def multibase_to_ed25519(value: str) -> ed25519.Ed25519PublicKey:
    if not value.startswith("z"):
        raise KeyFormatError("publicKeyMultibase must be base58btc (start with 'z')")
    decoded = b58decode(value[1:])
    if not decoded.startswith(_ED25519_PUB_PREFIX) or len(decoded) != 34:
        raise KeyFormatError("publicKeyMultibase is not an Ed25519 public key")
    return ed25519.Ed25519PublicKey.from_public_bytes(decoded[2:])


def ed25519_key_id(actor_id: str, version: int = 1) -> str:
    """The id of an actor's Ed25519 key of one version.

    The first key keeps ``#ed25519-key`` (proofs made before versioning stay valid);
    every rotation gets a new id (``#ed25519-key-2``, ``-3``, ...), so a proof names the
    key it was made with and earlier proofs keep verifying while that key is published.
    """
    return f"{actor_id}#ed25519-key" if version <= 1 else f"{actor_id}#ed25519-key-{version}"


@dataclass(frozen=True)
class Ed25519Version:
    """An Ed25519 public key with its version (the number in its key id)."""

    version: int
    public_key: ed25519.Ed25519PublicKey


def _multikey(actor_id: str, key: Ed25519Version) -> dict[str, str]:
    return {
        "id": ed25519_key_id(actor_id, key.version),
        "type": "Multikey",
        "controller": actor_id,
        "publicKeyMultibase": ed25519_to_multibase(key.public_key),
    }


def actor_key_properties(
    actor_id: str, rsa_public: rsa.RSAPublicKey, ed25519_public: ed25519.Ed25519PublicKey,
    *, ed25519_version: int = 1, retired: Sequence[Ed25519Version] = (),
) -> dict[str, object]:
    """The ``publicKey`` and ``assertionMethod`` members of an actor document.

    ``assertionMethod`` lists the current Multikey first (what new proofs name), then the
    earlier keys still published (FEP-521a allows several), which earlier proofs name.
    """
    current = Ed25519Version(ed25519_version, ed25519_public)
    return {
        "publicKey": {
            "id": f"{actor_id}#main-key",
            "owner": actor_id,
            "publicKeyPem": public_key_pem(rsa_public),
        },
        "assertionMethod": [_multikey(actor_id, key) for key in (current, *retired)],
    }


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def parse_actor_keys(actor: Mapping[str, object]) -> list[PublicKeyInfo]:
    """All keys an actor document publishes; entries that cannot be read are skipped.

    A key whose ``owner``/``controller`` names another actor is skipped: an actor
    cannot publish keys that speak for someone else.
    """
    actor_id = actor.get("id")
    if not isinstance(actor_id, str):
        raise KeyFormatError("actor document has no id")
    found: list[PublicKeyInfo] = []
    for entry in _as_list(actor.get("publicKey")):
        if not isinstance(entry, Mapping):
            continue
        key_id, owner, pem = (
            entry.get("id"),
            entry.get("owner", actor_id),
            entry.get("publicKeyPem"),
        )
        if not (isinstance(key_id, str) and isinstance(pem, str)) or owner != actor_id:
            continue
        try:
            found.append(PublicKeyInfo(key_id, actor_id, load_public_key_pem(pem)))
        except KeyFormatError:
            continue
    for entry in _as_list(actor.get("assertionMethod")):
        if not isinstance(entry, Mapping) or entry.get("type") != "Multikey":
            continue
        key_id, controller = entry.get("id"), entry.get("controller", actor_id)
        multibase = entry.get("publicKeyMultibase")
        if not (isinstance(key_id, str) and isinstance(multibase, str)) or controller != actor_id:
            continue
        try:
            found.append(PublicKeyInfo(key_id, actor_id, multibase_to_ed25519(multibase)))
        except KeyFormatError:
            continue
    return found
