"""One walk of a compacted JSON-LD document through a term table, for two emitters.

Both known-context fast paths turn a document in a known ``@context`` into RDF by looking
its keys up in a term table (`vocab.context_table`): the validator's triples
(`vocab.known_triples`, pyld's triples in pyld's order) and the hub's N-Quads text
(`node.hub.known_context`). The `Walker` decides the document's structure once — which
key holds the id, the types and their type-scoped table, which values are node objects,
IRIs, literals, language maps or ``@graph`` containers, and what the tables do not cover
(`NotOnFastPath`: the caller takes the general JSON-LD path) — and calls an `Emitter`,
which spells the RDF terms and records the statements.

Where the two paths differ on purpose, the difference is a named `WalkRules` field or an
emitter's own method (IRI and language tag checks, how a graph container is taken), each
with its reason. IRIs travel in the table's spelling, ``"<iri>"``.

No pyld, rdflib or pyoxigraph here: a small node validates its own documents with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from vocab.context_table import NotOnFastPath, TableTerm, TermKind, TermTable, expand_compact

MAX_SAFE_INTEGER = 10**21  # JSON-LD writes larger numbers as xsd:double
XSD_DOUBLE = "http://www.w3.org/2001/XMLSchema#double"

SubjectT = TypeVar("SubjectT")  # an emitter's subject term
ObjectT = TypeVar("ObjectT")  # an emitter's object term


class Emitter(Protocol[SubjectT, ObjectT]):
    """Spells RDF terms and records statements; raises NotOnFastPath where it cannot."""

    def check_iri(self, iri: str) -> str:
        """``iri`` (expanded, without brackets) if it may stand as an IRI here."""

    def check_language(self, tag: str) -> str:
        """A language map's key as the language tag to write."""

    def named(self, iri: str) -> SubjectT:
        """The subject term of a node with an id (``"<iri>"``)."""

    def blank(self) -> SubjectT:
        """A new blank node."""

    def node_object(self, subject: SubjectT) -> ObjectT:
        """A node object as the value of a property of another node."""

    def iri_object(self, iri: str) -> ObjectT:
        """An IRI value (``"<iri>"``)."""

    def string(self, value: str, datatype: str | None, language: str | None) -> ObjectT:
        """A string, with the term's coerced datatype or fixed language (None: neither)."""

    def integer(self, value: int, datatype: str | None) -> ObjectT:
        """An integer, with the term's coerced datatype (None: xsd:integer)."""

    def boolean(self, value: bool) -> ObjectT: ...

    def add(self, subject: SubjectT, predicate: str, obj: ObjectT) -> None:
        """Record a statement; ``predicate`` as ``"<iri>"``."""

    def add_type(self, subject: SubjectT, type_iri: ObjectT) -> None:
        """Record an rdf:type statement (kept apart: pyld orders types before properties)."""

    def graph(self, name: SubjectT) -> AbstractContextManager[None]:
        """Record what the walker emits inside as the named graph ``name`` (an ``@graph``
        container's value), or raise NotOnFastPath where graphs are not taken."""


@dataclass(frozen=True)
class WalkRules:
    """Where the two fast paths walk differently, on purpose."""

    # pyld's order: keys sorted, values grouped by predicate IRI, language maps sorted —
    # pyld labels blank nodes depth first in this order, and the validator's triples must
    # carry pyld's labels. Several keys aliasing @type are refused (pyld merges them in an
    # order not modelled here). Otherwise: document order (cheaper; N-Quads need no order).
    pyld_order: bool
    # A key whose value is null, anywhere in a node object: refused (the validator: pyld's
    # handling of nulls, such as an error for a null type, is not modelled; pyld reports)
    # or left out, as JSON-LD leaves a null value out (the hub).
    refuse_nulls: bool
    # Compact IRIs ("pn:x") in ids and in values of "@type": "@id" terms: expanded, as pyld
    # does (validator); or, as the hub's path always did, left as they are — such a value
    # is not an absolute http(s) IRI, so Oxigraph's JSON-LD parser converts the document.
    expand_compact_ids: bool
    # Keys of the top node not walked: "@context" always; the hub leaves the proof out
    # too (an @graph container, not indexed: see node.hub.jsonld_quads).
    skipped_at_top: frozenset[str]


