"""A small, fast evaluator for the SHACL Core subset that `shapes.ttl` uses.

pyshacl is correct but builds a graph and walks rdflib for every call; validating every
incoming document must cost a few milliseconds. `shapes.ttl` stays the single source of
truth: it is parsed once into frozen dataclasses, any SHACL feature outside the supported
subset is refused at load time (so nothing is silently ignored), and a test compares the
verdicts with pyshacl on all example documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from rdflib import Graph

SH_NS = "http://www.w3.org/ns/shacl#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
XSD_STRING = XSD_NS + "string"
RDF_LANG_STRING = RDF_NS + "langString"
RDF_TYPE = RDF_NS + "type"


class ShapesError(ValueError):
    """The shapes file uses something the evaluator does not implement, or is malformed."""


class Severity(StrEnum):
    VIOLATION = "violation"
    WARNING = "warning"
    INFO = "info"


class Term(NamedTuple):
    """An RDF term as plain strings: kind is 'iri', 'bnode' or 'literal'."""

    kind: str
    value: str
    datatype: str | None = None
    language: str | None = None

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Message:
    de: str
    en: str


@dataclass(frozen=True)
class PropertyShape:
    iri: str
    path: str
    name: Message
    message: Message
    severity: Severity = Severity.VIOLATION
    min_count: int | None = None
    max_count: int | None = None
    datatype: str | None = None
    allowed: frozenset[Term] | None = None
    class_iri: str | None = None
    node_kind: str | None = None
    pattern: re.Pattern[str] | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_inclusive: Decimal | None = None
    node: str | None = None


@dataclass(frozen=True)
class NodeShape:
    iri: str
    label: Message
    message: Message
    target_classes: tuple[str, ...] = ()
    properties: tuple[PropertyShape, ...] = ()
    node_kind: str | None = None
    class_iri: str | None = None
    severity: Severity = Severity.VIOLATION


@dataclass(frozen=True)
class Finding:
    """One failed constraint: which shape, on which focus node, which value if any."""

    node_shape: NodeShape
    property_shape: PropertyShape | None
    focus: Term
    constraint: str
    value: Term | None = None

    @property
    def severity(self) -> Severity:
        shape = self.property_shape or self.node_shape
        return shape.severity

    @property
    def message(self) -> Message:
        return (self.property_shape or self.node_shape).message


@dataclass(frozen=True)
class ShapeSet:
    """All node shapes of a shapes graph, by IRI."""

    shapes: Mapping[str, NodeShape]

    @classmethod
    def from_graph(cls, graph: Graph) -> ShapeSet:
        """Parse a shapes graph (rdflib: only to compile ``shapes.ttl`` and in tests)."""
        from vocab.shapes_turtle import shape_set_from_graph

        return shape_set_from_graph(graph)

    @property
    def targeted(self) -> tuple[NodeShape, ...]:
        return tuple(s for s in self.shapes.values() if s.target_classes)

    @property
    def property_shapes(self) -> dict[str, PropertyShape]:
        return {p.iri: p for s in self.shapes.values() for p in s.properties}


@dataclass
class DataGraph:
    """The triples of one document, indexed by subject then predicate."""

    index: dict[Term, dict[str, list[Term]]] = field(default_factory=dict)

    def add(self, subject: Term, predicate: str, obj: Term) -> None:
        self.index.setdefault(subject, {}).setdefault(predicate, []).append(obj)

    def objects(self, subject: Term, predicate: str) -> list[Term]:
        return self.index.get(subject, {}).get(predicate, [])

    def types(self, subject: Term) -> set[str]:
        return {t.value for t in self.objects(subject, RDF_TYPE)}

    def instances(self, classes: Iterable[str]) -> list[Term]:
        wanted = set(classes)
        return [s for s in self.index if self.types(s) & wanted]


_DATETIME = re.compile(r"^-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_DURATION = re.compile(
    r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
)
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_DOUBLE = re.compile(r"^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?INF|NaN)$")


def _valid_datetime(lexical: str) -> bool:
    if not _DATETIME.match(lexical):
        return False
    try:
        datetime.fromisoformat(lexical.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def lexically_valid(datatype: str, lexical: str) -> bool:
    """Whether a literal's lexical form is well-formed for the XSD datatypes we use."""
    local = datatype.removeprefix(XSD_NS) if datatype.startswith(XSD_NS) else None
    if local == "dateTime":
        return _valid_datetime(lexical)
    if local == "duration":
        return bool(_DURATION.match(lexical))
    if local in ("integer", "positiveInteger", "nonNegativeInteger"):
        if not _INTEGER.match(lexical):
            return False
        number = int(lexical)
        return {"integer": True, "positiveInteger": number > 0}.get(local, number >= 0)
    if local == "decimal":
        return bool(_DECIMAL.match(lexical))
    if local in ("double", "float"):
        return bool(_DOUBLE.match(lexical))
    if local == "boolean":
        return lexical in ("true", "false", "1", "0")
    return True


