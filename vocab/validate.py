"""Validate a JSON-LD document against `shapes.ttl`, with messages a person can act on.

    report = validate(document)
    if not report.valid:
        for problem in report.problems:
            print(problem.field, problem.message_de)

The document becomes triples through the known-context fast path (`vocab.known_triples`:
our own context list, looked up in a precompiled term table) or, for any other document,
through pyld (offline, bundled contexts); both give the same triples. The shapes, compiled
from `shapes.ttl` (`vocab.compiled`), are evaluated by `vocab.shacl`. Validating a
document in our contexts imports neither pyld nor rdflib. Every problem names the field
as it is spelled in the compact JSON ("status", "topic", "attributedTo"), never a stack
trace. Malformed JSON-LD and
unbundled contexts are reported as problems too.

Command line: `python -m vocab FILE...` (or `python -m vocab.validate FILE...`) prints
the result in plain words.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vocab.compiled import known_context_triples, load_shapes
from vocab.context_table import expand_compact
from vocab.known_triples import KnownContextTriples
from vocab.loader import (
    DEFAULT_CONTEXT,
    MULTIKEY_V1_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    load_bundled_document,
    pyld_options,
)
from vocab.shacl import RDF_TYPE, DataGraph, Evaluator, Finding, Severity, ShapeSet, Term

if TYPE_CHECKING:
    from vocab.rdf import JsonLdProcessingError, RawDataset

# Why vocab.rdf (pyld, rdflib) is imported in the functions: only documents outside the
# known contexts need it; a node validating its own documents never loads it.

# Used only when a document has no absolute `id` to resolve relative IRIs against; the
# .invalid top-level domain (RFC 2606) can never be a real node.
FALLBACK_BASE = "https://praxisnetz.invalid/"
RDF_FIRST = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first"
RDF_REST = "http://www.w3.org/1999/02/22-rdf-syntax-ns#rest"
RDF_NIL = "http://www.w3.org/1999/02/22-rdf-syntax-ns#nil"

__all__ = [
    "Problem",
    "Severity",
    "ValidationReport",
    "Validator",
    "default_validator",
    "validate",
    "validate_files",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, in German and English."""

    field: str
    message_de: str
    message_en: str
    severity: Severity = Severity.VIOLATION
    focus_node: str | None = None
    shape: str | None = None
    constraint: str | None = None
    value: str | None = None
    # Where the focus node sits in the JSON: "" for the document itself, else e.g.
    # "object" (the object of a Create) or "sections[0]" (an embedded section).
    location: str = ""

    def message(self, language: str = "de") -> str:
        return self.message_en if language == "en" else self.message_de

    @property
    def path(self) -> str:
        """The field with its location, e.g. "status" or "object.status"."""
        return f"{self.location}.{self.field}" if self.location else self.field


@dataclass(frozen=True)
class ValidationReport:
    valid: bool
    problems: tuple[Problem, ...] = ()
    checked_types: tuple[str, ...] = ()

    @property
    def violations(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.VIOLATION)

    def fields(self) -> set[str]:
        return {p.field for p in self.problems}

    def describe(self, language: str = "de") -> str:
        """The report as plain sentences, one problem per line."""
        what = ", ".join(self.checked_types) or ("nichts" if language == "de" else "nothing")
        if language == "en":
            head = f"valid ({what})" if self.valid else f"invalid ({what})"
        else:
            head = f"gültig ({what})" if self.valid else f"ungültig ({what})"
        lines = [head]
        given = "Wert" if language == "de" else "value"
        for p in self.problems:
            shown = f" ({given}: {p.value})" if p.value and p.constraint != "nodeKind" else ""
            lines.append(f"  - [{p.severity}] {p.path}: {p.message(language)}{shown}")
        return "\n".join(lines)


