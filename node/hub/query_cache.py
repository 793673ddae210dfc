"""Answers to repeated queries, kept until the index changes.

The example queries group or sort a large part of the index (every e-file practice
sorted by name, a count over every contribution), which takes seconds at the size of
a national hub however the query is run. Their answers change only when the index
does, so the index keeps each answer under its *generation*: a counter that every
write moves on (when it starts and when it ends, so a query that overlaps a write
is never stored). An answer is served only for the generation it was computed in;
the first query after a change runs in full again.

Only small answers are kept (``MAX_ROWS`` solutions, ``MAX_TRIPLE_TEXT`` of
N-Triples) and at most ``MAX_ENTRIES`` of them, least recently used out first. A
kept answer still obeys the asker's row limit: more rows than the limit is the same
``TOO_MANY_ROWS`` error a fresh run would give.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping

from node.hub.query_runner import (
    GraphOutcome,
    QueryError,
    QueryErrorKind,
    QueryOptions,
    QueryOutcome,
    SelectOutcome,
)

MAX_ENTRIES = 32
MAX_ROWS = 2_000
MAX_TRIPLE_TEXT = 1 << 20


def cache_key(text: str, options: QueryOptions) -> Hashable:
    """The query and its options; CRLF line ends (a browser's form) count as LF except
    where a long string literal could hold them."""
    if '"""' not in text and "'''" not in text:
        text = text.replace("\r\n", "\n")
    prefixes: Mapping[str, str] = options.prefixes
    return (text.strip(), options.use_default_graph_as_union, tuple(sorted(prefixes.items())))


def _size(outcome: QueryOutcome) -> int:
    if isinstance(outcome, SelectOutcome):
        return len(outcome.rows)
    if isinstance(outcome, GraphOutcome):
        return outcome.triple_count
    return 1


def _small(outcome: QueryOutcome) -> bool:
    if isinstance(outcome, GraphOutcome):
        return len(outcome.ntriples) <= MAX_TRIPLE_TEXT
    return _size(outcome) <= MAX_ROWS


class AnswerCache:
    """Query answers by (query, options), valid for one index generation."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Hashable, tuple[int, QueryOutcome]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, generation: int, max_rows: int) -> QueryOutcome | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generation:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        outcome = entry[1]
        if _size(outcome) > max_rows:
            raise QueryError(
                QueryErrorKind.TOO_MANY_ROWS,
                f"the query returns more than {max_rows} results; add a LIMIT",
            )
        return outcome

    def put(self, key: Hashable, generation: int, current: int, outcome: QueryOutcome) -> None:
        """Keep ``outcome`` computed in ``generation`` if that is still ``current``."""
        if generation != current or not _small(outcome):
            return
        with self._lock:
            self._entries[key] = (generation, outcome)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
