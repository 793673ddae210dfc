"""Running one read-only SPARQL query against the index under a time and a row limit.

pyoxigraph has no query timeout in its Python API (oxigraph#1926) and evaluates a
query inside native code that releases the GIL: a worker thread keeps the server
responsive, but a runaway query (an aggregate over a cartesian product) keeps
burning a core after the caller gave up, because a thread cannot be stopped.

So there are two runners:

- ``ForkRunner`` (the default for an on-disk index) evaluates the query in a forked child,
  which sees the store as it was at the fork, and kills the child at the
  deadline: the work really stops. The child's memory is capped too (a sort over
  a huge product kills the child, not the hub). Cost: a fork per query, which
  grows with the process's resident memory (measured on a busy 2-core machine:
  20–30 ms at 70 MB, 60–100 ms at 200 MB, 0.4–0.9 s at 2.5 GB).
- ``ThreadRunner`` evaluates in a thread and checks the deadline between
  solutions: no overhead, and the caller always gets its answer (or a timeout
  error) in time. A query stuck inside one solution (an aggregate, a sort) goes
  on after that at the lowest CPU priority, keeps its slot until it ends, and at
  most ``max_concurrent`` such queries run, so runaways cannot pile up; its
  memory is not capped. Use it where queries come from trusted people.

Both refuse ``SERVICE`` before evaluating: Oxigraph would otherwise make an HTTP
request to any address the query names (server-side request forgery).
"""

from __future__ import annotations

import enum
import faulthandler
import gc
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import queue
import re
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyoxigraph as ox

SYNTAX_MESSAGE_LIMIT = 300
READY = "ready"  # a forked child's first message: it could read the store
# A child not ready by then is taken to be stuck on a RocksDB lock that a background
# thread of ours held at the fork (it waits forever): it is killed and we fork again.
READY_WAIT_S = 1.0
MAX_STARTS = 4
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes a forked query may allocate
RUNAWAY_NICENESS = 19


class QueryErrorKind(enum.Enum):
    SYNTAX = "syntax"
    UPDATE_REFUSED = "update-refused"
    SERVICE_REFUSED = "service-refused"
    TIMEOUT = "timeout"
    TOO_MANY_ROWS = "too-many-rows"
    BUSY = "busy"
    FAILED = "failed"


class QueryError(Exception):
    """A query was refused or stopped; ``kind`` says why, ``message`` says it to a person."""

    def __init__(self, kind: QueryErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self):  # crosses the pipe from a forked child
        return (QueryError, (self.kind, self.message))


@dataclass(frozen=True)
class QueryLimits:
    """``timeout_s``: wall-clock limit; ``max_rows``: solutions (or triples) at most."""

    timeout_s: float = 10.0
    max_rows: int = 10_000

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.max_rows < 1:
            raise ValueError("max_rows must be at least 1")


# A term as in SPARQL 1.1 Query Results JSON: {"type": "uri", "value": "…"} and so on.
TermJson = Mapping[str, str]


@dataclass(frozen=True)
class SelectOutcome:
    variables: tuple[str, ...]
    rows: tuple[Mapping[str, TermJson], ...]


@dataclass(frozen=True)
class AskOutcome:
    value: bool


@dataclass(frozen=True)
class GraphOutcome:
    """CONSTRUCT or DESCRIBE: the triples as N-Triples."""

    ntriples: str
    triple_count: int


QueryOutcome = SelectOutcome | AskOutcome | GraphOutcome


@dataclass(frozen=True)
class QueryOptions:
    """Passed to ``Store.query``: by default the default graph is the union of all members."""

    use_default_graph_as_union: bool = True
    prefixes: Mapping[str, str] = field(default_factory=dict)


