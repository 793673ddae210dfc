"""The example queries' answers, kept up to date at every write instead of evaluated.

The examples sort or group tens of thousands of rows at hub scale (0.7–1.0 s of CPU
each at 11,000 members, docs/performance.md section 3), so an answer valid for one
index generation (``query_cache``) does not help a hub whose members write every few
seconds. Here each example's full, unlimited row set is held in memory, sorted by a
Python key that reproduces its ``ORDER BY``, and its first ``LIMIT`` rows are served.

Every example declares (``Upkeep``, next to the query in ``sparql``) which rows a write
can change: its rows are partitioned by one variable (``key``), and a write reaches the
partitions named by the quads it removed or added (their graphs, their subjects, or the
objects of a predicate, also as the store holds them after the write). The index calls
``after_write`` under its write lock with those quads, which notes the partitions reached
(a fraction of a millisecond). The next query of the example takes the write lock and
evaluates the rows of the noted partitions again by the declared ``rows`` query,
restricted to them, and puts them in place of the old ones: so the writes between two
queries cost one partition query, not one each, and the answer served is the store's as
it is (no write can come between). More than ``MAX_PENDING`` noted partitions are
evaluated at the write instead. A rebuild drops everything; the first query afterwards
(or the warmer) evaluates the rows in full again, under the write lock.

Order: strings and IRIs compare by code point in Python as in Oxigraph; unbound first,
IRIs before literals; counts numerically. Where Oxigraph's order is not defined by
SPARQL (blank nodes, names that are neither strings nor IRIs, the same name text in two
languages, a literal where an IRI is expected) the answer is *doubtful* and the query is
evaluated instead, until such rows are gone. Rows tied on every ``ORDER BY`` key (they
differ in a variable the query does not sort on) come in the order of their values here;
SPARQL leaves their order open, and so does Oxigraph (the order its join produced them).

Anything uncertain — an update that fails, a key that ``VALUES`` cannot name — marks the
answer stale, and the query is evaluated (and the rows built again) instead: a maintained
answer is served only when it is known to be up to date.
"""

from __future__ import annotations

import bisect
import logging
import re
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import pyoxigraph as ox

from node.hub.query_runner import (
    QueryError,
    QueryErrorKind,
    QueryOptions,
    SelectOutcome,
    TermJson,
    check_read_only,
)

log = logging.getLogger("praxisnetz.hub.maintained_answers")

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
XSD_INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
# Past this many partitions reached by one write (a member replaced with thousands of
# documents), the rows are built again in full on the next query instead.
MAX_KEYS_PER_WRITE = 2_000
# Partitions that may wait for the next query before they are evaluated again at a write
# (one partition query each for the examples by member: ~0.5 ms each at full size).
MAX_PENDING = 64
BUILD_LOCK_WAIT_S = 1.0

# A term as held here: ("uri", iri), ("bnode", id), ("literal", text),
# ("literal", text, "xml:lang", tag) or ("literal", text, "datatype", iri); () unbound.
Term = tuple[str, ...]
Row = tuple[Term, ...]


@dataclass(frozen=True)
class Upkeep:
    """How a write reaches an example's rows (declared next to the example).

    ``key``: the variable that partitions the rows. ``rows``: a SELECT of the example's
    variables (same order) without ORDER BY or LIMIT, with ``{values}`` where a
    ``VALUES ?key { … }`` goes, or else ``{key}`` wherever one key's term goes (then it is
    run once per key: a constant graph name lets Oxigraph read that graph only, which it
    does not do for a graph variable bound by VALUES in every query). A write reaches the
    partitions named by the graphs of its quads (``graphs``), their subjects
    (``subjects``), and the objects of ``via`` statements among its quads or about its
    subjects. A blank node reached as a key
    cannot be named in ``VALUES``: it is ignored if it lacks ``rdf:type anchor`` (so it
    has no rows), and makes the answer stale otherwise (always, without an ``anchor``).
    ``order``: (kind, variable) per ORDER BY key; kinds ``name`` (the examples'
    ``?nameKey ?name``), ``term``, ``desc-count``, ``iri-key`` (``sort_key_iri`` and
    the variable).
    """

    key: str
    rows: str
    order: tuple[tuple[str, str], ...]
    graphs: bool = False
    subjects: bool = False
    via: str | None = None
    anchor: str | None = None


@dataclass(frozen=True)
class MaintainedQuery:
    """An example to maintain: its text (``cache_key`` finds it), options and upkeep."""

    slug: str
    text: str
    options: QueryOptions
    upkeep: Upkeep


_ORDER_TAIL = re.compile(r"\}\s*ORDER\s+BY\s[^{}]*?LIMIT\s+(\d+)\s*$", re.S)


