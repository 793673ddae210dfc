"""The hub's RDF index: member contributions in an embedded Oxigraph store.

One named graph per member, named by the member's actor IRI. SQL stays the source
of truth; this index is derived and can be rebuilt from it (``rebuild``, or
``start_rebuild`` for callers that read SQL a page at a time). Documents become quads
in ``jsonld_quads`` (the known-context fast path first); a rebuild bulk-loads the fast
path's N-Quads text. Every write moves the index's ``generation`` on, and answers to
queries are kept for one generation (``query_cache``). The answers of the queries given
to ``maintain`` (the examples) are instead kept up to date (``maintained_answers``): each
write notes, under the write lock, which of their rows it can change, and the next query
evaluates those rows again under the same lock; a rebuild drops them until they are
asked for again. A document's statements about other nodes (``ForeignClaims``) go
with it, unless another document of the graph asserts them too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyoxigraph as ox
import rdflib
from oxrdflib import OxigraphStore

from node.hub.claims_record import ClaimsRecord, NoRecord
from node.hub.jsonld_quads import (
    BATCH_SIZE,
    FallbackConverter,
    ForeignClaims,
    IndexInputError,
    JsonLdToQuads,
    _json,
    own_and_foreign,
)
from node.hub.maintained_answers import MaintainedAnswers, MaintainedQuery
from node.hub.query_cache import AnswerCache, cache_key
from node.hub.query_runner import (
    ForkRunner,
    QueryLimits,
    QueryOptions,
    QueryOutcome,
    QueryRunner,
    ThreadRunner,
)

__all__ = ["HubIndex", "IndexInputError", "IndexRebuild", "JsonLdToQuads", "RebuildReport",
           "SkippedDocument"]

AS_NS = "https://www.w3.org/ns/activitystreams#"
ATTRIBUTED_TO = ox.NamedNode(AS_NS + "attributedTo")
BULK_DOCUMENTS = 2_000  # documents of one member taken together during a rebuild
BULK_LOAD_DOCUMENTS = 10_000  # documents per bulk load of N-Quads (~35 MB of text)


@dataclass(frozen=True)
class SkippedDocument:
    member: str
    uri: str | None
    field: str
    message: str


@dataclass(frozen=True)
class RebuildReport:
    indexed: int
    skipped: tuple[SkippedDocument, ...]


@dataclass
class RebuildSeconds:
    """Where a rebuild's time went (wall clock, for benchmarks and logs)."""

    convert: float = 0.0  # checks, fast path to N-Quads text, general path
    bulk_load: float = 0.0  # Oxigraph bulk loads of the text (in the loader thread)
    waiting: float = 0.0  # the caller waiting for the loader thread (bulk load not overlapped)
    optimize: float = 0.0  # the compaction at the end


def _require_iri(value: Any, field: str) -> str:
    if isinstance(value, str) and value.startswith(("http:", "https:")):
        return value  # the common case, without urlsplit (which would find the same scheme)
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise IndexInputError(field, "must be an http(s) IRI")
    return value


def _authors(document: Mapping[str, Any]) -> list[str]:
    value = document.get("attributedTo")
    items = value if isinstance(value, list) else [value]
    return [
        item.get("id") if isinstance(item, Mapping) else item
        for item in items
        if isinstance(item, str | Mapping)
    ]


