"""The known-context fast path: compacted JSON-LD documents → N-Quads text in Python.

JSON-LD → RDF through a JSON-LD processor (Oxigraph's parser, or pyld) spends most
of its time on context processing and expansion that come out the same for every
document carrying our bundled contexts. Here the ``@context`` is processed once (by
pyld, offline, from the bundled documents) into a table of terms (``vocab.context_table``,
shared with the validator's fast path), and each document is turned into N-Quads lines
by looking its keys up in that table.

Only the shapes whose RDF is unambiguous are handled: terms mapping to an IRI with
``@type`` ``@id``, ``@vocab`` (a string value), a datatype, or a fixed ``@language``;
``@language`` maps; ``@set`` or no container; nested node objects (blank nodes, or
IRIs when they carry an ``id``) with their type-scoped contexts; strings, integers and
booleans. Anything else — an unknown key, ``@list``, a value object, a float, a
relative IRI, a property-scoped context on a node value, a default ``@language`` — makes
``nquads`` return None, and the caller takes the general JSON-LD path. Tests compare
the output with Oxigraph's JSON-LD parser on the same documents.

IRIs and language tags are checked with Oxigraph's own constructors, so a chunk of
these lines never fails to load because of one document.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import pyoxigraph as ox
from pyld import jsonld

from vocab.context_table import ABSOLUTE as _ABSOLUTE
from vocab.context_table import ContextLoader, NotOnFastPath, build_table
from vocab.context_table import TableTerm as _Term
from vocab.context_table import TermKind as _Kind
from vocab.context_table import TermTable as _Table
from vocab.context_table import expand_compact as _expand_compact

RDF_TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
XSD = "http://www.w3.org/2001/XMLSchema#"
MAX_SAFE_INTEGER = 10**21  # JSON-LD writes larger numbers as xsd:double
# JSON string syntax (\" \\ \n \r \t \b \f \u00XX) is valid N-Quads string syntax too.
_quoted: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


class KnownContextConverter:
    """Documents → N-Quads lines, for the ``@context`` values it can process offline."""

    def __init__(self, load_context: ContextLoader) -> None:
        self._load_context = load_context
        self._tables: dict[str, _Table | None] = {}
        self._blank_prefix = f"k{os.urandom(6).hex()}n"  # unique across loads into one store
        self._blank_counter = itertools.count()
        self._checked_iris: set[str] = set()

    def nquads(self, document: Mapping[str, Any], graph: str | None) -> str | None:
        """The document's quads in ``graph`` (None: the default graph) as N-Quads text,
        or None where the general path must convert it."""
        table = self._table(document.get("@context"))
        if table is None:
            return None
        lines: list[str] = []
        try:
            tail = " .\n" if graph is None else f" <{self._iri(graph)}> .\n"
            _Writer(self, table, lines, tail).node(document, top=True)
            text = "".join(lines)
            text.encode("utf-8")  # lone surrogates from JSON cannot be written
        except (NotOnFastPath, UnicodeEncodeError):
            return None
        return text

    def blank(self) -> str:
        return f"_:{self._blank_prefix}{next(self._blank_counter)}"

    def _iri(self, value: Any) -> str:
        if not isinstance(value, str) or not value.startswith(_ABSOLUTE):
            raise NotOnFastPath("not an absolute http(s) IRI")
        if value not in self._checked_iris:
            try:
                ox.NamedNode(value)
            except ValueError:
                raise NotOnFastPath("not a valid IRI") from None
            if len(self._checked_iris) < 100_000:
                self._checked_iris.add(value)
        return value

    def _table(self, context: Any) -> _Table | None:
        key = json.dumps(context, sort_keys=True)
        if key not in self._tables:
            try:
                self._tables[key] = _build_table(context, self._load_context) if len(self._tables) < 64 else None
            except (jsonld.JsonLdError, NotOnFastPath, KeyError, TypeError, ValueError):
                self._tables[key] = None
        return self._tables[key]


class _Writer:
    def __init__(self, converter: KnownContextConverter, base: _Table, lines: list[str], tail: str) -> None:
        self._converter = converter
        self._base = base
        self._lines = lines
        self._tail = tail  # " <graph> .\n"

    def node(self, node: Mapping[str, Any], *, top: bool = False) -> str:
        """Write a node object's quads; its subject term."""
        table = self._base
        types = [t for key in _keys_of(node, table, _Kind.TYPE_ALIAS) for t in _as_list(node[key])]
        for type_term in sorted(t for t in types if isinstance(t, str)):
            if type_term in table.type_scoped:
                if len(types) > 1:
                    raise NotOnFastPath("several types with a scoped context")
                table = table.type_scoped[type_term]
        subject = self._subject(node, table)
        for key, value in node.items():
            if top and key in ("@context", "proof"):
                continue  # the proof is an @graph container: not indexed
            term = table.terms.get(key)
            if term is None:
                raise NotOnFastPath(f"unknown key {key}")
            if term.kind is _Kind.ID_ALIAS:
                continue
            if term.kind is _Kind.TYPE_ALIAS:
                for type_value in _as_list(value):
                    self._emit(subject, RDF_TYPE, self._type_iri(type_value))
                continue
            if term.kind is _Kind.LANGUAGE_MAP and isinstance(value, list):
                # JSON-LD reads an array's items here as node objects, not language maps
                raise NotOnFastPath("an array given for a language map")
            for item in _as_list(value):
                self._property(subject, term, item, table)
        return subject

    def _subject(self, node: Mapping[str, Any], table: _Table) -> str:
        ids = _keys_of(node, table, _Kind.ID_ALIAS)
        if len(ids) > 1:
            raise NotOnFastPath("several ids")
        if ids:
            return f"<{self._converter._iri(node[ids[0]])}>"
        if not node:
            raise NotOnFastPath("empty node object")
        return self._converter.blank()

    def _type_iri(self, value: Any) -> str:
        if not isinstance(value, str):
            raise NotOnFastPath("type is not a string")
        known = self._base.types.get(value)
        if known is not None:
            return known
        return f"<{self._converter._iri(_expand_compact(value, self._base.prefixes))}>"

    def _property(self, subject: str, term: _Term, value: Any, table: _Table) -> None:
        if value is None:
            return
        if isinstance(value, list):
            raise NotOnFastPath("nested array")
        if term.kind is _Kind.LANGUAGE_MAP:
            self._language_map(subject, term, value)
            return
        if isinstance(value, Mapping):
            if term.scoped or any(key.startswith("@") and key not in ("@id", "@type") for key in value):
                raise NotOnFastPath("value object or scoped node")
            self._emit(subject, term.predicate, self.node(value))
            return
        self._emit(subject, term.predicate, self._object(term, value, table))

    def _object(self, term: _Term, value: Any, table: _Table) -> str:
        if term.kind is _Kind.IRI:
            if not isinstance(value, str):
                raise NotOnFastPath("IRI value is not a string")
            return f"<{self._converter._iri(value)}>"
        if term.kind is _Kind.VOCAB:
            if not isinstance(value, str):
                raise NotOnFastPath("vocab value is not a string")
            known = term.values.get(value)
            return known or f"<{self._converter._iri(_expand_compact(value, table.prefixes))}>"
        if isinstance(value, bool):
            if term.datatype is not None:
                raise NotOnFastPath("coerced boolean")
            return f'"{"true" if value else "false"}"^^<{XSD}boolean>'
        if isinstance(value, int):
            if abs(value) >= MAX_SAFE_INTEGER or term.datatype == f"{XSD}double":
                raise NotOnFastPath("number written as a double")
            return f'"{value}"^^<{term.datatype or XSD + "integer"}>'
        if not isinstance(value, str):
            raise NotOnFastPath("float or other value")
        literal = _quoted(value)
        if term.datatype is not None:
            return f"{literal}^^<{term.datatype}>"
        if term.language is not None:
            return f"{literal}@{term.language}"
        return literal

    def _language_map(self, subject: str, term: _Term, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise NotOnFastPath("language map is not an object")
        for language, texts in value.items():
            tag = _checked_language(language)
            for text in _as_list(texts):
                if text is None:
                    continue
                if not isinstance(text, str):
                    raise NotOnFastPath("language map value is not a string")
                self._emit(subject, term.predicate, _quoted(text) + "@" + tag)

    def _emit(self, subject: str, predicate: str, obj: str) -> None:
        self._lines.append(f"{subject} {predicate} {obj}{self._tail}")


def _keys_of(node: Mapping[str, Any], table: _Table, kind: _Kind) -> list[str]:
    return [key for key in node if (term := table.terms.get(key)) is not None and term.kind is kind]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_LANGUAGES: dict[str, str] = {}


def _checked_language(tag: Any) -> str:
    """A language tag exactly as Oxigraph keeps it (lower case), or NotOnFastPath."""
    if not isinstance(tag, str) or tag != tag.lower() or tag.startswith("@"):
        raise NotOnFastPath("language tag not in lower case, or @none")
    if tag not in _LANGUAGES:
        try:
            ox.Literal("", language=tag)
        except ValueError:
            raise NotOnFastPath("invalid language tag") from None
        _LANGUAGES[tag] = tag
    return tag


def _check_iri(iri: str) -> str:
    """Context IRIs are checked once, so the lines can be bulk loaded without checks."""
    try:
        ox.NamedNode(iri)
    except ValueError:
        raise NotOnFastPath(f"the context maps to an invalid IRI {iri}") from None
    return iri


def _build_table(context: Any, load_context: ContextLoader) -> _Table:
    # IRIs and language tags of the context are checked by Oxigraph, as the documents' are.
    return build_table(
        context, load_context, check_iri=_check_iri, check_language=_checked_language
    )
