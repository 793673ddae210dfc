"""Full-text search over member contributions with German word forms.

A small normaliser instead of a dictionary stemmer: lower-case, umlauts folded to
their two-letter spelling (so "Bürger" and "Buerger" meet), words split at hyphens
("E-Akte" → "e", "akte"), and light suffix stripping of German inflection
("Akten", "Akte" → "akt"; "Bürgerportale" → "buergerportal"). Compounds are met
halfway: a query stem of at least ``MIN_PREFIX`` letters matches words it starts
("Posteingang" finds "Posteingangsbearbeitung"), and one of at least
``MIN_INFIX`` letters matches words that contain it ("Bearbeitung" finds it too).
Shorter parts are found where the compound splits into words of a lexicon
(``node.hub.compounds``, ``part_terms``): "Akte" finds "Personalakte", "Bauakte" and
"Schülerakte" (an unknown modifier before a lexicon head), not "Kontakte" (there is no
word "kont"). A word whose head is an inflected lexicon word ("Bauämter", "Verfahrens")
is also found by its lexicon form ("Bauamt", "Verfahren"): ``lemma_term`` goes into the
part postings, and a query word is asked in its lexicon form too ("Ämter" finds "Amt").
Inside-compound matches of either kind score ``INFIX``, below stem and prefix matches.
German stop words (``STOP_WORDS``, PostgreSQL's list) are neither indexed nor asked,
as in PostgreSQL's ``german`` configuration: a query of stop words alone finds nothing.

The index is pure and in memory: rebuild it from storage at start-up and keep it
current with ``add``/``remove``. Databases can do the same with their own German
configuration; this one works anywhere and is what the tests pin down.
"""

from __future__ import annotations

import bisect
import heapq
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from functools import lru_cache

from node.hub.compounds import GOVERNMENT_PARTS, fold_word, lexicon_form, split_compound
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
# PostgreSQL's German stop words (tsearch_data/german.stop). Its ``german`` configuration
# reads the folded text, so the entries with umlauts or ß ("für", "daß") never match
# there and are left out here too ("fuer" is a word on both backends).
STOP_WORDS = frozenset("""
    aber alle allem allen aller alles als also am an ander andere anderem anderen anderer
    anderes anderm andern anderr anders auch auf aus bei bin bis bist da damit dann der
    den des dem die das derselbe derselben denselben desselben demselben dieselbe
    dieselben dasselbe dazu dein deine deinem deinen deiner deines denn derer dessen dich
    dir du dies diese diesem diesen dieser dieses doch dort durch ein eine einem einen
    einer eines einig einige einigem einigen einiger einiges einmal er ihn ihm es etwas
    euer eure eurem euren eurer eures gegen gewesen hab habe haben hat hatte hatten hier
    hin hinter ich mich mir ihr ihre ihrem ihren ihrer ihres euch im in indem ins ist
    jede jedem jeden jeder jedes jene jenem jenen jener jenes jetzt kann kein keine keinem
    keinen keiner keines machen man manche manchem manchen mancher manches mein meine
    meinem meinen meiner meines mit muss musste nach nicht nichts noch nun nur ob oder
    ohne sehr sein seine seinem seinen seiner seines selbst sich sie ihnen sind so solche
    solchem solchen solcher solches soll sollte sondern sonst um und uns unse unsem unsen
    unser unses unter viel vom von vor war waren warst was weg weil weiter welche welchem
    welchen welcher welches wenn werde werden wie wieder will wir wird wirst wo wollen
    wollte zu zum zur zwar zwischen
""".split())
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


def query_terms(text: str) -> list[tuple[str, str]]:
    """A query's stems without stop words, each with its lexicon form's stem
    (``lemma_term``; the stem itself where that is the same): "Bauämter" -> ("bauaemt",
    "bauamt")."""
    return [(stem(word), lemma_term(word) or stem(word))
            for word in words(text) if word not in STOP_WORDS]


@lru_cache(maxsize=1 << 15)  # texts repeat their words; most answers are the one ()
def part_terms(word: str, lexicon: frozenset[str] = GOVERNMENT_PARTS) -> tuple[str, ...]:
    """The stems under ``MIN_INFIX`` letters of the lexicon words a folded word is a
    compound of (else none): "posteingangsstellen" -> "post", "stell". Longer parts
    need no postings of their own: a query stem that long matches inside words."""
    stems = (stem(part) for part in split_compound(word, lexicon) if part in lexicon)
    return tuple(part for part in stems if len(part) < MIN_INFIX)


@lru_cache(maxsize=1 << 15)
def lemma_term(word: str, lexicon: frozenset[str] = GOVERNMENT_PARTS) -> str | None:
    """The stem of a folded word's lexicon form where it differs from the word's own
    stem ("bauaemter" -> "bauamt", "verfahrens" -> "verfahr"), else None."""
    lemma = stem(lexicon_form(word, lexicon))
    return lemma if lemma != stem(word) else None


