"""Shapes graph (rdflib) → `vocab.shacl.ShapeSet`: how `shapes.ttl` is read.

Only `python -m vocab.compiled` (which writes `vocab/precompiled/shapes.json`) and the tests
read Turtle; a node loads the compiled file, so rdflib is not imported to validate.
Any SHACL feature outside the subset `vocab.shacl` evaluates is refused here, so nothing
is silently ignored.
"""

from __future__ import annotations

import re
from decimal import Decimal

from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from vocab.shacl import (
    RDF_LANG_STRING,
    SH_NS,
    XSD_STRING,
    Message,
    NodeShape,
    PropertyShape,
    Severity,
    ShapesError,
    ShapeSet,
    Term,
)

SH = Namespace(SH_NS)

_SEVERITIES = {
    SH.Violation: Severity.VIOLATION,
    SH.Warning: Severity.WARNING,
    SH.Info: Severity.INFO,
}

_NODE_SHAPE_KEYS = frozenset(
    {
        RDF.type,
        RDFS.label,
        RDFS.comment,
        SH.targetClass,
        SH.property,
        SH.nodeKind,
        SH["class"],
        SH.message,
        SH.severity,
        SH.name,
        SH.description,
    }
)
_PROPERTY_SHAPE_KEYS = frozenset(
    {
        RDF.type,
        RDFS.label,
        RDFS.comment,
        SH.path,
        SH.name,
        SH.description,
        SH.message,
        SH.severity,
        SH.minCount,
        SH.maxCount,
        SH.datatype,
        SH["in"],
        SH["class"],
        SH.nodeKind,
        SH.pattern,
        SH.flags,
        SH.minLength,
        SH.maxLength,
        SH.minInclusive,
        SH.node,
    }
)
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _term(node: Node) -> Term:
    if isinstance(node, Literal):
        datatype = str(node.datatype) if node.datatype else None
        if node.language:
            return Term("literal", str(node), RDF_LANG_STRING, node.language.lower())
        return Term("literal", str(node), datatype or XSD_STRING)
    if isinstance(node, BNode):
        return Term("bnode", str(node))
    return Term("iri", str(node))


def _message(graph: Graph, subject: Node, predicate: URIRef, where: str) -> Message:
    texts = {
        lit.language: str(lit)
        for lit in graph.objects(subject, predicate)
        if isinstance(lit, Literal) and lit.language in ("de", "en")
    }
    if set(texts) != {"de", "en"}:
        raise ShapesError(f"{where}: needs {predicate.n3()} in German and English")
    return Message(de=texts["de"], en=texts["en"])


def _one(graph: Graph, subject: Node, predicate: URIRef) -> Node | None:
    values = list(graph.objects(subject, predicate))
    if len(values) > 1:
        raise ShapesError(f"{subject}: more than one {predicate.n3()}")
    return values[0] if values else None


def _int(graph: Graph, subject: Node, predicate: URIRef) -> int | None:
    value = _one(graph, subject, predicate)
    return int(value.toPython()) if isinstance(value, Literal) else None


def _iri(graph: Graph, subject: Node, predicate: URIRef) -> str | None:
    value = _one(graph, subject, predicate)
    return str(value) if value is not None else None


def _check_keys(graph: Graph, subject: Node, allowed: frozenset[URIRef]) -> None:
    for predicate in set(graph.predicates(subject)):
        if predicate not in allowed:
            raise ShapesError(f"{subject}: {predicate.n3()} is not supported by vocab.shacl")


def _pattern(graph: Graph, subject: Node) -> re.Pattern[str] | None:
    pattern = _one(graph, subject, SH.pattern)
    if pattern is None:
        return None
    flags = 0
    for letter in str(_one(graph, subject, SH.flags) or ""):
        flags |= _REGEX_FLAGS[letter]
    return re.compile(str(pattern), flags)


def _severity(graph: Graph, subject: Node) -> Severity:
    value = _one(graph, subject, SH.severity)
    return _SEVERITIES[value] if value is not None else Severity.VIOLATION


def _property_shape(graph: Graph, subject: Node) -> PropertyShape:
    _check_keys(graph, subject, _PROPERTY_SHAPE_KEYS)
    path = _one(graph, subject, SH.path)
    if not isinstance(path, URIRef):
        raise ShapesError(f"{subject}: sh:path must be a single IRI (no path expressions)")
    in_list = _one(graph, subject, SH["in"])
    min_inclusive = _one(graph, subject, SH.minInclusive)
    return PropertyShape(
        iri=str(subject),
        path=str(path),
        name=_message(graph, subject, SH.name, str(subject)),
        message=_message(graph, subject, SH.message, str(subject)),
        severity=_severity(graph, subject),
        min_count=_int(graph, subject, SH.minCount),
        max_count=_int(graph, subject, SH.maxCount),
        datatype=_iri(graph, subject, SH.datatype),
        allowed=frozenset(_term(n) for n in Collection(graph, in_list)) if in_list else None,
        class_iri=_iri(graph, subject, SH["class"]),
        node_kind=_iri(graph, subject, SH.nodeKind),
        pattern=_pattern(graph, subject),
        min_length=_int(graph, subject, SH.minLength),
        max_length=_int(graph, subject, SH.maxLength),
        min_inclusive=Decimal(str(min_inclusive)) if min_inclusive is not None else None,
        node=_iri(graph, subject, SH.node),
    )


def _node_shape(graph: Graph, subject: Node) -> NodeShape:
    _check_keys(graph, subject, _NODE_SHAPE_KEYS)
    labels = {
        lit.language: str(lit)
        for lit in graph.objects(subject, RDFS.label)
        if isinstance(lit, Literal)
    }
    messages = list(graph.objects(subject, SH.message))
    message = _message(graph, subject, SH.message, str(subject)) if messages else Message("", "")
    properties = sorted(graph.objects(subject, SH.property), key=str)
    return NodeShape(
        iri=str(subject),
        label=Message(de=labels.get("de", str(subject)), en=labels.get("en", str(subject))),
        message=message,
        target_classes=tuple(sorted(str(c) for c in graph.objects(subject, SH.targetClass))),
        properties=tuple(_property_shape(graph, p) for p in properties),
        node_kind=_iri(graph, subject, SH.nodeKind),
        class_iri=_iri(graph, subject, SH["class"]),
        severity=_severity(graph, subject),
    )


def shape_set_from_graph(graph: Graph) -> ShapeSet:
    """All node shapes of a shapes graph, by IRI."""
    if any(True for _ in graph.subject_objects(SH.sparql)):
        raise ShapesError("sh:sparql constraints are not supported (and too slow)")
    subjects = set(graph.subjects(RDF.type, SH.NodeShape))
    subjects |= set(graph.subjects(SH.targetClass, None))
    return ShapeSet(shapes={str(s): _node_shape(graph, s) for s in sorted(subjects, key=str)})
