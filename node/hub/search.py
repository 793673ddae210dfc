"""Full-text search over member contributions with German word forms.

A small normaliser instead of a dictionary stemmer: lower-case, umlauts folded to
their two-letter spelling (so "Bürger" and "Buerger" meet), words split at hyphens
("E-Akte" → "e", "akte"), and light suffix stripping of German inflection
("Akten", "Akte" → "akt"; "Bürgerportale" → "buergerportal"). Compounds are met
halfway: a query stem of at least ``MIN_PREFIX`` letters matches words it starts
("Posteingang" finds "Posteingangsbearbeitung"), and one of at least
``MIN_INFIX`` letters matches words that contain it ("Bearbeitung" finds it too).

The index is pure and in memory: rebuild it from storage at start-up and keep it
current with ``add``/``remove``. Databases can do the same with their own German
configuration; this one works anywhere and is what the tests pin down.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass

from node.hub.contribution import ContributionKind, ContributionView

MIN_STEM = 3
MIN_PREFIX = 4
MIN_INFIX = 6
# Longest first, so "-ern" wins over "-n".
SUFFIXES = ("ern", "en", "er", "es", "e", "n", "s")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_WORD_RE = re.compile(r"[0-9a-zäöüß]+")

TITLE_WEIGHT, SUMMARY_WEIGHT, CONTENT_WEIGHT = 3.0, 2.0, 1.0
EXACT, PREFIX, INFIX = 1.0, 0.6, 0.3


def fold(text: str) -> str:
    """Lower-case and spell umlauts and ß with two letters."""
    return text.lower().translate(_UMLAUTS)


def stem(word: str) -> str:
    """Strip one inflectional suffix, keeping at least ``MIN_STEM`` letters."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """The normalised stems of a text, in order (hyphenated words split into parts)."""
    return [stem(fold(word)) for word in _WORD_RE.findall(text.lower())]


@dataclass(frozen=True)
class QueryAlternative:
    """One side of an ``or``: stems every hit must match, stems no hit may contain."""

    required: tuple[str, ...]
    excluded: tuple[str, ...]


_TOKEN_RE = re.compile(r'-?"[^"]*"?|\S+')


def parse_query(query: str) -> list[QueryAlternative]:
    """The web-search syntax PostgreSQL's ``websearch_to_tsquery`` reads, for the memory
    index: ``or`` between alternatives, ``-word`` (or ``-"…"``) excludes, and a quoted
    phrase needs its words (anywhere: the memory index keeps no word positions)."""
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    for token in _TOKEN_RE.findall(query):
        if token.lower() == "or":
            groups.append(([], []))
            continue
        required, excluded = groups[-1]
        negated = token.startswith("-") and len(token) > 1
        (excluded if negated else required).extend(terms(token[1:] if negated else token))
    alternatives = [QueryAlternative(tuple(dict.fromkeys(required)), tuple(excluded))
                    for required, excluded in groups if required or excluded]
    return alternatives or [QueryAlternative((), ())]


@dataclass(frozen=True)
class SearchFilters:
    topic: str | None = None
    kind: ContributionKind | None = None
    municipality: str | None = None  # AGS (8 digits) or the full municipality key URI
    status: str | None = None

    def admit(self, view: ContributionView) -> bool:
        if self.topic is not None and self.topic not in view.topics:
            return False
        if self.kind is not None and view.kind is not self.kind:
            return False
        if self.municipality is not None and self.municipality not in (
            view.ags,
            view.municipality_key,
        ):
            return False
        return self.status is None or view.status == self.status


@dataclass(frozen=True)
class SearchHit:
    uri: str
    score: float
    view: ContributionView


class SearchIndex:
    """An inverted index from stems to contributions with field weights."""

    def __init__(self, views: Iterable[ContributionView] = ()) -> None:
        self._postings: dict[str, dict[str, float]] = {}
        self._views: dict[str, ContributionView] = {}
        self._terms_of: dict[str, set[str]] = {}  # uri -> its stems, for removal
        self._vocabulary: list[str] = []  # sorted stems, for prefix lookups
        self._vocabulary_stale = False
        for view in views:
            self.add(view)

    def __len__(self) -> int:
        return len(self._views)

    def add(self, view: ContributionView) -> None:
        """Index a contribution, replacing an earlier version with the same URI."""
        self.remove(view.uri)
        self._views[view.uri] = view
        weighted = (
            (view.title, TITLE_WEIGHT),
            (view.summary, SUMMARY_WEIGHT),
            (view.content_text, CONTENT_WEIGHT),
        )
        own_terms = self._terms_of[view.uri] = set()
        for text, weight in weighted:
            for term in terms(text):
                own_terms.add(term)
                postings = self._postings.get(term)
                if postings is None:
                    postings = self._postings[term] = {}
                    self._vocabulary_stale = True
                postings[view.uri] = postings.get(view.uri, 0.0) + weight

    def remove(self, uri: str) -> bool:
        if self._views.pop(uri, None) is None:
            return False
        for term in self._terms_of.pop(uri):
            del self._postings[term][uri]
            if not self._postings[term]:
                del self._postings[term]
                self._vocabulary_stale = True
        return True

    def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        """Contributions matching every word of ``query`` (best first), after the filters.

        An empty query lists every contribution the filters admit.
        """
        filters = filters or SearchFilters()
        scores: dict[str, float] = {}
        for alternative in parse_query(query):
            for uri, score in self._match_alternative(alternative).items():
                scores[uri] = max(scores.get(uri, 0.0), score)
        admitted = (
            (-score, view.title, uri)
            for uri, score in scores.items()
            if filters.admit(view := self._views[uri])
        )
        best = heapq.nsmallest(limit, admitted)  # only the page asked for is sorted
        return [SearchHit(uri, -negated, self._views[uri]) for negated, _, uri in best]

    def _match_alternative(self, alternative: QueryAlternative) -> dict[str, float]:
        if alternative.required:
            scores = self._match_all(list(alternative.required))
        else:
            scores = dict.fromkeys(self._views, 0.0)
        for term in alternative.excluded:  # exact stems, as PostgreSQL's ``-word`` is
            for uri in self._postings.get(term, ()):
                scores.pop(uri, None)
        return scores

    def _match_all(self, query_terms: list[str]) -> dict[str, float]:
        combined: dict[str, float] | None = None
        for term in query_terms:
            scores = self._match(term)
            if combined is None:
                combined = scores
            else:
                combined = {uri: combined[uri] + s for uri, s in scores.items() if uri in combined}
            if not combined:
                return {}
        return combined or {}

    def _match(self, term: str) -> dict[str, float]:
        scores: dict[str, float] = {}
        for indexed, factor in self._matching_terms(term):
            for uri, weight in self._postings[indexed].items():
                scores[uri] = max(scores.get(uri, 0.0), weight * factor)
        return scores

    def _matching_terms(self, term: str) -> list[tuple[str, float]]:
        found: dict[str, float] = {}
        if term in self._postings:
            found[term] = EXACT
        if len(term) >= MIN_PREFIX:
            vocabulary = self._sorted_vocabulary()
            start = bisect.bisect_left(vocabulary, term)
            for indexed in vocabulary[start:]:
                if not indexed.startswith(term):
                    break
                found.setdefault(indexed, PREFIX)
        if len(term) >= MIN_INFIX:
            for indexed in self._postings:
                if term in indexed:
                    found.setdefault(indexed, INFIX)
        return list(found.items())

    def _sorted_vocabulary(self) -> list[str]:
        if self._vocabulary_stale:
            self._vocabulary = sorted(self._postings)
            self._vocabulary_stale = False
        return self._vocabulary
