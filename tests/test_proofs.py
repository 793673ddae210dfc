"""FEP-8b32 object integrity proofs (eddsa-jcs-2022): published vectors, tampering, authorship."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.keys import (
    PublicKeyInfo,
    SigningKey,
    b58decode,
    b58encode,
    generate_ed25519_key,
    generate_rsa_key,
    parse_actor_keys,
)
from federation.proofs import (
    ProofError,
    ProofVerdict,
    document_author,
    proof_method,
    sign_document,
    verify_document,
)

# --- the shared key pair of the W3C vc-di-eddsa test vectors and the FEP-8b32 feature file ---
# (TestVectors/keyPair.json: multibase secret key = multicodec ed25519-priv 0x8026 + 32 bytes)
VECTOR_SECRET_MULTIBASE = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
VECTOR_PUBLIC_MULTIBASE = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)

ALICE = "https://server.example/users/alice"
ALICE_KEY_ID = f"{ALICE}#ed25519-key"
BOB = "https://server.example/users/bob"

FEP_CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/data-integrity/v2",
]
FEP_DOCUMENT = {
    "@context": FEP_CONTEXT,
    "id": "https://server.example/activities/1",
    "type": "Create",
    "actor": ALICE,
    "object": {
        "id": "https://server.example/objects/1",
        "type": "Note",
        "attributedTo": ALICE,
        "content": "Hello world",
        "location": {"type": "Place", "longitude": -71.184902, "latitude": 25.273962},
    },
}
FEP_PROOF_VALUE = (
    "z42ffGu6AUKPCFcFPiabmUvnGLPJzC7e4DGWC52NUasSSH37UMa9c58tdgVszUcZfytxa4fQ5TYHaJENCxUDe9SdL"
)
FEP_ACTOR = {
    "@context": [*FEP_CONTEXT, "https://w3id.org/security/multikey/v1"],
    "type": "Person",
    "id": ALICE,
    "inbox": f"{ALICE}/inbox",
    "outbox": f"{ALICE}/outbox",
    "assertionMethod": [
        {
            "id": ALICE_KEY_ID,
            "type": "Multikey",
            "controller": ALICE,
            "publicKeyMultibase": VECTOR_PUBLIC_MULTIBASE,
        }
    ],
}


def vector_private_key() -> ed25519.Ed25519PrivateKey:
    decoded = b58decode(VECTOR_SECRET_MULTIBASE[1:])
    assert decoded[:2] == b"\x80\x26"  # multicodec ed25519-priv
    return ed25519.Ed25519PrivateKey.from_private_bytes(decoded[2:])


@pytest.fixture(scope="module")
def alice_signing() -> SigningKey:
    return SigningKey(ALICE_KEY_ID, vector_private_key())


@pytest.fixture(scope="module")
def alice_public() -> PublicKeyInfo:
    (key,) = parse_actor_keys(FEP_ACTOR)
    return key


@pytest.fixture(scope="module")
def bob_keys() -> tuple[SigningKey, PublicKeyInfo]:
    private = generate_ed25519_key()
    key_id = f"{BOB}#ed25519-key"
    return SigningKey(key_id, private), PublicKeyInfo(key_id, BOB, private.public_key())


# --- W3C vc-di-eddsa, "Representation: eddsa-jcs-2022" ---

W3C_CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2",
]
W3C_UNSECURED = {
    "@context": W3C_CONTEXT,
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
W3C_METHOD = f"https://vc.example/issuers/5678#{VECTOR_PUBLIC_MULTIBASE}"
W3C_CANONICAL_DOCUMENT = (
    '{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/'
    'examples/v2"],"credentialSubject":{"alumniOf":"The School of Examples","id":"did:example:'
    'abcdefgh"},"description":"A minimum viable example of an Alumni Credential.","id":"urn:uuid:'
    '58172aac-d8ba-11ed-83dd-0b3aef56cc33","issuer":"https://vc.example/issuers/5678","name":'
    '"Alumni Credential","type":["VerifiableCredential","AlumniCredential"],"validFrom":'
    '"2023-01-01T00:00:00Z"}'
)
W3C_DOCUMENT_HASH = "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"
W3C_SIGNATURE_HEX = (
    "fc91dec6565f35fbe185a77352e7fc512f95d1904da305cfef32ab8135469301"
    "f5a72d4e7a58368fc6ffc497b44633993bac054e3bc1436e3c846db8f1544503"
)
W3C_PROOF_VALUE = (
    "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4"
)


def test_w3c_vector_canonical_document_and_hash():
    canonical = rfc8785.dumps(W3C_UNSECURED)
    assert canonical.decode() == W3C_CANONICAL_DOCUMENT
    assert hashlib.sha256(canonical).hexdigest() == W3C_DOCUMENT_HASH


def test_w3c_vector_proof_value_reproduces_byte_for_byte():
    key = SigningKey(W3C_METHOD, vector_private_key())
    signed = sign_document(W3C_UNSECURED, key, created=CREATED)
    proof = signed["proof"]
    assert proof == {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2023-02-24T23:36:38Z",
        "verificationMethod": W3C_METHOD,
        "proofPurpose": "assertionMethod",
        "@context": W3C_CONTEXT,  # the proof configuration carries the document's @context
        "proofValue": W3C_PROOF_VALUE,
    }
    assert b58decode(proof["proofValue"][1:]).hex() == W3C_SIGNATURE_HEX


def test_w3c_vector_earlier_proof_configuration_hash():
    # The vector's proof-configuration hash as published for the did:key method: pins
    # that created, purpose and @context all enter the configuration that is hashed.
    did_key = f"did:key:{VECTOR_PUBLIC_MULTIBASE}#{VECTOR_PUBLIC_MULTIBASE}"
    signed = sign_document(
        W3C_UNSECURED, SigningKey(did_key, vector_private_key()), created=CREATED
    )
    config = {k: v for k, v in signed["proof"].items() if k != "proofValue"}
    assert rfc8785.dumps(config).decode() == (
        '{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/'
        'examples/v2"],"created":"2023-02-24T23:36:38Z","cryptosuite":"eddsa-jcs-2022",'
        '"proofPurpose":"assertionMethod","type":"DataIntegrityProof","verificationMethod":'
        f'"{did_key}"}}'
    )
    assert (
        hashlib.sha256(rfc8785.dumps(config)).hexdigest()
        == "66ab154f5c2890a140cb8388a22a160454f80575f6eae09e5a097cabe539a1db"
    )


# --- FEP-8b32 feature file ---


def test_fep_8b32_signing_reproduces_the_feature_file(alice_signing):
    signed = sign_document(FEP_DOCUMENT, alice_signing, created=CREATED)
    assert signed == {
        **FEP_DOCUMENT,
        "proof": {
            "@context": FEP_CONTEXT,
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "verificationMethod": ALICE_KEY_ID,
            "proofPurpose": "assertionMethod",
            "proofValue": FEP_PROOF_VALUE,
            "created": "2023-02-24T23:36:38Z",
        },
    }
    assert "proof" not in FEP_DOCUMENT  # the input is not modified


def test_fep_8b32_verification_with_the_actor_multikey(alice_signing, alice_public):
    signed = sign_document(FEP_DOCUMENT, alice_signing, created=CREATED)
    assert proof_method(signed) == ALICE_KEY_ID
    result = verify_document(signed, alice_public)
    assert result.ok, result.detail
    assert result.method == ALICE_KEY_ID and result.owner == ALICE


def test_legacy_proof_without_context_verifies(alice_public):
    # The FEP-8b32 feature file before the 2024 change hashed the proof configuration
    # without @context (data-integrity v1 era); such proofs are still in circulation.
    legacy = {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v1",
        ],
        "type": "Create",
        "actor": ALICE,
        "object": {"type": "Note", "content": "Hello world"},
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "verificationMethod": ALICE_KEY_ID,
            "proofPurpose": "assertionMethod",
            "proofValue": "z3sXaxjKs4M3BRicwWA9peyNPJvJqxtGsDmpt1jjoHCjgeUf71TRFz56osP"
            "SfDErszyLp5Ks1EhYSgpDaNM977Rg2",
            "created": "2023-02-24T23:36:38Z",
        },
    }
    assert verify_document(legacy, alice_public).ok
    legacy["object"]["content"] = "Goodbye"
    assert verify_document(legacy, alice_public).verdict is ProofVerdict.BAD_PROOF


# --- tampering ---


@pytest.fixture()
def signed(alice_signing) -> dict:
    return sign_document(FEP_DOCUMENT, alice_signing, created=CREATED)


DOCUMENT_TAMPERINGS = {
    "id": lambda d: d.__setitem__("id", "https://server.example/activities/2"),
    "type": lambda d: d.__setitem__("type", "Update"),
    "object content": lambda d: d["object"].__setitem__("content", "Hello world!"),
    "object id": lambda d: d["object"].__setitem__("id", "https://server.example/objects/2"),
    "nested number": lambda d: d["object"]["location"].__setitem__("latitude", 25.273963),
    "added field": lambda d: d.__setitem__("to", ["https://www.w3.org/ns/activitystreams#Public"]),
    "removed field": lambda d: d.__delitem__("id"),
    "context replaced": lambda d: d.__setitem__("@context", FEP_CONTEXT[:1]),
    "context appended": lambda d: d.__setitem__("@context", [*FEP_CONTEXT, {"content": "@id"}]),
    "proof created": lambda d: d["proof"].__setitem__("created", "2023-02-24T23:36:39Z"),
    "proof context": lambda d: d["proof"].__setitem__("@context", FEP_CONTEXT[:1]),
    "proof created removed": lambda d: d["proof"].__delitem__("created"),
}


@pytest.mark.parametrize("tamper", DOCUMENT_TAMPERINGS.values(), ids=DOCUMENT_TAMPERINGS.keys())
def test_changing_any_field_breaks_the_proof(signed, alice_public, tamper):
    assert verify_document(signed, alice_public).ok
    tamper(signed)
    result = verify_document(signed, alice_public)
    assert result.verdict is ProofVerdict.BAD_PROOF, result.detail


@pytest.mark.parametrize("position", [0, 1, 31, 32, 62, 63])
def test_one_byte_of_the_proof_value_breaks_the_proof(signed, alice_public, position):
    signature = bytearray(b58decode(signed["proof"]["proofValue"][1:]))
    signature[position] ^= 0x01
    signed["proof"]["proofValue"] = "z" + b58encode(bytes(signature))
    assert verify_document(signed, alice_public).verdict is ProofVerdict.BAD_PROOF


def test_changed_verification_method_breaks_the_proof(signed, alice_public):
    other_method = f"{ALICE}#other-key"
    signed["proof"]["verificationMethod"] = other_method
    # the verifier resolves the new method; even if it names the very same public key...
    same_key_new_id = PublicKeyInfo(other_method, ALICE, alice_public.public_key)
    assert verify_document(signed, same_key_new_id).verdict is ProofVerdict.BAD_PROOF
    # ...and a key resolved from another method is refused outright
    assert verify_document(signed, alice_public).verdict is ProofVerdict.BAD_PROOF


def test_changed_purpose_is_refused_and_not_covered_by_the_old_signature(signed, alice_public):
    signed["proof"]["proofPurpose"] = "authentication"
    assert verify_document(signed, alice_public).verdict is ProofVerdict.WRONG_PURPOSE
    result = verify_document(signed, alice_public, purpose="authentication")
    assert result.verdict is ProofVerdict.BAD_PROOF


def test_proof_context_may_be_left_out(signed, alice_public):
    # Without its own @context the proof configuration takes the document's (vc-di-eddsa),
    # so dropping the copy changes nothing that was signed.
    del signed["proof"]["@context"]
    assert verify_document(signed, alice_public).ok


def test_linked_data_signature_added_after_the_proof_is_ignored(signed, alice_public):
    signed["signature"] = {"type": "RsaSignature2017", "signatureValue": "abc"}
    assert verify_document(signed, alice_public).ok


# --- authorship ---


def test_key_of_another_actor_is_author_mismatch(bob_keys):
    bob_signing, bob_public = bob_keys
    forged = {**FEP_DOCUMENT, "proof": None}
    del forged["proof"]
    signed_by_bob = sign_document(forged, bob_signing, created=CREATED)
    result = verify_document(signed_by_bob, bob_public)
    assert result.verdict is ProofVerdict.AUTHOR_MISMATCH
    assert BOB in result.detail


def test_key_owner_is_checked_not_the_key_id_prefix(alice_signing, alice_public, bob_keys):
    # Bob's actor document claims Alice's key id: the key's owner (Bob) decides.
    _, bob_public = bob_keys
    signed = sign_document(FEP_DOCUMENT, alice_signing, created=CREATED)
    claimed = PublicKeyInfo(ALICE_KEY_ID, BOB, alice_public.public_key)
    assert verify_document(signed, claimed).verdict is ProofVerdict.AUTHOR_MISMATCH


def test_key_hosted_on_another_origin_is_author_mismatch(alice_signing, alice_public):
    # Alice's actor document lists a key whose id lives elsewhere: it cannot vouch for it
    signed = sign_document(
        FEP_DOCUMENT, SigningKey("https://keys.example/k", vector_private_key()), created=CREATED
    )
    offsite = PublicKeyInfo("https://keys.example/k", ALICE, alice_public.public_key)
    result = verify_document(signed, offsite)
    assert result.verdict is ProofVerdict.AUTHOR_MISMATCH
    assert "origin" in result.detail


def test_create_embedding_someone_elses_object_is_author_mismatch(alice_signing, alice_public):
    document = copy.deepcopy(FEP_DOCUMENT)
    document["object"]["attributedTo"] = BOB
    signed = sign_document(document, alice_signing, created=CREATED)
    result = verify_document(signed, alice_public)
    assert result.verdict is ProofVerdict.AUTHOR_MISMATCH
    assert "embedded" in result.detail


def test_announce_of_someone_elses_object_is_fine(alice_signing, alice_public):
    announce = {
        **FEP_DOCUMENT,
        "type": "Announce",
        "object": {**FEP_DOCUMENT["object"], "attributedTo": BOB},
    }
    assert verify_document(sign_document(announce, alice_signing, created=CREATED), alice_public).ok


def test_signed_object_verifies_against_attributed_to(alice_signing, alice_public):
    note = {"@context": FEP_CONTEXT, **FEP_DOCUMENT["object"]}
    signed_note = sign_document(note, alice_signing, created=CREATED)
    assert verify_document(signed_note, alice_public).ok
    # and stays verifiable when embedded in a signed activity (FEP-8b32 example 3)
    create = sign_document({**FEP_DOCUMENT, "object": signed_note}, alice_signing, created=CREATED)
    assert verify_document(create, alice_public).ok
    assert verify_document(create["object"], alice_public).ok


def test_document_author():
    assert document_author({"actor": {"id": ALICE}, "attributedTo": BOB}) == ALICE
    assert document_author({"type": "Note", "attributedTo": [ALICE]}) == ALICE
    assert document_author({"type": "Note", "attributedTo": [ALICE, BOB]}) is None
    assert document_author({"type": ["Organization", "pn:Municipality"], "id": ALICE}) == ALICE
    assert document_author({"type": "Note"}) is None


def test_document_without_author_is_refused(alice_signing, alice_public):
    signed = sign_document(
        {"@context": FEP_CONTEXT, "type": "Note"}, alice_signing, created=CREATED
    )
    assert verify_document(signed, alice_public).verdict is ProofVerdict.AUTHOR_MISMATCH


# --- unsupported and malformed proofs ---


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cryptosuite", "eddsa-rdfc-2022"),
        ("cryptosuite", "jcs-eddsa-2022"),
        ("type", "Ed25519Signature2020"),
    ],
)
def test_unknown_cryptosuite(signed, alice_public, field, value):
    signed["proof"][field] = value
    result = verify_document(signed, alice_public)
    assert result.verdict is ProofVerdict.UNSUPPORTED_CRYPTOSUITE


MALFORMED_PROOFS = {
    "string": lambda p: "z123",
    "two proofs": lambda p: [p, p],
    "no method": lambda p: {k: v for k, v in p.items() if k != "verificationMethod"},
    "no proofValue": lambda p: {k: v for k, v in p.items() if k != "proofValue"},
    "not base58btc": lambda p: {**p, "proofValue": "u" + p["proofValue"][1:]},
    "bad base58": lambda p: {**p, "proofValue": "z0OIl"},
    "short signature": lambda p: {**p, "proofValue": p["proofValue"][:40]},
    "bad created": lambda p: {**p, "created": "yesterday"},
    "naive created": lambda p: {**p, "created": "2023-02-24T23:36:38"},
}


@pytest.mark.parametrize("mangle", MALFORMED_PROOFS.values(), ids=MALFORMED_PROOFS.keys())
def test_malformed_proofs(signed, alice_public, mangle):
    signed["proof"] = mangle(signed["proof"])
    result = verify_document(signed, alice_public)
    assert result.verdict is ProofVerdict.MALFORMED, result.detail


def test_no_proof(alice_public):
    assert verify_document(FEP_DOCUMENT, alice_public).verdict is ProofVerdict.NO_PROOF
    assert proof_method(FEP_DOCUMENT) is None


def test_single_proof_in_a_list_is_accepted(signed, alice_public):
    signed["proof"] = [signed["proof"]]
    assert verify_document(signed, alice_public).ok


def test_expiry_is_checked_against_the_given_clock(alice_public, alice_signing):
    signed = sign_document(FEP_DOCUMENT, alice_signing, created=CREATED)
    # expires is signed too: adding it afterwards breaks the proof, and expiry is decided first
    signed["proof"]["expires"] = "2023-03-01T00:00:00Z"
    assert verify_document(signed, alice_public).verdict is ProofVerdict.BAD_PROOF
    later = CREATED + timedelta(days=30)
    assert verify_document(signed, alice_public, now=later).verdict is ProofVerdict.EXPIRED


def test_rsa_key_cannot_sign_proofs():
    with pytest.raises(ProofError, match="Ed25519"):
        sign_document(FEP_DOCUMENT, SigningKey(ALICE_KEY_ID, generate_rsa_key()), created=CREATED)


def test_rsa_key_cannot_verify_proofs(signed):
    rsa_public = PublicKeyInfo(ALICE_KEY_ID, ALICE, generate_rsa_key().public_key())
    assert verify_document(signed, rsa_public).verdict is ProofVerdict.BAD_PROOF


def test_signing_refuses_naive_time_existing_proof_and_non_json(alice_signing, signed):
    with pytest.raises(ProofError, match="created"):
        sign_document(FEP_DOCUMENT, alice_signing, created=datetime(2023, 1, 1))
    with pytest.raises(ProofError, match="already"):
        sign_document(signed, alice_signing, created=CREATED)
    with pytest.raises(ProofError, match="canonicalisable"):
        sign_document({"actor": ALICE, "x": float("nan")}, alice_signing, created=CREATED)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5))
def test_any_json_document_round_trips(alice_signing, alice_public, extra):
    document = {**extra, "@context": FEP_CONTEXT, "type": "Note", "attributedTo": ALICE}
    document.pop("proof", None)
    document.pop("signature", None)
    signed = sign_document(document, alice_signing, created=CREATED)
    assert verify_document(signed, alice_public).ok
    # any added member, whatever its value, breaks the proof
    signed["tampered"] = extra or None
    assert verify_document(signed, alice_public).verdict is ProofVerdict.BAD_PROOF
