"""Term tables: what each key of a compacted document means in RDF, for one ``@context``.

A JSON-LD processor spends most of its time on context processing and expansion that come
out the same for every document carrying our bundled contexts. A term table is that work
done once: pyld processes the ``@context`` (offline, bundled documents) and every term
whose RDF is unambiguous is recorded (its predicate, its coercion, its type-scoped
context). The walker (``vocab.context_walk``) turns a document into RDF by looking its
keys up, for the hub's N-Quads fast path and the validator's triples; a key the table
does not cover means "take the general JSON-LD path" (``NotOnFastPath``).

Tables are plain data: ``table_to_json`` / ``table_from_json`` ship the table of our own
context list precompiled in ``vocab/precompiled/`` (``python -m vocab.compiled``), so a node
reads its own documents without importing pyld.

Only these terms are recorded: ``@id``/``@type`` aliases; terms mapping to an absolute
IRI with ``@type`` ``@id``, ``@vocab`` (a string value), a datatype, or a fixed
``@language``; ``@language`` maps; ``@set`` or no container. Terms with a plain
``@graph`` container (``proof``) are listed apart (``graphs``). Predicates, types and
``@vocab`` values are kept as ``"<iri>"`` (the N-Quads spelling).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

ABSOLUTE = ("http://", "https://")

ContextLoader = Callable[[str], Any]  # context URL -> the bundled document
Check = Callable[[str], str]  # returns its argument, or raises NotOnFastPath


class NotOnFastPath(Exception):
    """The document uses something the table does not cover: take the general path."""


class TermKind(enum.Enum):
    ID_ALIAS = "id"
    TYPE_ALIAS = "type"
    IRI = "iri"  # "@type": "@id"
    VOCAB = "vocab"  # "@type": "@vocab"
    TYPED = "typed"  # "@type": a datatype IRI
    PLAIN = "plain"  # no coercion (strings, numbers, booleans, node objects)
    LANGUAGE_MAP = "language-map"


@dataclass(frozen=True)
class TableTerm:
    kind: TermKind
    predicate: str = ""  # "<iri>"
    datatype: str | None = None  # for TYPED
    language: str | None = None  # for PLAIN strings with a fixed "@language"
    values: Mapping[str, str] = field(default_factory=dict)  # VOCAB: value term -> "<iri>"
    scoped: bool = False  # a property-scoped context: node values are not handled


@dataclass(frozen=True)
class TermTable:
    terms: Mapping[str, TableTerm]
    types: Mapping[str, str]  # type term or compact IRI prefix -> "<iri>" (vocab-relative)
    prefixes: Mapping[str, str]  # prefix term -> namespace IRI
    type_scoped: Mapping[str, TermTable]  # type term with a scoped context -> its table
    # Terms with an @graph container (``proof``): term -> "<iri>". Kept apart from
    # ``terms``: their values are graphs of their own, not plain property values.
    graphs: Mapping[str, str] = field(default_factory=dict)

    # Why: a walker looks these few keys up in a node, instead of every key of the node
    # up in the table, to find its id and types before the type-scoped table is known.
    @cached_property
    def id_keys(self) -> tuple[str, ...]:
        """The terms aliasing ``@id``."""
        return tuple(name for name, term in self.terms.items() if term.kind is TermKind.ID_ALIAS)

    @cached_property
    def type_keys(self) -> tuple[str, ...]:
        """The terms aliasing ``@type``."""
        return tuple(name for name, term in self.terms.items() if term.kind is TermKind.TYPE_ALIAS)


def expand_compact(value: str, prefixes: Mapping[str, str]) -> str:
    prefix, colon, suffix = value.partition(":")
    if colon and not suffix.startswith("//") and prefix in prefixes:
        return prefixes[prefix] + suffix
    return value


@dataclass(frozen=True)
class _Build:
    processor: Any  # pyld's JsonLdProcessor
    options: dict[str, Any]
    check_iri: Check
    check_language: Check


def build_table(
    context: Any, load_context: ContextLoader, *, check_iri: Check, check_language: Check
) -> TermTable:
    """The table of one ``@context`` value, processed by pyld; raises NotOnFastPath (or
    pyld's errors) where the context as a whole is outside what tables cover."""
    from pyld import jsonld  # why here: only building a table needs pyld, reading one not

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        return {"contextUrl": None, "documentUrl": url, "document": load_context(url)}

    processor = jsonld.JsonLdProcessor()
    options = {"base": "", "documentLoader": loader, "processingMode": "json-ld-1.1"}
    options["contextResolver"] = jsonld.ContextResolver({}, loader)
    build = _Build(processor, options, check_iri, check_language)
    initial = processor._get_initial_context(options)
    active = processor.process_context(initial, context, options)
    if active.get("@language") is not None or active.get("@direction") is not None:
        raise NotOnFastPath("a default language or direction")
    if active.get("@base"):
        raise NotOnFastPath("a base in the context")
    base = _table_of(build, active)
    type_scoped = {
        term: _table_of(build, processor.process_context(active, definition["@context"], options))
        for term, definition in active["mappings"].items()
        if definition and definition.get("@context") is not None
    }
    return TermTable(base.terms, base.types, base.prefixes, type_scoped, base.graphs)


def _table_of(build: _Build, active: Any) -> TermTable:
    terms: dict[str, TableTerm] = {}
    types: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    graphs: dict[str, str] = {}
    for name, definition in active["mappings"].items():
        if not definition:
            continue
        iri = definition.get("@id")
        if definition.get("_prefix") and isinstance(iri, str):
            prefixes[name] = iri
        if isinstance(iri, str) and iri.startswith(ABSOLUTE):
            build.check_iri(iri)
            types[name] = f"<{iri}>"
        term = _term_of(build, active, definition)
        if term is not None:
            terms[name] = term
        elif _is_graph_container(definition):
            graphs[name] = f"<{build.check_iri(iri)}>"
    return TermTable(terms, types, prefixes, {}, graphs)


def _is_graph_container(definition: Mapping[str, Any]) -> bool:
    """A plain ``@graph`` container (each value its own blank-node graph), nothing else."""
    iri = definition.get("@id")
    container = [c for c in definition.get("@container", []) if c != "@set"]
    return (
        container == ["@graph"]
        and isinstance(iri, str)
        and iri.startswith(ABSOLUTE)
        and not definition.get("reverse")
        and definition.get("@context") is None
    )


def _term_of(build: _Build, active: Any, definition: Mapping[str, Any]) -> TableTerm | None:
    """The term's handling, or None where tables do not cover it."""
    iri = definition.get("@id")
    if iri == "@id":
        return TableTerm(TermKind.ID_ALIAS)
    if iri == "@type":
        return TableTerm(TermKind.TYPE_ALIAS)
    if definition.get("reverse") or not isinstance(iri, str) or not iri.startswith(ABSOLUTE):
        return None
    container = [c for c in definition.get("@container", []) if c != "@set"]
    if "@direction" in definition or "@nest" in definition or "@index" in definition:
        return None
    predicate, coercion = f"<{iri}>", definition.get("@type")
    scoped = definition.get("@context") is not None
    if container == ["@language"] and coercion is None:
        return TableTerm(TermKind.LANGUAGE_MAP, predicate)
    if container:
        return None
    if coercion == "@id":
        return TableTerm(TermKind.IRI, predicate, scoped=scoped)
    if coercion == "@vocab":
        return TableTerm(TermKind.VOCAB, predicate, values=_vocab_values(build, active, definition),
                         scoped=True)  # fmt: skip
    if isinstance(coercion, str) and coercion.startswith(ABSOLUTE):
        datatype = build.check_iri(coercion)
        return TableTerm(TermKind.TYPED, predicate, datatype=datatype, scoped=scoped)
    if coercion is not None:
        return None  # @json, @none
    language = definition.get("@language")
    if language is not None:
        fixed = build.check_language(language.lower())
        return TableTerm(TermKind.PLAIN, predicate, language=fixed, scoped=scoped)
    return TableTerm(TermKind.PLAIN, predicate, scoped=scoped)


def _vocab_values(build: _Build, active: Any, definition: Mapping[str, Any]) -> dict[str, str]:
    scope = active
    if definition.get("@context") is not None:
        scope = build.processor.process_context(active, definition["@context"], build.options)
    return {
        name: f"<{build.check_iri(value['@id'])}>"
        for name, value in scope["mappings"].items()
        if value and isinstance(value.get("@id"), str) and value["@id"].startswith(ABSOLUTE)
    }


def table_to_json(table: TermTable) -> dict[str, Any]:
    """The table as JSON-ready data (sorted, so that a regenerated file compares equal)."""
    return {
        "terms": {name: _term_to_json(term) for name, term in sorted(table.terms.items())},
        "types": dict(sorted(table.types.items())),
        "prefixes": dict(sorted(table.prefixes.items())),
        "type_scoped": {
            name: table_to_json(scoped) for name, scoped in sorted(table.type_scoped.items())
        },
        "graphs": dict(sorted(table.graphs.items())),
    }


def _term_to_json(term: TableTerm) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": term.kind.value}
    if term.predicate:
        data["predicate"] = term.predicate
    for name in ("datatype", "language"):
        if getattr(term, name) is not None:
            data[name] = getattr(term, name)
    if term.values:
        data["values"] = dict(sorted(term.values.items()))
    if term.scoped:
        data["scoped"] = True
    return data


def table_from_json(data: Mapping[str, Any], *, _shared: dict[str, Any] | None = None) -> TermTable:
    """The table back from `table_to_json`. A type-scoped table repeats most of its
    parent's terms; equal terms and maps are made once (the small node keeps the tables
    for its lifetime, and the type-scoped copies were most of their memory)."""
    shared: dict[str, Any] = {} if _shared is None else _shared

    def once(value: Any, make: Callable[[], Any]) -> Any:
        key = json.dumps(value, sort_keys=True)
        if key not in shared:
            shared[key] = make()
        return shared[key]

    terms = {name: once(term, lambda term=term: _term_from_json(term))
             for name, term in data["terms"].items()}  # fmt: skip
    type_scoped = {
        name: table_from_json(scoped, _shared=shared)
        for name, scoped in data["type_scoped"].items()
    }
    types = once({"types": data["types"]}, lambda: dict(data["types"]))
    prefixes = once({"prefixes": data["prefixes"]}, lambda: dict(data["prefixes"]))
    return TermTable(terms, types, prefixes, type_scoped, dict(data["graphs"]))


def _term_from_json(term: Mapping[str, Any]) -> TableTerm:
    return TableTerm(
        kind=TermKind(term["kind"]),
        predicate=term.get("predicate", ""),
        datatype=term.get("datatype"),
        language=term.get("language"),
        values=dict(term.get("values", {})),
        scoped=bool(term.get("scoped", False)),
    )