def collect_context_terms(
    context: Mapping[str, Any], into: dict[str, str], inherited: Mapping[str, str] | None = None
) -> None:
    """IRI -> term for one context and its scoped contexts; plain terms beat language-bound."""
    prefixes = dict(inherited or {})
    prefixes.update(
        {k: v for k, v in context.items() if isinstance(v, str) and v.endswith(("#", "/"))}
    )
    for term, definition in context.items():
        if term.startswith("@"):
            continue
        if isinstance(definition, str):
            iri, language_bound = definition, False
        elif isinstance(definition, Mapping) and isinstance(definition.get("@id"), str):
            iri = definition["@id"]
            language_bound = (
                definition.get("@container") == "@language" or "@language" in definition
            )
            scoped = definition.get("@context")
            if isinstance(scoped, Mapping):
                collect_context_terms(scoped, into, prefixes)
        else:
            continue
        full = expand_compact(iri, prefixes)
        if full.startswith("@") or full in prefixes.values():
            continue
        if language_bound:  # contentMap, titleDe: the plain term names the field
            into.setdefault(full, term)
        else:
            into[full] = term


def context_field_names() -> dict[str, str]:
    """Property IRI -> the key that names it in compact JSON, from the bundled contexts."""
    names: dict[str, str] = {}
    urls = (SECURITY_V1_CONTEXT_URL, MULTIKEY_V1_CONTEXT_URL, *DEFAULT_CONTEXT)
    for url in urls:  # later contexts win, as in JSON-LD
        context = load_bundled_document(url)["@context"]
        if isinstance(context, Mapping):
            collect_context_terms(context, names)
    return names


def _data_graph(raw: RawDataset) -> tuple[DataGraph, bool]:
    """Index the default graph; say whether undefined terms (blank-node predicates) occurred."""
    data = DataGraph()
    undefined_terms = False
    for triple in raw.get("@default", []):
        predicate = triple["predicate"]
        if predicate["type"] != "IRI":
            undefined_terms = True
            continue
        data.add(_pyld_term(triple["subject"]), predicate["value"], _pyld_term(triple["object"]))
    return data, undefined_terms


def _pyld_term(term: Mapping[str, str]) -> Term:
    if term["type"] == "literal":
        language = term.get("language")
        return Term(
            "literal", term["value"], term.get("datatype"), language.lower() if language else None
        )
    if term["type"] == "blank node":
        return Term("bnode", term["value"])
    return Term("iri", term["value"])


def _undefined_keys(expanded: Any) -> set[str]:
    """Keys that the contexts did not define (pyld turns them into `_:key`)."""
    found: set[str] = set()
    if isinstance(expanded, list):
        for item in expanded:
            found |= _undefined_keys(item)
    elif isinstance(expanded, Mapping):
        for key, value in expanded.items():
            if key.startswith("_:"):
                found.add(key[2:])
            found |= _undefined_keys(value)
    return found


def _base_for(document: Mapping[str, Any]) -> str:
    candidate = document.get("id", document.get("@id"))
    if isinstance(candidate, str) and candidate.startswith(("https://", "http://")):
        return candidate
    return FALLBACK_BASE


def _processing_problem(error: JsonLdProcessingError) -> Problem:
    if error.url is not None:
        return Problem(
            field="@context",
            message_de=f"Der Kontext {error.url} ist nicht mitgeliefert und wird nie aus dem "
            "Netz geladen. Erlaubt sind ActivityStreams, Security v1, Data Integrity v2, "
            "Multikey v1 und https://w3id.org/praxisnetz/context.jsonld.",
            message_en=f"The context {error.url} is not bundled and is never fetched from the "
            "network. Allowed are ActivityStreams, security v1, data integrity v2, multikey v1 "
            "and https://w3id.org/praxisnetz/context.jsonld.",
            value=error.url,
        )
    return Problem(
        field="@context",
        message_de=f"Das Dokument ist kein gültiges JSON-LD: {error.reason}",
        message_en=f"The document is not valid JSON-LD: {error.reason}",
    )


