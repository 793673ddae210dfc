"""The node's own identity: its key files and its actor document."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from federation import activities
from federation.keys import (
    KeyFormatError,
    PrivateKey,
    SigningKey,
    actor_key_properties,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key,
    save_private_key,
)
from federation.proofs import sign_document
from node.appkeys import NodeKeys
from node.config import NodeConfig

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_V1_CONTEXT = "https://w3id.org/security/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
PRAXISNETZ_CONTEXT = "https://w3id.org/praxisnetz/context.jsonld"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def create_node_keys(config: NodeConfig) -> NodeKeys:
    """Generate and store both keys (0600). Refuses to overwrite existing key files."""
    for path in (config.rsa_key_path, config.ed25519_key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; refusing to overwrite a node's key")
    rsa_key, ed_key = generate_rsa_key(), generate_ed25519_key()
    config.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_private_key(config.rsa_key_path, rsa_key)
    save_private_key(config.ed25519_key_path, ed_key)
    return NodeKeys(
        SigningKey(config.rsa_key_id, rsa_key), SigningKey(config.ed25519_key_id, ed_key)
    )


def _expect(key: PrivateKey, expected: type, name: str) -> PrivateKey:
    if not isinstance(key, expected):
        raise KeyFormatError(f"{name} does not hold the expected key type")
    return key


def load_node_keys(config: NodeConfig) -> NodeKeys:
    rsa_key = _expect(load_private_key(config.rsa_key_path), rsa.RSAPrivateKey, "keys/rsa.pem")
    ed_key = _expect(
        load_private_key(config.ed25519_key_path), ed25519.Ed25519PrivateKey, "keys/ed25519.pem"
    )
    return NodeKeys(
        SigningKey(config.rsa_key_id, rsa_key), SigningKey(config.ed25519_key_id, ed_key)
    )


def rotate_rsa_key(config: NodeConfig) -> NodeKeys:
    """Replace the RSA key file (the old one is kept as rsa.pem.old) and return the new keys."""
    old = config.rsa_key_path
    if old.exists():
        old.replace(old.with_suffix(".pem.old"))
    save_private_key(config.rsa_key_path, generate_rsa_key())
    return load_node_keys(config)


def actor_document(config: NodeConfig, keys: NodeKeys) -> dict[str, Any]:
    """The ``Organization`` actor: RSA ``publicKey`` and Ed25519 ``Multikey``."""
    rsa_key, ed_key = keys.rsa.private_key, keys.ed25519.private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ed_key, ed25519.Ed25519PrivateKey)
    document: dict[str, Any] = {
        "@context": [
            AS_CONTEXT,
            SECURITY_V1_CONTEXT,
            MULTIKEY_CONTEXT,
            PRAXISNETZ_CONTEXT,
            {"manuallyApprovesFollowers": "as:manuallyApprovesFollowers"},
        ],
        "id": config.actor_url,
        "type": "Organization",
        "preferredUsername": config.slug,
        "name": config.name,
        "url": config.base_url,
        "inbox": config.inbox_url,
        "outbox": config.outbox_url,
        "followers": config.followers_url,
        "following": config.following_url,
        "endpoints": {"sharedInbox": config.shared_inbox_url},
        "manuallyApprovesFollowers": config.follow_approval.value == "manual",
    }
    if config.municipality_key_uri:
        document["municipalityKey"] = config.municipality_key_uri
    document.update(
        actor_key_properties(config.actor_url, rsa_key.public_key(), ed_key.public_key())
    )
    return document


def actor_update_activity(config: NodeConfig, keys: NodeKeys, now: datetime) -> dict[str, Any]:
    """``Update`` of the actor (after a key rotation), signed with the Ed25519 key."""
    actor = actor_document(config, keys)
    embedded = {key: value for key, value in actor.items() if key != "@context"}
    activity = activities.update(
        config.actor_url,
        {**embedded, "to": [PUBLIC], "cc": [config.followers_url]},
        activity_id=f"{config.base_url}/activities/{uuid.uuid4()}",
        published=now,
    )
    # The key terms (publicKey, Multikey) need the actor's contexts, not only ours.
    activity["@context"] = [*actor["@context"], DATA_INTEGRITY_CONTEXT]
    return sign_document(activity, keys.ed25519, created=now)
