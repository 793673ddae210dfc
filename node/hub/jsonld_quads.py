"""Compacted JSON-LD documents → RDF quads, offline, for the hub's index.

Three paths, fastest first:

- the known-context fast path (``known_context``): documents whose ``@context`` is a
  bundled one and whose shape its term table covers become N-Quads text in Python;
- Oxigraph's own JSON-LD parser with the bundled contexts inlined (no network, no
  pyld); documents with the same context are parsed as one ``@graph`` (the contexts are
  processed once per ``BATCH_SIZE`` documents);
- the ``fallback`` converter (vocab's pyld path, returning N-Quads) for contexts we do
  not bundle, when one is given; otherwise such documents are refused.

All three give the same RDF (tested against pyld). The ``proof`` is left out: it is an
``@graph`` container and would become a separate blank-node graph outside the member's
graph. The signed original is kept in SQL and in edition dumps, where proofs are verified.

``own_and_foreign`` tells a document's own description (what the index finds again from
its id) from its statements about other nodes, which ``ForeignClaims`` records so that
the index removes exactly what a document added.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from node.hub.known_context import NOT_INDEXED, KnownContextConverter

log = logging.getLogger("praxisnetz.hub.index")

BATCH_SIZE = 200  # documents parsed together (one context processing per batch)
MAX_CACHED_CONTEXTS = 64

# The JSON-LD fallback: a document in, N-Quads (default graph) out.
FallbackConverter = Callable[[Mapping[str, Any]], str]


class IndexInputError(ValueError):
    """A document cannot be indexed; ``field`` names what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JsonLdToQuads:
    """Compacted JSON-LD documents → quads in a given graph, without network access.

    Several documents with the same ``@context`` are parsed as one ``@graph``, so the
    (large) contexts are processed once per batch instead of once per document.
    Relative IRIs are not resolved against a guessed base on this path: they are
    dropped, as JSON-LD does without a base (ActivityPub ids are absolute anyway).
    """

    def __init__(
        self, contexts: Mapping[str, Any], fallback: FallbackConverter | None = None
    ) -> None:
        # URL -> the value of "@context" in the bundled document
        self._contexts = {url: _context_value(url, doc) for url, doc in contexts.items()}
        self._fallback = fallback
        self._inlined: dict[str, str] = {}  # context as written -> inlined JSON text
        self._known = KnownContextConverter(lambda url: contexts[url])

    def known_nquads(self, document: Mapping[str, Any], graph: str) -> str | None:
        """The known-context fast path: N-Quads text, or None where it does not apply."""
        return self._known.nquads(document, graph)

    def may_describe_others(self, document: Mapping[str, Any]) -> bool:
        """Whether a document may state something about a node other than itself and its
        blank nodes: a nested object with an id (``id``, the only alias of ``@id`` in
        the bundled contexts, or ``@id``), ``@reverse``, ``@included`` or ``@graph``, or a
        context other than bundled ones (it may alias those). The index converts such a
        document alone and tells its statements apart (``own_and_foreign``)."""
        context = document.get("@context")
        for entry in context if isinstance(context, list) else [context]:
            if not isinstance(entry, str) or entry not in self._contexts:
                return True
        if any(key in document for key in _OTHER_NODES_AT_TOP):
            return True
        return _nests_nodes(
            [value for key, value in document.items() if type(value) is not str and key not in NOT_INDEXED]
        )

    def quads(self, document: Mapping[str, Any], graph: ox.NamedNode | ox.DefaultGraph) -> list[ox.Quad]:
        text = self._known.nquads(document, _graph_iri(graph))
        if text is not None:
            try:
                return list(ox.parse(text, format=ox.RdfFormat.N_QUADS))
            except SyntaxError:
                pass  # not expected (IRIs are checked); the general path says what is wrong
        data = self._batch_data([document])
        if data is None:
            return self._via_fallback(document, graph)
        return _parse_into(data, ox.RdfFormat.JSON_LD, None, graph)

    def batch_quads(
        self, documents: Sequence[Mapping[str, Any]], graph: ox.NamedNode
    ) -> list[ox.Quad]:
        """Convert documents that all carry the same ``@context`` as the first one."""
        known = [self._known.nquads(document, _graph_iri(graph)) for document in documents]
        if all(text is not None for text in known):
            try:
                return list(ox.parse("".join(known), format=ox.RdfFormat.N_QUADS))  # type: ignore[arg-type]
            except SyntaxError:
                return [quad for document in documents for quad in self.quads(document, graph)]
        data = self._batch_data(documents)
        if data is None:
            return [quad for document in documents for quad in self.quads(document, graph)]
        return _parse_into(data, ox.RdfFormat.JSON_LD, None, graph)

    def load_batch(
        self, store: ox.Store, documents: Sequence[Mapping[str, Any]], graph: ox.NamedNode
    ) -> bool:
        """Load documents with the same ``@context`` straight into ``store`` in one
        transaction, without making Python quads (1.5x faster); False if they must be
        converted one by one instead."""
        data = self._batch_data(documents)
        if data is None:
            return False
        try:
            store.load(data, format=ox.RdfFormat.JSON_LD, to_graph=graph)
        except SyntaxError as exc:
            raise IndexInputError("document", f"is not valid JSON-LD: {exc}") from exc
        return True

    def _batch_data(self, documents: Sequence[Mapping[str, Any]]) -> str | None:
        """One JSON-LD document holding ``documents`` in an ``@graph``, or None where the
        fallback converter or one parse per document is needed."""
        try:
            context_json = self._inlined_context(documents[0].get("@context"))
        except _UnknownContext as unknown:
            if self._fallback is None:
                raise IndexInputError(
                    "@context", f"{unknown.url} is not a bundled context"
                ) from None
            return None
        bodies = [
            _json({key: value for key, value in document.items() if key not in NOT_INDEXED})
            for document in documents
        ]
        # Blank node labels written in documents ("_:b0") would meet within one parse.
        if len(bodies) > 1 and any('"_:' in body for body in bodies):
            return None
        return '{"@context":' + context_json + ',"@graph":[' + ",".join(bodies) + "]}"

    def _via_fallback(self, document: Mapping[str, Any], graph: ox.NamedNode) -> list[ox.Quad]:
        assert self._fallback is not None
        body = {key: value for key, value in document.items() if key != "proof"}
        return _parse_into(self._fallback(body), ox.RdfFormat.N_QUADS, document.get("id"), graph)

    def _inlined_context(self, context: Any) -> str:
        key = _json(context)
        cached = self._inlined.get(key)
        if cached is None:
            cached = _json(self._inline(context))
            if len(self._inlined) < MAX_CACHED_CONTEXTS:
                self._inlined[key] = cached
        return cached

    def _inline(self, context: Any) -> list[Any]:
        if context is None:
            raise IndexInputError("@context", "is missing")
        entries = context if isinstance(context, list) else [context]
        inlined: list[Any] = []
        for entry in entries:
            if isinstance(entry, str):
                if entry not in self._contexts:
                    raise _UnknownContext(entry)
                inlined.extend(self._inline(self._contexts[entry]))
            elif isinstance(entry, Mapping):
                inlined.append(entry)
            else:
                raise IndexInputError("@context", "entries must be URLs or objects")
        return inlined