def _term(value: ox.NamedNode | ox.BlankNode | ox.Literal | None) -> Term:
    if value is None:
        return ()
    if isinstance(value, ox.NamedNode):
        return ("uri", sys.intern(value.value))  # shared by the rows of every example
    if isinstance(value, ox.BlankNode):
        return ("bnode", value.value)
    if isinstance(value, ox.Literal):
        if value.language:
            return ("literal", value.value, "xml:lang", value.language)
        datatype = value.datatype.value
        if datatype == "http://www.w3.org/2001/XMLSchema#string":
            return ("literal", value.value)
        return ("literal", value.value, "datatype", datatype)
    raise ValueError(f"a term of an unexpected kind: {value!r}")


def _term_json(term: Term) -> TermJson:
    out = {"type": term[0], "value": term[1]}
    if len(term) > 2:
        out[term[2]] = term[3]
    return out


def _sparql_term(term: Term) -> str:
    if term[0] == "uri":
        return str(ox.NamedNode(term[1]))
    if len(term) == 2:
        return str(ox.Literal(term[1]))
    if term[2] == "xml:lang":
        return str(ox.Literal(term[1], language=term[3]))
    return str(ox.Literal(term[1], datatype=ox.NamedNode(term[3])))


# Sort-key parts: each returns (part, doubtful); the parts of one kind have one length
# and one type at each place.
def _name_part(term: Term) -> tuple[tuple[object, ...], bool]:
    """``?nameKey ?name``: CONCAT(?name, "\\u0000") is bound for strings (with or without a
    language) and compares as the text; unbound (IRIs) sorts first, then by ?name."""
    if term and term[0] == "literal" and (len(term) == 2 or term[2] == "xml:lang"):
        return (1, term[1], term[3] if len(term) > 2 else ""), False
    if term and term[0] == "uri":
        return (0, term[1], ""), False
    return (2, repr(term), ""), True


def _term_part(term: Term) -> tuple[tuple[object, ...], bool]:
    if not term:
        return (0, ""), False
    if term[0] == "uri":
        return (2, term[1]), False
    if term[0] == "literal" and len(term) == 2:
        return (3, term[1]), False
    return (4, repr(term)), True


def _desc_count_part(term: Term) -> tuple[tuple[object, ...], bool]:
    if len(term) == 4 and term[3] == XSD_INTEGER:
        return (0, -int(term[1])), False
    return (1, 0), True


def _iri_key_part(term: Term) -> tuple[tuple[object, ...], bool]:
    if term and term[0] == "uri":
        return (1, term[1]), False
    if term and term[0] == "literal" and len(term) == 2:
        return (2, term[1]), False
    return (3, repr(term)), True


_PARTS: dict[str, Callable[[Term], tuple[tuple[object, ...], bool]]] = {
    "name": _name_part,
    "term": _term_part,
    "desc-count": _desc_count_part,
    "iri-key": _iri_key_part,
}