def _numeric(term: Term) -> Decimal | None:
    if term.kind != "literal" or term.datatype == XSD_STRING or term.language:
        return None
    try:
        return Decimal(term.value)
    except InvalidOperation:
        return None


_NODE_KINDS = {
    SH_NS + "IRI": {"iri"},
    SH_NS + "BlankNode": {"bnode"},
    SH_NS + "Literal": {"literal"},
    SH_NS + "BlankNodeOrIRI": {"iri", "bnode"},
    SH_NS + "IRIOrLiteral": {"iri", "literal"},
    SH_NS + "BlankNodeOrLiteral": {"bnode", "literal"},
}


def _value_failure(shape: PropertyShape, value: Term) -> str | None:
    """The first value-level constraint (except sh:node/sh:class) that `value` fails."""
    if shape.node_kind is not None and value.kind not in _NODE_KINDS[shape.node_kind]:
        return "nodeKind"
    if shape.datatype is not None and not (
        value.kind == "literal"
        and value.datatype == shape.datatype
        and lexically_valid(shape.datatype, value.value)
    ):
        return "datatype"
    if shape.allowed is not None and value not in shape.allowed:
        return "in"
    if shape.pattern is not None and (
        value.kind == "bnode" or not shape.pattern.search(value.value)
    ):
        return "pattern"
    if shape.min_length is not None and (
        value.kind == "bnode" or len(value.value) < shape.min_length
    ):
        return "minLength"
    if shape.max_length is not None and (
        value.kind == "bnode" or len(value.value) > shape.max_length
    ):
        return "maxLength"
    if shape.min_inclusive is not None:
        number = _numeric(value)
        if number is None or number < shape.min_inclusive:
            return "minInclusive"
    return None


class Evaluator:
    """Evaluates a ShapeSet against the triples of one document."""

    def __init__(self, shapes: ShapeSet) -> None:
        self.shapes = shapes

    def run(self, data: DataGraph) -> list[Finding]:
        findings: list[Finding] = []
        for shape in self.shapes.targeted:
            for focus in data.instances(shape.target_classes):
                findings.extend(self._check_node(shape, focus, data, frozenset()))
        return findings

    def targeted_classes(self, data: DataGraph) -> set[str]:
        targets = {c for s in self.shapes.targeted for c in s.target_classes}
        return {t for s in data.index for t in data.types(s)} & targets

    def _check_node(
        self, shape: NodeShape, focus: Term, data: DataGraph, stack: frozenset[tuple[Term, str]]
    ) -> list[Finding]:
        findings: list[Finding] = []
        if shape.node_kind is not None and focus.kind not in _NODE_KINDS[shape.node_kind]:
            findings.append(Finding(shape, None, focus, "nodeKind", focus))
        if shape.class_iri is not None and shape.class_iri not in data.types(focus):
            findings.append(Finding(shape, None, focus, "class", focus))
        for prop in shape.properties:
            finding = self._check_property(shape, prop, focus, data, stack)
            if finding is not None:
                findings.append(finding)
        return findings

    def _check_property(
        self,
        shape: NodeShape,
        prop: PropertyShape,
        focus: Term,
        data: DataGraph,
        stack: frozenset[tuple[Term, str]],
    ) -> Finding | None:
        values = data.objects(focus, prop.path)
        if prop.min_count is not None and len(values) < prop.min_count:
            return Finding(shape, prop, focus, "minCount")
        if prop.max_count is not None and len(values) > prop.max_count:
            return Finding(shape, prop, focus, "maxCount")
        for value in values:
            constraint = _value_failure(prop, value)
            if constraint is None and prop.class_iri is not None:
                constraint = None if prop.class_iri in data.types(value) else "class"
            if constraint is None and prop.node is not None:
                constraint = None if self._conforms(value, prop.node, data, stack) else "node"
            if constraint is not None:
                return Finding(shape, prop, focus, constraint, value)
        return None

    def _conforms(
        self, node: Term, shape_iri: str, data: DataGraph, stack: frozenset[tuple[Term, str]]
    ) -> bool:
        if (node, shape_iri) in stack:
            return True  # a cycle conforms unless something else fails (SHACL leaves it open)
        shape = self.shapes.shapes.get(shape_iri)
        if shape is None:
            raise ShapesError(f"sh:node refers to unknown shape {shape_iri}")
        # As in SHACL, a node conforms only if its validation yields no result at all.
        return not self._check_node(shape, node, data, stack | {(node, shape_iri)})