class HubIndex:
    """Member contributions as RDF, one named graph per member, queryable with SPARQL.

    ``path=None`` keeps the store in memory (tests, small hubs). Writes are serialised
    by a lock; queries run through ``runner`` (see ``query_runner``). The default is
    a ``ForkRunner`` for an on-disk store, so a runaway query never outlives its time
    limit, and a ``ThreadRunner`` for an in-memory one: a fork copies the page tables
    of the whole process, which for an in-memory store of 4 million quads (2.5 GB)
    took 0.4–0.9 s per query on our 2-core machine.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        contexts: Mapping[str, Any],
        fallback: FallbackConverter | None = None,
        runner: QueryRunner | None = None,
    ) -> None:
        self._store = ox.Store(str(path)) if path is not None else ox.Store()
        self._converter = JsonLdToQuads(contexts, fallback)
        self._write_lock = threading.Lock()
        # Moves on when a write starts and when it ends (odd: a write is under way).
        self._generation = 0
        self._answers = AnswerCache()
        self._maintained = MaintainedAnswers()
        # What documents state about other nodes, so that removing one removes exactly what
        # it added (its own description is found from its id); beside an on-disk store.
        self._record = NoRecord() if path is None else ClaimsRecord(path)
        self._claims = self._record.load(empty_store=self.is_empty())
        self._runner = runner or (ForkRunner() if path is not None else ThreadRunner())
        if isinstance(self._runner, ForkRunner):
            self._runner.exclude_forks_during(self._write_lock)

    def _save_claims(self) -> None:
        self._record.save(self._claims)

    @property
    def claims_complete(self) -> bool:
        """False for an on-disk store without a record of the statements its documents make
        about other nodes: until a rebuild, removing such a document may leave them."""
        return self._claims.complete

    @property
    def store(self) -> ox.Store:
        """The pyoxigraph store, for callers that need speed (read it; write through the index)."""
        return self._store

    @property
    def generation(self) -> int:
        """Changes with every write to the index (kept answers are valid for one generation)."""
        return self._generation

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._write_lock:
            self._generation += 1
            try:
                with self._record.writing(self._claims):
                    yield
            finally:
                self._generation += 1

    def maintain(self, queries: Iterable[MaintainedQuery]) -> None:
        """Keep these queries' answers up to date at every write (``maintained_answers``):
        a query with the same text and options is then answered from them."""
        for query in queries:
            self._maintained.add(cache_key(query.text, query.options), query)

    @property
    def maintained(self) -> MaintainedAnswers:
        return self._maintained

    def quads_of(self, member_actor: str, document: Mapping[str, Any]) -> list[ox.Quad]:
        """Check a contribution and convert it into quads in its member's graph."""
        _check_contribution(member_actor, document)
        return self._converter.quads(document, ox.NamedNode(member_actor))

    def add_contribution(self, member_actor: str, document: Mapping[str, Any]) -> None:
        """Index a contribution; an earlier version with the same id is replaced."""
        quads = self.quads_of(member_actor, document)
        own, foreign = own_and_foreign(document["id"], quads)
        with self._writing():
            removed = self._remove_locked(document["id"])
            self._claims.add_own(own)
            self._claims.add(document["id"], ox.NamedNode(member_actor), foreign)
            self._claims.resolve(self._store)
            self._store.extend(quads)
            self._maintained.after_write(self._store, removed + quads)
            self._save_claims()

    def remove_contribution(self, uri: str) -> bool:
        with self._writing():
            removed = self._remove_locked(uri)
            self._maintained.after_write(self._store, removed)
            self._save_claims()
        return bool(removed)

    def replace_member(
        self, member_actor: str, documents: Iterable[Mapping[str, Any]]
    ) -> int:
        """Make the member's graph hold exactly ``documents``; nothing is written if one is bad."""
        converted = self._convert_member(member_actor, list(documents), set())
        if converted.skipped:
            first = converted.skipped[0]
            raise IndexInputError(first.field, f"{first.uri}: {first.message}")
        graph = ox.NamedNode(member_actor)
        with self._writing():
            removed: list[ox.Quad] = []
            if self._store.contains_named_graph(graph):
                removed = list(self._store.quads_for_pattern(None, None, None, graph))
                self._store.remove_graph(graph)
            self._claims.drop_graph(graph)
            self._store.extend(converted.quads)
            foreign = self._claim(graph, converted.foreign)
            self._claims.resolve(self._store)  # the graph holds its own descriptions only
            self._store.extend(foreign)
            self._maintained.after_write(self._store, removed + converted.quads + foreign)
            self._save_claims()
        return converted.indexed

    def _claim(self, graph: ox.NamedNode, foreign: Iterable[tuple[str, list[ox.Quad]]]) -> list[ox.Quad]:
        """Record documents' statements about other nodes; their quads, to be added."""
        return [quad for uri, quads in foreign for quad in self._claims.add(uri, graph, quads)]

    def rebuild(self, contributions: Iterable[tuple[str, Mapping[str, Any]]]) -> RebuildReport:
        """Empty the index and load every (member, document); bad documents are reported.

        ``contributions`` may be a generator: documents are converted and loaded as they
        come (see ``start_rebuild``), not held all at once.
        """
        rebuild = self.start_rebuild()
        try:
            rebuild.add(contributions)
        finally:
            report = rebuild.finish()
        return report

    def start_rebuild(self) -> IndexRebuild:
        """Empty the index and hold its write lock until ``finish`` on the result is called:
        for callers that read contributions in pages (from another thread, too)."""
        self._write_lock.acquire()
        self._generation += 1
        try:
            self._maintained.invalidate()
            self._store.clear()
            self._claims.clear(complete=False)  # until ``finish`` (a crash leaves it so)
            self._save_claims()
        except BaseException:
            self._end_rebuild()
            raise
        return IndexRebuild(self, self._converter, self._store)

    def _end_rebuild(self) -> None:
        self._generation += 1
        self._write_lock.release()

    def _convert_member(
        self,
        member: str,
        documents: Sequence[Any],
        seen_ids: set[str],
        *,
        sink: ox.Store | None = None,
    ) -> _Converted:
        """Check and convert one member's documents, batching those with the same context
        (a document that may state something about another node alone: its statements
        are told apart); with a ``sink`` the own quads go straight into it instead of
        into the result."""
        result = _Converted()
        groups: dict[str, list[Mapping[str, Any]]] = {}
        alone: list[Mapping[str, Any]] = []
        for document in documents:
            try:
                _check_contribution(member, document)
                if document["id"] in seen_ids:
                    raise IndexInputError("id", "appears twice")
                if self._converter.may_describe_others(document):
                    alone.append(document)
                else:
                    groups.setdefault(_json(document.get("@context")), []).append(document)
                seen_ids.add(document["id"])
            except IndexInputError as exc:
                result.skip(member, document, exc)
        graph = ox.NamedNode(member) if groups or alone else None
        self._convert_singly(member, alone, graph, result, sink)
        for group in groups.values():
            for start in range(0, len(group), BATCH_SIZE):
                batch = group[start : start + BATCH_SIZE]
                if not self._convert_batch(batch, graph, result, sink):
                    self._convert_singly(member, batch, graph, result, sink)
        return result

    def _convert_batch(
        self, batch: Sequence[Mapping[str, Any]], graph: Any, result: _Converted, sink: ox.Store | None
    ) -> bool:
        if len(batch) < 2:
            return False
        try:
            if sink is None:
                result.add(self._converter.batch_quads(batch, graph), len(batch))
            elif self._converter.load_batch(sink, batch, graph):
                result.add([], len(batch))
            else:
                return False
        except IndexInputError:
            return False  # one document spoils the batch: convert them singly to find it
        return True

    def _convert_singly(self, member: str, batch: Sequence[Mapping[str, Any]], graph: Any,
                        result: _Converted, sink: ox.Store | None) -> None:
        for document in batch:
            try:
                quads, foreign = own_and_foreign(document["id"], self._converter.quads(document, graph))
            except IndexInputError as exc:
                result.skip(member, document, exc)
                continue
            if foreign:
                result.foreign.append((document["id"], foreign))
            if sink is not None:
                sink.extend(quads)
                quads = []
            result.add(quads, 1)

    def is_empty(self) -> bool:
        """True if nothing is indexed (constant time, unlike ``count``)."""
        return next(iter(self._store.quads_for_pattern(None, None, None, None)), None) is None

    def count(self) -> int:
        """Contributions indexed: subjects attributed to the member whose graph holds them.

        A scan over every ``attributedTo`` statement: 0.7 s in memory and 8 s on disk
        for 220,000 contributions; use ``is_empty`` to ask whether there is anything."""
        return sum(
            1
            for quad in self._store.quads_for_pattern(None, ATTRIBUTED_TO, None, None)
            if isinstance(quad.subject, ox.NamedNode) and quad.object == quad.graph_name
        )

    def members(self) -> list[str]:
        return sorted(
            graph.value
            for graph in self._store.named_graphs()
            if isinstance(graph, ox.NamedNode)
        )

    def query(
        self,
        sparql: str,
        *,
        timeout: float,
        max_rows: int,
        options: QueryOptions | None = None,
        reuse: bool = True,
    ) -> QueryOutcome:
        """Run a read-only query; raises ``QueryError`` (syntax, timeout, too many rows, …).

        An answer computed since the last write is reused (``query_cache``); ``reuse=False``
        evaluates the query anyway (benchmarks)."""
        limits = QueryLimits(timeout_s=timeout, max_rows=max_rows)
        options = options or QueryOptions()
        key = cache_key(sparql, options)
        if reuse and key in self._maintained:
            maintained = self._maintained.answer(key, self._store, self._write_lock, max_rows)
            if maintained is not None:
                return maintained
        generation = self._generation
        kept = self._answers.get(key, generation, max_rows) if reuse else None
        if kept is not None:
            return kept
        outcome = self._runner.run(self._store, sparql, limits, options)
        if generation % 2 == 0:  # no write was under way when the query started
            self._answers.put(key, generation, self._generation, outcome)
        return outcome

    def stop_queries(self) -> None:
        """Kill the queries under way and refuse new ones (the hub is shutting down)."""
        self._runner.stop_all()

    def rdflib_dataset(self) -> rdflib.Dataset:
        """The same store behind the rdflib API (oxrdflib), for callers that want rdflib."""
        return rdflib.Dataset(store=OxigraphStore(store=self._store))

    def flush(self) -> None:
        self._store.flush()

    def _remove_locked(self, uri: str) -> list[ox.Quad]:
        """Remove the document ``uri`` from every graph: its own description and its
        statements about other nodes, less what other documents assert; the quads removed."""
        root = ox.NamedNode(uri)
        graphs = {quad.graph_name for quad in self._store.quads_for_pattern(root, None, None, None)}
        doomed: list[ox.Quad] = []
        for graph in graphs | self._claims.graphs_of(uri):
            doomed.extend(_description(self._store, root, graph, self._claims))
        doomed.extend(self._claims.release(uri))
        for quad in doomed:
            self._store.remove(quad)
        return doomed


