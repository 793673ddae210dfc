"""The small SHACL evaluator: each supported constraint passes and fails where SHACL says."""

from __future__ import annotations

import pytest
from rdflib import Graph

from vocab.shacl import DataGraph, Evaluator, Severity, ShapeSet, Term, lexically_valid

EX = "https://example.org/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"

PREFIXES = """
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix ex: <https://example.org/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""


def _evaluator(constraints: str, *, node_level: str = "") -> Evaluator:
    turtle = (
        PREFIXES
        + f"ex:S a sh:NodeShape ; sh:targetClass ex:C ; {node_level} sh:property ex:P .\n"
        + 'ex:P a sh:PropertyShape ; sh:path ex:p ; sh:name "p"@de, "p"@en ; '
        + f'sh:message "falsch"@de, "wrong"@en ; {constraints} .\n'
        + 'ex:Inner a sh:NodeShape ; sh:property [ sh:path ex:q ; sh:name "q"@de, "q"@en ; '
        + 'sh:message "q"@de, "q"@en ; sh:minCount 1 ] .\n'
    )
    return Evaluator(ShapeSet.from_graph(Graph().parse(data=turtle, format="turtle")))


def _iri(local: str) -> Term:
    return Term("iri", EX + local)


def _lit(value: str, datatype: str = XSD + "string", language: str | None = None) -> Term:
    return Term("literal", value, datatype, language)


def _data(*values: Term, focus: Term | None = None) -> DataGraph:
    data = DataGraph()
    subject = focus or _iri("s")
    data.add(subject, RDF_TYPE, _iri("C"))
    for value in values:
        data.add(subject, EX + "p", value)
    return data


def _failures(evaluator: Evaluator, data: DataGraph) -> list[str]:
    return [f.constraint for f in evaluator.run(data)]


@pytest.mark.parametrize(
    ("constraints", "passing", "failing", "constraint"),
    [
        ("sh:minCount 1", [_lit("a")], [], "minCount"),
        ("sh:maxCount 1", [_lit("a")], [_lit("a"), _lit("b")], "maxCount"),
        ("sh:datatype xsd:integer", [_lit("12", XSD + "integer")], [_lit("12")], "datatype"),
        (
            "sh:datatype xsd:integer",
            [_lit("-3", XSD + "integer")],
            [_lit("1.5", XSD + "integer")],
            "datatype",
        ),
        (
            "sh:datatype xsd:dateTime",
            [_lit("2026-11-22T10:00:00Z", XSD + "dateTime")],
            [_lit("2026-13-22T10:00:00Z", XSD + "dateTime")],
            "datatype",
        ),
        ("sh:in ( ex:a ex:b )", [_iri("a")], [_iri("c")], "in"),
        ("sh:in ( ex:a ex:b )", [_iri("b")], [_lit(EX + "a")], "in"),
        ("sh:nodeKind sh:IRI", [_iri("a")], [_lit("a")], "nodeKind"),
        ("sh:nodeKind sh:Literal", [_lit("a")], [Term("bnode", "_:b0")], "nodeKind"),
        ("sh:nodeKind sh:BlankNodeOrIRI", [Term("bnode", "_:b0")], [_lit("a")], "nodeKind"),
        ('sh:pattern "^[0-9]{3}$"', [_lit("123")], [_lit("1234")], "pattern"),
        ('sh:pattern "^abc$" ; sh:flags "i"', [_lit("ABC")], [_lit("abd")], "pattern"),
        ('sh:pattern "x"', [_lit("x")], [Term("bnode", "_:b0")], "pattern"),
        ("sh:minLength 3", [_lit("abc")], [_lit("ab")], "minLength"),
        ("sh:maxLength 3", [_lit("abc")], [_lit("abcd")], "maxLength"),
        (
            "sh:minInclusive 1",
            [_lit("1", XSD + "integer")],
            [_lit("0", XSD + "integer")],
            "minInclusive",
        ),
        ("sh:minInclusive 1", [_lit("5", XSD + "integer")], [_lit("five")], "minInclusive"),
    ],
)
def test_each_constraint_passes_and_fails(
    constraints: str, passing: list[Term], failing: list[Term], constraint: str
) -> None:
    evaluator = _evaluator(constraints)
    assert _failures(evaluator, _data(*passing)) == []
    assert _failures(evaluator, _data(*failing)) == [constraint]


def test_class_constraint_looks_at_the_value_types() -> None:
    evaluator = _evaluator("sh:class ex:D")
    good = _data(_iri("v"))
    good.add(_iri("v"), RDF_TYPE, _iri("D"))
    assert _failures(evaluator, good) == []
    assert _failures(evaluator, _data(_iri("v"))) == ["class"]


def test_node_constraint_checks_the_nested_node() -> None:
    evaluator = _evaluator("sh:node ex:Inner")
    step = Term("bnode", "_:step")
    good = _data(step)
    good.add(step, EX + "q", _lit("x"))
    assert _failures(evaluator, good) == []
    assert _failures(evaluator, _data(step)) == ["node"]


def test_node_level_node_kind_reports_the_focus() -> None:
    evaluator = _evaluator("sh:minCount 0", node_level="sh:nodeKind sh:IRI ;")
    findings = evaluator.run(_data(_lit("a"), focus=Term("bnode", "_:b1")))
    assert [(f.constraint, f.property_shape) for f in findings] == [("nodeKind", None)]


def test_severity_comes_from_the_shape() -> None:
    evaluator = _evaluator("sh:minCount 1 ; sh:severity sh:Warning")
    (finding,) = evaluator.run(_data())
    assert finding.severity is Severity.WARNING
    assert finding.message.en == "wrong"


def test_only_instances_of_the_target_class_are_checked() -> None:
    evaluator = _evaluator("sh:minCount 1")
    data = DataGraph()
    data.add(_iri("x"), RDF_TYPE, _iri("Other"))
    assert evaluator.run(data) == []


@pytest.mark.parametrize(
    ("datatype", "good", "bad"),
    [
        (
            "dateTime",
            ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.5+02:00", "2026-11-22T10:00:00"],
            ["2026-11-22", "2026-02-30T10:00:00Z", "gestern", "2026-11-22T25:00:00Z"],
        ),
        ("duration", ["P6M", "P1Y2M", "PT5H", "P1DT2H", "-P3D"], ["P", "6M", "PT", "P1H", "P1.5Y"]),
        ("positiveInteger", ["1", "+7"], ["0", "-1", "1.0"]),
        ("nonNegativeInteger", ["0", "3"], ["-1", "x"]),
        ("boolean", ["true", "0"], ["yes", "True"]),
        ("double", ["1.5", "1e3", "INF", "NaN"], ["1,5", "e3"]),
        ("decimal", ["1.5", "-.5"], ["1e3", "x"]),
    ],
)
def test_lexical_forms(datatype: str, good: list[str], bad: list[str]) -> None:
    for lexical in good:
        assert lexically_valid(XSD + datatype, lexical), lexical
    for lexical in bad:
        assert not lexically_valid(XSD + datatype, lexical), lexical