_NOTHING_SKIPPED: frozenset[str] = frozenset()


class Walker(Generic[SubjectT, ObjectT]):
    """Walks one document (a new walker per document) into one emitter."""

    __slots__ = ("_base", "_emit", "_rules")

    def __init__(
        self, base: TermTable, emitter: Emitter[SubjectT, ObjectT], rules: WalkRules
    ) -> None:
        self._base = base
        self._emit = emitter
        self._rules = rules

    def walk(self, document: Mapping[str, Any]) -> None:
        self._node(document, self._rules.skipped_at_top, None)

    def _node(
        self, node: Mapping[str, Any], skipped: frozenset[str], parent: tuple[SubjectT, str] | None
    ) -> None:
        """A node object's statements, depth first as pyld labels them: the parent's
        reference to it first (it may be the parent itself), its types, its values."""
        emit = self._emit
        if self._rules.refuse_nulls and None in node.values():
            raise NotOnFastPath("a null value")
        table, types = self._scope(node)
        subject = self._subject(node, table)
        if parent is not None:
            emit.add(parent[0], parent[1], emit.node_object(subject))
        for type_value in types:
            emit.add_type(subject, emit.iri_object(self._type_iri(type_value)))
        for predicate, term, value in self._entries(node, table, skipped):
            items = value if isinstance(value, list) else (value,)
            if term is None:
                for item in items:
                    self._graph_value(subject, predicate, item)
            elif term.kind is TermKind.LANGUAGE_MAP:
                if value is not None:  # a list here was refused by _entries
                    self._language_map(subject, predicate, value)
            else:
                for item in items:
                    if item is None:
                        continue
                    if isinstance(item, str):  # the most common value: no ABC check for it
                        emit.add(subject, predicate, self._scalar(term, item, table))
                    elif isinstance(item, Mapping):
                        if term.scoped or any(key.startswith("@") for key in item):
                            raise NotOnFastPath("value object or scoped node")
                        self._node(item, _NOTHING_SKIPPED, (subject, predicate))
                    elif isinstance(item, list):
                        raise NotOnFastPath("nested array")
                    else:
                        emit.add(subject, predicate, self._scalar(term, item, table))

    def _scope(self, node: Mapping[str, Any]) -> tuple[TermTable, list[Any]]:
        """The node's types, and the table its keys are read in (a type-scoped one)."""
        base = self._base
        types: list[Any] = []
        type_keys = 0
        for key in base.type_keys:  # loops, not comprehensions: this runs for every node
            if key in node:
                type_keys += 1
                value = node[key]
                # not _as_list: a null type is invalid JSON-LD (pyld and Oxigraph refuse it)
                if isinstance(value, list):
                    types.extend(value)
                else:
                    types.append(value)
        if type_keys > 1 and self._rules.pyld_order:
            raise NotOnFastPath("several type keys")
        table = base
        for type_term in types:
            if not isinstance(type_term, str):
                raise NotOnFastPath("a type that is not a string, or null")
            if type_term in base.type_scoped:
                if len(types) > 1:
                    raise NotOnFastPath("several types with a scoped context")
                table = base.type_scoped[type_term]
        return table, types

    def _subject(self, node: Mapping[str, Any], table: TermTable) -> SubjectT:
        id_key = None
        for key in table.id_keys:
            if key in node:
                if id_key is not None:
                    raise NotOnFastPath("several ids")
                id_key = key
        if id_key is not None:
            return self._emit.named(self._iri(node[id_key], table, self._rules.expand_compact_ids))
        if not node:
            raise NotOnFastPath("empty node object")
        return self._emit.blank()

    def _entries(
        self, node: Mapping[str, Any], table: TermTable, skipped: frozenset[str]
    ) -> list[tuple[str, TableTerm | None, Any]]:
        """(predicate, term, value) of the node's keys other than id and type aliases, in
        the order they are walked; the term is None for an @graph container."""
        entries: list[tuple[str, TableTerm | None, Any]] = []
        for key in sorted(node) if self._rules.pyld_order else node:
            if key in skipped:
                continue
            value = node[key]
            term = table.terms.get(key)
            if term is None:
                graph = table.graphs.get(key)
                if graph is None:
                    raise NotOnFastPath(f"unknown key {key}")
                entries.append((graph, None, value))
                continue
            if term.kind is TermKind.ID_ALIAS or term.kind is TermKind.TYPE_ALIAS:
                continue
            if (
                term.kind is TermKind.LANGUAGE_MAP
                and value is not None
                and not isinstance(value, Mapping)
            ):
                # JSON-LD reads an array's items here as node objects, not language maps
                raise NotOnFastPath("a language map term with a value that is not an object")
            entries.append((term.predicate, term, value))
        if self._rules.pyld_order:
            entries.sort(key=_by_iri)  # stable: keys stay sorted within one predicate
        return entries

    def _scalar(self, term: TableTerm, value: Any, table: TermTable) -> ObjectT:
        emit = self._emit
        kind = term.kind
        if kind is TermKind.IRI:
            return emit.iri_object(self._iri(value, table, self._rules.expand_compact_ids))
        if kind is TermKind.VOCAB:
            if not isinstance(value, str):
                raise NotOnFastPath("vocab value is not a string")
            return emit.iri_object(term.values.get(value) or self._iri(value, table, True))
        if isinstance(value, str):
            return emit.string(value, term.datatype, term.language)
        if isinstance(value, bool):
            if term.datatype is not None:
                raise NotOnFastPath("coerced boolean")
            return emit.boolean(value)
        if isinstance(value, int):
            if abs(value) >= MAX_SAFE_INTEGER or term.datatype == XSD_DOUBLE:
                raise NotOnFastPath("number written as a double")
            return emit.integer(value, term.datatype)
        raise NotOnFastPath("float or other value")

    def _language_map(self, subject: SubjectT, predicate: str, value: Mapping[str, Any]) -> None:
        emit = self._emit
        for language in sorted(value) if self._rules.pyld_order else value:
            if not isinstance(language, str):
                raise NotOnFastPath("language tag is not a string")
            tag = emit.check_language(language)
            for text in _as_list(value[language]):
                if text is None:
                    continue
                if not isinstance(text, str):
                    raise NotOnFastPath("language map value is not a string")
                emit.add(subject, predicate, emit.string(text, None, tag))

    def _graph_value(self, subject: SubjectT, predicate: str, value: Any) -> None:
        """A value of an @graph container: a blank node naming a graph of its own, which
        holds the value's statements (pyld labels it, then what is in it, in this order)."""
        if not isinstance(value, Mapping):
            raise NotOnFastPath("an @graph container value that is not an object")
        name = self._emit.blank()
        self._emit.add(subject, predicate, self._emit.node_object(name))
        with self._emit.graph(name):
            self._node(value, _NOTHING_SKIPPED, None)

    def _type_iri(self, value: str) -> str:
        known = self._base.types.get(value)
        return known if known is not None else self._iri(value, self._base, True)

    def _iri(self, value: Any, table: TermTable, expand: bool) -> str:
        """``"<iri>"`` of an IRI value, checked by the emitter."""
        if not isinstance(value, str):
            raise NotOnFastPath("IRI value is not a string")
        if expand:
            value = expand_compact(value, table.prefixes)
        return f"<{self._emit.check_iri(value)}>"


def _by_iri(entry: tuple[str, TableTerm | None, Any]) -> str:
    return entry[0][1:-1]  # "<a#b>" sorts before "<a>", but "a" before "a#b", as in pyld


def _as_list(value: Any) -> list[Any] | tuple[Any, ...]:
    if value is None:
        return ()
    return value if isinstance(value, list) else (value,)


def walk(
    document: Mapping[str, Any],
    base: TermTable,
    emitter: Emitter[SubjectT, ObjectT],
    rules: WalkRules,
) -> None:
    """Walk ``document`` (its ``@context`` is the one ``base`` was built for) into ``emitter``."""
    Walker(base, emitter, rules).walk(document)