# SPARQL applies \u and \U escapes to the whole query before parsing (SPARQL 1.1 §19.2),
# and so does Oxigraph: check the text the parser will see.
_CODEPOINT_RE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")
# The keyword SERVICE as a token of its own: not part of a name, a variable or an IRI path.
_SERVICE_RE = re.compile(r"(?<![\w:?$/#-])SERVICE(?!\w)", re.I)
_COMMENT_RE = re.compile(r"(?:^|(?<=\s))#[^\n\r]*", re.M)
_PROLOGUE_RE = re.compile(r"^\s*(?:(?:PREFIX\s+[^\s:]*:\s*<[^>]*>|BASE\s*<[^>]*>)\s*)*", re.I)
_UPDATE_RE = re.compile(
    r"(?:INSERT|DELETE|LOAD|CLEAR|CREATE|DROP|COPY|MOVE|ADD|WITH)\b", re.I
)


def unescape_codepoints(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = int(match.group(1) or match.group(2), 16)
        return chr(code) if code <= 0x10FFFF else match.group(0)

    return _CODEPOINT_RE.sub(replace, text)


def check_read_only(text: str) -> None:
    """Refuse SERVICE and say so plainly for updates; ``Store.query`` never writes anyway."""
    unescaped = unescape_codepoints(text)
    if _SERVICE_RE.search(unescaped):
        raise QueryError(
            QueryErrorKind.SERVICE_REFUSED,
            "SERVICE (federated query) is not allowed on this endpoint",
        )
    body = _PROLOGUE_RE.sub("", _COMMENT_RE.sub(" ", unescaped), count=1)
    if _UPDATE_RE.match(body):
        raise QueryError(
            QueryErrorKind.UPDATE_REFUSED,
            "this endpoint is read-only: SPARQL Update (INSERT, DELETE, LOAD, …) is refused",
        )


def term_json(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> dict[str, str]:
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Literal):
        out = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
            out["datatype"] = term.datatype.value
        return out
    return {"type": "triple", "value": str(term)}


def evaluate(
    store: ox.Store, text: str, *, deadline: float, limits: QueryLimits, options: QueryOptions
) -> QueryOutcome:
    """Evaluate ``text`` on ``store``, checking the deadline and the row cap between solutions."""
    check_read_only(text)
    try:
        result = store.query(
            text,
            use_default_graph_as_union=options.use_default_graph_as_union,
            prefixes=dict(options.prefixes) or None,
        )
        if isinstance(result, ox.QueryBoolean):
            return AskOutcome(bool(result))
        if isinstance(result, ox.QuerySolutions):
            return _collect_solutions(result, deadline, limits)
        return _collect_triples(result, deadline, limits)
    except SyntaxError as exc:
        message = str(exc)
        if len(message) > SYNTAX_MESSAGE_LIMIT:
            message = message[:SYNTAX_MESSAGE_LIMIT] + " …"
        raise QueryError(QueryErrorKind.SYNTAX, f"the query is not valid SPARQL: {message}") from exc
    except OSError as exc:
        raise QueryError(QueryErrorKind.FAILED, f"the query failed: {exc}") from exc


def _check_progress(count: int, deadline: float, limits: QueryLimits) -> None:
    if count > limits.max_rows:
        raise QueryError(
            QueryErrorKind.TOO_MANY_ROWS,
            f"the query returns more than {limits.max_rows} results; add a LIMIT",
        )
    if time.monotonic() > deadline:
        raise timeout_error(limits)


def timeout_error(limits: QueryLimits) -> QueryError:
    return QueryError(
        QueryErrorKind.TIMEOUT,
        f"the query ran longer than {limits.timeout_s:g} s and was stopped; "
        "narrow it down (fewer variables, more constants, a LIMIT)",
    )


def _collect_solutions(
    solutions: ox.QuerySolutions, deadline: float, limits: QueryLimits
) -> SelectOutcome:
    variables = tuple(variable.value for variable in solutions.variables)
    rows: list[dict[str, dict[str, str]]] = []
    for solution in solutions:
        _check_progress(len(rows) + 1, deadline, limits)
        row = {}
        for name in variables:
            value = solution[name]
            if value is not None:
                row[name] = term_json(value)
        rows.append(row)
    return SelectOutcome(variables, tuple(rows))


def _collect_triples(triples: ox.QueryTriples, deadline: float, limits: QueryLimits) -> GraphOutcome:
    lines: list[str] = []
    for triple in triples:
        _check_progress(len(lines) + 1, deadline, limits)
        lines.append(f"{triple} .")
    return GraphOutcome("\n".join(lines) + ("\n" if lines else ""), len(lines))


class ThreadRunner:
    """Evaluate in a daemon thread; answer within the time limit whatever the query does."""

    def __init__(self, max_concurrent: int = 2) -> None:
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def stop_all(self) -> None:
        """Nothing to stop: a thread cannot be killed, and each caller's wait already
        ends at its time limit (only small in-memory indexes use this runner)."""

    def run(
        self, store: ox.Store, text: str, limits: QueryLimits, options: QueryOptions
    ) -> QueryOutcome:
        if not self._slots.acquire(blocking=False):
            raise QueryError(QueryErrorKind.BUSY, "too many queries are running; try again shortly")
        deadline = time.monotonic() + limits.timeout_s
        answers: queue.Queue[QueryOutcome | QueryError] = queue.Queue(maxsize=1)

        native_id: list[int] = []

        def work() -> None:
            native_id.append(threading.get_native_id())
            try:
                answers.put(evaluate(store, text, deadline=deadline, limits=limits, options=options))
            except QueryError as exc:
                # A fresh error without the traceback: its frames hold Oxigraph iterators,
                # which must be dropped on the thread that made them.
                answers.put(QueryError(exc.kind, exc.message))
            finally:
                self._slots.release()  # only when the evaluation really ended

        threading.Thread(target=work, name="sparql-query", daemon=True).start()
        try:
            answer = answers.get(timeout=limits.timeout_s)
        except queue.Empty:
            _deprioritise(native_id)
            raise timeout_error(limits) from None
        if isinstance(answer, QueryError):
            raise answer
        return answer


def _deprioritise(native_id: list[int]) -> None:
    """Let a runaway evaluation run on idle CPU only (Linux schedules threads by nice)."""
    if native_id and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, native_id[0], RUNAWAY_NICENESS)
        except OSError:
            return  # the thread ended meanwhile, or the system refuses: nothing to lower


