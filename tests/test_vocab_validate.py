"""validate(): examples pass or fail with the expected field, agree with pyshacl, stay fast."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pyshacl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import Graph, URIRef

from vocab.loader import DEFAULT_CONTEXT
from vocab.rdf import to_graph
from vocab.shacl import ShapesError, ShapeSet
from vocab.shapes_turtle import SH
from vocab.validate import (
    Severity,
    ValidationReport,
    Validator,
    default_validator,
    main,
    validate,
    validate_files,
)

DOCUMENTS = Path(__file__).resolve().parent.parent / "examples" / "documents"
VALID = sorted((DOCUMENTS / "valid").glob("*.json"))
INVALID = sorted((DOCUMENTS / "invalid").glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _expected_field(path: Path) -> str:
    # file names are <class>--<field>--<what is wrong>.json
    return path.stem.split("--")[1]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_pass(path: Path) -> None:
    report = validate(_load(path))
    assert report.valid, report.describe("en")
    assert not report.violations
    assert report.checked_types, "a valid example must be checked against some shape"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_fail_with_the_expected_field_and_message(path: Path) -> None:
    report = validate(_load(path))
    field = _expected_field(path)
    assert not report.valid
    matching = [p for p in report.violations if p.field == field]
    assert matching, f"expected a problem with {field!r}, got {report.describe('en')}"
    for problem in matching:
        assert problem.message_de and problem.message_en
        assert problem.message_de != problem.message_en
        assert field.lstrip("@").lower() in problem.message_en.lower()


def test_every_shape_has_a_valid_and_an_invalid_example() -> None:
    targeted = {
        default_validator().field_name(c) for s in _shape_set().targeted for c in s.target_classes
    }
    passing = {t for p in VALID for t in validate(_load(p)).checked_types}
    failing = {t for p in INVALID for t in validate(_load(p)).checked_types}
    assert targeted <= passing, f"no valid example for {targeted - passing}"
    assert targeted <= failing, f"no invalid example for {targeted - failing}"


def _shape_set() -> ShapeSet:
    return ShapeSet.from_graph(_shapes_graph())


def _shapes_graph() -> Graph:
    text = resources.files("vocab").joinpath("shapes.ttl").read_text(encoding="utf-8")
    return Graph().parse(data=text, format="turtle")


def _pyshacl_failing_shapes(document: dict) -> tuple[bool, set[str]]:
    data = to_graph(document, base=document.get("id", "https://praxisnetz.invalid/"))
    conforms, results, _ = pyshacl.validate(data, shacl_graph=_shapes_graph(), inference="none")
    top_level = results.objects(None, SH.result)  # not the nested sh:detail results
    return conforms, {str(results.value(r, SH.sourceShape)) for r in top_level}


@pytest.mark.parametrize(
    "path", [p for p in VALID + INVALID if "@context" not in p.stem], ids=lambda p: p.stem
)
def test_verdicts_agree_with_pyshacl(path: Path) -> None:
    document = _load(path)
    report = validate(document)
    conforms, failing = _pyshacl_failing_shapes(document)
    ours = {p.shape for p in report.problems if p.shape is not None}
    assert report.valid == conforms
    assert ours == failing


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "text",
        {},
        {"@context": 5},
        {"@context": [None]},
        {"@context": {"@version": 2}},
        {"@context": list(DEFAULT_CONTEXT), "@id": 5},
        {"@context": list(DEFAULT_CONTEXT), "type": 7},
        {"@context": list(DEFAULT_CONTEXT), "type": "Practice", "status": {"@list": 3}},
        {"@context": "https://evil.example/ctx", "type": "Practice"},
        {
            "@context": list(DEFAULT_CONTEXT),
            "id": "https://a.example/p",
            "type": "Practice",
            "step": [[[[[]]]]],
        },
    ],
)
def test_malformed_input_gives_a_problem_not_an_exception(document: object) -> None:
    report = validate(document)  # type: ignore[arg-type]
    assert isinstance(report, ValidationReport)
    assert report.problems
    assert all(p.field and p.message_de and p.message_en for p in report.problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "type",
                    "status",
                    "topic",
                    "step",
                    "@id",
                    "@type",
                    "@value",
                    "@list",
                    "position",
                    "name",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "type",
                "status",
                "topic",
                "step",
                "about",
                "published",
                "@graph",
                "@reverse",
                "proof",
            ]
        ),
        json_values,
        max_size=6,
    )
)
def test_arbitrary_json_never_raises(body: dict) -> None:
    document = {"@context": list(DEFAULT_CONTEXT), **body}
    report = validate(document)
    assert isinstance(report, ValidationReport)


def test_a_document_without_our_context_is_warned_about_lost_terms() -> None:
    document = _load(DOCUMENTS / "valid" / "practice-minimal.json")
    document["@context"] = ["https://www.w3.org/ns/activitystreams"]
    report = validate(document)
    warnings = {p.field for p in report.problems if p.severity is Severity.WARNING}
    assert {"status", "topic"} <= warnings
    assert any(p.field == "type" and p.severity is Severity.INFO for p in report.problems)


def test_plain_activitystreams_objects_are_not_checked_but_stay_valid() -> None:
    note = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "https://m.example/n/1",
        "type": "Note",
        "content": "Hallo",
    }
    report = validate(note)
    assert report.valid
    assert report.checked_types == ()


def test_problem_names_the_focus_node_and_the_offending_value() -> None:
    document = _load(DOCUMENTS / "invalid" / "practice--status--not-a-status.json")
    problem = next(p for p in validate(document).problems if p.field == "status")
    assert problem.focus_node == document["id"]
    assert problem.constraint == "in"
    assert problem.value is not None and problem.value.endswith("running")


_SHAPE_PREFIXES = """
@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix ex: <https://example.org/> .
"""


@pytest.mark.parametrize(
    "shape",
    [
        "ex:S a sh:NodeShape ; sh:targetClass ex:C ; sh:property [ sh:path ex:p ; "
        'sh:name "a"@de, "a"@en ; sh:message "m"@de, "m"@en ; sh:or ( ex:A ex:B ) ] .',
        'ex:S a sh:NodeShape ; sh:targetClass ex:C ; sh:sparql [ sh:select "SELECT ?this {}" ] .',
        "ex:S a sh:NodeShape ; sh:targetClass ex:C ; sh:property [ sh:path ex:p ; "
        'sh:name "a"@en ; sh:message "m"@de, "m"@en ; sh:minCount 1 ] .',
        "ex:S a sh:NodeShape ; sh:targetClass ex:C ; sh:property [ sh:path ( ex:p ex:q ) ; "
        'sh:name "a"@de, "a"@en ; sh:message "m"@de, "m"@en ; sh:minCount 1 ] .',
    ],
    ids=["sh:or", "sh:sparql", "message-only-in-english", "path-sequence"],
)
def test_shapes_outside_the_supported_subset_are_refused(shape: str) -> None:
    with pytest.raises(ShapesError):
        Validator.from_shapes_text(_SHAPE_PREFIXES + shape)


def test_validate_files_and_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    results = validate_files([VALID[0], broken])
    assert results[0][1].valid
    assert not results[1][1].valid and results[1][1].problems[0].field == "document"

    assert main([str(p) for p in VALID]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["--en", str(INVALID[0])]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main([]) == 2


def test_field_names_come_from_the_contexts() -> None:
    validator = default_validator()
    assert validator.field_name("https://www.w3.org/ns/activitystreams#name") == "name"
    assert validator.field_name("https://www.w3.org/ns/activitystreams#content") == "content"
    assert validator.field_name("http://www.w3.org/ns/ldp#inbox") == "inbox"
    assert validator.field_name("https://w3id.org/praxisnetz#municipalityKey") == "municipalityKey"
    assert validator.field_name(str(URIRef("https://schema.org/step"))) == "step"


def test_python_dash_m_vocab_runs_offline_and_sets_the_exit_code() -> None:
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "vocab", *map(str, VALID[:2])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("OK") == 2
    bad = subprocess.run(
        [sys.executable, "-m", "vocab", "--en", str(INVALID[0])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "invalid" in bad.stdout and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("create-practice--status--embedded-object", "object.status"),
        ("edition-manifest--order--not-a-number", "sections[0].order"),
        ("practice--status--not-a-status", "status"),
    ],
)
def test_problems_in_embedded_objects_say_where_they_are(name: str, path: str) -> None:
    report = validate(_load(DOCUMENTS / "invalid" / f"{name}.json"))
    assert path in {p.path for p in report.violations}, report.describe("en")
    assert path in report.describe("en")