class _Answer:
    """One example's rows: sorted entries (key, row) and the rows of each partition."""

    def __init__(self, query: MaintainedQuery) -> None:
        match = _ORDER_TAIL.search(query.text)
        if match is None or ("{values}" in query.upkeep.rows) == ("{key}" in query.upkeep.rows):
            raise ValueError("a maintained query ends in ORDER BY … LIMIT n and its rows "
                             "query has a {values} or a {key} place")
        self.query = query
        self.limit = int(match.group(1))
        self.full_text = query.text[: match.start() + 1]  # the example without ORDER BY/LIMIT
        self.variables: tuple[str, ...] = ()
        self._positions: list[tuple[Callable[[Term], tuple[tuple[object, ...], bool]], int]] = []
        self._name_at: int | None = None
        self.entries: list[tuple[tuple[object, ...], Row]] = []
        self.partitions: dict[Term, list[tuple[tuple[object, ...], Row]]] = {}
        self.doubtful = 0
        self.ready = False
        self.pending: set[Term] = set()  # partitions a write reached, not yet evaluated again
        self._key_at = 0

    def _prepare(self, variables: tuple[str, ...]) -> None:
        if self.variables and variables != self.variables:
            raise ValueError("the rows query projects other variables than the example")
        self.variables = variables
        upkeep = self.query.upkeep
        self._key_at = variables.index(upkeep.key)
        self._positions = [(_PARTS[kind], variables.index(name)) for kind, name in upkeep.order]
        names = [variables.index(name) for kind, name in upkeep.order if kind == "name"]
        self._name_at = names[0] if names else None

    def _entry(self, row: Row) -> tuple[tuple[tuple[object, ...], Row], bool]:
        """The row's sort key (its parts in one flat tuple: each kind of part has one
        length and one type at each place, so they compare as the nested parts would)."""
        parts: list[object] = []
        doubtful = False
        for part, at in self._positions:
            value, odd = part(row[at])
            parts.extend(value)
            doubtful = doubtful or odd
        return (tuple(parts), row), doubtful

    def clear(self) -> None:
        self.entries, self.partitions, self.doubtful, self.ready = [], {}, 0, False
        self.pending = set()

    def fill(self, variables: tuple[str, ...], rows: Iterable[Row]) -> None:
        self.clear()
        self._prepare(variables)
        for row in rows:
            entry, odd = self._entry(row)
            self.entries.append(entry)
            self.partitions.setdefault(row[self._key_at], []).append(entry)
            self.doubtful += odd
        self.entries.sort()
        self.ready = True

    def replace(self, keys: Iterable[Term], variables: tuple[str, ...], rows: Iterable[Row]) -> None:
        """The rows of the partitions ``keys`` are now ``rows`` (all of theirs)."""
        self._prepare(variables)
        fresh: dict[Term, list[tuple[tuple[object, ...], Row]]] = {}
        fresh_doubt = 0
        for row in rows:
            entry, odd = self._entry(row)
            fresh.setdefault(row[self._key_at], []).append(entry)
            fresh_doubt += odd
        for key in keys:
            for entry in self.partitions.pop(key, ()):
                at = bisect.bisect_left(self.entries, entry)
                if at >= len(self.entries) or self.entries[at] != entry:
                    raise RuntimeError("a maintained row was not where its key puts it")
                del self.entries[at]
                self.doubtful -= self._entry(entry[1])[1]
        for key, entries in fresh.items():
            if key in self.partitions:
                raise RuntimeError("the rows query answered for a partition not asked for")
            self.partitions[key] = entries
            for entry in entries:
                bisect.insort(self.entries, entry)
        self.doubtful += fresh_doubt

    def served(self) -> SelectOutcome | None:
        """The first LIMIT rows, or None where Oxigraph's order is not known here."""
        if not self.ready or self.doubtful or self.pending:
            return None
        top = self.entries[: self.limit + 1]
        if self._name_at is not None:
            at = self._name_at
            for (_, above), (_, below) in zip(top, top[1:], strict=False):
                a, b = above[at], below[at]
                if a != b and a[0] == b[0] == "literal" and a[1] == b[1]:
                    return None  # the same text in two languages: Oxigraph's order is its own
        rows = tuple(
            {name: _term_json(term) for name, term in zip(self.variables, row, strict=True) if term}
            for _, row in top[: self.limit]
        )
        return SelectOutcome(self.variables, rows)


def _rows(store: ox.Store, text: str, options: QueryOptions) -> tuple[tuple[str, ...], list[Row]]:
    solutions = store.query(
        text,
        use_default_graph_as_union=options.use_default_graph_as_union,
        prefixes=dict(options.prefixes) or None,
    )
    if not isinstance(solutions, ox.QuerySolutions):
        raise ValueError("a maintained query must be a SELECT")
    variables = tuple(variable.value for variable in solutions.variables)
    return variables, [tuple(_term(solution[name]) for name in variables) for solution in solutions]


def _reached(upkeep: Upkeep, store: ox.Store, changed: Sequence[ox.Quad]) -> set[Term] | None:
    """The partitions a write of ``changed`` quads reaches; None if they cannot be named."""
    found: set[ox.NamedNode | ox.BlankNode | ox.Literal] = set()
    subjects = {quad.subject for quad in changed}
    if upkeep.graphs:
        for quad in changed:
            if not isinstance(quad.graph_name, ox.NamedNode):
                return None
            found.add(quad.graph_name)
    if upkeep.subjects:
        found.update(subjects)
    if upkeep.via is not None:
        via = ox.NamedNode(upkeep.via)
        found.update(quad.object for quad in changed if quad.predicate == via)
        for subject in subjects:
            found.update(quad.object for quad in store.quads_for_pattern(subject, via, None, None))
    keys: set[Term] = set()
    for node in found:
        if isinstance(node, ox.BlankNode):
            if _anchored(upkeep, store, changed, node):
                return None
            continue
        if not isinstance(node, ox.NamedNode | ox.Literal):
            return None  # a triple term: not expected from documents
        keys.add(_term(node))
    return keys if len(keys) <= MAX_KEYS_PER_WRITE else None


def _anchored(upkeep: Upkeep, store: ox.Store, changed: Sequence[ox.Quad], node: ox.BlankNode) -> bool:
    """Whether the blank node may have rows (before or after the write)."""
    if upkeep.anchor is None:
        return True
    kind, anchor = ox.NamedNode(RDF_TYPE), ox.NamedNode(upkeep.anchor)
    if any(q.subject == node and q.predicate == kind and q.object == anchor for q in changed):
        return True
    return next(iter(store.quads_for_pattern(node, kind, anchor, None)), None) is not None


