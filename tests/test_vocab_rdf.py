"""JSON-LD ⇄ RDF through pyld: expected triples, proofs in their own graph, literals intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import RDF, Literal, URIRef

from vocab.loader import ACTIVITYSTREAMS_CONTEXT_URL, DEFAULT_CONTEXT
from vocab.namespace import AS, PN, SCHEMA, SEC, TOPICS
from vocab.rdf import JsonLdProcessingError, compact, expand, to_dataset, to_graph, to_nquads

XSD_DURATION = URIRef("http://www.w3.org/2001/XMLSchema#duration")
VALID = Path(__file__).resolve().parent.parent / "examples" / "documents" / "valid"


def _load(name: str) -> dict:
    return json.loads((VALID / f"{name}.json").read_text(encoding="utf-8"))


# example file -> (pn class, attributed to, topics)
EXPECTED = {
    "practice": (PN.Practice, "https://guetersloh.example/actor", {"e-akte", "prozessmanagement"}),
    "experience": (PN.Experience, "https://dueren.example/actor", {"e-akte"}),
    "stance": (PN.Stance, "https://cochem-zell.example/actor", set()),
    "material": (
        PN.Material,
        "https://guetersloh.example/actor",
        {"e-akte", "organisation-personal"},
    ),
    "comment": (PN.Comment, "https://cochem-zell.example/actor", set()),
    "handbook": (PN.Handbook, "https://hub.example/actor", set()),
    "section": (PN.Section, None, {"e-akte"}),
    "edition": (PN.Edition, "https://hub.example/actor", set()),
    "municipality": (PN.Municipality, None, set()),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_class_converts_to_the_expected_triples(name: str) -> None:
    document = _load(name)
    pn_class, author, topics = EXPECTED[name]
    graph = to_graph(document, base=document["id"])
    subject = URIRef(document["id"])
    assert (subject, RDF.type, pn_class) in graph
    as_types = {t for t in graph.objects(subject, RDF.type) if str(t).startswith(str(AS))}
    assert len(as_types) == 1, "typed for both worlds: one ActivityStreams type too"
    if author is not None:
        assert set(graph.objects(subject, AS.attributedTo)) == {URIRef(author)}
    assert set(graph.objects(subject, PN.topic)) == {TOPICS[t] for t in topics}


def test_practice_values_become_vocabulary_iris() -> None:
    document = _load("practice")
    graph = to_graph(document, base=document["id"])
    subject = URIRef(document["id"])
    assert graph.value(subject, PN.status) == PN.inOperation
    assert graph.value(subject, PN.municipalityKey) == URIRef(
        "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/05754008"
    )
    steps = list(graph.objects(subject, SCHEMA.step))
    assert len(steps) == 3
    positions = sorted(int(graph.value(s, SCHEMA.position)) for s in steps)
    assert positions == [1, 2, 3]
    assert all((s, RDF.type, SCHEMA.HowToStep) in graph for s in steps)
    assert graph.value(subject, PN.implementationDuration) == Literal("P9M", datatype=XSD_DURATION)


def test_stance_position_and_about() -> None:
    document = _load("stance")
    graph = to_graph(document, base=document["id"])
    subject = URIRef(document["id"])
    assert graph.value(subject, PN.position) == PN.partly
    assert graph.value(subject, PN.about) == URIRef(
        "https://dueren.example/experiences/e-akte-bauamt-dueren"
    )
    assert "Bandbreite" in str(graph.value(subject, PN.reason))


def test_proof_lives_in_its_own_graph_not_the_default_graph() -> None:
    document = _load("practice")
    dataset = to_dataset(document, base=document["id"])
    subject = URIRef(document["id"])
    default = dataset.default_graph
    assert not list(default.triples((None, SEC.proofValue, None)))
    proof_graph_name = default.value(subject, SEC.proof)
    assert proof_graph_name is not None
    proof_graph = dataset.graph(proof_graph_name)
    proof_node = next(proof_graph.subjects(RDF.type, SEC.DataIntegrityProof))
    assert str(proof_graph.value(proof_node, SEC.cryptosuite)) == "eddsa-jcs-2022"
    assert proof_graph.value(proof_node, SEC.verificationMethod) == URIRef(
        "https://guetersloh.example/actor#ed25519-key"
    )
    assert not list(to_graph(document, base=document["id"]).triples((None, SEC.proofValue, None)))


def test_date_time_literals_keep_their_lexical_form() -> None:
    document = _load("practice-minimal")  # published with +02:00
    graph = to_graph(document, base=document["id"])
    published = graph.value(URIRef(document["id"]), AS.published)
    assert str(published) == "2026-10-01T08:30:00+02:00"
    proof_doc = _load("practice")
    nquads = to_nquads(proof_doc, base=proof_doc["id"])
    assert '"2026-11-22T10:00:00Z"^^<http://www.w3.org/2001/XMLSchema#dateTime>' in nquads
    dataset = to_dataset(proof_doc, base=proof_doc["id"])
    created = [
        o
        for _, p, o, _ in dataset.quads(
            (None, URIRef("http://purl.org/dc/terms/created"), None, None)
        )
    ]
    assert [str(c) for c in created] == ["2026-11-22T10:00:00Z"]


def test_relative_ids_resolve_against_the_explicit_base() -> None:
    document = {"@context": list(DEFAULT_CONTEXT), "id": "practices/x", "type": "Practice"}
    graph = to_graph(document, base="https://guetersloh.example/")
    assert (URIRef("https://guetersloh.example/practices/x"), RDF.type, PN.Practice) in graph


def test_compact_produces_the_wire_shape_of_the_design() -> None:
    document = _load("practice")
    compacted = compact(expand(document, base=document["id"]), base=document["id"])
    assert compacted["@context"] == list(DEFAULT_CONTEXT)
    assert compacted["type"] == ["Article", "Practice"]
    assert compacted["status"] == "in-operation"
    assert compacted["topic"] == [
        "https://w3id.org/praxisnetz/topics#e-akte",
        "https://w3id.org/praxisnetz/topics#prozessmanagement",
    ]
    assert compacted["step"][0] == {
        "type": "HowToStep",
        "position": 1,
        "text": "Ist-Prozesse aufnehmen",
    }
    assert compacted["municipalityKey"].endswith("/municipalityKey/05754008")
    assert compacted["attributedTo"] == "https://guetersloh.example/actor"  # stays absolute
    assert compacted["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert compacted["published"] == "2026-11-22T10:00:00Z"


def test_our_context_does_not_change_what_mastodon_reads() -> None:
    """Every ActivityStreams statement is the same with or without our context."""
    document = _load("practice")
    with_ours = to_graph(document, base=document["id"])
    as_only = dict(document, **{"@context": [ACTIVITYSTREAMS_CONTEXT_URL]})
    as_only.pop("proof")
    plain = to_graph(as_only, base=document["id"])

    def as_statements(graph):  # type: ignore[no-untyped-def]
        return {(s, p, o) for s, p, o in graph if str(p).startswith(str(AS))}

    assert as_statements(with_ours) == as_statements(plain)
    assert (URIRef(document["id"]), RDF.type, AS.Article) in plain


@pytest.mark.parametrize(
    "document",
    [None, 5, "https://a.example/", {"@context": 5}, {"@context": [{"@version": 2}]}, {"@id": 5}],
)
def test_malformed_documents_raise_one_typed_error(document: object) -> None:
    with pytest.raises(JsonLdProcessingError) as caught:
        to_graph(document, base="https://a.example/")  # type: ignore[arg-type]
    assert caught.value.reason


def test_conversion_never_touches_rdflibs_json_ld_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import rdflib.plugin
    from rdflib.parser import Parser

    real_get = rdflib.plugin.get

    def refuse_json_ld(name: str, kind: type) -> object:
        if kind is Parser and "json-ld" in name.lower():
            raise AssertionError("rdflib's JSON-LD parser must not be used")
        return real_get(name, kind)

    monkeypatch.setattr(rdflib.plugin, "get", refuse_json_ld)
    document = _load("practice")
    assert len(to_dataset(document, base=document["id"])) > 10
