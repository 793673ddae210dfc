"""The node's own identity: its key files and its actor document."""

from __future__ import annotations

import enum
import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from federation import activity_builders
from federation.keys import (
    KeyFormatError,
    PrivateKey,
    SigningKey,
    actor_key_properties,
    ed25519_key_id,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key,
    save_private_key,
)
from federation.proofs import sign_document
from node.appkeys import KeyPair, NodeKeys
from node.atomic_files import stat_or_none, write_atomically
from node.config import NodeConfig
from node.key_versions import read_versions, versions_path

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_V1_CONTEXT = "https://w3id.org/security/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
PRAXISNETZ_CONTEXT = "https://w3id.org/praxisnetz/context.jsonld"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


log = logging.getLogger(__name__)

# How often a process looks at its key files: a rotation reaches every process this
# long after the rename at the latest (the check runs when a key is taken, so an idle
# process costs nothing). `keys rotate` waits this long (plus a margin) before it
# queues the actor Update.
KEY_CHECK_SECONDS = 1.0
KEY_SWITCH_WAIT_SECONDS = KEY_CHECK_SECONDS + 0.5


class KeyKind(enum.Enum):
    RSA = "rsa"
    ED25519 = "ed25519"


def key_path(config: NodeConfig, kind: KeyKind) -> Path:
    return config.rsa_key_path if kind is KeyKind.RSA else config.ed25519_key_path


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# What identifies one version of a key file: a rename gives a new inode, an in-place
# write a new mtime/ctime or size.
FileStamp = tuple[int, int, int, int]


def _stamp(path: Path) -> FileStamp | None:
    info = stat_or_none(path)
    if info is None:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)


def _expect(key: PrivateKey, expected: type, name: str) -> PrivateKey:
    if not isinstance(key, expected):
        raise KeyFormatError(f"{name} does not hold the expected key type")
    return key


