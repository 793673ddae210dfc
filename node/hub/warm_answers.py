"""Keeping the example queries' answers ready after the index has changed.

The index keeps an answer until its next write (``query_cache``); the first visitor
after a change would pay for a full evaluation, which for the examples that sort or
group every practice takes seconds at the size of a national hub. So once the index
has been quiet for ``quiet_seconds`` after a change, the ``AnswerWarmer`` runs the
example queries itself, with the options and row limit the endpoint uses (and a longer
time limit, ``WARM_TIMEOUT_S``), and their answers are kept for the visitors. A write
during the warm-up makes those answers stale as any other; the next quiet period warms
again. On a hub that never goes
quiet for that long, nothing is warmed and queries are evaluated as they come.

Examples the index maintains (``HubIndex.maintain``, ``maintained_answers``) need no
quiet: their rows are kept up to date at every write once built. So while one of them
is not built (at start, after a rebuild) the warmer is due at once, once per generation;
asking the example builds it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from node.hub.index import HubIndex
from node.hub.query_runner import QueryError
from node.hub.sparql import DEFAULT_LIMITS, QUERY_OPTIONS, example_queries

log = logging.getLogger("praxisnetz.hub.warm_answers")

QUIET_SECONDS = 30.0
# Longer than a visitor's limit: at 11,000 members the examples took up to 18 s to
# evaluate on a busy machine in their plain forms and up to 2.6 s as now written
# (docs/performance.md, section 3); a busier hub may pass the endpoint's 10 s, and
# warmed, the answer is still served.
WARM_TIMEOUT_S = 60.0


class AnswerWarmer:
    """Decides when the examples are due (``due``) and runs them (``warm``, blocking).

    The index is passed to each call, not kept: the hub drops its index on shutdown
    and the store must close then."""

    def __init__(
        self,
        *,
        quiet_seconds: float = QUIET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet_seconds = quiet_seconds
        self._monotonic = monotonic
        self._seen_generation: int | None = None
        self._changed_at = monotonic()
        self._warmed_generation: int | None = None
        self.stop = threading.Event()  # set on shutdown: no further example is started

    def due(self, index: HubIndex) -> bool:
        """True once the index has not changed for ``quiet_seconds`` and is not yet warm,
        or at once while a maintained answer is not built (once per generation)."""
        generation, now = index.generation, self._monotonic()
        if generation % 2 == 0 and generation != self._warmed_generation \
                and index.maintained.unbuilt():
            return True
        if generation != self._seen_generation:
            self._seen_generation, self._changed_at = generation, now
            return False
        return (
            generation % 2 == 0
            and generation != self._warmed_generation
            and now - self._changed_at >= self._quiet_seconds
        )

    def warm(self, index: HubIndex) -> int:
        """Run every example once (kept answers are reused); how many were answered."""
        self._warmed_generation = index.generation
        answered = 0
        for example in example_queries():
            if self.stop.is_set():
                break
            try:
                index.query(
                    example.sparql,
                    timeout=WARM_TIMEOUT_S,
                    max_rows=DEFAULT_LIMITS.max_rows,
                    options=QUERY_OPTIONS,
                )
                answered += 1
            except QueryError as exc:
                log.warning("example %s not warmed: %s", example.slug, exc.message)
        return answered
