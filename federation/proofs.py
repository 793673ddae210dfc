"""Object integrity proofs (FEP-8b32) with the ``eddsa-jcs-2022`` cryptosuite.

Algorithm (W3C vc-di-eddsa, "eddsa-jcs-2022"):

- proof configuration = the proof without ``proofValue``; it carries the document's
  ``@context`` (so the proof is bound to the context the document is read with) and
  ``created``, so both are signed;
- hash data = SHA-256(JCS(proof configuration)) || SHA-256(JCS(document without proof));
- ``proofValue`` = ``z`` + base58btc(Ed25519 signature over the hash data).

Verification is pure: the caller resolves :func:`proof_method` to a key and passes it in.
It is stricter than the W3C text in one place: if the proof names an ``@context``, the
document's ``@context`` must be exactly that (the W3C text lets extra contexts be appended
after signing, which changes the meaning of signed terms without breaking the proof).
Proofs without ``@context``, made by FEP-8b32 implementations that predate the 2024
change, are also accepted: the configuration is then tried with and without it.
"""

from __future__ import annotations

import copy
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.keys import (
    KeyAlgorithm,
    KeyFormatError,
    PublicKeyInfo,
    SigningKey,
    b58decode,
    b58encode,
)
from federation.timestamps import TimestampError, format_timestamp, parse_timestamp
from federation.urls import same_origin

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
ASSERTION_METHOD = "assertionMethod"
_SIGNATURE_LENGTH = 64
# ActivityStreams actor types: an actor document is owned by the actor itself.
_ACTOR_TYPES = frozenset({"Application", "Group", "Organization", "Person", "Service"})
# Activities whose embedded object must be the actor's own (FEP-fe34 ownership).
_AUTHORING_ACTIVITIES = frozenset({"Create", "Update", "Delete"})


class ProofVerdict(enum.Enum):
    OK = "ok"
    NO_PROOF = "no_proof"
    MALFORMED = "malformed"
    UNSUPPORTED_CRYPTOSUITE = "unsupported_cryptosuite"
    WRONG_PURPOSE = "wrong_purpose"
    AUTHOR_MISMATCH = "author_mismatch"
    BAD_PROOF = "bad_proof"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ProofResult:
    verdict: ProofVerdict
    method: str | None  # the proof's verificationMethod, if it named one
    detail: str
    owner: str | None = None  # the actor whose key made the proof, set when verdict is OK

    @property
    def ok(self) -> bool:
        return self.verdict is ProofVerdict.OK


class ProofError(ValueError):
    """A document cannot be signed (wrong key type, naive timestamp, not JSON-canonicalisable)."""


def sign_document(
    document: Mapping[str, object],
    key: SigningKey,
    *,
    created: datetime,
    purpose: str = ASSERTION_METHOD,
) -> dict[str, object]:
    """A copy of ``document`` with an ``eddsa-jcs-2022`` proof made with ``key``."""
    if key.algorithm is not KeyAlgorithm.ED25519:
        raise ProofError(f"eddsa-jcs-2022 needs an Ed25519 key, not {key.algorithm.value}")
    if "proof" in document:
        raise ProofError("document already carries a proof; sign the unsecured document")
    try:
        created_text = format_timestamp(created)
    except TimestampError as exc:
        raise ProofError(f"created: {exc}") from exc
    unsecured = copy.deepcopy(dict(document))
    options: dict[str, object] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": key.key_id,
        "proofPurpose": purpose,
        "created": created_text,
    }
    if "@context" in unsecured:
        options["@context"] = copy.deepcopy(unsecured["@context"])
    try:
        hash_data = _hash_data(options, _document_hash(unsecured))
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        raise ProofError(f"document is not JSON-canonicalisable: {exc}") from exc
    signature = key.private_key.sign(hash_data)
    return {**unsecured, "proof": {**options, "proofValue": "z" + b58encode(signature)}}


def proof_method(document: Mapping[str, object]) -> str | None:
    """The ``verificationMethod`` of the document's proof: the key the caller must resolve."""
    proof = _single_proof(document.get("proof"))
    method = proof.get("verificationMethod") if proof is not None else None
    return method if isinstance(method, str) else None


def document_author(document: Mapping[str, object]) -> str | None:
    """Who owns ``document``: ``actor`` of an activity, ``attributedTo`` of an object,
    the actor itself for actor documents. None if there is no single author."""
    if "actor" in document:
        return _single_id(document["actor"])
    if _types(document.get("type")) & _ACTOR_TYPES:
        actor_id = document.get("id")
        return actor_id if isinstance(actor_id, str) else None
    return _single_id(document.get("attributedTo"))