class Validator:
    """Shapes parsed once, field names derived once; `validate` is then pure and fast."""

    def __init__(
        self,
        shapes: ShapeSet,
        field_names: Mapping[str, str],
        known: KnownContextTriples | None = None,
    ) -> None:
        self._evaluator = Evaluator(shapes)
        self._field_names = dict(field_names)
        self._known = known  # None: every document goes through pyld

    @classmethod
    def from_shapes_text(cls, turtle: str, *, fast_path: bool = True) -> Validator:
        """Shapes from Turtle (rdflib; for tests and tools), with the shipped fast path."""
        from rdflib import Graph

        graph = Graph().parse(data=turtle, format="turtle")
        known = known_context_triples() if fast_path else None
        return cls(ShapeSet.from_graph(graph), context_field_names(), known)

    @classmethod
    def bundled(cls, *, fast_path: bool = True) -> Validator:
        """The compiled shapes of `shapes.ttl` (no rdflib), with or without the fast path."""
        known = known_context_triples() if fast_path else None
        return cls(load_shapes(), context_field_names(), known)

    def field_name(self, iri: str) -> str:
        return self._field_names.get(iri, iri)

    def validate(self, document: object, base: str | None = None) -> ValidationReport:
        if not isinstance(document, Mapping):
            return ValidationReport(
                valid=False,
                problems=(
                    Problem(
                        field="document",
                        message_de="Das Dokument muss ein JSON-Objekt sein.",
                        message_en="The document must be a JSON object.",
                    ),
                ),
            )
        base = base or _base_for(document)
        data = self._known.data_graph(document) if self._known is not None else None
        undefined = False  # the fast path takes no document with undefined terms
        if data is None:
            converted = _data_graph_by_pyld(document, base)
            if isinstance(converted, Problem):
                return ValidationReport(valid=False, problems=(converted,))
            data, undefined = converted
        findings = self._evaluator.run(data)
        locations = self._locations(data, document) if findings else {}
        problems = [self._problem(f, document, locations) for f in findings]
        if undefined:
            problems += self._undefined_term_problems(document, base)
        checked = sorted(self.field_name(c) for c in self._evaluator.targeted_classes(data))
        if not checked:
            problems.append(_nothing_checked())
        valid = not any(p.severity is Severity.VIOLATION for p in problems)
        return ValidationReport(valid=valid, problems=tuple(problems), checked_types=tuple(checked))

    def _locations(self, data: DataGraph, document: Mapping[str, Any]) -> dict[Term, str]:
        """Path of every node reachable from the document's own node, breadth first."""
        root = _root_node(data, document)
        if root is None:
            return {}
        locations = {root: ""}
        queue = [root]
        while queue:
            subject = queue.pop(0)
            for predicate, values in data.index.get(subject, {}).items():
                if predicate == RDF_TYPE:
                    continue
                key = self.field_name(predicate)
                prefix = f"{locations[subject]}.{key}" if locations[subject] else key
                for child, suffix in _children(data, values):
                    if child not in locations:
                        locations[child] = prefix + suffix
                        queue.append(child)
        return locations

    def _problem(
        self, finding: Finding, document: Mapping[str, Any], locations: Mapping[Term, str]
    ) -> Problem:
        prop = finding.property_shape
        if prop is None:
            field = "id" if finding.constraint == "nodeKind" else "type"
            shape_iri = finding.node_shape.iri
        else:
            field, shape_iri = self.field_name(prop.path), prop.iri
        value = finding.value.value if finding.value is not None else None
        if finding.value is not None and finding.value.kind == "bnode":
            # A blank node label means nothing to the author; show what they wrote.
            value = _written_value(document, finding.focus, field)
        return Problem(
            field=field,
            message_de=finding.message.de,
            message_en=finding.message.en,
            severity=finding.severity,
            focus_node=finding.focus.value if finding.focus.kind == "iri" else None,
            shape=shape_iri,
            constraint=finding.constraint,
            value=value,
            location=locations.get(finding.focus, ""),
        )

    def _undefined_term_problems(self, document: Mapping[str, Any], base: str) -> list[Problem]:
        from pyld import jsonld

        try:
            expanded = jsonld.expand(dict(document), pyld_options(base))
        except jsonld.JsonLdError:
            return []  # to_rdf already succeeded; this is only for naming the keys
        return [
            Problem(
                field=key,
                message_de=f"{key} ist in keinem der angegebenen Kontexte definiert und geht "
                "verloren. Fehlt https://w3id.org/praxisnetz/context.jsonld im @context?",
                message_en=f"{key} is not defined by any of the given contexts and is lost. "
                "Is https://w3id.org/praxisnetz/context.jsonld missing from @context?",
                severity=Severity.WARNING,
            )
            for key in sorted(_undefined_keys(expanded))
        ]


def _root_node(data: DataGraph, document: Mapping[str, Any]) -> Term | None:
    """The node the top-level JSON object describes."""
    identifier = document.get("id", document.get("@id"))
    if isinstance(identifier, str) and Term("iri", identifier) in data.index:
        return Term("iri", identifier)
    referenced = {o for preds in data.index.values() for vs in preds.values() for o in vs}
    return next((s for s in data.index if s not in referenced), None)