def _child_main(
    store: ox.Store,
    text: str,
    limits: QueryLimits,
    options: QueryOptions,
    deadline: float,
    memory_budget: int | None,
    conn,
) -> None:
    # A collection would touch every object of the parent's heap and copy its pages;
    # the child lives for one query only.
    gc.disable()
    faulthandler.disable()  # hitting the memory cap aborts: no Python traceback dump for that
    if memory_budget is not None:
        _limit_address_space(memory_budget)
    try:
        try:
            next(iter(store.quads_for_pattern(None, None, None, None)), None)  # takes its locks
        except OSError as exc:
            raise QueryError(QueryErrorKind.FAILED, f"the query failed: {exc}") from exc
        conn.send(READY)
        conn.send(evaluate(store, text, deadline=deadline, limits=limits, options=options))
    except QueryError as exc:
        conn.send(exc)
    finally:
        conn.close()


def _limit_address_space(budget: int) -> None:
    """Cap the child's memory at what it inherited plus ``budget`` bytes: a query that
    sorts a huge product dies alone instead of pushing the hub out of memory."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            inherited = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (inherited + budget, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        return  # not Linux, or not allowed: the time limit still applies


class ForkRunner:
    """Evaluate in a forked child process and kill it at the deadline.

    ``memory_budget`` caps what one query may allocate beyond the memory the child
    inherits (Linux; None for no cap).
    """

    def __init__(
        self,
        max_concurrent: int = 4,
        *,
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        self._memory_budget = memory_budget
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._context = multiprocessing.get_context("fork")
        self.restarts = 0  # children killed as stuck before they could read, forked again
        # Held by the index while it writes: a fork never copies a half-done write.
        self._fork_lock = threading.Lock()
        self._children: set[multiprocessing.process.BaseProcess] = set()
        self._children_lock = threading.Lock()
        self._stopped = False

    def stop_all(self) -> None:
        """Kill every running query and start no more (shutdown): a warm-up or a visitor's
        query must not hold the hub's exit for its time limit. The waiting callers get
        a ``QueryError``."""
        with self._children_lock:
            self._stopped = True
            children = list(self._children)
        for child in children:
            child.kill()

    def exclude_forks_during(self, write_lock: threading.Lock) -> None:
        """Fork only while ``write_lock`` is free (the index passes its write lock)."""
        self._fork_lock = write_lock

    def run(
        self, store: ox.Store, text: str, limits: QueryLimits, options: QueryOptions
    ) -> QueryOutcome:
        check_read_only(text)  # refuse cheaply, without a fork
        if not self._slots.acquire(blocking=False):
            raise QueryError(QueryErrorKind.BUSY, "too many queries are running; try again shortly")
        try:
            return self._run_child(store, text, limits, options)
        finally:
            self._slots.release()

    def _run_child(
        self, store: ox.Store, text: str, limits: QueryLimits, options: QueryOptions
    ) -> QueryOutcome:
        """Fork, and fork again (up to ``MAX_STARTS`` times) while a child is not ready
        within ``READY_WAIT_S``: RocksDB's background threads (busy after a bulk load)
        may hold a lock at the moment of the fork, which the child then never gets."""
        deadline = time.monotonic() + limits.timeout_s
        for start in range(1, MAX_STARTS + 1):
            child, receiver = self._start_child(store, text, limits, options, deadline)
            answered = False
            try:
                ready_by = deadline if start == MAX_STARTS else \
                    min(deadline, time.monotonic() + READY_WAIT_S)
                if not receiver.poll(max(0.0, ready_by - time.monotonic())):
                    if time.monotonic() >= deadline:
                        raise timeout_error(limits)
                    self.restarts += 1
                    continue  # stuck before it could read: killed below, forked again
                answer = receiver.recv()
                if answer == READY:
                    if not receiver.poll(max(0.0, deadline - time.monotonic())):
                        raise timeout_error(limits)
                    answer = receiver.recv()
                answered = True
            except EOFError:
                raise QueryError(
                    QueryErrorKind.FAILED,
                    "the query needed more memory than a query may use, or its process failed",
                ) from None
            finally:
                receiver.close()
                self._forget(child)
                _end_child(child, answered)
            if isinstance(answer, QueryError):
                raise answer
            return answer
        raise timeout_error(limits)  # not reached: the last start waits until the deadline

    def _start_child(
        self, store: ox.Store, text: str, limits: QueryLimits, options: QueryOptions,
        deadline: float,
    ) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]:
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_child_main,
            args=(store, text, limits, options, deadline, self._memory_budget, sender),
            name="sparql-query",
            daemon=True,
        )
        if not self._fork_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            receiver.close()
            sender.close()
            raise QueryError(QueryErrorKind.BUSY, "the index is being rebuilt; try again shortly")
        try:
            with self._children_lock:
                if self._stopped:
                    receiver.close()
                    sender.close()
                    raise QueryError(QueryErrorKind.BUSY, "the hub is stopping")
                child.start()
                self._children.add(child)
        finally:
            self._fork_lock.release()
        sender.close()
        return child, receiver

    def _forget(self, child: multiprocessing.process.BaseProcess) -> None:
        with self._children_lock:
            self._children.discard(child)


def _end_child(child: multiprocessing.process.BaseProcess, answered: bool) -> None:
    if answered:
        # The child exits by itself; tearing down its copy of our address space
        # takes milliseconds, which the caller need not wait for.
        threading.Thread(target=child.join, name="sparql-reaper", daemon=True).start()
    else:
        child.kill()
        child.join()  # a stopped query is gone before the caller hears of it


QueryRunner = ThreadRunner | ForkRunner