def verify_document(
    document: Mapping[str, object],
    key: PublicKeyInfo,
    *,
    purpose: str = ASSERTION_METHOD,
    now: datetime | None = None,
) -> ProofResult:
    """Check the document's proof with ``key`` (resolved from :func:`proof_method`).

    Checks, in order: a single proof naming its method, the cryptosuite, the purpose, expiry
    (only if ``now`` is given), that ``key`` is the proof's method and is owned by the
    document's author (and that an embedded object of a Create/Update/Delete has the
    same author), then the signature.
    """
    raw_proof = document.get("proof")
    if raw_proof is None:
        return ProofResult(ProofVerdict.NO_PROOF, None, "document has no proof")
    proof = _single_proof(raw_proof)
    if proof is None:
        return ProofResult(ProofVerdict.MALFORMED, None, "proof must be one JSON object")
    method = proof_method(document)
    if method is None:
        return ProofResult(ProofVerdict.MALFORMED, None, "proof has no verificationMethod")
    problem = _check_proof_fields(proof, purpose, now)
    if problem is not None:
        return ProofResult(problem[0], method, problem[1])
    signature = _decode_proof_value(proof.get("proofValue"))
    if signature is None:
        detail = "proofValue is not a base58btc Ed25519 signature"
        return ProofResult(ProofVerdict.MALFORMED, method, detail)
    public_key = key.public_key
    if key.key_id != method or not isinstance(public_key, ed25519.Ed25519PublicKey):
        detail = f"key {key.key_id!r} is not the proof's Ed25519 verificationMethod"
        return ProofResult(ProofVerdict.BAD_PROOF, method, detail)
    problem = _check_author(document, key)
    if problem is not None:
        return ProofResult(ProofVerdict.AUTHOR_MISMATCH, method, problem)
    if _verify_signature(document, proof, public_key, signature):
        return ProofResult(ProofVerdict.OK, method, "valid eddsa-jcs-2022 proof", owner=key.owner)
    return ProofResult(ProofVerdict.BAD_PROOF, method, "signature does not match the document")


def _check_proof_fields(
    proof: Mapping[str, object], purpose: str, now: datetime | None
) -> tuple[ProofVerdict, str] | None:
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        suite = f"{proof.get('type')!r}/{proof.get('cryptosuite')!r}"
        return ProofVerdict.UNSUPPORTED_CRYPTOSUITE, f"unsupported proof type/cryptosuite {suite}"
    if proof.get("proofPurpose") != purpose:
        return ProofVerdict.WRONG_PURPOSE, f"proofPurpose must be {purpose!r}"
    try:
        if "created" in proof:
            parse_timestamp(proof["created"])
        expires = parse_timestamp(proof["expires"]) if "expires" in proof else None
    except TimestampError as exc:
        return ProofVerdict.MALFORMED, f"proof timestamp: {exc}"
    if expires is not None and now is not None and now > expires:
        return ProofVerdict.EXPIRED, "proof has expired"
    return None


def _check_author(document: Mapping[str, object], key: PublicKeyInfo) -> str | None:
    """Why ``key`` may not speak for ``document``, or None if it may."""
    author = document_author(document)
    if author is None:
        return "document names no single author"
    if key.owner != author:
        return f"key belongs to {key.owner!r}, author is {author!r}"
    if not same_origin(key.key_id, key.owner):
        # an actor document cannot vouch for a key hosted elsewhere (misskey#2546)
        return f"key {key.key_id!r} is not on its owner's origin"
    embedded = document.get("object")
    if _types(document.get("type")) & _AUTHORING_ACTIVITIES and isinstance(embedded, Mapping):
        embedded_author = _single_id(embedded.get("attributedTo"))
        if embedded_author is not None and embedded_author != author:
            return f"embedded object is by {embedded_author!r}, not by {author!r}"
    return None


def _verify_signature(
    document: Mapping[str, object],
    proof: Mapping[str, object],
    public_key: ed25519.Ed25519PublicKey,
    signature: bytes,
) -> bool:
    # A Linked Data Signature is added after the proof, so it is not covered (FEP-8b32).
    unsecured = {k: v for k, v in document.items() if k not in ("proof", "signature")}
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if "@context" in config:
        if config["@context"] != unsecured.get("@context"):
            return False
        candidates = [config]
    elif "@context" in unsecured:
        # current vc-di-eddsa first, then the FEP-8b32 drafts that left @context out
        candidates = [{**config, "@context": unsecured["@context"]}, config]
    else:
        candidates = [config]
    try:
        document_hash = _document_hash(unsecured)
        hashes = [_hash_data(candidate, document_hash) for candidate in candidates]
    except (rfc8785.CanonicalizationError, RecursionError):
        return False  # what cannot be canonicalised cannot have been signed
    for hash_data in hashes:
        try:
            public_key.verify(signature, hash_data)
        except InvalidSignature:
            continue
        return True
    return False


def _document_hash(unsecured: Mapping[str, object]) -> bytes:
    return hashlib.sha256(rfc8785.dumps(unsecured)).digest()


def _hash_data(proof_config: Mapping[str, object], document_hash: bytes) -> bytes:
    return hashlib.sha256(rfc8785.dumps(proof_config)).digest() + document_hash


def _decode_proof_value(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("z") or len(value) > 100:
        return None
    try:
        decoded = b58decode(value[1:])
    except KeyFormatError:
        return None
    return decoded if len(decoded) == _SIGNATURE_LENGTH else None


def _single_proof(value: object) -> Mapping[str, object] | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value if isinstance(value, Mapping) else None


def _single_id(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _types(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()