def _children(data: DataGraph, values: list[Term]) -> list[tuple[Term, str]]:
    """Node values with their index suffix; RDF lists (@list containers) are unrolled."""
    nodes: list[Term] = []
    for value in values:
        if value.kind == "literal":
            continue
        if data.objects(value, RDF_FIRST):
            nodes.extend(_list_items(data, value))
        else:
            nodes.append(value)
    nodes = [n for n in nodes if n.kind != "literal"]
    if len(nodes) == 1 and len(values) == 1 and not data.objects(values[0], RDF_FIRST):
        return [(nodes[0], "")]
    return [(node, f"[{index}]") for index, node in enumerate(nodes)]


def _list_items(data: DataGraph, head: Term) -> list[Term]:
    items: list[Term] = []
    seen: set[Term] = set()
    current: Term | None = head
    while current is not None and current not in seen:
        seen.add(current)
        items.extend(data.objects(current, RDF_FIRST))
        rest = data.objects(current, RDF_REST)
        current = rest[0] if rest and rest[0].value != RDF_NIL else None
    return items


def _written_value(document: Mapping[str, Any], focus: Term, field: str) -> str | None:
    """The value as written in the top-level JSON, when the problem is about that object."""
    if focus.value != document.get("id", document.get("@id")) or field not in document:
        return None
    written = document[field]
    return written if isinstance(written, str) else json.dumps(written, ensure_ascii=False)


def raw_dataset_generalized(document: Mapping[str, Any], base: str) -> RawDataset:
    """Like `vocab.rdf.raw_dataset`, but keeps undefined terms so they can be reported."""
    from vocab.rdf import raw_dataset

    return raw_dataset(document, base, generalized=True)


def _data_graph_by_pyld(document: Mapping[str, Any], base: str) -> tuple[DataGraph, bool] | Problem:
    """The general path: pyld's triples and whether undefined terms occurred, or the
    problem that kept the document from being processed as JSON-LD."""
    from vocab.rdf import JsonLdProcessingError

    try:
        return _data_graph(raw_dataset_generalized(document, base))
    except JsonLdProcessingError as error:
        return _processing_problem(error)


def _nothing_checked() -> Problem:
    return Problem(
        field="type",
        message_de="Das Dokument hat keinen Praxisnetz-Typ (z. B. Practice, Experience, Stance); "
        "es wurde nichts geprüft.",
        message_en="The document has no Praxisnetz type (e.g. Practice, Experience, Stance); "
        "nothing was checked.",
        severity=Severity.INFO,
    )


@cache
def default_validator() -> Validator:
    """The validator for the bundled shapes, built on first use."""
    return Validator.bundled()


def validate(document: Mapping[str, Any], base: str | None = None) -> ValidationReport:
    """Validate one compact JSON-LD document against the bundled shapes."""
    return default_validator().validate(document, base)


def _read_json(path: Path) -> tuple[object | None, Problem | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError) as error:
        reason = str(error)
    except json.JSONDecodeError as error:
        reason = f"line {error.lineno}, column {error.colno}: {error.msg}"
    return None, Problem(
        field="document",
        message_de=f"Die Datei ist kein lesbares JSON ({reason}).",
        message_en=f"The file is not readable JSON ({reason}).",
    )


def validate_files(paths: Iterable[str | Path]) -> list[tuple[Path, ValidationReport]]:
    """Validate JSON-LD files; unreadable files give a report with one problem."""
    results: list[tuple[Path, ValidationReport]] = []
    for name in paths:
        path = Path(name)
        document, problem = _read_json(path)
        if problem is not None:
            results.append((path, ValidationReport(valid=False, problems=(problem,))))
        else:
            results.append((path, validate(document)))  # type: ignore[arg-type]
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    language = "en" if args[:1] == ["--en"] else "de"
    paths = args[1:] if args[:1] == ["--en"] else args
    if not paths:
        print("usage: python -m vocab [--en] FILE...", file=sys.stderr)
        return 2
    results = validate_files(paths)
    for path, report in results:
        mark = "OK  " if report.valid else "FAIL"
        print(f"{mark} {path}: {report.describe(language)}")
    return 0 if all(report.valid for _, report in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
