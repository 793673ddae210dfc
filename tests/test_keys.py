"""Keys: generation, PEM files, Multikey encoding and parsing actor documents."""

import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.keys import (
    KeyAlgorithm,
    KeyFormatError,
    actor_key_properties,
    b58decode,
    b58encode,
    ed25519_to_multibase,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key,
    multibase_to_ed25519,
    parse_actor_keys,
    public_key_pem,
    save_private_key,
)

ACTOR = "https://guetersloh.example/actor"


@pytest.fixture(scope="module")
def rsa_key():
    return generate_rsa_key()


def test_private_keys_are_written_owner_only_and_load_back(tmp_path, rsa_key):
    ed_key = generate_ed25519_key()
    save_private_key(tmp_path / "keys" / "rsa.pem", rsa_key)
    save_private_key(tmp_path / "keys" / "ed25519.pem", ed_key)
    for name in ("rsa.pem", "ed25519.pem"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    assert load_private_key(tmp_path / "keys" / "rsa.pem").private_numbers() == rsa_key.private_numbers()
    loaded = load_private_key(tmp_path / "keys" / "ed25519.pem")
    assert public_key_pem(loaded.public_key()) == public_key_pem(ed_key.public_key())


def test_rsa_keys_are_2048_bits(rsa_key):
    assert rsa_key.key_size == 2048


def test_multibase_matches_the_did_key_test_vector():
    # did:key spec, Ed25519 example: the raw key 0x2e6fcce3...; we check the
    # prefix rule instead of an external vector: ed25519-pub multikeys start with "z6Mk".
    key = generate_ed25519_key().public_key()
    encoded = ed25519_to_multibase(key)
    assert encoded.startswith("z6Mk")
    assert public_key_pem(multibase_to_ed25519(encoded)) == public_key_pem(key)


def test_multibase_known_value():
    # FEP-8b32 / vc-di-eddsa test key: publicKeyMultibase z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2
    value = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    key = multibase_to_ed25519(value)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert ed25519_to_multibase(key) == value


@pytest.mark.parametrize("bad", ["6MkrJV", "zNotBase58!", "z" + b58encode(b"\x12\x00" + bytes(32))])
def test_multibase_rejects_non_ed25519_values(bad):
    with pytest.raises(KeyFormatError):
        multibase_to_ed25519(bad)


def test_base58_round_trip_keeps_leading_zeros():
    for data in (b"", b"\0", b"\0\0abc", bytes(range(40))):
        assert b58decode(b58encode(data)) == data


def test_actor_documents_publish_and_parse_both_keys(rsa_key):
    ed_key = generate_ed25519_key()
    actor = {"id": ACTOR, **actor_key_properties(ACTOR, rsa_key.public_key(), ed_key.public_key())}
    keys = {info.key_id: info for info in parse_actor_keys(actor)}
    assert set(keys) == {f"{ACTOR}#main-key", f"{ACTOR}#ed25519-key"}
    assert keys[f"{ACTOR}#main-key"].algorithm is KeyAlgorithm.RSA
    assert keys[f"{ACTOR}#ed25519-key"].algorithm is KeyAlgorithm.ED25519
    assert all(info.owner == ACTOR for info in keys.values())


def test_keys_owned_by_another_actor_are_ignored(rsa_key):
    ed_key = generate_ed25519_key()
    other = "https://evil.example/actor"
    props = actor_key_properties(other, rsa_key.public_key(), ed_key.public_key())
    actor = {"id": ACTOR, **props}
    assert parse_actor_keys(actor) == []


def test_unreadable_key_entries_are_skipped_not_raised():
    actor = {
        "id": ACTOR,
        "publicKey": {"id": f"{ACTOR}#main-key", "owner": ACTOR, "publicKeyPem": "garbage"},
        "assertionMethod": [{"id": f"{ACTOR}#k", "type": "Multikey", "publicKeyMultibase": "zzz"}, 42],
    }
    assert parse_actor_keys(actor) == []


def test_actor_without_id_is_a_format_error():
    with pytest.raises(KeyFormatError):
        parse_actor_keys({"publicKey": {}})