class MaintainedAnswers:
    """The maintained examples of one index (``HubIndex.maintain``), by ``cache_key``."""

    def __init__(self) -> None:
        self._answers: dict[Hashable, _Answer] = {}
        self._lock = threading.Lock()  # guards the rows while they change or are read
        self.updates = 0  # partitions queries run (tests and benchmarks)

    def add(self, key: Hashable, query: MaintainedQuery) -> None:
        check_read_only(query.upkeep.rows)
        with self._lock:
            if key not in self._answers:
                self._answers[key] = _Answer(query)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._answers

    def unbuilt(self) -> bool:
        """Whether a maintained answer waits to be built (by its next query)."""
        return any(not answer.ready for answer in self._answers.values())

    def answer(
        self, key: Hashable, store: ox.Store, write_lock: threading.Lock, max_rows: int
    ) -> SelectOutcome | None:
        """The maintained answer, built first if needed (under ``write_lock``); None when
        it must be evaluated instead (not maintained, stale, doubtful, lock busy)."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        if not answer.ready or answer.pending:
            if not write_lock.acquire(timeout=BUILD_LOCK_WAIT_S):
                return None
            try:
                if not answer.ready:
                    self._build(answer, store)
                else:
                    self._apply(answer, store)
            finally:
                write_lock.release()
        with self._lock:
            outcome = answer.served()
        if outcome is not None and len(outcome.rows) > max_rows:
            raise QueryError(
                QueryErrorKind.TOO_MANY_ROWS,
                f"the query returns more than {max_rows} results; add a LIMIT",
            )
        return outcome

    def _build(self, answer: _Answer, store: ox.Store) -> None:
        try:
            variables, rows = _rows(store, answer.full_text, answer.query.options)
        except Exception:  # noqa: BLE001 - not built: the query is evaluated instead
            log.exception("maintained answer %s not built", answer.query.slug)
            return
        with self._lock:
            answer.fill(variables, rows)

    def after_write(self, store: ox.Store, changed: Sequence[ox.Quad]) -> None:
        """Note which partitions a write of ``changed`` quads (the removed and the added
        ones) reached; call it under the index's write lock, after the write. Their rows
        are evaluated again by the next query of the example (under the write lock too),
        or at once when more than ``MAX_PENDING`` partitions wait."""
        if not changed:
            return
        for answer in self._answers.values():
            if answer.ready:
                self._note(answer, store, changed)

    def _note(self, answer: _Answer, store: ox.Store, changed: Sequence[ox.Quad]) -> None:
        try:
            keys = _reached(answer.query.upkeep, store, changed)
        except Exception:  # noqa: BLE001 - whatever failed, the rows may be wrong: drop them
            log.exception("maintained answer %s dropped: the write's keys not found",
                          answer.query.slug)
            keys = None
        if keys is None:
            self._stale(answer)
            return
        with self._lock:
            answer.pending.update(keys)
            overflow = len(answer.pending) > MAX_PENDING
        if overflow:
            self._apply(answer, store)

    def _apply(self, answer: _Answer, store: ox.Store) -> None:
        """Evaluate the pending partitions again (under the index's write lock)."""
        with self._lock:
            keys = sorted(answer.pending)
        if not keys:
            return
        try:
            variables, rows = self._rows_of(store, answer.query, keys)
            with self._lock:
                answer.replace(keys, variables, rows)
                answer.pending.clear()
        except Exception:  # noqa: BLE001 - whatever failed, the rows may be wrong: drop them
            log.exception("maintained answer %s dropped after a failed update",
                          answer.query.slug)
            self._stale(answer)

    def _rows_of(
        self, store: ox.Store, query: MaintainedQuery, keys: list[Term]
    ) -> tuple[tuple[str, ...], list[Row]]:
        upkeep = query.upkeep
        if "{values}" in upkeep.rows:
            values = f"VALUES ?{upkeep.key} {{ {' '.join(map(_sparql_term, keys))} }}"
            self.updates += 1
            return _rows(store, upkeep.rows.replace("{values}", values), query.options)
        variables: tuple[str, ...] = ()
        rows: list[Row] = []
        for key in keys:
            variables, some = _rows(store, upkeep.rows.replace("{key}", _sparql_term(key)),
                                    query.options)
            self.updates += 1
            rows.extend(some)
        return variables, rows

    def _stale(self, answer: _Answer) -> None:
        with self._lock:
            answer.clear()

    def invalidate(self) -> None:
        """Drop every answer (a rebuild): the next query builds it again."""
        with self._lock:
            for answer in self._answers.values():
                answer.clear()

    def rows_held(self) -> dict[str, int]:
        """Rows held per maintained query (0 until built), for benchmarks and tests."""
        with self._lock:
            return {answer.query.slug: len(answer.entries) for answer in self._answers.values()}