class KeyFiles:
    """The node's key files, read again when they change on disk (the ``NodeKeys`` refresh).

    Called on every access to a key; looks at the files (one ``stat`` each) at most once
    per ``KEY_CHECK_SECONDS``. A file that cannot be read as a complete key of its kind
    (missing, half written by some other tool, wrong type) is not used: the keys in use
    stay until a complete new file is there, and the problem is logged once per version.
    """

    def __init__(
        self, config: NodeConfig, *, interval: float = KEY_CHECK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._interval = interval
        self._monotonic = monotonic
        self._next_check = monotonic() + interval
        self._lock = threading.Lock()  # signing may happen in executor threads
        self._stamps = self._current_stamps()

    def _current_stamps(self) -> tuple[FileStamp | None, ...]:
        config = self._config
        return tuple(_stamp(path) for path in (
            config.rsa_key_path, config.ed25519_key_path, versions_path(config.keys_dir)))

    def read(self) -> KeyPair:
        """Both keys from disk (raises OSError/ValueError on a bad file)."""
        return read_key_pair(self._config)

    def __call__(self, current: KeyPair) -> KeyPair:
        now = self._monotonic()
        if now < self._next_check:
            return current
        with self._lock:
            if now < self._next_check:  # another thread checked meanwhile
                return current
            self._next_check = now + self._interval
            stamps = self._current_stamps()
            if stamps == self._stamps:
                return current
            self._stamps = stamps  # a bad version is tried (and logged) once
            try:
                fresh = self.read()
            except (OSError, ValueError) as exc:  # KeyFormatError and PEM errors are ValueErrors
                log.error("key files changed but cannot be used, keeping the keys in use: %s", exc)
                return current
        _log_switch(current, fresh)
        return fresh


def _load_own_rsa_key(path: Path) -> PrivateKey:
    """The node's RSA key, read without OpenSSL's key check (its primality tests took
    ~55 ms CPU per load, a twentieth of a node's start-up). The file is the node's own
    (written by ``create_node_keys`` or a rotation, mode 0600), not outside input; what a
    damaged file could still do -- sign what its public key does not verify -- is checked
    instead by one signature round trip (~0.3 ms)."""
    key = serialization.load_pem_private_key(
        path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("keys/rsa.pem does not hold the expected key type")
    probe = b"praxisnetz key check"
    signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
    try:
        key.public_key().verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise KeyFormatError("keys/rsa.pem: the key does not verify its own signature") from None
    return key


def read_key_pair(config: NodeConfig) -> KeyPair:
    """Both keys, the Ed25519 key's version and the earlier Ed25519 keys still published."""
    rsa_key = _load_own_rsa_key(config.rsa_key_path)
    ed_key = _expect(load_private_key(config.ed25519_key_path), ed25519.Ed25519PrivateKey,
                     "keys/ed25519.pem")
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    versions = read_versions(versions_path(config.keys_dir))
    version = versions.version_of(ed_key.public_key())
    return KeyPair(
        SigningKey(config.rsa_key_id, rsa_key),
        SigningKey(ed25519_key_id(config.actor_url, version), ed_key),
        ed25519_version=version,
        ed25519_retired=versions.retired(version),
    )


def _log_switch(old: KeyPair, new: KeyPair) -> None:
    for name, before, after in (("RSA", old.rsa, new.rsa), ("Ed25519", old.ed25519, new.ed25519)):
        if private_key_pem(before.private_key) != private_key_pem(after.private_key):
            log.warning("now signing with the rotated %s key from the key files", name)


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


def load_node_keys(config: NodeConfig) -> NodeKeys:
    """The node's keys, following the key files: a rotation on disk reaches every process."""
    files = KeyFiles(config)
    return NodeKeys.from_pair(files.read(), refresh=files)


ROTATION_LOCK_NAME = "rotate.lock"


class RotationBusy(Exception):
    """Another rotation of this node's keys holds the lock file."""

    def __init__(self, lock: Path) -> None:
        super().__init__(
            f"another key rotation of this node is running (it holds the lock {lock}); "
            "run `praxisnetz keys rotate` again when it has finished")
        self.lock = lock


@dataclass(frozen=True)
class RotationLock:
    """Proof that the caller holds ``rotation_lock`` (see ``rotate_node_key``)."""

    path: Path


@contextmanager
def rotation_lock(config: NodeConfig) -> Iterator[RotationLock]:
    """An exclusive ``flock`` on ``keys/rotate.lock`` for the whole of one rotation, or
    ``RotationBusy`` at once if another process (or thread) holds it. Two rotations at
    once would each read the versions file and write it back without the other's key
    (a key file then has no key id) and each keep the other's key as ``.pem.old``.

    The file is opened read-only (a flock needs no write access), so a lock file that
    root created stays usable by the service user; the kernel drops the lock when the
    holder exits, however it exits."""
    path = config.keys_dir / ROTATION_LOCK_NAME
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationBusy(path) from None
        yield RotationLock(path)
    finally:
        os.close(fd)  # releases the lock


def rotate_node_key(config: NodeConfig, kind: KeyKind, *, revoke: bool = False,
                    lock: RotationLock | None = None) -> NodeKeys:
    """Replace one key file with a new key; the old one is kept as ``<name>.pem.old``.

    Both files are replaced by rename, so a process reading them (``KeyFiles``) sees
    either the old complete key or the new complete one, and the key file never
    goes missing in between. An Ed25519 key gets the next version (key id); the old
    public key stays published unless ``revoke`` (then no earlier key is published).

    Under ``rotation_lock``: the caller's (``lock``, held for the whole rotation, the
    announcement included), else one taken here for the files; ``RotationBusy`` if
    another rotation holds it.
    """
    if lock is None:
        with rotation_lock(config) as held:
            return rotate_node_key(config, kind, revoke=revoke, lock=held)
    path = key_path(config, kind)
    key = generate_rsa_key() if kind is KeyKind.RSA else generate_ed25519_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        _record_ed25519_version(config, key.public_key(), revoke=revoke)
    if path.exists():
        write_atomically(path.with_suffix(".pem.old"), path.read_bytes(), owner_of=path)
    write_atomically(path, private_key_pem(key))
    return load_node_keys(config)


def _record_ed25519_version(
    config: NodeConfig, new: ed25519.Ed25519PublicKey, *, revoke: bool
) -> None:
    """Write the versions file listing the new key, before the key file is replaced."""
    path = config.ed25519_key_path
    old = load_private_key(path) if path.exists() else None
    old_public = old.public_key() if isinstance(old, ed25519.Ed25519PrivateKey) else None
    target = versions_path(config.keys_dir)
    versions = read_versions(target).rotated(old_public, new, revoke=revoke)
    write_atomically(target, versions.to_json(), owner_of=path if path.exists() else None)


def actor_document(config: NodeConfig, keys: NodeKeys) -> dict[str, Any]:
    """The ``Organization`` actor: RSA ``publicKey`` and Ed25519 ``Multikey`` (current first,
    then the earlier ones still published)."""
    pair = keys.current()
    rsa_key, ed_key = pair.rsa.private_key, pair.ed25519.private_key
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
        actor_key_properties(config.actor_url, rsa_key.public_key(), ed_key.public_key(),
                             ed25519_version=pair.ed25519_version, retired=pair.ed25519_retired)
    )
    return document


def actor_update_activity(config: NodeConfig, keys: NodeKeys, now: datetime) -> dict[str, Any]:
    """``Update`` of the actor (after a key rotation), signed with the Ed25519 key."""
    pair = keys.current()  # the document and the signature from the same key files
    return update_of_actor(actor_document(config, NodeKeys.from_pair(pair)), pair.ed25519,
                           activity_id=f"{config.base_url}/activities/{uuid.uuid4()}",
                           followers=config.followers_url, now=now)


def update_of_actor(
    actor: dict[str, Any], key: SigningKey, *, activity_id: str, followers: str, now: datetime
) -> dict[str, Any]:
    """``Update`` of a local actor document (the node's or a hub topic group's), signed."""
    embedded = {name: value for name, value in actor.items() if name != "@context"}
    activity = activity_builders.update(
        str(actor["id"]),
        {**embedded, "to": [PUBLIC], "cc": [followers]},
        activity_id=activity_id,
        published=now,
    )
    # The key terms (publicKey, Multikey) need the actor's contexts, not only ours.
    activity["@context"] = [*actor["@context"], DATA_INTEGRITY_CONTEXT]
    return sign_document(activity, key, created=now)
