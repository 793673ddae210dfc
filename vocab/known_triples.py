"""The validator's fast path: a compacted document in a known ``@context`` → its triples.

What pyld's `to_rdf` (with the bundled contexts) would give for the default graph, made
by looking the document's keys up in a precompiled term table (`vocab.context_table`)
instead of processing the contexts: a node validating its own documents never imports
pyld. A ``proof`` (an ``@graph`` container) becomes a blank node naming a graph of its
own, as in pyld; only the default graph is returned. Anything the table does not cover —
an unknown key, a list, a value object, a float, a relative IRI — raises
`NotOnFastPath`, and the caller takes pyld's path.

The triples are the same as pyld's *and in the same order* with the same blank node
labels (pyld numbers blank nodes ``_:b0, _:b1, …`` depth first, properties sorted by
IRI; it writes subjects and predicates sorted, and drops a value equal to one already
there), so a validation report comes out identical; a test compares both paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from vocab.context_table import (
    NotOnFastPath,
    TableTerm,
    TermKind,
    TermTable,
    expand_compact,
)
from vocab.shacl import RDF_LANG_STRING, RDF_TYPE, XSD_NS, XSD_STRING, DataGraph, Term

MAX_SAFE_INTEGER = 10**21  # JSON-LD writes larger numbers as xsd:double
# pyld's test for an absolute IRI (it drops triples with other IRIs; those documents
# take its path): a scheme, a colon, no white space.
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+-.]*:\S*")
_LANGUAGE_TAG = re.compile(r"[a-z]{1,8}(-[a-z0-9]{1,8})*")
_TYPE = "@type"  # sorts before every IRI, as in pyld's node map
Triple = tuple[Term, str, Term]


def context_key(context: Any) -> str:
    """How a ``@context`` value is looked up among the tables."""
    return json.dumps(context, sort_keys=True)


class KnownContextTriples:
    """Documents → triples, for the ``@context`` values it has tables for."""

    def __init__(self, tables: Mapping[str, TermTable]) -> None:
        self._tables = dict(tables)  # context_key -> table

    def data_graph(self, document: Mapping[str, Any]) -> DataGraph | None:
        """The default graph's triples as pyld would give them, or None where pyld must."""
        try:
            table = self._tables.get(context_key(document.get("@context")))
        except (TypeError, ValueError):  # not JSON (a document built in Python): pyld says why
            return None
        if table is None:
            return None
        try:
            triples = list(_Writer(table).triples(document))
        except (NotOnFastPath, RecursionError):  # pyld reports a too deeply nested document
            return None
        data = DataGraph()
        for subject, predicate, obj in triples:
            data.add(subject, predicate, obj)
        return data


