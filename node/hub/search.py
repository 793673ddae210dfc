"""Full-text search over member contributions with German word forms.

A small normaliser instead of a dictionary stemmer: lower-case, umlauts folded to
their two-letter spelling (so "Bürger" and "Buerger" meet), words split at hyphens
("E-Akte" → "e", "akte"), and light suffix stripping of German inflection
("Akten", "Akte" → "akt"; "Bürgerportale" → "buergerportal"). Compounds are met
halfway: a query stem of at least ``MIN_PREFIX`` letters matches words it starts
("Posteingang" finds "Posteingangsbearbeitung"), and one of at least
``MIN_INFIX`` letters matches words that contain it ("Bearbeitung" finds it too).
Shorter parts are found where the compound splits into words of a lexicon
(``node.hub.compounds``, ``part_terms``): "Akte" finds "Personalakte" and "Bauakte",
not "Kontakte" (there is no word "kont"). Inside-compound matches of either kind score
``INFIX``, below stem and prefix matches.

The index is pure and in memory: rebuild it from storage at start-up and keep it
current with ``add``/``remove``. Databases can do the same with their own German
configuration; this one works anywhere and is what the tests pin down.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from node.hub.compounds import GOVERNMENT_PARTS, fold_word, split_compound
from node.hub.contribution import ContributionKind, ContributionView

MIN_STEM = 3
MIN_PREFIX = 4
MIN_INFIX = 6
# Longest first, so "-ern" wins over "-n".
SUFFIXES = ("ern", "en", "er", "es", "e", "n", "s")
_SUFFIXES_BY_SIZE = tuple(
    (size, frozenset(s for s in SUFFIXES if len(s) == size))
    for size in sorted({len(s) for s in SUFFIXES}, reverse=True))
# Folding turns only word letters into word letters, so the words of the folded text
# are the folded words (one translate per text rather than per word).
_FOLDED_WORD_RE = re.compile(r"[0-9a-z]+")

TITLE_WEIGHT, SUMMARY_WEIGHT, CONTENT_WEIGHT = 3.0, 2.0, 1.0
EXACT, PREFIX, INFIX = 1.0, 0.6, 0.3


fold = fold_word  # lower-case, umlauts and ß spelt with two letters


def stem(word: str) -> str:
    """Strip one inflectional suffix, keeping at least ``MIN_STEM`` letters."""
    for size, suffixes in _SUFFIXES_BY_SIZE:  # a word ends in one suffix of each size
        if len(word) - size >= MIN_STEM and word[-size:] in suffixes:
            return word[:-size]
    return word


def words(text: str) -> list[str]:
    """The folded words of a text, in order (hyphenated words split into pieces)."""
    return _FOLDED_WORD_RE.findall(fold(text))


def terms(text: str) -> list[str]:
    """The normalised stems of a text, in order (hyphenated words split into pieces)."""
    return [stem(word) for word in words(text)]


@lru_cache(maxsize=1 << 15)  # texts repeat their words; most answers are the one ()
def part_terms(word: str, lexicon: frozenset[str] = GOVERNMENT_PARTS) -> tuple[str, ...]:
    """The stems under ``MIN_INFIX`` letters of the lexicon words a folded word is a
    compound of (else none): "posteingangsstellen" -> "post", "stell". Longer parts
    need no postings of their own: a query stem that long matches inside words."""
    stems = (stem(part) for part in split_compound(word, lexicon))
    return tuple(part for part in stems if len(part) < MIN_INFIX)


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


class _Postings:
    """Stems to the contributions holding them, with their summed field weights."""

    def __init__(self) -> None:
        self.weights: dict[str, dict[str, float]] = {}
        self._sorted: list[str] = []  # the stems, sorted, for prefix lookups
        self._stale = False

    def add(self, uri: str, term: str, weight: float) -> None:
        postings = self.weights.get(term)
        if postings is None:
            postings = self.weights[term] = {}
            self._stale = True
        postings[uri] = postings.get(uri, 0.0) + weight

    def discard(self, uri: str, terms_of_uri: Iterable[str]) -> None:
        for term in terms_of_uri:
            del self.weights[term][uri]
            if not self.weights[term]:
                del self.weights[term]
                self._stale = True

    def starting_with(self, prefix: str) -> list[str]:
        if self._stale:
            self._sorted = sorted(self.weights)
            self._stale = False
        found = []
        for indexed in self._sorted[bisect.bisect_left(self._sorted, prefix):]:
            if not indexed.startswith(prefix):
                break
            found.append(indexed)
        return found


class SearchIndex:
    """An inverted index from stems to contributions with field weights, and one from
    the stems of compounds' lexicon parts (``part_terms``)."""

    def __init__(self, views: Iterable[ContributionView] = (), *,
                 lexicon: frozenset[str] = GOVERNMENT_PARTS) -> None:
        self._words = _Postings()
        self._parts = _Postings()
        self._lexicon = lexicon
        self._views: dict[str, ContributionView] = {}
        # uri -> its stems and its part stems, for removal
        self._terms_of: dict[str, tuple[set[str], set[str]]] = {}
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
        own_terms, own_parts = self._terms_of[view.uri] = (set(), set())
        for text, weight in weighted:
            for word, count in Counter(words(text)).items():  # stem each word once
                term = stem(word)
                own_terms.add(term)
                self._words.add(view.uri, term, weight * count)
                for part in part_terms(word, self._lexicon):
                    own_parts.add(part)
                    self._parts.add(view.uri, part, weight * count)

    def remove(self, uri: str) -> bool:
        if self._views.pop(uri, None) is None:
            return False
        own_terms, own_parts = self._terms_of.pop(uri)
        self._words.discard(uri, own_terms)
        self._parts.discard(uri, own_parts)
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
            for uri in self._words.weights.get(term, ()):
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
        for postings, factor in self._matching_postings(term):
            for uri, weight in postings.items():
                scores[uri] = max(scores.get(uri, 0.0), weight * factor)
        return scores

    def _matching_postings(self, term: str) -> list[tuple[dict[str, float], float]]:
        found: dict[str, float] = {}
        if term in self._words.weights:
            found[term] = EXACT
        if len(term) >= MIN_PREFIX:
            for indexed in self._words.starting_with(term):
                found.setdefault(indexed, PREFIX)
        if len(term) >= MIN_INFIX:
            for indexed in self._words.weights:
                if term in indexed:
                    found.setdefault(indexed, INFIX)
        matching = [(self._words.weights[indexed], factor) for indexed, factor in found.items()]
        if len(term) < MIN_INFIX and term in self._parts.weights:  # a part of compounds
            matching.append((self._parts.weights[term], INFIX))
        return matching
