"""JSON-LD documents as Turtle, converted offline by the vocabulary's pyld-based converter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    exactly as stored.
    """
    from vocab.rdf import to_graph  # why lazy: rdflib + pyld (~0.3 s), only for Turtle

    graph = to_graph(document, base)
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    return graph.serialize(format="turtle")
