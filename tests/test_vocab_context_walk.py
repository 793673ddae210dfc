"""The one known-context walker: what each `WalkRules` field changes, seen by an emitter.

Both fast paths (`vocab.known_triples`, `node.hub.known_context`) walk documents with
`vocab.context_walk`; their results are compared with pyld in their own tests. Here a
recording emitter shows the rules on purpose different between the two, one at a time,
on the shipped term table of our context list.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from node.hub.known_context import HUB_RULES
from vocab.compiled import load_context_tables
from vocab.context_table import NotOnFastPath
from vocab.context_walk import WalkRules, walk
from vocab.known_triples import PYLD_RULES, context_key
from vocab.loader import DEFAULT_CONTEXT

PRACTICE = json.loads(
    (Path(__file__).resolve().parent.parent / "examples/documents/valid/practice.json").read_text(
        encoding="utf-8"
    )
)
TABLE = load_context_tables()[context_key(list(DEFAULT_CONTEXT))]
AS = "https://www.w3.org/ns/activitystreams#"
PN = "https://w3id.org/praxisnetz#"


class Recorder:
    """An emitter that accepts every IRI and records statements as plain tuples."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, str, str]] = []
        self.checked_iris: list[str] = []
        self.graphs: list[str] = []
        self._labels = 0

    def check_iri(self, iri: str) -> str:
        self.checked_iris.append(iri)
        return iri

    def check_language(self, tag: str) -> str:
        return tag

    def named(self, iri: str) -> str:
        return iri

    def blank(self) -> str:
        self._labels += 1
        return f"_:b{self._labels - 1}"

    def node_object(self, subject: str) -> str:
        return subject

    def iri_object(self, iri: str) -> str:
        return iri

    def string(self, value: str, datatype: str | None, language: str | None) -> str:
        return f"{value!r}^^{datatype}@{language}"

    def integer(self, value: int, datatype: str | None) -> str:
        return f"{value}^^{datatype}"

    def boolean(self, value: bool) -> str:
        return str(value)

    def add(self, subject: str, predicate: str, obj: str) -> None:
        self.statements.append((subject, predicate, obj))

    def add_type(self, subject: str, type_iri: str) -> None:
        self.statements.append((subject, "a", type_iri))

    @contextlib.contextmanager
    def graph(self, name: str) -> Iterator[None]:
        self.graphs.append(name)
        yield


def _walked(document: dict[str, Any], rules: WalkRules) -> Recorder:
    recorder = Recorder()
    walk(document, TABLE, recorder, rules)
    return recorder


def _unsigned(**changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in PRACTICE.items() if k != "proof"}, **changes}


def _predicates(recorder: Recorder, subject: str) -> list[str]:
    return [predicate for s, predicate, _ in recorder.statements if s == subject]


def test_pyld_order_sorts_by_predicate_iri_and_document_order_keeps_the_keys() -> None:
    document = {"@context": PRACTICE["@context"], "id": PRACTICE["id"],
                "summary": "s", "name": "n", "content": "c"}  # fmt: skip
    subject = f"<{PRACTICE['id']}>"
    in_pyld_order = _predicates(_walked(document, PYLD_RULES), subject)
    in_document_order = _predicates(_walked(document, HUB_RULES), subject)
    assert in_pyld_order == [f"<{AS}content>", f"<{AS}name>", f"<{AS}summary>"]
    assert in_document_order == [f"<{AS}summary>", f"<{AS}name>", f"<{AS}content>"]


def test_several_type_keys_only_for_the_hub() -> None:
    # no shipped context has two @type aliases; a table with a second one stands in
    table = replace(TABLE, terms={**TABLE.terms, "kind": TABLE.terms["type"]})
    document = _unsigned(kind="Note")
    with pytest.raises(NotOnFastPath):
        walk(document, table, Recorder(), PYLD_RULES)
    recorder = Recorder()
    walk(document, table, recorder, HUB_RULES)
    assert f"<{AS}Note>" in [o for s, p, o in recorder.statements if p == "a"]


def test_nulls_are_refused_for_the_validator_and_left_out_for_the_hub() -> None:
    document = _unsigned(summary=None)
    with pytest.raises(NotOnFastPath):
        _walked(document, PYLD_RULES)
    assert f"<{AS}summary>" not in _predicates(_walked(document, HUB_RULES), f"<{PRACTICE['id']}>")


def test_compact_iris_in_ids_are_expanded_only_for_the_validator() -> None:
    document = _unsigned(id="pn:x", about="pn:y")
    expanded = _walked(document, PYLD_RULES)
    assert {f"{PN}x", f"{PN}y"} <= set(expanded.checked_iris)
    as_written = _walked(document, HUB_RULES)
    assert {"pn:x", "pn:y"} <= set(as_written.checked_iris)  # the hub's check refuses them
    # types and @vocab values are expanded on both paths
    typed = _unsigned(type=["Article", "pn:Practice"], status="pn:planned")
    for rules in (PYLD_RULES, HUB_RULES):
        objects = {o for _, _, o in _walked(typed, rules).statements}
        assert {f"<{PN}Practice>", f"<{PN}planned>"} <= objects


def test_the_proof_is_a_graph_of_its_own_for_the_validator_and_not_walked_for_the_hub() -> None:
    validator = _walked(PRACTICE, PYLD_RULES)
    assert len(validator.graphs) == 1
    assert "<https://w3id.org/security#proof>" in _predicates(validator, f"<{PRACTICE['id']}>")
    hub = _walked(PRACTICE, HUB_RULES)
    assert hub.graphs == []
    assert "<https://w3id.org/security#proof>" not in _predicates(hub, f"<{PRACTICE['id']}>")


@pytest.mark.parametrize("rules", [PYLD_RULES, HUB_RULES], ids=["validator", "hub"])
@pytest.mark.parametrize(
    "change",
    [
        {"colour": "blue"},
        {"@context": "x"},  # skipped at the top only
        {"name": {"@value": "x"}},
        {"name": ["a", ["b"]]},
        {"sectionNumber": 1.5},
        {"contentMap": ["de"]},
        {"type": 5},
        {"step": {}},
    ],
    ids=lambda change: json.dumps(change)[:30],
)
def test_both_walks_refuse_what_the_table_does_not_cover(
    rules: WalkRules, change: dict[str, Any]
) -> None:
    document = _unsigned(step=[{"type": "HowToStep", "text": "t", **change}])
    with pytest.raises(NotOnFastPath):
        _walked(document, rules)