def _description(store: ox.Store, root: ox.NamedNode, graph: Any, claims: ForeignClaims) -> list[ox.Quad]:
    """The quads about ``root`` in ``graph`` and about the blank nodes it reaches, but
    not those that other documents claim (they stay, and lead nowhere of root's)."""
    found: list[ox.Quad] = []
    pending: list[ox.NamedNode | ox.BlankNode] = [root]
    seen: set[ox.BlankNode] = set()
    while pending:
        subject = pending.pop()
        for quad in store.quads_for_pattern(subject, None, None, graph):
            if claims.keep_for_claims(quad):
                continue
            found.append(quad)
            if isinstance(quad.object, ox.BlankNode) and quad.object not in seen:
                seen.add(quad.object)
                pending.append(quad.object)
    return found


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _Converted:
    """Quads converted for one member, and the documents that could not be."""

    def __init__(self) -> None:
        self.quads: list[ox.Quad] = []  # the documents' own descriptions
        self.foreign: list[tuple[str, list[ox.Quad]]] = []  # (document, its other statements)
        self.indexed = 0
        self.skipped: list[SkippedDocument] = []

    def add(self, quads: list[ox.Quad], documents: int) -> None:
        self.quads.extend(quads)
        self.indexed += documents

    def skip(self, member: str, document: Any, error: IndexInputError) -> None:
        self.skipped.append(_skipped(member, document, error))


