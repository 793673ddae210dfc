"""JSON-LD documents as Turtle, converted offline through pyld (never rdflib's JSON-LD parser)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rdflib
from pyld import jsonld

from vocab.loader import pyld_options

PREFIXES = {
    "as": "https://www.w3.org/ns/activitystreams#",
    "pn": "https://w3id.org/praxisnetz#",
    "topics": "https://w3id.org/praxisnetz/topics#",
    "schema": "https://schema.org/",
    "sec": "https://w3id.org/security#",
    "dcterms": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def document_to_turtle(document: Mapping[str, Any], *, base: str) -> str:
    """The document's default graph as Turtle.

    The proof lives in its own named graph (``@container: @graph``), which Turtle cannot
    express; clients that need it ask for JSON-LD, where the signed document is served
    byte for byte as stored.
    """
    nquads = jsonld.to_rdf(dict(document), pyld_options(base, format="application/n-quads"))
    dataset = rdflib.Dataset()
    dataset.parse(data=nquads, format="nquads")
    graph = rdflib.Graph()
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    for triple in dataset.default_graph:
        graph.add(triple)
    return graph.serialize(format="turtle")
