"""The offline document loader: bundled contexts only, never the network."""

from __future__ import annotations

import socket

import pytest
from pyld import jsonld

import vocab
from vocab.loader import (
    ACTIVITYSTREAMS_CONTEXT_URL,
    DATA_INTEGRITY_V1_CONTEXT_URL,
    DATA_INTEGRITY_V2_CONTEXT_URL,
    DID_V1_CONTEXT_URL,
    GOTOSOCIAL_CONTEXT_URL,
    IDENTITY_V1_CONTEXT_URL,
    MULTIKEY_V1_CONTEXT_URL,
    PRAXISNETZ_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    UnknownContextError,
    bundled_context_urls,
    canonical_context_url,
    offline_document_loader,
    pyld_options,
)
from vocab.rdf import JsonLdProcessingError, expand


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_our_contexts_and_those_other_servers_send_are_bundled() -> None:
    assert set(bundled_context_urls()) == {
        ACTIVITYSTREAMS_CONTEXT_URL,
        SECURITY_V1_CONTEXT_URL,
        DATA_INTEGRITY_V2_CONTEXT_URL,
        MULTIKEY_V1_CONTEXT_URL,
        PRAXISNETZ_CONTEXT_URL,
        IDENTITY_V1_CONTEXT_URL,
        DID_V1_CONTEXT_URL,
        GOTOSOCIAL_CONTEXT_URL,
        DATA_INTEGRITY_V1_CONTEXT_URL,
    }


@pytest.mark.parametrize("url", list(bundled_context_urls()))
def test_each_bundled_context_loads_as_a_pyld_remote_document(url: str, no_network: None) -> None:
    remote = offline_document_loader(url)
    assert remote["documentUrl"] == url
    assert remote["contentType"] == "application/ld+json"
    assert "@context" in remote["document"]


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("http://www.w3.org/ns/activitystreams", ACTIVITYSTREAMS_CONTEXT_URL),
        ("https://www.w3.org/ns/activitystreams/", ACTIVITYSTREAMS_CONTEXT_URL),
        ("https://www.w3.org/ns/activitystreams.jsonld", ACTIVITYSTREAMS_CONTEXT_URL),
        ("https://www.w3.org/ns/activitystreams#", ACTIVITYSTREAMS_CONTEXT_URL),
        ("http://w3id.org/security/v1", SECURITY_V1_CONTEXT_URL),
        ("https://w3id.org/security/data-integrity/v2/", DATA_INTEGRITY_V2_CONTEXT_URL),
        ("https://w3id.org/security/multikey/v1.jsonld", MULTIKEY_V1_CONTEXT_URL),
        ("https://w3id.org/praxisnetz/context", PRAXISNETZ_CONTEXT_URL),
        ("http://w3id.org/praxisnetz/context.jsonld", PRAXISNETZ_CONTEXT_URL),
    ],
)
def test_known_spelling_variants_resolve(variant: str, canonical: str) -> None:
    assert canonical_context_url(variant) == canonical
    assert offline_document_loader(variant)["documentUrl"] == canonical


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/context.jsonld",
        "https://w3id.org/security/v2",
        "https://www.w3.org/ns/did/v2",
        "http://joinmastodon.org/ns",
        "https://www.w3.org/ns/activitystreams.evil.example/",
        "https://w3id.org/praxisnetz/context.jsonld.evil",
        "file:///etc/passwd",
        "",
    ],
)
def test_unbundled_urls_are_refused_with_the_url_named(url: str, no_network: None) -> None:
    with pytest.raises(UnknownContextError) as caught:
        offline_document_loader(url)
    assert caught.value.url == url
    assert repr(url) in str(caught.value)


def test_pyld_processing_with_an_unbundled_context_fails_without_network(no_network: None) -> None:
    document = {"@context": "https://evil.example/ctx", "id": "https://a.example/x", "name": "x"}
    with pytest.raises(JsonLdProcessingError) as caught:
        expand(document, base="https://a.example/")
    assert caught.value.url == "https://evil.example/ctx"


def test_loaded_documents_are_fresh_copies() -> None:
    first = offline_document_loader(PRAXISNETZ_CONTEXT_URL)["document"]
    first["@context"]["status"] = "https://evil.example/status"
    again = offline_document_loader(PRAXISNETZ_CONTEXT_URL)["document"]
    assert again["@context"]["status"]["@id"] == "pn:status"


def test_pyld_options_demand_an_explicit_base() -> None:
    with pytest.raises(ValueError):
        pyld_options("")
    options = pyld_options("https://a.example/")
    assert options["base"] == "https://a.example/"
    assert options["documentLoader"] is offline_document_loader


def test_importing_vocab_leaves_pyld_global_loader_alone() -> None:
    assert jsonld._default_document_loader is not offline_document_loader
    assert vocab.offline_document_loader is offline_document_loader
