"""The vocabulary files: they parse, they agree with each other, and they are complete."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from rdflib import OWL, RDF, RDFS, SKOS, Graph, Literal, URIRef
from rdflib.collection import Collection

from vocab import docgen
from vocab.loader import (
    DEFAULT_CONTEXT,
    MULTIKEY_V1_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    bundled_context_urls,
    load_bundled_document,
)
from vocab.namespace import PN, PN_NAMESPACE, TOPIC_SCHEME, TOPIC_SLUGS, TOPICS, TOPICS_NAMESPACE
from vocab.shapes_turtle import SH
from vocab.validate import collect_context_terms

TURTLE_FILES = ("ontology.ttl", "topics.ttl", "shapes.ttl")


def _graph(name: str) -> Graph:
    text = resources.files("vocab").joinpath(name).read_text(encoding="utf-8")
    return Graph().parse(data=text, format="turtle")


def _ontology_pn_terms() -> set[str]:
    graph = _graph("ontology.ttl")
    return {str(s) for s in graph.subjects() if str(s).startswith(PN_NAMESPACE)}


def _our_context() -> dict:
    return json.loads(resources.files("vocab").joinpath("context.jsonld").read_text("utf-8"))


def _context_pn_iris() -> set[str]:
    names: dict[str, str] = {}
    collect_context_terms(_our_context()["@context"], names)
    return {iri for iri in names if iri.startswith(PN_NAMESPACE)}


@pytest.mark.parametrize("name", TURTLE_FILES)
def test_turtle_files_parse(name: str) -> None:
    assert len(_graph(name)) > 50


def test_json_ld_files_parse() -> None:
    for url in bundled_context_urls():
        assert isinstance(load_bundled_document(url)["@context"], dict), url


def test_every_pn_term_has_german_and_english_label_and_comment() -> None:
    graph = _graph("ontology.ttl")
    for term in _ontology_pn_terms():
        for predicate in (RDFS.label, RDFS.comment):
            languages = {
                o.language for o in graph.objects(URIRef(term), predicate) if isinstance(o, Literal)
            }
            assert {"de", "en"} <= languages, f"{term} lacks {predicate} in de/en"


def test_ontology_reuses_standard_vocabularies() -> None:
    graph = _graph("ontology.ttl")
    practice_parents = {str(o) for o in graph.objects(PN.Practice, RDFS.subClassOf)}
    assert "https://schema.org/HowTo" in practice_parents
    municipality_parents = {str(o) for o in graph.objects(PN.Municipality, RDFS.subClassOf)}
    assert "http://data.europa.eu/m8g/PublicOrganisation" in municipality_parents
    assert (PN.status, RDFS.subPropertyOf, URIRef("http://www.w3.org/ns/adms#status")) in graph
    assert (
        PN.previousEdition,
        RDFS.subPropertyOf,
        URIRef("http://www.w3.org/ns/prov#wasRevisionOf"),
    ) in graph


def test_pn_namespace_matches_ontology() -> None:
    in_python = {str(PN[name]) for name in PN.__annotations__}
    assert in_python == _ontology_pn_terms()


def test_pn_namespace_is_closed() -> None:
    with pytest.raises(AttributeError):
        _ = PN.Pratice  # a typo must fail, not mint an IRI


def test_every_ontology_term_is_in_the_context_and_vice_versa() -> None:
    ontology = _ontology_pn_terms() - {PN_NAMESPACE.rstrip("#")}
    assert _context_pn_iris() == ontology


def test_context_does_not_redefine_terms_of_the_contexts_listed_before_it() -> None:
    ours = set(_our_context()["@context"]) - {"@version", "xsd"}
    # the contexts our documents and keys name; other servers' contexts (identity/v1 ...)
    # are only read from, through compaction into ours
    for url in (*DEFAULT_CONTEXT[:-1], SECURITY_V1_CONTEXT_URL, MULTIKEY_V1_CONTEXT_URL):
        theirs = set(load_bundled_document(url)["@context"])
        assert not ours & theirs, f"our context redefines {ours & theirs} of {url}"


def test_context_avoids_names_mastodon_gives_another_meaning() -> None:
    # Mastodon's own extension context defines these; reusing the names would confuse it.
    mastodon_terms = {
        "schema",
        "toot",
        "sensitive",
        "value",
        "featured",
        "discoverable",
        "Hashtag",
        "Emoji",
        "PropertyValue",
        "focalPoint",
        "blurhash",
        "indexable",
    }
    assert not mastodon_terms & set(_our_context()["@context"])


def test_topics_scheme_is_complete() -> None:
    graph = _graph("topics.ttl")
    scheme = URIRef(TOPIC_SCHEME)
    concepts = set(graph.subjects(RDF.type, SKOS.Concept))
    assert len(concepts) >= 14
    for concept in concepts:
        labels = {o.language for o in graph.objects(concept, SKOS.prefLabel)}
        definitions = {o.language for o in graph.objects(concept, SKOS.definition)}
        assert labels == {"de", "en"}, concept
        assert definitions == {"de", "en"}, concept
        assert (concept, SKOS.inScheme, scheme) in graph
    assert {str(c)[len(TOPICS_NAMESPACE) :] for c in concepts} == set(TOPIC_SLUGS)
    assert str(TOPICS["e-akte"]) == TOPICS_NAMESPACE + "e-akte"


def test_shapes_allow_exactly_the_topics_of_the_scheme() -> None:
    shapes = _graph("shapes.ttl")
    in_list = next(
        shapes.objects(URIRef("https://w3id.org/praxisnetz/shapes#topicKnown"), SH["in"])
    )
    allowed = {str(t) for t in Collection(shapes, in_list)}
    assert allowed == {TOPICS_NAMESPACE + slug for slug in TOPIC_SLUGS}


def test_every_property_shape_is_named_and_explained_in_both_languages() -> None:
    shapes = _graph("shapes.ttl")
    property_shapes = set(shapes.subjects(RDF.type, SH.PropertyShape))
    assert property_shapes == set(shapes.objects(None, SH.property))
    for shape in property_shapes:
        for predicate in (SH.name, SH.message):
            languages = {o.language for o in shapes.objects(shape, predicate)}
            assert languages == {"de", "en"}, f"{shape} {predicate}"


def test_shapes_use_no_sparql_and_cover_every_published_class() -> None:
    shapes = _graph("shapes.ttl")
    assert not list(shapes.subject_objects(SH.sparql))
    targets = set(shapes.objects(None, SH.targetClass))
    published = {
        PN.Practice,
        PN.Experience,
        PN.Stance,
        PN.Material,
        PN.Comment,
        PN.Municipality,
        PN.Handbook,
        PN.Section,
        PN.Edition,
    }
    assert targets == published
    ontology = _graph("ontology.ttl")
    assert all((c, RDF.type, OWL.Class) in ontology for c in targets)


def test_committed_vocabulary_page_is_current() -> None:
    assert docgen.DEFAULT_OUTPUT.read_text(encoding="utf-8") == docgen.render(), (
        "docs/vocabulary.md is out of date: run python -m vocab.docgen"
    )


def test_identifier_helpers_check_their_input() -> None:
    from vocab.namespace import leika_service_iri, municipality_key_iri, topic_iri

    assert str(topic_iri("e-akte")) == TOPICS_NAMESPACE + "e-akte"
    assert str(municipality_key_iri("05754008")).endswith("/municipalityKey/05754008")
    assert str(leika_service_iri("99108008000000")) == "urn:de:fim:leika:leistung:99108008000000"
    with pytest.raises(KeyError, match="blockchain"):
        topic_iri("blockchain")
    for bad in ("5754008", "0575400x", "０５７５４００８"):
        with pytest.raises(ValueError):
            municipality_key_iri(bad)
    with pytest.raises(ValueError):
        leika_service_iri("123")


def test_every_pn_term_is_defined_by_the_ontology() -> None:
    graph = _graph("ontology.ttl")
    ontology = URIRef(PN_NAMESPACE.rstrip("#"))
    assert (ontology, RDF.type, OWL.Ontology) in graph
    for term in _ontology_pn_terms():
        assert (URIRef(term), RDFS.isDefinedBy, ontology) in graph, term