def _check_contribution(member: Any, document: Any) -> None:
    _require_iri(member, "member")
    if not isinstance(document, Mapping):
        raise IndexInputError("document", "must be a JSON object")
    _require_iri(document.get("id"), "id")
    if member not in _authors(document):
        raise IndexInputError("attributedTo", f"must name the member {member}")


def _runs_by_member(
    contributions: Iterable[tuple[str, Mapping[str, Any]]], limit: int
) -> Iterator[tuple[str, list[Mapping[str, Any]]]]:
    """Consecutive documents of the same member, at most ``limit`` at a time."""
    member: str | None = None
    run: list[Mapping[str, Any]] = []
    for next_member, document in contributions:
        if run and (next_member != member or len(run) >= limit):
            yield member, run  # type: ignore[misc]
            run = []
        member = next_member
        run.append(document)
    if run:
        yield member, run  # type: ignore[misc]


class IndexRebuild:
    """A rebuild under way: ``add`` contributions (any number of times), then ``finish``.

    Documents on the known-context fast path become N-Quads text and go into the store
    by ``bulk_load`` every ``BULK_LOAD_DOCUMENTS`` documents (no transaction, no
    Python quads); the rest take the general path, a member's run at a time. If a
    bulk load refuses its text (not expected: IRIs and language tags are checked
    first), its documents are removed again and converted one by one.

    The bulk loads run in a thread of their own: pyoxigraph releases the GIL while it
    loads, so the caller converts the next documents (Python) on the other core
    meanwhile. One load at a time is in flight, so at most two batches of text are held.
    """

    def __init__(self, index: HubIndex, converter: JsonLdToQuads, store: ox.Store) -> None:
        self._index = index
        self._converter = converter
        self._store = store
        self._seen: set[str] = set()
        self._skipped: list[SkippedDocument] = []
        self._indexed = 0
        self._texts: list[str] = []
        self._pending: list[tuple[str, Mapping[str, Any]]] = []
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-index-load")
        self._loading: tuple[Future[float], list[tuple[str, Mapping[str, Any]]]] | None = None
        self._foreign: list[ox.Quad] = []  # loaded last (``ForeignClaims.resolve``)
        self._finished = False
        self.seconds = RebuildSeconds()

    def add(self, contributions: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        for member, documents in _runs_by_member(contributions, BULK_DOCUMENTS):
            started = time.perf_counter()
            general: list[Mapping[str, Any]] = []
            for document in documents:
                try:
                    _check_contribution(member, document)
                    if document["id"] in self._seen:
                        raise IndexInputError("id", "appears twice")
                except IndexInputError as exc:
                    self._skipped.append(_skipped(member, document, exc))
                    continue
                self._seen.add(document["id"])
                # a document that may describe other nodes is converted alone (general path)
                describes = self._converter.may_describe_others(document)
                text = None if describes else self._converter.known_nquads(document, member)
                if text is None:
                    general.append(document)
                else:
                    self._texts.append(text)
                    self._pending.append((member, document))
            if general:
                self._take(member, self._index._convert_member(member, general, set(), sink=self._store))
            self.seconds.convert += time.perf_counter() - started
            if len(self._pending) >= BULK_LOAD_DOCUMENTS:
                self._load_pending()

    def finish(self, *, whole: bool = True) -> RebuildReport:
        """Load what is pending and release the index (also after a failed ``add``); not
        ``whole`` (read part way), it stays marked incomplete and the next start rebuilds it."""
        if self._finished:
            raise RuntimeError("this rebuild has finished")
        self._finished = True
        try:
            self._load_pending()
            self._wait_for_load()
            if not whole:
                return RebuildReport(self._indexed, tuple(self._skipped))
            self._index._claims.resolve(self._store)  # before any claimed quad is in
            self._store.extend(self._foreign)
            self._index._claims.complete = self._index._claims.changed = True
            self._index._save_claims()
            self._index._record.settled()
            # RocksDB's compaction after bulk loads, now rather than under the first queries
            # (they read fewer files; a forked query is less likely to copy a lock in use,
            # which ForkRunner restarts): 15 s at 1.3 million quads on a busy machine, 4.6 CPU.
            started = time.perf_counter()
            self._store.optimize()
            self.seconds.optimize += time.perf_counter() - started
        finally:
            self._loader.shutdown(wait=True)  # no load may outlive the write lock
            self._index._end_rebuild()
        return RebuildReport(self._indexed, tuple(self._skipped))

    def _load_pending(self) -> None:
        """Hand the pending text to the loader thread (after the load before it)."""
        if not self._pending:
            return
        pending, data = self._pending, "".join(self._texts).encode("utf-8")
        self._pending, self._texts = [], []
        self._wait_for_load()
        self._loading = (self._loader.submit(self._bulk_load, data), pending)

    def _bulk_load(self, data: bytes) -> float:
        """In the loader thread: load one batch of text; its seconds."""
        started = time.perf_counter()
        # lenient: the fast path checked every IRI and language tag already
        self._store.bulk_load(data, format=ox.RdfFormat.N_QUADS, lenient=True)
        return time.perf_counter() - started

    def _wait_for_load(self) -> None:
        """Wait for the load in flight; if it refused its text, index its documents singly."""
        if self._loading is None:
            return
        future, pending = self._loading
        self._loading = None
        started = time.perf_counter()
        try:
            self.seconds.bulk_load += future.result()
        except SyntaxError:
            for member, document in pending:
                self._index._remove_locked(document["id"])
                self._take(member, self._index._convert_member(member, [document], set(), sink=self._store))
            return
        finally:
            self.seconds.waiting += time.perf_counter() - started
        self._indexed += len(pending)

    def _take(self, member: str, converted: _Converted) -> None:
        self._indexed += converted.indexed
        self._skipped.extend(converted.skipped)
        if converted.foreign:
            graph = ox.NamedNode(member)
            self._foreign.extend(self._index._claim(graph, converted.foreign))


def _skipped(member: str, document: Any, error: IndexInputError) -> SkippedDocument:
    uri = document.get("id") if isinstance(document, Mapping) else None
    return SkippedDocument(member, _str_or_none(uri), error.field, error.message)