@lru_cache(maxsize=1 << 15)
def inner_terms(word: str, lexicon: frozenset[str] = GOVERNMENT_PARTS) -> tuple[str, ...]:
    """What the memory index keeps in its part postings for a folded word: its
    ``part_terms`` and its ``lemma_term`` ("bauaemter" -> "bau", "amt", "bauamt")."""
    parts, lemma = part_terms(word, lexicon), lemma_term(word, lexicon)
    return parts if lemma is None or lemma in parts else (*parts, lemma)


@lru_cache(maxsize=1 << 16)  # one lookup per word of a text: its stem and inner terms
def word_terms(word: str, lexicon: frozenset[str] = GOVERNMENT_PARTS
               ) -> tuple[str, tuple[str, ...]]:
    """A folded word's stem and ``inner_terms``, as the memory index keeps them.

    Interned (once a word, the lookup is cached): the postings, the terms of each
    contribution and a snapshot's pages then hold one string per stem (``SearchPage``)."""
    return sys.intern(stem(word)), tuple(sys.intern(term) for term in inner_terms(word, lexicon))


@dataclass(frozen=True)
class QueryAlternative:
    """One side of an ``or``: stems every hit must match, stems no hit may contain;
    ``lemmas`` pairs a required stem with its lexicon form's stem where they differ
    (either matches)."""

    required: tuple[str, ...]
    excluded: tuple[str, ...]
    lemmas: tuple[tuple[str, str], ...] = ()


_TOKEN_RE = re.compile(r'-?"[^"]*"?|\S+')


def parse_query(query: str) -> list[QueryAlternative]:
    """The web-search syntax PostgreSQL's ``websearch_to_tsquery`` reads, for the memory
    index: ``or`` between alternatives, ``-word`` (or ``-"…"``) excludes, and a quoted
    phrase needs its words (anywhere: the memory index keeps no word positions)."""
    groups: list[tuple[dict[str, str], list[str]]] = [({}, [])]
    for token in _TOKEN_RE.findall(query):
        if token.lower() == "or":
            groups.append(({}, []))
            continue
        required, excluded = groups[-1]
        negated = token.startswith("-") and len(token) > 1
        found = query_terms(token[1:] if negated else token)
        if negated:
            excluded.extend(term for term, _ in found)
        else:
            required.update((term, lemma) for term, lemma in found if term not in required)
    alternatives = [
        QueryAlternative(tuple(required), tuple(excluded),
                         tuple((term, lemma) for term, lemma in required.items() if lemma != term))
        for required, excluded in groups if required or excluded]
    return alternatives or [QueryAlternative((), ())]


def asks_nothing(query: str, alternatives: list[QueryAlternative]) -> bool:
    """A query with words but no term left (stop words alone, a lone "or"): it finds
    nothing, as ``websearch_to_tsquery`` finds nothing for it (an empty query lists all)."""
    return bool(query.strip()) and alternatives == [QueryAlternative((), ())]


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
    view: ContributionView  # as a result lists it: without its text (``listed``)


def listed(view: ContributionView) -> ContributionView:
    """The contribution as a search result lists it: its text, once indexed, is left out
    (it stays in SQL). A national hub's in-memory search would otherwise hold every
    practice's whole text a second time, beside the stems it was found by. The strings
    that many contributions share (author, municipality key, topics, status) are interned:
    held once, and written once a page to a snapshot."""
    key, status = view.municipality_key, view.status
    return replace(view, content_text="", author=sys.intern(view.author),
                   municipality_key=sys.intern(key) if key is not None else None,
                   topics=tuple(sys.intern(topic) for topic in view.topics),
                   status=sys.intern(status) if status is not None else None)


# What ``SearchIndex.pages`` yields: contributions with their terms, or postings.
CONTRIBUTIONS, WORDS, PARTS = "contributions", "words", "parts"
PAGE_ROWS = 5_000
# ContributionView's fields after its URI, in order (a page's rows hold their values; the
# first, ``kind``, as its plain value: tests/test_search_snapshot.py reads them back).
_VIEW_FIELDS = tuple(field.name for field in fields(ContributionView))[1:]


@dataclass(frozen=True)
class SearchPage:
    kind: str  # CONTRIBUTIONS, WORDS or PARTS
    # CONTRIBUTIONS: rows of (uri, the view's other values, its stems, its part stems);
    # WORDS, PARTS: stem -> {uri: weight}
    content: list[tuple[object, ...]] | dict[str, dict[str, float]]


_KINDS = {kind.value: kind for kind in ContributionKind}


def _view_values(view: ContributionView) -> tuple[object, ...]:
    return (view.kind.value, *(getattr(view, name) for name in _VIEW_FIELDS[1:]))


