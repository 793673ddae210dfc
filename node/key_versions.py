"""The versions of the node's Ed25519 key: which key id each key has, which are published.

Every Ed25519 rotation gives the new key a new key id (``#ed25519-key-2``, ``-3``, ...;
``federation.keys.ed25519_key_id``). The public halves of all versions are kept in
``keys/ed25519-versions.json`` beside the key files (public keys only, written by rename
like the key files). The actor document lists the current key and every earlier one
still marked ``published``, so proofs made before a rotation keep verifying; a rotation
with ``revoke`` marks all earlier ones unpublished (a compromised key must stop
vouching for anything, earlier proofs included).

A key file's version is found by its public key, never by position: a rotation writes
this file (listing old and new key) before it replaces the key file, so a process
reading in between finds the old key under its old version and never signs a key with
another key's id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.keys import (
    Ed25519Version,
    KeyFormatError,
    ed25519_to_multibase,
    multibase_to_ed25519,
)

VERSIONS_FILE_NAME = "ed25519-versions.json"


@dataclass(frozen=True)
class KeyVersionEntry:
    version: int
    multibase: str  # the public key (publicKeyMultibase)
    published: bool


@dataclass(frozen=True)
class Ed25519Versions:
    """The contents of the versions file (no file: no entries, the key is version 1)."""

    entries: tuple[KeyVersionEntry, ...] = ()

    def version_of(self, public: ed25519.Ed25519PublicKey) -> int:
        """The version of the key file holding ``public``."""
        if not self.entries:
            return 1  # a node from before versioning: its key keeps ``#ed25519-key``
        multibase = ed25519_to_multibase(public)
        for entry in self.entries:
            if entry.multibase == multibase:
                return entry.version
        raise KeyFormatError(
            f"keys/ed25519.pem is not listed in keys/{VERSIONS_FILE_NAME}; "
            "replace keys only with `praxisnetz keys rotate --kind ed25519`")

    def retired(self, current: int) -> tuple[Ed25519Version, ...]:
        """The earlier keys still published, newest first."""
        return tuple(
            Ed25519Version(entry.version, multibase_to_ed25519(entry.multibase))
            for entry in sorted(self.entries, key=lambda entry: -entry.version)
            if entry.version != current and entry.published
        )

    def rotated(
        self, old: ed25519.Ed25519PublicKey | None, new: ed25519.Ed25519PublicKey, *, revoke: bool
    ) -> Ed25519Versions:
        """The versions after replacing ``old`` (the key file's key) with ``new``."""
        entries = list(self.entries)
        if old is not None and not entries:
            entries.append(KeyVersionEntry(1, ed25519_to_multibase(old), True))
        if revoke:
            entries = [replace(entry, published=False) for entry in entries]
        # never reuse a number: a receiver may have cached the key under that id
        number = max((entry.version for entry in entries), default=0) + 1
        entries.append(KeyVersionEntry(number, ed25519_to_multibase(new), True))
        return Ed25519Versions(tuple(entries))

    def to_json(self) -> bytes:
        keys = [
            {"version": entry.version, "publicKeyMultibase": entry.multibase,
             "published": entry.published}
            for entry in self.entries
        ]
        return (json.dumps({"ed25519": keys}, indent=2) + "\n").encode()


def versions_path(keys_dir: Path) -> Path:
    return keys_dir / VERSIONS_FILE_NAME


def read_versions(path: Path) -> Ed25519Versions:
    """The versions file (missing: no entries). Raises OSError/ValueError on a bad file."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return Ed25519Versions()
    try:
        entries = tuple(
            KeyVersionEntry(int(item["version"]), str(item["publicKeyMultibase"]),
                            bool(item["published"]))
            for item in data["ed25519"]
        )
    except (KeyError, TypeError) as exc:
        raise KeyFormatError(f"{path} is not a key versions file: {exc}") from exc
    for entry in entries:
        multibase_to_ed25519(entry.multibase)  # a bad entry fails here, not in the actor route
    return Ed25519Versions(entries)

