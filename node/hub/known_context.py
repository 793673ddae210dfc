"""The known-context fast path: compacted JSON-LD documents → N-Quads text in Python.

JSON-LD → RDF through a JSON-LD processor (Oxigraph's parser, or pyld) spends most
of its time on context processing and expansion that come out the same for every
document carrying our bundled contexts. Here the ``@context`` is processed once (by
pyld, offline, from the bundled documents) into a table of terms (``vocab.context_table``),
and each document is walked through that table by the walker the validator's fast path
uses too (``vocab.context_walk``, with ``HUB_RULES``) into N-Quads lines (``_NQuadsEmitter``).

Only the shapes whose RDF is unambiguous are handled: terms mapping to an IRI with
``@type`` ``@id``, ``@vocab`` (a string value), a datatype, or a fixed ``@language``;
``@language`` maps; ``@set`` or no container; nested node objects (blank nodes, or
IRIs when they carry an ``id``) with their type-scoped contexts; strings, integers and
booleans. Anything else — an unknown key, ``@list``, a value object, a float, a
relative IRI, a property-scoped context on a node value, a default ``@language``, an
``@graph`` container below the top — makes ``nquads`` return None, and the caller takes
the general JSON-LD path. Tests compare the output with pyld's on the same documents.

IRIs and language tags are checked with Oxigraph's own constructors, so a chunk of
these lines never fails to load because of one document.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import pyoxigraph as ox
from pyld import jsonld

from vocab.context_table import ABSOLUTE as _ABSOLUTE
from vocab.context_table import ContextLoader, NotOnFastPath, build_table
from vocab.context_table import TermTable as _Table
from vocab.context_walk import WalkRules, walk

RDF_TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
XSD = "http://www.w3.org/2001/XMLSchema#"
_TRUE, _FALSE = f'"true"^^<{XSD}boolean>', f'"false"^^<{XSD}boolean>'
# Keys of a document the index leaves out: the proof is an @graph container (a graph of
# its own, outside the member's graph); the signed original is kept in SQL.
NOT_INDEXED = frozenset({"proof", "@context"})
MAX_TABLES = 64  # @context values a converter remembers (their table, or that there is none)


class _Recent(OrderedDict[Any, "_Table | None"]):
    """At most MAX_TABLES entries, the least recently used dropped first: documents with
    many other contexts (a member can send any inline context) must neither grow the
    converter nor crowd our own context off the fast path."""

    def get_recent(self, key: Any) -> _Table | None:
        value = self[key]  # KeyError: not kept
        self.move_to_end(key)
        return value

    def keep(self, key: Any, value: _Table | None) -> None:
        self[key] = value
        if len(self) > MAX_TABLES:
            self.popitem(last=False)
# JSON string syntax (\" \\ \n \r \t \b \f \u00XX) is valid N-Quads string syntax too.
_quoted: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


class KnownContextConverter:
    """Documents → N-Quads lines, for the ``@context`` values it can process offline."""

    def __init__(self, load_context: ContextLoader) -> None:
        self._load_context = load_context
        self._tables = _Recent()  # context as JSON -> its table
        self._tables_by_urls = _Recent()  # a list of context URLs, as a tuple -> its table
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
            walk(document, table, _NQuadsEmitter(self, lines, tail), HUB_RULES)
            text = "".join(lines)
            _check_encodable(text)
        except (NotOnFastPath, UnicodeEncodeError, RecursionError):
            return None  # RecursionError: nested deeper than the walk recurses; general path
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
        # A list of context URLs (every document of ours) is looked up as a tuple: making
        # the JSON key was about 5% of the fast path's time per document.
        if isinstance(context, list):
            try:
                return self._tables_by_urls.get_recent(tuple(context))
            except (KeyError, TypeError):  # not seen yet, or an inline context (unhashable)
                pass
        table = self._table_by_json(context)
        if isinstance(context, list) and all(type(url) is str for url in context):
            self._tables_by_urls.keep(tuple(context), table)
        return table

    def _table_by_json(self, context: Any) -> _Table | None:
        key = json.dumps(context, sort_keys=True)
        try:
            return self._tables.get_recent(key)
        except KeyError:
            pass
        try:
            table: _Table | None = _build_table(context, self._load_context)
        except (jsonld.JsonLdError, NotOnFastPath, KeyError, TypeError, ValueError):
            table = None
        self._tables.keep(key, table)
        return table


# The hub's walk: document order (N-Quads need none), nulls left out as JSON-LD leaves
# them out, ids as written, the proof not indexed.
HUB_RULES = WalkRules(
    pyld_order=False, refuse_nulls=False, expand_compact_ids=False, skipped_at_top=NOT_INDEXED
)


class _NQuadsEmitter:
    """N-Quads lines into ``lines``; terms are their N-Quads spelling."""

    __slots__ = ("_converter", "_lines", "_tail")

    def __init__(self, converter: KnownContextConverter, lines: list[str], tail: str) -> None:
        self._converter = converter
        self._lines = lines
        self._tail = tail  # " <graph> .\n"

    def check_iri(self, iri: str) -> str:
        return self._converter._iri(iri)

    def check_language(self, tag: str) -> str:
        return _checked_language(tag)

    def named(self, iri: str) -> str:
        return iri

    def blank(self) -> str:
        return self._converter.blank()

    def node_object(self, subject: str) -> str:
        return subject

    def iri_object(self, iri: str) -> str:
        return iri

    def string(self, value: str, datatype: str | None, language: str | None) -> str:
        if datatype is not None:
            return f"{_quoted(value)}^^<{datatype}>"
        if language is not None:
            return f"{_quoted(value)}@{language}"
        return _quoted(value)

    def integer(self, value: int, datatype: str | None) -> str:
        return f'"{value}"^^<{datatype or XSD + "integer"}>'

    def boolean(self, value: bool) -> str:
        return _TRUE if value else _FALSE

    def add(self, subject: str, predicate: str, obj: str) -> None:
        self._lines.append(f"{subject} {predicate} {obj}{self._tail}")

    def add_type(self, subject: str, type_iri: str) -> None:
        self._lines.append(f"{subject} {RDF_TYPE} {type_iri}{self._tail}")

    def graph(self, name: str) -> AbstractContextManager[None]:
        # The index holds one graph per member: a proof is left out at the top
        # (HUB_RULES), and an @graph container anywhere else takes the general path.
        raise NotOnFastPath("an @graph container below the top")


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
        if len(_LANGUAGES) < 10_000:  # tags come from documents: the cache stays bounded
            _LANGUAGES[tag] = tag
    return tag


def _check_encodable(text: str) -> None:
    """UnicodeEncodeError where ``text`` holds a lone surrogate (JSON can carry one; UTF-8,
    and so Oxigraph, cannot). Why not just encode as UTF-8: that took 6-8 µs of a practice's
    ~65 µs; a text that is ASCII, or encodes as Latin-1 (German text without typographic
    quotes), cannot hold a surrogate, and those checks take well under 1 µs."""
    if text.isascii():
        return
    try:
        text.encode("latin-1")
        return
    except UnicodeEncodeError:
        pass
    text.encode("utf-8")


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
