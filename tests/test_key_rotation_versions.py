"""Ed25519 key versions: a rotation must not break proofs made before it.

Each rotation gives the new key a new key id (``#ed25519-key-2``, ``-3``, ...) and the
served actor document keeps the earlier public keys after the current one, so a
contribution published (and later backfilled) before the rotation still verifies.
``revoke`` stops publishing the earlier keys: their proofs then fail on purpose.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import pytest

from federation.keycache import KeyCache
from federation.keys import ed25519_key_id, ed25519_to_multibase, parse_actor_keys
from federation.proofs import ProofVerdict, proof_method, verify_document
from node import identity
from node.identity import KeyKind, rotate_node_key
from node.key_versions import read_versions, versions_path
from tests.engine_support import RunningNode, node_config, publish, start_node
from tests.test_interop_pasture import pasture  # noqa: F401 - the fixture

AP_JSON = "application/activity+json"


async def _get(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(
        url, headers={"Accept": AP_JSON}
    ) as response:
        assert response.status == 200, url
        return json.loads(await response.text())


def _verdict(document: dict, actor: dict) -> ProofVerdict | None:
    """The proof's verdict against the actor document, None if it lists no such key."""
    method = proof_method(document)
    key = next((key for key in parse_actor_keys(actor) if key.key_id == method), None)
    return None if key is None else verify_document(document, key).verdict


async def _rotate(node: RunningNode, *, revoke: bool = False) -> None:
    rotate_node_key(node.config, KeyKind.ED25519, revoke=revoke)
    await asyncio.sleep(identity.KEY_SWITCH_WAIT_SECONDS)  # the running node switches alone


async def _receiver_verdict(document: dict) -> ProofVerdict | None:
    """The verdict of a receiver that has not seen the actor yet: its KeyCache fetches the
    served actor and picks the proof's key by id among all assertionMethod entries."""
    cache = KeyCache(_get, clock=lambda: datetime.now(UTC))
    lookup = await cache(str(proof_method(document)))
    return None if lookup.key is None else verify_document(document, lookup.key).verdict


def _multikey_ids(actor: dict) -> list[str]:
    return [entry["id"] for entry in actor["assertionMethod"]]


