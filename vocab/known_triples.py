"""The validator's fast path: a compacted document in a known ``@context`` → its triples.

What pyld's `to_rdf` (with the bundled contexts) would give for the default graph, made
by walking the document through a precompiled term table (`vocab.context_walk` with
``PYLD_RULES``, over `vocab.context_table`) instead of processing the contexts: a node
validating its own documents never imports pyld. A ``proof`` (an ``@graph`` container)
becomes a blank node naming a graph of its own, as in pyld; only the default graph is
returned. Anything the table does not cover — an unknown key, a list, a value object, a
float, a relative IRI, a null — raises `NotOnFastPath`, and the caller takes pyld's path.

The triples are the same as pyld's *and in the same order* with the same blank node
labels (pyld numbers blank nodes ``_:b0, _:b1, …`` depth first, properties sorted by
IRI; it writes subjects and predicates sorted, and drops a value equal to one already
there), so a validation report comes out identical; a test compares both paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vocab.context_table import NotOnFastPath, TermTable
from vocab.context_walk import WalkRules, walk
from vocab.shacl import RDF_LANG_STRING, RDF_TYPE, XSD_NS, XSD_STRING, DataGraph, Term

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
        # The same tables by their list of context URLs: looking a document's list up as a
        # tuple is cheaper than its context_key (json.dumps) per document.
        self._by_urls = {
            tuple(context): table
            for key, table in self._tables.items()
            if isinstance(context := json.loads(key), list)
            and all(isinstance(url, str) for url in context)
        }

    def data_graph(self, document: Mapping[str, Any]) -> DataGraph | None:
        """The default graph's triples as pyld would give them, or None where pyld must."""
        table = self._table(document.get("@context"))
        if table is None:
            return None
        try:
            emitter = _TriplesEmitter()
            walk(document, table, emitter, PYLD_RULES)
            triples = list(emitter.triples())
        except (NotOnFastPath, RecursionError):  # pyld reports a too deeply nested document
            return None
        data = DataGraph()
        for subject, predicate, obj in triples:
            data.add(subject, predicate, obj)
        return data

    def _table(self, context: Any) -> TermTable | None:
        if isinstance(context, list):
            try:
                return self._by_urls[tuple(context)]
            except (KeyError, TypeError):  # another list, or one with an object (unhashable)
                pass
        try:
            return self._tables.get(context_key(context))
        except (TypeError, ValueError):  # not JSON (a document built in Python): pyld says why
            return None


# What pyld compares to drop a repeated value of one subject and predicate: ("id", iri)
# for a node or IRI; for a literal the expanded JSON value (so "5" and 5 differ, even
# where both become "5"^^xsd:integer), a boolean never equal to a number, the coerced
# datatype and the language.
_DuplicateKey = tuple[Any, ...]
_Object = tuple[Term, _DuplicateKey]
_DEFAULT = "@default"
# The validator's walk: pyld's order and labels; nulls and several type keys go to pyld.
PYLD_RULES = WalkRules(
    pyld_order=True,
    refuse_nulls=True,
    expand_compact_ids=True,
    skipped_at_top=frozenset({"@context"}),
)


class _TriplesEmitter:
    """Records pyld's node map: graph name -> subject -> predicate -> objects. Only
    "@default" is validated; the blank-node graphs of @graph containers (a proof) are
    walked for pyld's labels and dropped."""

    def __init__(self) -> None:
        self._graphs: dict[str, dict[Term, dict[str, list[Term]]]] = {_DEFAULT: {}}
        self._graph = _DEFAULT
        self._seen: set[tuple[str, Term, str, _DuplicateKey]] = set()  # pyld's duplicates
        self._labels = 0

    def triples(self) -> Iterator[Triple]:
        """pyld's order: subjects, then predicates sorted (@type first), values as added."""
        nodes = self._graphs[_DEFAULT]
        for subject in sorted(nodes, key=lambda term: term.value):
            properties = nodes[subject]
            for key in sorted(properties):
                predicate = RDF_TYPE if key == _TYPE else key
                for obj in properties[key]:
                    yield subject, predicate, obj

    def check_iri(self, iri: str) -> str:
        # pyld drops triples with other IRIs (relative, blank node ids): pyld's path
        if iri.startswith("_:") or not _ABSOLUTE_IRI.fullmatch(iri):
            raise NotOnFastPath("not an absolute IRI")
        return iri

    def check_language(self, tag: str) -> str:
        if not _LANGUAGE_TAG.fullmatch(tag):
            raise NotOnFastPath("language tag not in lower case, invalid, or @none")
        return tag

    def named(self, iri: str) -> Term:
        return Term("iri", iri[1:-1])

    def blank(self) -> Term:
        label = Term("bnode", f"_:b{self._labels}")  # pyld numbers them depth first
        self._labels += 1
        return label

    def node_object(self, subject: Term) -> _Object:
        return subject, ("id", subject.value)

    def iri_object(self, iri: str) -> _Object:
        return Term("iri", iri[1:-1]), ("id", iri[1:-1])

    def string(self, value: str, datatype: str | None, language: str | None) -> _Object:
        if datatype is not None:
            term = Term("literal", value, datatype)
        elif language is not None:
            term = Term("literal", value, RDF_LANG_STRING, language)
        else:
            term = Term("literal", value, XSD_STRING)
        return term, ("value", value, False, datatype, language)

    def integer(self, value: int, datatype: str | None) -> _Object:
        term = Term("literal", str(value), datatype or XSD_NS + "integer")
        return term, ("value", value, False, datatype, None)

    def boolean(self, value: bool) -> _Object:
        term = Term("literal", "true" if value else "false", XSD_NS + "boolean")
        return term, ("value", value, True, None, None)

    def add(self, subject: Term, predicate: str, obj: _Object) -> None:
        self._add(subject, predicate[1:-1], obj)

    def add_type(self, subject: Term, type_iri: _Object) -> None:
        self._add(subject, _TYPE, type_iri)

    @contextmanager
    def graph(self, name: Term) -> Iterator[None]:
        outer, self._graph = self._graph, name.value
        self._graphs[name.value] = {}
        yield
        self._graph = outer

    def _add(self, subject: Term, predicate: str, obj: _Object) -> None:
        term, duplicate_key = obj
        seen = (self._graph, subject, predicate, duplicate_key)
        if seen in self._seen:
            return
        self._seen.add(seen)
        self._graphs[self._graph].setdefault(subject, {}).setdefault(predicate, []).append(term)
