"""The validator's known-context fast path gives pyld's triples, or no answer at all.

Every document is converted both ways: by the fast path (`vocab.known_triples`, the
shipped term table) and by pyld (`raw_dataset_generalized`); where the fast path answers,
the triples must be the same, in the same order, with the same blank node labels, and
the validation reports of both validators must be equal. The compiled files must be what
a fresh compile of `shapes.ttl` and the bundled contexts gives.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import Graph

from vocab.compiled import (
    SHAPES_FILE,
    TABLES_FILE,
    fresh_texts,
    known_context_triples,
    load_shapes,
)
from vocab.loader import DEFAULT_CONTEXT
from vocab.shacl import DataGraph, ShapeSet
from vocab.validate import Validator, _base_for, _data_graph, raw_dataset_generalized

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = REPO / "examples" / "documents"
EXAMPLES = sorted(DOCUMENTS.glob("*/*.json"))
FAST = Validator.bundled()
BY_PYLD = Validator.bundled(fast_path=False)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _unsigned(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "proof"}


def _ordered(data: DataGraph) -> list[tuple[Any, list[tuple[str, list[Any]]]]]:
    return [(subject, list(predicates.items())) for subject, predicates in data.index.items()]


def _assert_same_as_pyld(document: dict[str, Any]) -> bool:
    """Whether the fast path answered; if it did, its triples and report are pyld's."""
    fast = known_context_triples().data_graph(document)
    assert FAST.validate(document) == BY_PYLD.validate(document)
    if fast is None:
        return False
    by_pyld, undefined = _data_graph(raw_dataset_generalized(document, _base_for(document)))
    assert not undefined
    assert _ordered(fast) == _ordered(by_pyld)
    return True


def test_the_shipped_compiled_files_equal_a_fresh_compile() -> None:
    fresh = fresh_texts()
    assert set(fresh) == {SHAPES_FILE, TABLES_FILE}
    for name, text in fresh.items():
        shipped = resources.files("vocab").joinpath(name).read_text(encoding="utf-8")
        assert shipped == text, f"{name} is stale: run python -m vocab.compiled"


def test_the_compiled_shapes_read_back_as_parsed_from_turtle() -> None:
    turtle = resources.files("vocab").joinpath("shapes.ttl").read_text(encoding="utf-8")
    parsed = ShapeSet.from_graph(Graph().parse(data=turtle, format="turtle"))
    assert load_shapes() == parsed
    assert len(parsed.targeted) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_examples_give_the_same_triples_and_report_both_ways(path: Path) -> None:
    _assert_same_as_pyld(_load(path))
    _assert_same_as_pyld(_unsigned(_load(path)))  # as authoring validates it


def test_our_own_documents_are_all_on_the_fast_path() -> None:
    ours = [
        path
        for path in EXAMPLES
        if _load(path)["@context"] == list(DEFAULT_CONTEXT)
        and "includedContributions" not in _load(path)  # an @json term: pyld's path
        and "--" not in path.stem  # the invalid examples break things on purpose
    ]
    assert len(ours) >= 10
    assert [path.stem for path in ours if not _assert_same_as_pyld(_load(path))] == []
    assert any("proof" in _load(path) for path in ours)  # signed ones too


def _practice() -> dict[str, Any]:
    return _unsigned(_load(DOCUMENTS / "valid" / "practice.json"))


PROOF = _load(DOCUMENTS / "valid" / "practice.json")["proof"]


@pytest.mark.parametrize(
    "change",
    [
        {"colour": "blue"},  # undefined term: pyld names it in a warning
        {"proof": "https://a.example/proof"},  # an @graph container holds objects here
        {"proof": {**PROOF, "colour": "blue"}},
        {"status": {"@list": ["planned"]}},
        {"name": {"@value": "x"}},
        {"sectionNumber": 1.5},
        {"about": "relative/path"},
        {"about": "https://a.example/with space"},
        {"id": "_:b7"},
        {"type": None},
        {"contentMap": [{"de": "x"}]},
        {"contentMap": {"DE": "x"}},
        {"@context": ["https://www.w3.org/ns/activitystreams"]},
        {"@context": [*DEFAULT_CONTEXT, "https://evil.example/ctx"]},
    ],
    ids=lambda change: json.dumps(change)[:40],
)
def test_what_the_fast_path_does_not_cover_goes_to_pyld(change: dict[str, Any]) -> None:
    document = {**_practice(), **change}
    assert known_context_triples().data_graph(document) is None
    assert FAST.validate(document) == BY_PYLD.validate(document)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "Note", "content": "innen"}
    for _ in range(depth):
        node = {"type": "Note", "inReplyTo": node}
    return node