def _view_of_values(uri: str, values: list[object]) -> ContributionView:
    if len(values) != len(_VIEW_FIELDS):
        raise ValueError(f"a contribution of {len(values)} values, not {len(_VIEW_FIELDS)}")
    return ContributionView(uri, _KINDS[values[0]], *values[1:])  # type: ignore[arg-type]


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

    def mark_changed(self) -> None:
        """Stems were added other than through ``add`` (a snapshot's page)."""
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
    the stems of compounds' lexicon parts (``part_terms``) and of words' lexicon forms
    (``lemma_term``)."""

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
        uri = sys.intern(view.uri)  # one string in every posting (see ``pages``)
        self.remove(uri)
        self._views[uri] = listed(view)
        weighted = (
            (view.title, TITLE_WEIGHT),
            (view.summary, SUMMARY_WEIGHT),
            (view.content_text, CONTENT_WEIGHT),
        )
        own_terms, own_parts = self._terms_of[uri] = (set(), set())
        for text, weight in weighted:
            for word, count in Counter(words(text)).items():  # stem each word once
                if word in STOP_WORDS:
                    continue
                term, inner = word_terms(word, self._lexicon)
                own_terms.add(term)
                self._words.add(uri, term, weight * count)
                for part in inner:
                    own_parts.add(part)
                    self._parts.add(uri, part, weight * count)

    def remove(self, uri: str) -> bool:
        if self._views.pop(uri, None) is None:
            return False
        own_terms, own_parts = self._terms_of.pop(uri)
        self._words.discard(uri, own_terms)
        self._parts.discard(uri, own_parts)
        return True

    def pages(self, rows: int = PAGE_ROWS) -> Iterator[SearchPage]:
        """The whole index as pages of plain data (``node.hub.search_snapshot`` writes
        them with ``marshal``): the contributions with their terms, ``rows`` a page, then
        the postings, about ten times as many entries a page. The URIs and stems are
        interned strings, so a page read back holds no copies of its own of them."""
        page: list[tuple[object, ...]] = []
        for uri, view in self._views.items():
            terms, parts = self._terms_of[uri]
            page.append((uri, *_view_values(view), terms, parts))
            if len(page) == rows:
                yield SearchPage(CONTRIBUTIONS, page)
                page = []
        if page:
            yield SearchPage(CONTRIBUTIONS, page)
        for kind, postings in ((WORDS, self._words), (PARTS, self._parts)):
            chunk: dict[str, dict[str, float]] = {}
            entries = 0
            for term, weights in postings.weights.items():
                chunk[term] = weights
                entries += len(weights)
                if entries >= rows * 10:
                    yield SearchPage(kind, chunk)
                    chunk, entries = {}, 0
            if chunk:
                yield SearchPage(kind, chunk)

    def restore(self, page: SearchPage) -> None:
        """Take back one page of ``pages`` (into an index that was empty before the first).
        Raises ``ValueError`` for a page ``pages`` does not write."""
        if page.kind == CONTRIBUTIONS:
            for uri, *values, terms, parts in page.content:  # type: ignore[union-attr]
                self._views[uri] = _view_of_values(uri, values)
                self._terms_of[uri] = (terms, parts)
        elif page.kind in (WORDS, PARTS):
            postings = self._words if page.kind == WORDS else self._parts
            postings.weights.update(page.content)  # type: ignore[arg-type]
            postings.mark_changed()
        else:
            raise ValueError(f"no search page of kind {page.kind!r}")

    def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        """Contributions matching every word of ``query`` (best first), after the filters.

        An empty query lists every contribution the filters admit.
        """
        filters = filters or SearchFilters()
        alternatives = parse_query(query)
        if asks_nothing(query, alternatives):
            return []
        scores: dict[str, float] = {}
        for alternative in alternatives:
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
            lemmas = dict(alternative.lemmas)
            scores = self._match_all([(term, lemmas.get(term, term))
                                      for term in alternative.required])
        else:
            scores = dict.fromkeys(self._views, 0.0)
        for term in alternative.excluded:  # exact stems, as PostgreSQL's ``-word`` is
            for uri in self._words.weights.get(term, ()):
                scores.pop(uri, None)
        return scores

    def _match_all(self, query_terms: list[tuple[str, str]]) -> dict[str, float]:
        combined: dict[str, float] | None = None
        for term, lemma in query_terms:
            scores = self._match(term)
            if lemma != term:  # "Ämter" also as "Amt"
                for uri, score in self._match(lemma).items():
                    scores[uri] = max(scores.get(uri, 0.0), score)
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
        # parts of compounds and lexicon forms: exactly, and long stems inside the forms
        # ("bauamt" in "landesbauamt"), as PostgreSQL's endings of them in compound_parts
        inner = [term] if term in self._parts.weights else []
        if len(term) >= MIN_INFIX:
            inner = [indexed for indexed in self._parts.weights if term in indexed]
        matching.extend((self._parts.weights[indexed], INFIX) for indexed in inner)
        return matching
