"""`vocab.shacl.ShapeSet` ⇄ plain JSON data, for the compiled shapes a node loads.

`shapes.ttl` is the source; `python -m vocab.compiled` writes what `shape_set_from_graph`
made of it as JSON (`vocab/precompiled/shapes.json`), and reading that back needs neither
rdflib nor a Turtle parser. A test checks that the shipped file equals a fresh compile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vocab.shacl import Message, NodeShape, PropertyShape, Severity, ShapeSet, Term

# Optional PropertyShape fields that are plain JSON values (None is left out).
_PLAIN_FIELDS = (
    "min_count",
    "max_count",
    "datatype",
    "class_iri",
    "node_kind",
    "min_length",
    "max_length",
    "node",
)


def shape_set_to_json(shapes: ShapeSet) -> dict[str, Any]:
    return {iri: _node_to_json(shape) for iri, shape in sorted(shapes.shapes.items())}


def shape_set_from_json(data: Mapping[str, Any]) -> ShapeSet:
    return ShapeSet(shapes={iri: _node_from_json(shape) for iri, shape in data.items()})


def _message(message: Message) -> dict[str, str]:
    return {"de": message.de, "en": message.en}


def _node_to_json(shape: NodeShape) -> dict[str, Any]:
    return {
        "iri": shape.iri,
        "label": _message(shape.label),
        "message": _message(shape.message),
        "target_classes": list(shape.target_classes),
        "properties": [_property_to_json(p) for p in shape.properties],
        "node_kind": shape.node_kind,
        "class_iri": shape.class_iri,
        "severity": shape.severity.value,
    }


def _node_from_json(data: Mapping[str, Any]) -> NodeShape:
    return NodeShape(
        iri=data["iri"],
        label=Message(**data["label"]),
        message=Message(**data["message"]),
        target_classes=tuple(data["target_classes"]),
        properties=tuple(_property_from_json(p) for p in data["properties"]),
        node_kind=data["node_kind"],
        class_iri=data["class_iri"],
        severity=Severity(data["severity"]),
    )


def _property_to_json(shape: PropertyShape) -> dict[str, Any]:
    data: dict[str, Any] = {
        "iri": shape.iri,
        "path": shape.path,
        "name": _message(shape.name),
        "message": _message(shape.message),
        "severity": shape.severity.value,
    }
    data.update({name: getattr(shape, name) for name in _PLAIN_FIELDS})
    if shape.allowed is not None:
        data["allowed"] = sorted([list(term) for term in shape.allowed], key=repr)
    if shape.pattern is not None:
        data["pattern"] = {"source": shape.pattern.pattern, "flags": shape.pattern.flags}
    if shape.min_inclusive is not None:
        data["min_inclusive"] = str(shape.min_inclusive)
    return {key: value for key, value in data.items() if value is not None}


def _property_from_json(data: Mapping[str, Any]) -> PropertyShape:
    allowed = data.get("allowed")
    pattern = data.get("pattern")
    min_inclusive = data.get("min_inclusive")
    return PropertyShape(
        iri=data["iri"],
        path=data["path"],
        name=Message(**data["name"]),
        message=Message(**data["message"]),
        severity=Severity(data["severity"]),
        allowed=frozenset(Term(*term) for term in allowed) if allowed is not None else None,
        pattern=re.compile(pattern["source"], pattern["flags"]) if pattern is not None else None,
        min_inclusive=Decimal(min_inclusive) if min_inclusive is not None else None,
        **{name: data.get(name) for name in _PLAIN_FIELDS},
    )