@pytest.mark.parametrize(
    "change",
    [{"@context": [*DEFAULT_CONTEXT[:2], {DEFAULT_CONTEXT[2]}]}, {"about": _nested(5000)}],
    ids=["context-not-json", "nested-5000-deep"],
)
def test_documents_the_fast_path_cannot_walk_are_reported_not_raised(
    change: dict[str, Any],
) -> None:
    document = {**_practice(), **change}
    assert known_context_triples().data_graph(document) is None
    report = FAST.validate(document)
    assert not report.valid and report.problems[0].field == "@context"


def test_undefined_terms_are_still_named_in_warnings() -> None:
    document = {**_practice(), "colour": "blue", "statusx": "planned"}
    report = FAST.validate(document)
    assert {"colour", "statusx"} <= {p.field for p in report.problems}


@pytest.mark.parametrize(
    "change",
    [
        {"name": [1, True, 1, "1"]},  # pyld drops a repeat, but a boolean is not a number
        {"topic": [f"https://w3id.org/praxisnetz/topics#{t}" for t in ("e-akte", "e-akte")]},
        {"nameMap": {"en": "E-file", "de": "E-Akte"}, "name": "E-Akte"},
        {"step": [{"type": "HowToStep", "text": f"s{i}"} for i in range(12)]},  # _:b10 < _:b2
        {"about": {"id": "https://dueren.example/practices/e-payment-buergerbuero", "name": "x"}},
        {"relatedService": ["urn:de:fim:leika:leistung:99123456789012"]},
        {"type": ["Article", "pn:Practice"]},
        {"status": "pn:planned"},
        {"proof": PROOF, "step": [{"type": "HowToStep", "text": f"s{i}"} for i in range(12)]},
        {"proof": [PROOF, {**PROOF, "proofValue": "z2"}]},  # a proof set: a graph each
        {"about": {"type": "Note", "content": "n", "proof": PROOF}},
        {"proof": {**PROOF, "proofPurpose": "pn:planned", "created": "yesterday"}},
    ],
    ids=lambda change: json.dumps(change)[:40],
)
def test_the_fast_path_follows_pyld_in_the_corners(change: dict[str, Any]) -> None:
    assert _assert_same_as_pyld({**_practice(), **change})


_VALUES = st.sampled_from(
    [
        None, True, 0, 7, 10**22, 1.5, "", "x", "planned", "in-operation", "agree",
        "https://a.example/x", "urn:x:y", "pn:Practice", "relative", {"de": "a", "en": "b"},
        {"type": "Note", "content": "c"}, {"id": "https://a.example/n"}, {}, ["a", "a", 1],
        [{"name": "s1"}, {"name": "s2"}], "2026-11-03T10:00:00Z", {"@value": "v"},
        PROOF, [PROOF, PROOF], {**PROOF, "created": 5},
    ]
)  # fmt: skip
_KEYS = st.sampled_from(
    [
        "name", "nameMap", "content", "contentMap", "summary", "topic", "status", "type",
        "about", "sections", "step", "attributedTo", "sectionNumber", "order", "titleDe",
        "position", "published", "tag", "url", "x", "proof",
    ]
)  # fmt: skip
_VALID = [_load(path) for path in sorted((DOCUMENTS / "valid").glob("*.json"))]


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    base=st.sampled_from(_VALID),
    changes=st.lists(st.tuples(_KEYS, _VALUES, st.booleans()), min_size=1, max_size=4),
)
def test_changed_examples_give_the_same_triples_and_report(
    base: dict[str, Any], changes: list[tuple[str, Any, bool]]
) -> None:
    document = copy.deepcopy(base)
    for key, value, delete in changes:
        if delete:
            document.pop(key, None)
        else:
            document[key] = copy.deepcopy(value)
    _assert_same_as_pyld(document)


def test_validating_our_documents_imports_neither_pyld_nor_rdflib() -> None:
    script = """
import json, sys
from pathlib import Path
from vocab.validate import validate
for path in sys.argv[1:]:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    assert validate(document).checked_types, path
print(json.dumps(sorted(sys.modules)))
"""
    paths = [str(DOCUMENTS / "valid" / name) for name in ("practice.json", "stance.json")]
    done = subprocess.run([sys.executable, "-c", script, *paths], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    heavy = ("pyld", "rdflib", "requests", "lxml", "pyoxigraph", "vocab.rdf")
    assert "vocab.validate" in modules
    assert sorted(m for m in modules if m.split(".")[0] in heavy or m in heavy) == []


def test_the_compiled_files_are_package_data() -> None:
    import fnmatch
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["vocab"]
    for name in (SHAPES_FILE, TABLES_FILE):  # a wheel without them could not validate
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