class _Writer:
    def __init__(self, base: TermTable) -> None:
        self._base = base
        # graph name -> subject -> predicate -> objects; "@default" is what is validated,
        # the blank-node graphs of @graph containers (a proof) only take their labels
        self._graphs: dict[str, dict[Term, dict[str, list[Term]]]] = {"@default": {}}
        self._graph = "@default"
        self._seen: set[tuple[str, Term, str, tuple[Any, ...]]] = set()  # pyld's duplicates
        self._labels = 0

    def triples(self, document: Mapping[str, Any]) -> Iterator[Triple]:
        self._node(document, top=True)
        nodes = self._graphs["@default"]
        for subject in sorted(nodes, key=lambda term: term.value):
            properties = nodes[subject]
            for key in sorted(properties):
                predicate = RDF_TYPE if key == _TYPE else key
                for obj in properties[key]:
                    yield subject, predicate, obj

    def _node(
        self, node: Mapping[str, Any], *, top: bool = False, parent: tuple[Term, str] | None = None
    ) -> None:
        """Record a node object's triples, depth first as pyld labels them: the parent's
        reference to it first (it may be the parent itself), then its own values."""
        table = self._base
        type_keys = _keys_of(node, table, TermKind.TYPE_ALIAS)
        if len(type_keys) > 1:
            raise NotOnFastPath("several type keys")
        types = [t for key in type_keys for t in _as_list(node[key])]
        if type_keys and not all(isinstance(t, str) for t in types) or None in node.values():
            raise NotOnFastPath("a type that is not a string, or a null")
        for type_term in sorted(t for t in types if isinstance(t, str)):
            if type_term in table.type_scoped:
                if len(types) > 1:
                    raise NotOnFastPath("several types with a scoped context")
                table = table.type_scoped[type_term]
        subject = self._subject(node, table)
        if parent is not None:
            self._add(parent[0], parent[1], subject, ("id", subject.value))
        for type_value in types:
            type_iri = self._type_iri(type_value)
            self._add(subject, _TYPE, type_iri, ("id", type_iri.value))
        for predicate, values in self._grouped(node, table, top):
            for term, value in values:
                if term is None:
                    self._graph_value(subject, predicate, value)
                else:
                    self._property(subject, predicate, term, value, table)

    def _grouped(
        self, node: Mapping[str, Any], table: TermTable, top: bool
    ) -> list[tuple[str, list[tuple[TableTerm | None, Any]]]]:
        """Values by predicate IRI, sorted by IRI; within one, keys in sorted order.
        The term is None for an @graph container."""
        grouped: dict[str, list[tuple[TableTerm | None, Any]]] = {}
        for key in sorted(node):
            if top and key == "@context":
                continue
            term = table.terms.get(key)
            if term is None and key in table.graphs:
                graph_values = grouped.setdefault(table.graphs[key][1:-1], [])
                graph_values.extend((None, item) for item in _as_list(node[key]))
                continue
            if term is None:
                raise NotOnFastPath(f"unknown key {key}")
            if term.kind in (TermKind.ID_ALIAS, TermKind.TYPE_ALIAS):
                continue
            if term.kind is TermKind.LANGUAGE_MAP and not isinstance(node[key], Mapping):
                raise NotOnFastPath("a language map term with a value that is not an object")
            values = grouped.setdefault(term.predicate[1:-1], [])
            values.extend((term, item) for item in _as_list(node[key]))
        return sorted(grouped.items())

    def _subject(self, node: Mapping[str, Any], table: TermTable) -> Term:
        ids = _keys_of(node, table, TermKind.ID_ALIAS)
        if len(ids) > 1:
            raise NotOnFastPath("several ids")
        if ids:
            subject = Term("iri", _iri(node[ids[0]], table.prefixes))
        elif not node:
            raise NotOnFastPath("empty node object")
        else:
            subject = self._blank()
        self._graphs[self._graph].setdefault(subject, {})
        return subject

    def _blank(self) -> Term:
        label = Term("bnode", f"_:b{self._labels}")
        self._labels += 1
        return label

    def _type_iri(self, value: Any) -> Term:
        if not isinstance(value, str):
            raise NotOnFastPath("type is not a string")
        known = self._base.types.get(value)
        if known is not None:
            return Term("iri", known[1:-1])
        return Term("iri", _iri(value, self._base.prefixes))

    def _add(self, subject: Term, predicate: str, obj: Term, key: tuple[Any, ...]) -> None:
        if (self._graph, subject, predicate, key) in self._seen:
            return
        self._seen.add((self._graph, subject, predicate, key))
        self._graphs[self._graph][subject].setdefault(predicate, []).append(obj)

    def _graph_value(self, subject: Term, predicate: str, value: Any) -> None:
        """A value of an @graph container: a blank node naming a graph of its own, which
        holds the value's triples (pyld labels it, then what is in it, in this order)."""
        if not isinstance(value, Mapping):
            raise NotOnFastPath("an @graph container value that is not an object")
        name = self._blank()
        self._add(subject, predicate, name, ("id", name.value))
        outer, self._graph = self._graph, name.value
        self._graphs[name.value] = {}
        self._node(value)
        self._graph = outer

    def _property(
        self, subject: Term, predicate: str, term: TableTerm, value: Any, table: TermTable
    ) -> None:
        if value is None:
            return
        if isinstance(value, list):
            raise NotOnFastPath("nested array")
        if term.kind is TermKind.LANGUAGE_MAP:
            self._language_map(subject, predicate, value)
            return
        if isinstance(value, Mapping):
            if term.scoped or any(key.startswith("@") for key in value):
                raise NotOnFastPath("value object or scoped node")
            self._node(value, parent=(subject, predicate))
            return
        obj, key = _object(term, value, table)
        self._add(subject, predicate, obj, key)

    def _language_map(self, subject: Term, predicate: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise NotOnFastPath("language map is not an object")
        for language in sorted(value):  # pyld expands a language map in sorted order
            tag = _checked_language(language)
            for text in _as_list(value[language]):
                if text is None:
                    continue
                if not isinstance(text, str):
                    raise NotOnFastPath("language map value is not a string")
                literal = Term("literal", text, RDF_LANG_STRING, tag)
                self._add(subject, predicate, literal, _value_key(text, None, tag))


def _object(term: TableTerm, value: Any, table: TermTable) -> tuple[Term, tuple[Any, ...]]:
    """The RDF term of a scalar value, and the key pyld compares for duplicates."""
    if term.kind is TermKind.IRI:
        iri = _iri(value, table.prefixes)
        return Term("iri", iri), ("id", iri)
    if term.kind is TermKind.VOCAB:
        if not isinstance(value, str):
            raise NotOnFastPath("vocab value is not a string")
        known = term.values.get(value)
        iri = known[1:-1] if known else _iri(value, table.prefixes)
        return Term("iri", iri), ("id", iri)
    if isinstance(value, bool):
        if term.datatype is not None:
            raise NotOnFastPath("coerced boolean")
        lexical = "true" if value else "false"
        return Term("literal", lexical, XSD_NS + "boolean"), _value_key(value, None, None)
    if isinstance(value, int):
        if abs(value) >= MAX_SAFE_INTEGER or term.datatype == XSD_NS + "double":
            raise NotOnFastPath("number written as a double")
        datatype = term.datatype or XSD_NS + "integer"
        return Term("literal", str(value), datatype), _value_key(value, term.datatype, None)
    if not isinstance(value, str):
        raise NotOnFastPath("float or other value")
    if term.datatype is not None:
        return Term("literal", value, term.datatype), _value_key(value, term.datatype, None)
    if term.language is not None:
        literal = Term("literal", value, RDF_LANG_STRING, term.language)
        return literal, _value_key(value, None, term.language)
    return Term("literal", value, XSD_STRING), _value_key(value, None, None)


def _value_key(value: Any, datatype: str | None, language: str | None) -> tuple[Any, ...]:
    """What pyld compares to drop a repeated value: the expanded JSON value (so ``"5"``
    and ``5`` differ, even where both become ``"5"^^xsd:integer``), a boolean never
    equal to a number, the coerced datatype and the language."""
    return ("value", value, isinstance(value, bool), datatype, language)


def _iri(value: Any, prefixes: Mapping[str, str]) -> str:
    """An IRI value as pyld expands it: a compact IRI with a known prefix, else as is;
    what is not then an absolute IRI (relative, a blank node, a term) takes pyld's path."""
    if not isinstance(value, str):
        raise NotOnFastPath("IRI value is not a string")
    iri = expand_compact(value, prefixes)
    if iri.startswith("_:") or not _ABSOLUTE_IRI.fullmatch(iri):
        raise NotOnFastPath("not an absolute IRI")
    return iri


def _checked_language(tag: Any) -> str:
    if not isinstance(tag, str) or not _LANGUAGE_TAG.fullmatch(tag):
        raise NotOnFastPath("language tag not in lower case, invalid, or @none")
    return tag


def _keys_of(node: Mapping[str, Any], table: TermTable, kind: TermKind) -> list[str]:
    return [key for key in node if (term := table.terms.get(key)) is not None and term.kind is kind]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