async def test_earlier_proofs_verify_after_rotations_until_revoked(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    node = await start_node(config, start_workers=False)
    try:
        actor_url = config.actor_url
        first = await _get(await publish(node, "practice", "erste", "Erste Praxis", body="Text."))
        assert proof_method(first) == ed25519_key_id(actor_url, 1) == f"{actor_url}#ed25519-key"

        await _rotate(node)
        second = await _get(await publish(node, "practice", "zweite", "Zweite Praxis", body="Text."))
        actor = await _get(actor_url)
        assert proof_method(second) == f"{actor_url}#ed25519-key-2"
        assert _multikey_ids(actor) == [f"{actor_url}#ed25519-key-2", f"{actor_url}#ed25519-key"]
        assert _verdict(first, actor) is ProofVerdict.OK
        assert _verdict(second, actor) is ProofVerdict.OK
        assert await _receiver_verdict(first) is ProofVerdict.OK  # e.g. a backfilling follower
        assert await _receiver_verdict(second) is ProofVerdict.OK

        await _rotate(node)
        third = await _get(await publish(node, "practice", "dritte", "Dritte Praxis", body="Text."))
        actor = await _get(actor_url)
        assert _multikey_ids(actor) == [ed25519_key_id(actor_url, n) for n in (3, 2, 1)]
        assert [_verdict(doc, actor) for doc in (first, second, third)] == [ProofVerdict.OK] * 3
        # the RSA key is untouched by all this
        assert actor["publicKey"]["id"] == f"{actor_url}#main-key"

        await _rotate(node, revoke=True)
        fourth = await _get(await publish(node, "practice", "vierte", "Vierte Praxis", body="Text."))
        actor = await _get(actor_url)
        assert _multikey_ids(actor) == [ed25519_key_id(actor_url, 4)]
        assert [_verdict(doc, actor) for doc in (first, second, third)] == [None] * 3
        assert _verdict(fourth, actor) is ProofVerdict.OK
        assert await _receiver_verdict(first) is None
        assert await _receiver_verdict(fourth) is ProofVerdict.OK
    finally:
        await node.stop()


def test_the_versions_file_holds_public_keys_only_and_numbers_are_never_reused(tmp_path) -> None:
    config = node_config(tmp_path, "a")
    assert not versions_path(config.keys_dir).exists()  # a fresh node: one key, version 1
    keys = rotate_node_key(config, KeyKind.ED25519, revoke=True)
    assert keys.current().ed25519_version == 2 and keys.current().ed25519_retired == ()
    keys = rotate_node_key(config, KeyKind.ED25519)
    pair = keys.current()
    assert pair.ed25519.key_id == ed25519_key_id(config.actor_url, 3)
    assert [key.version for key in pair.ed25519_retired] == [2]  # 1 stays revoked
    text = versions_path(config.keys_dir).read_text()
    assert "PRIVATE" not in text
    entries = read_versions(versions_path(config.keys_dir)).entries
    assert [(e.version, e.published) for e in entries] == [(1, False), (2, True), (3, True)]
    assert entries[2].multibase == ed25519_to_multibase(pair.ed25519.private_key.public_key())


def test_a_key_file_not_in_the_versions_file_is_refused(tmp_path) -> None:
    from federation.keys import KeyFormatError, generate_ed25519_key

    config = node_config(tmp_path, "a")
    rotate_node_key(config, KeyKind.ED25519)
    identity.write_atomically(config.ed25519_key_path,
                              identity.private_key_pem(generate_ed25519_key()))
    with pytest.raises(KeyFormatError):
        identity.load_node_keys(config)


@pytest.mark.interop
async def test_pasture_accepts_an_actor_with_earlier_ed25519_keys(tmp_path, pasture) -> None:  # noqa: F811
    """fediverse-pasture's verify_actor reads the actor after two Ed25519 rotations
    (three Multikeys under assertionMethod) as it reads a fresh one."""
    from fediverse_pasture.server.verify_actor import ActorVerifier
    from fediverse_pasture.types import Message

    actors, domain = pasture
    config = node_config(tmp_path, "guetersloh")
    rotate_node_key(config, KeyKind.ED25519)
    rotate_node_key(config, KeyKind.ED25519)
    node = await start_node(config)
    try:
        assert len((await _get(config.actor_url))["assertionMethod"]) == 3
        message = Message()
        verifier = ActorVerifier(actor_list=actors, remote_uri=node.actor, message=message,
                                 domain=domain, timeout=10)
        result = await verifier.verify(only={"alice": False, "bob": True, "claire": False,
                                             "dean": False, "emily": False, "frank": False})
        steps = "\n".join(map(str, message.steps))
        assert result["bob"] == {"get_actor": True, "post_inbox": True}, steps
        assert result["webfinger"] is True, steps
    finally:
        await node.stop()


def test_keys_rotate_revoke_drops_the_earlier_keys_and_refuses_rsa(tmp_path, capsys) -> None:
    from node.cli import main
    from node.config import load_config

    data_dir = tmp_path / "node"
    assert main(["init", "--data-dir", str(data_dir), "--name", "Testkommune",
                 "--slug", "a", "--base-url", "https://a.example"]) == 0
    config = load_config(data_dir)
    rsa_before = config.rsa_key_path.read_bytes()
    assert main(["keys", "rotate", "--revoke", "--data-dir", str(data_dir)]) == 2
    assert "--kind ed25519 only" in capsys.readouterr().err
    assert config.rsa_key_path.read_bytes() == rsa_before  # refused before anything changed
    assert main(["keys", "rotate", "--kind", "ed25519", "--data-dir", str(data_dir)]) == 0
    assert main(["keys", "rotate", "--kind", "ed25519", "--revoke",
                 "--data-dir", str(data_dir)]) == 0
    actor = identity.actor_document(config, identity.load_node_keys(config))
    assert _multikey_ids(actor) == [ed25519_key_id(config.actor_url, 3)]
    entries = read_versions(versions_path(config.keys_dir)).entries
    assert [(e.version, e.published) for e in entries] == [(1, False), (2, False), (3, True)]


def test_a_hub_edition_frozen_before_a_rotation_verifies_against_the_rotated_actor(tmp_path) -> None:
    from node.hub.editions import EditionDraft, EditionProblemKind, freeze, verify_edition
    from node.hub.structure import HandbookStructure, Section

    config = node_config(tmp_path, "hub")  # only its keys and actor matter here
    structure = HandbookStructure((Section("e-akte", "E-Akte", "E-file", 10),))
    draft = EditionDraft.from_structure(config.actor_url, f"{config.base_url}/handbook/editions/",
                                        structure, {})
    edition = freeze(draft, None, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
                     key=identity.load_node_keys(config).ed25519)

    def lookup_in(actor: dict):  # noqa: ANN202 - the KeyLookup of editions
        keys = {key.key_id: key for key in parse_actor_keys(actor)}
        return keys.get

    def served() -> dict:
        return identity.actor_document(config, identity.load_node_keys(config))

    rotate_node_key(config, KeyKind.ED25519)
    assert verify_edition(edition.document, lookup_in(served())).ok
    rotate_node_key(config, KeyKind.ED25519, revoke=True)
    problems = verify_edition(edition.document, lookup_in(served())).problems
    assert [problem.kind for problem in problems] == [EditionProblemKind.UNKNOWN_KEY]