def _graph_iri(graph: Any) -> str | None:
    return graph.value if isinstance(graph, ox.NamedNode) else None


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IndexInputError("document", f"is not plain JSON: {exc}") from exc


class _UnknownContext(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _context_value(url: str, document: Any) -> Any:
    if isinstance(document, Mapping) and "@context" in document:
        return document["@context"]
    raise ValueError(f"bundled context {url} has no @context")


def _parse_into(
    data: str, rdf_format: ox.RdfFormat, base: Any, graph: ox.NamedNode
) -> list[ox.Quad]:
    base_iri = base if isinstance(base, str) else None
    try:
        return [
            ox.Quad(quad.subject, quad.predicate, quad.object, graph)
            # Labels written in a document ("_:b0") must not meet the same label elsewhere.
            for quad in ox.parse(data, format=rdf_format, base_iri=base_iri, rename_blank_nodes=True)
        ]
    except SyntaxError as exc:
        raise IndexInputError("document", f"is not valid JSON-LD: {exc}") from exc


def own_and_foreign(root: str, quads: Sequence[ox.Quad]) -> tuple[list[ox.Quad], list[ox.Quad]]:
    """A document's quads split into its own description (about ``root`` and the blank
    nodes reached from it: what the index finds again from ``root`` in the store) and
    the rest, its statements about other nodes (a nested object with its own id)."""
    by_subject: dict[Any, list[ox.Quad]] = {}
    for quad in quads:
        by_subject.setdefault(quad.subject, []).append(quad)
    own: list[ox.Quad] = []
    pending: list[Any] = [ox.NamedNode(root)]
    while pending:
        for quad in by_subject.pop(pending.pop(), ()):
            own.append(quad)
            if isinstance(quad.object, ox.BlankNode):
                pending.append(quad.object)
    return own, [quad for rest in by_subject.values() for quad in rest]


_NODE_KEYS = frozenset(("id", "@id", "@reverse", "@included", "@graph"))
_OTHER_NODES_AT_TOP = ("@reverse", "@included", "@graph")


def _nests_nodes(values: list[Any]) -> bool:
    """Whether a nested object among ``values`` has an id or another node's keyword."""
    pending = values
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is str:
            continue
        if kind is list:
            pending.extend(value)
        elif kind is dict or isinstance(value, Mapping):
            if not _NODE_KEYS.isdisjoint(value):
                return True
            pending.extend(value.values())
    return False


class ForeignClaims:
    """Which documents of a graph assert statements about other nodes (``own_and_foreign``).

    The index removes a document by its own description, found from its id in the store;
    its statements about other nodes are recorded here instead, per document and graph,
    with a count per quad of the documents asserting it. A quad stays in the store while
    any document of its graph asserts it: another one's claim, or its subject's own
    description (``_also_own``: known only for claimed quads). Documents rarely make
    such statements, so this holds few quads.

    Order of a write: ``add_own`` and ``add`` for the new documents, ``resolve`` once
    their own quads (and no claimed ones) are in the store or before the write extends
    it, then the store takes the foreign quads.

    An on-disk index keeps them beside its store (``to_json``, ``from_json``); ``complete``
    says whether they cover every document in the store (not for a store indexed before
    they were kept, until its next rebuild).
    """

    def __init__(self, *, complete: bool = True) -> None:
        self._by_document: dict[str, dict[Any, tuple[ox.Quad, ...]]] = {}
        self._counts: dict[ox.Quad, int] = {}
        self._also_own: set[ox.Quad] = set()
        self._unresolved: list[ox.Quad] = []
        self.complete = complete
        self.changed = False  # since the last ``to_json``

    def __len__(self) -> int:
        return len(self._counts)

    def clear(self, *, complete: bool = True) -> None:
        self._by_document, self._counts, self._also_own, self._unresolved = {}, {}, set(), []
        self.complete, self.changed = complete, True

    def to_json(self) -> str:
        def nquads(quads: Iterable[ox.Quad]) -> str:
            return (ox.serialize(quads, format=ox.RdfFormat.N_QUADS) or b"").decode("utf-8")

        self.changed = False
        return json.dumps({
            "complete": self.complete,
            "documents": {uri: nquads(q for quads in graphs.values() for q in quads)
                          for uri, graphs in self._by_document.items()},
            "also_own": nquads(self._also_own),
        }, ensure_ascii=False)

    @classmethod
    def load(cls, path: Path, *, empty_store: bool) -> ForeignClaims:
        """The claims kept at ``path`` beside a store; none (complete if the store is
        empty) where there is no such file or it cannot be read."""
        if not path.exists():
            claims = cls(complete=empty_store)
            # a new store's record is written at its first write, even one without claims:
            # a store reopened without the file is one indexed before records were kept
            claims.changed = empty_store
            return claims
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, SyntaxError) as exc:
            log.warning("index claims at %s unreadable (%s): a rebuild makes them whole", path, exc)
            return cls(complete=empty_store)

    def save(self, path: Path) -> None:
        """Write the claims to ``path`` (whole, replacing it) if a write changed them."""
        if self.changed:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(self.to_json(), encoding="utf-8")
            os.replace(temporary, path)

    @classmethod
    def from_json(cls, text: str) -> ForeignClaims:
        data = json.loads(text)
        claims = cls(complete=bool(data["complete"]))
        for uri, quads in data["documents"].items():
            by_graph: dict[Any, list[ox.Quad]] = {}
            for quad in ox.parse(quads, format=ox.RdfFormat.N_QUADS):
                by_graph.setdefault(quad.graph_name, []).append(quad)
            for graph, some in by_graph.items():
                claims.add(uri, graph, some)
        claims._unresolved = []
        claims._also_own = set(ox.parse(data["also_own"], format=ox.RdfFormat.N_QUADS))
        claims.changed = False
        return claims

    def graphs_of(self, uri: str) -> set[Any]:
        return set(self._by_document.get(uri, ()))

    def is_claimed(self, quad: ox.Quad) -> bool:
        return quad in self._counts

    def keep_for_claims(self, quad: ox.Quad) -> bool:
        """Whether a quad of a removed document's own description stays, for another
        document claims it (the removed one no longer asserts it)."""
        if quad not in self._counts:
            return False
        if quad in self._also_own:
            self._also_own.discard(quad)
            self.changed = True
        return True

    def add_own(self, quads: Iterable[ox.Quad]) -> None:
        """A document's own description comes in: note the quads others claim too."""
        also = [quad for quad in quads if quad in self._counts]
        if also:
            self._also_own.update(also)
            self.changed = True

    def add(self, uri: str, graph: Any, foreign: Iterable[ox.Quad]) -> list[ox.Quad]:
        """Record a document's statements about other nodes in ``graph``; its distinct quads."""
        quads = tuple(dict.fromkeys(foreign))
        if quads:
            self._by_document.setdefault(uri, {})[graph] = quads
            self.changed = True
        for quad in quads:
            count = self._counts.get(quad, 0)
            self._counts[quad] = count + 1
            if not count:
                self._unresolved.append(quad)
        return list(quads)

    def resolve(self, store: ox.Store) -> None:
        """Note which newly claimed quads their subject's own description asserts too:
        those the store holds while it holds no claimed quad of theirs yet."""
        self._also_own.update(quad for quad in self._unresolved if quad in store)
        self._unresolved = []

    def release(self, uri: str) -> list[ox.Quad]:
        """Forget a document's claims; the quads no document asserts any more."""
        gone: list[ox.Quad] = []
        self.changed = self.changed or uri in self._by_document
        for quads in self._by_document.pop(uri, {}).values():
            for quad in quads:
                count = self._counts[quad] - 1
                if count:
                    self._counts[quad] = count
                    continue
                del self._counts[quad]
                if quad in self._also_own:
                    self._also_own.discard(quad)
                else:
                    gone.append(quad)
        return gone

    def drop_graph(self, graph: Any) -> None:
        """Forget every claim in ``graph`` (its quads are gone from the store)."""
        for uri in [uri for uri, graphs in self._by_document.items() if graph in graphs]:
            self.changed = True
            graphs = self._by_document[uri]
            del graphs[graph]
            if not graphs:
                del self._by_document[uri]
        self._counts = {q: n for q, n in self._counts.items() if q.graph_name != graph}
        self._also_own = {quad for quad in self._also_own if quad.graph_name != graph}
