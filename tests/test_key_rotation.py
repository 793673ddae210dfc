"""Key rotation without a restart: ``KeyFiles`` follows the key files, safely.

A process's ``NodeKeys`` (from ``load_node_keys``) looks at the key files at most once
per check interval and switches to a rotated key; a file that is not a complete key of
its kind is never used. ``rotate_node_key`` replaces a file by rename, keeping the old
key beside it. The CLI part (``keys rotate --kind ed25519``) queues an actor Update with
the new Multikey, signed with the new key.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from federation.keys import (
    ed25519_key_id,
    ed25519_to_multibase,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key,
    parse_actor_keys,
    public_key_pem,
)
from federation.proofs import ProofVerdict, verify_document
from node import identity
from node.atomic_files import write_atomically
from node.cli import main
from node.config import NodeConfig, load_config
from node.identity import (
    KeyFiles,
    KeyKind,
    actor_document,
    load_node_keys,
    private_key_pem,
    rotate_node_key,
)
from node.storage.db import create_engine, session_maker
from node.storage.models import Activity, Delivery, Follower
from tests.engine_support import node_config


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _public_pem(keys_rsa) -> str:  # noqa: ANN001 - a SigningKey
    return public_key_pem(keys_rsa.private_key.public_key())


def _live_keys(config: NodeConfig, clock: FakeMonotonic) -> identity.NodeKeys:
    files = KeyFiles(config, monotonic=clock)
    return identity.NodeKeys.from_pair(files.read(), refresh=files)


def test_a_rotated_key_is_taken_after_the_check_interval_not_before(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    clock = FakeMonotonic()
    keys = _live_keys(config, clock)
    old_rsa, old_ed = _public_pem(keys.rsa), _public_pem(keys.ed25519)
    rotate_node_key(config, KeyKind.RSA)
    new_rsa = public_key_pem(load_private_key(config.rsa_key_path).public_key())
    assert new_rsa != old_rsa
    clock.now += 0.5  # within the interval the files are not even looked at
    assert _public_pem(keys.rsa) == old_rsa
    clock.now += 0.6
    assert _public_pem(keys.rsa) == new_rsa
    assert _public_pem(keys.ed25519) == old_ed  # only the rotated key changed
    assert keys.rsa.key_id == config.rsa_key_id
    rotate_node_key(config, KeyKind.ED25519)
    clock.now += 1.1
    assert _public_pem(keys.ed25519) != old_ed
    assert _public_pem(keys.rsa) == new_rsa


def test_load_node_keys_follows_the_files_with_the_real_clock(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    keys = load_node_keys(config)
    before = _public_pem(keys.rsa)
    rotate_node_key(config, KeyKind.RSA)
    time.sleep(identity.KEY_CHECK_SECONDS + 0.1)
    assert _public_pem(keys.rsa) != before
    assert _public_pem(keys.rsa_for("https://other.example/group")) == _public_pem(keys.rsa)


@pytest.mark.parametrize("kind", [KeyKind.RSA, KeyKind.ED25519])
def test_a_half_written_key_file_is_never_used(tmp_path, kind, caplog) -> None:
    config = node_config(tmp_path, "a")
    clock = FakeMonotonic()
    keys = _live_keys(config, clock)
    path = identity.key_path(config, kind)
    current = (lambda: keys.rsa) if kind is KeyKind.RSA else (lambda: keys.ed25519)
    old = _public_pem(current())
    new_key = generate_rsa_key() if kind is KeyKind.RSA else generate_ed25519_key()
    pem = private_key_pem(new_key)
    # some other tool writes the file in place, and we look while it is half done
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(pem[: len(pem) // 2])
    clock.now += 1.1
    assert _public_pem(current()) == old
    assert "cannot be used, keeping the keys in use" in caplog.text
    clock.now += 1.1
    assert _public_pem(current()) == old  # still half: still the old key
    with path.open("ab") as handle:
        handle.write(pem[len(pem) // 2 :])
    clock.now += 1.1
    assert _public_pem(current()) == public_key_pem(new_key.public_key())


def test_a_key_of_the_wrong_kind_or_a_missing_file_is_not_used(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    clock = FakeMonotonic()
    keys = _live_keys(config, clock)
    old_rsa = _public_pem(keys.rsa)
    write_atomically(config.rsa_key_path, private_key_pem(generate_ed25519_key()))
    clock.now += 1.1
    assert _public_pem(keys.rsa) == old_rsa
    config.rsa_key_path.unlink()
    clock.now += 1.1
    assert _public_pem(keys.rsa) == old_rsa


def test_rotation_keeps_the_old_key_and_writes_owner_only_files_by_rename(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    old_pem = config.ed25519_key_path.read_bytes()
    old_inode = config.ed25519_key_path.stat().st_ino
    keys = rotate_node_key(config, KeyKind.ED25519)
    assert config.ed25519_key_path.with_suffix(".pem.old").read_bytes() == old_pem
    assert config.ed25519_key_path.stat().st_ino != old_inode  # a new file, renamed in
    for path in (config.ed25519_key_path, config.ed25519_key_path.with_suffix(".pem.old")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert private_key_pem(keys.ed25519.private_key) == config.ed25519_key_path.read_bytes()
    assert [p.name for p in config.keys_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_write_leaves_the_key_file_as_it_was(tmp_path, monkeypatch) -> None:
    target = tmp_path / "rsa.pem"
    target.write_bytes(b"old complete key")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"new key")
    assert target.read_bytes() == b"old complete key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rsa.pem"]


def _add_follower(config: NodeConfig) -> None:
    async def add() -> None:
        engine = create_engine(config.database_url)
        async with session_maker(engine).begin() as session:
            session.add(Follower(actor_uri="https://b.example/actor", inbox="https://b.example/inbox",
                                 shared_inbox=None, state="accepted", created_at=datetime.now(UTC)))
        await engine.dispose()

    asyncio.run(add())


def _queued_update(config: NodeConfig) -> dict:
    async def query() -> list:
        engine = create_engine(config.database_url)
        async with session_maker(engine)() as session:
            rows = (await session.execute(select(Activity.document).join(Delivery))).scalars().all()
        await engine.dispose()
        return list(rows)

    documents = asyncio.run(query())
    assert len(documents) == 1
    return documents[0]


def test_keys_rotate_ed25519_announces_the_new_multikey_signed_with_it(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    assert main(["init", "--data-dir", str(data_dir), "--name", "Testkommune",
                 "--slug", "a", "--base-url", "https://a.example"]) == 0
    config = load_config(data_dir)
    _add_follower(config)
    old_multibase = ed25519_to_multibase(load_private_key(config.ed25519_key_path).public_key())
    old_rsa = config.rsa_key_path.read_bytes()
    assert main(["keys", "rotate", "--kind", "ed25519", "--data-dir", str(data_dir)]) == 0
    assert f"new ed25519 key in {config.ed25519_key_path}" in capsys.readouterr().out
    assert config.rsa_key_path.read_bytes() == old_rsa
    new_key = load_private_key(config.ed25519_key_path)
    new_multibase = ed25519_to_multibase(new_key.public_key())
    assert new_multibase != old_multibase
    served = actor_document(config, load_node_keys(config))
    published = {info.key_id: info for info in parse_actor_keys(served)}
    new_id = ed25519_key_id(config.actor_url, 2)  # a new key id; the first key keeps its own
    assert ed25519_to_multibase(published[new_id].public_key) == new_multibase
    assert ed25519_to_multibase(published[config.ed25519_key_id].public_key) == old_multibase
    update = _queued_update(config)
    assert update["type"] == "Update"
    multikeys = [m for m in update["object"]["assertionMethod"] if m["type"] == "Multikey"]
    assert [m["publicKeyMultibase"] for m in multikeys] == [new_multibase, old_multibase]
    assert verify_document(update, published[new_id]).verdict is ProofVerdict.OK


def test_on_a_hub_each_followed_topic_group_announces_its_new_key(tmp_path, capsys) -> None:
    from node.hub.groups import load_topics
    from node.hub.tables import TopicFollower

    data_dir = tmp_path / "hub"
    assert main(["init", "--data-dir", str(data_dir), "--name", "Hub", "--slug", "hub", "--hub",
                 "--base-url", "https://hub.example"]) == 0
    config = load_config(data_dir)
    followed, unfollowed = (topic.slug for topic in load_topics()[:2])

    async def add() -> None:
        engine = create_engine(config.database_url)
        async with session_maker(engine).begin() as session:
            for number, inbox in enumerate(("https://a.example/inbox", "https://b.example/inbox")):
                session.add(TopicFollower(topic=followed, actor_uri=f"https://m{number}.example/actor",
                                          inbox=inbox, shared_inbox=None,
                                          follow_activity_uri=f"https://m{number}.example/f",
                                          created_at=datetime.now(UTC)))
        await engine.dispose()

    asyncio.run(add())
    assert main(["keys", "rotate", "--data-dir", str(data_dir)]) == 0
    assert "actor Update queued for 2 inbox(es)" in capsys.readouterr().out

    async def query() -> list:
        engine = create_engine(config.database_url)
        async with session_maker(engine)() as session:
            rows = (await session.execute(select(Activity.document, Delivery.inbox_url)
                                          .join(Delivery))).all()
        await engine.dispose()
        return [tuple(row) for row in rows]

    rows = asyncio.run(query())
    group = f"{config.base_url}/topics/{followed}"
    assert sorted(inbox for _, inbox in rows) == ["https://a.example/inbox", "https://b.example/inbox"]
    update = rows[0][0]
    assert update["type"] == "Update" and update["actor"] == group and update["object"]["id"] == group
    new_rsa = public_key_pem(load_private_key(config.rsa_key_path).public_key())
    assert update["object"]["publicKey"] == {"id": f"{group}#main-key", "owner": group,
                                             "publicKeyPem": new_rsa}
    published = {info.key_id: info for info in parse_actor_keys(update["object"])}
    assert verify_document(update, published[f"{group}#ed25519-key"]).verdict is ProofVerdict.OK
    assert all(f"/topics/{unfollowed}" not in document["id"] for document, _ in rows)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_rotation_run_as_root_keeps_the_service_user_as_owner(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    os.chown(config.rsa_key_path, 10001, 10001)  # the container's service user
    rotate_node_key(config, KeyKind.RSA)
    for path in (config.rsa_key_path, config.rsa_key_path.with_suffix(".pem.old")):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (10001, 10001), path.name
