"""Where the hub's full-text search runs: in memory, or in PostgreSQL.

``SearchBackend`` is what the aggregator keeps current and the ``/search`` route asks.
``search_backend_for`` picks one by the database dialect:

- SQLite: ``MemorySearch``, the in-memory German index of ``node.hub.search``,
  rebuilt from SQL at start-up (each process keeps its own).
- PostgreSQL: ``PostgresSearch``, rows in ``hub_search`` (migration 0005) whose
  ``search`` column is a stored ``to_tsvector('german', …)`` of title, summary and
  text with a GIN index, asked with ``websearch_to_tsquery('german', …)``. Umlauts are
  folded to their two-letter spelling on both sides first (in the generated column and
  in ``fold`` here), because the ``german`` snowball stemmer keeps "buerger" and
  "bürger" apart. All processes of a hub share the table; writes are idempotent.

  Compounds: a second, Python-computed tsvector ``compound_parts`` (migration 0007,
  GIN-indexed) holds the inner parts of every word the memory index would index: each
  ending of ``MIN_INFIX`` letters or more of its stems ("posteingangsbearbeitung" ->
  "osteingangsbearbeitung" … "arbeitung"), so a prefix query ``'bearbeitung':*`` there
  is the memory index's ``term in word``. No extension (pg_trgm) is needed. The vector
  also holds the stems under ``MIN_INFIX`` letters of the lexicon parts of compound
  words (``search.part_terms``: "personalakte" -> "akt"), asked exactly, as the memory
  index asks its part postings; and ``parts_marker``, by which a
  refill finds rows whose parts were computed otherwise and rewrites them.

Both find "E-Akte" for "Akten" and "Bürgerportal" for "Bürgerportale", both treat a
stem of ``MIN_PREFIX`` letters or more as a prefix ("Kontakte" finds
"Kontaktformular"), and both match a query stem of ``MIN_INFIX`` letters or more inside
compounds ("Bearbeitung" finds "Posteingangsbearbeitung", "Antrag" finds
"Bauantragsverfahren"), and a shorter one where a compound splits into lexicon words
("Akte" finds "Personalakte", never "Kontakte"). Scores
are each backend's own (weights title > summary > text in both). For a one-word query
both rank a stem match above every inside-compound match; PostgreSQL also keeps every
contribution matching all words by stem or prefix (score 1 or more) above those that
need an inside-compound match (below 1), where the memory index sums per-word scores
(a title match inside a compound outweighs a prefix match in the text). On PostgreSQL
the compound path is taken for plain words of ``MIN_STEM`` letters or more only: a
query with ``or`` is left to ``websearch_to_tsquery`` alone, and quoted phrases and
``-word`` are kept as conditions beside the words. The memory index reads the same
syntax (``search.parse_query``), with phrases as their words in any order.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.hub.compounds import (
    ENDINGS,
    GOVERNMENT_PARTS,
    LINKS,
    LOOKALIKES,
    MIN_MODIFIER,
    MIN_OPEN_HEAD,
    MIN_PART,
    PLURAL_BASES,
    lexicon_form,
)
from node.hub.contribution import ContributionKind, ContributionView
from node.hub.search import (
    INFIX,
    MIN_INFIX,
    MIN_PREFIX,
    MIN_STEM,
    STOP_WORDS,
    SearchFilters,
    SearchHit,
    SearchIndex,
    fold,
    lemma_term,
    part_terms,
    query_terms,
    stem,
    words,
)

SEARCH_TABLE = "hub_search"
INSERT_BATCH = 500
READ_BATCH = 2_000
# A quoted lexeme without spaces or hyphens (hyphenated ones head a phrase of their parts).
_LONG_LEXEME = f"'([^' -]{{{MIN_PREFIX},}})'"
# Longer "words" are hashes or encoded data, not compounds; their endings would only
# bloat the vector (a word of n letters has n - MIN_INFIX of them).
MAX_COMPOUND = 64
# PostgreSQL refuses a tsvector over 1 MB; the parts stop here (title and summary first).
MAX_PARTS_CHARS = 400_000
# Bump when compound_parts computes its lexemes differently (parts_marker names it).
PARTS_FORMAT = 4
_TOKEN_RE = re.compile(r'"[^"]*"?|\S+')


class SearchRefill(Protocol):
    async def add(self, views: Sequence[ContributionView]) -> None:
        """One page of the contributions the search holds once the refill ends."""


class SearchBackend(Protocol):
    def refill(self) -> AbstractAsyncContextManager[SearchRefill]:
        """Start afresh a page at a time: the contributions added inside the block are
        exactly what the search holds after it (nothing changes if it fails), so a
        national hub's contributions never need to be in memory at once."""

    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        """Start afresh with exactly these contributions (one page of ``refill``)."""

    async def kept_from_before(self) -> bool:
        """True if it holds, at a hub's start, what it held when the hub stopped, and
        answers from that during the start's refill (PostgreSQL's table, once filled);
        False if it starts empty (in memory)."""

    async def add(self, views: Sequence[ContributionView]) -> None:
        """Index contributions, replacing earlier versions with the same URI."""

    async def remove(self, uris: Sequence[str]) -> int:
        """Drop contributions; how many were indexed."""

    async def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        """Contributions matching every word of ``query`` (best first), after the filters;
        an empty query lists every contribution the filters admit."""


class MemorySearch:
    """The in-memory ``SearchIndex`` behind the ``SearchBackend`` protocol."""

    def __init__(self, index: SearchIndex | None = None) -> None:
        self.index = index if index is not None else SearchIndex()

    @asynccontextmanager
    async def refill(self) -> AsyncIterator[SearchRefill]:
        fresh = _MemoryRefill()
        yield fresh  # its add() fills the new index; the old one answers meanwhile
        self.index = fresh.index

    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        self.index = SearchIndex(views)

    async def kept_from_before(self) -> bool:
        return False  # each process starts empty and fills from SQL

    async def add(self, views: Sequence[ContributionView]) -> None:
        for view in views:
            self.index.add(view)

    async def remove(self, uris: Sequence[str]) -> int:
        return sum(int(self.index.remove(uri)) for uri in uris)

    async def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        return self.index.search(query, filters, limit=limit)


YIELD_EVERY = 20  # contributions indexed between two offers of the GIL (~1 ms)


class _MemoryRefill:
    """A refill's new index, filled on a thread: nothing reads it before the swap, and a
    page of 5,000 contributions is ~0.4 s of Python that kept the event loop from every
    request (a hub's start: GET answered in 0.6-1 s while the search filled)."""

    def __init__(self) -> None:
        self.index = SearchIndex()

    async def add(self, views: Sequence[ContributionView]) -> None:
        await asyncio.to_thread(self._add_all, views)

    def _add_all(self, views: Sequence[ContributionView]) -> None:
        for number, view in enumerate(views, 1):
            self.index.add(view)
            if number % YIELD_EVERY == 0:
                time.sleep(0)  # let the event loop's thread have the GIL now, not in 5 ms


def compound_parts(title: str, summary: str, content_text: str,
                   lexicon: frozenset[str] = GOVERNMENT_PARTS) -> str:
    """The ``compound_parts`` tsvector (as its text form) of a contribution: every ending
    of ``MIN_INFIX`` letters or more of every stem ``node.hub.search.terms`` finds, and
    the short stems of the lexicon parts of its compounds (``part_terms``), once each, with the
    weight of the best field it occurs in (title A, summary B, text D); and the lexicon's
    ``parts_marker``."""
    weight_of: dict[str, str] = {parts_marker(lexicon): "D"}
    size = 0
    for text, weight in ((title, "A"), (summary, "B"), (content_text, "D")):
        for word in dict.fromkeys(words(text)):
            if size > MAX_PARTS_CHARS:
                break
            if word in STOP_WORDS:
                continue  # not in ``search`` either (the german configuration drops them)
            for part in _inner_lexemes(word, lexicon):
                if part not in weight_of:
                    weight_of[part] = weight
                    size += len(part) + 6  # as written below: 'part':1A and a space
    # The stems hold only [0-9a-z] (folded), so quoting them needs no escapes.
    return " ".join(f"'{part}':1{weight}" for part, weight in weight_of.items())


def _inner_lexemes(word: str, lexicon: frozenset[str]) -> list[str]:
    """A folded word's stem's endings of ``MIN_INFIX`` letters or more, its parts, and
    its lexicon form's stem where that differs (``lemma_term``): whole when shorter than
    ``MIN_INFIX``, else with its endings from the first letter ("bauamt" of "bauaemter",
    so that ``'bauamt':*`` finds it as the memory index's ``term in lemma``)."""
    stemmed = stem(word)
    endings = range(1, len(stemmed) - MIN_INFIX + 1) if len(stemmed) <= MAX_COMPOUND else ()
    lexemes = [*(stemmed[start:] for start in endings), *part_terms(word, lexicon)]
    lemma = lemma_term(word, lexicon)
    if lemma is not None:
        lexemes.extend(lemma[start:] for start in range(max(1, len(lemma) - MIN_INFIX + 1)))
    return lexemes


@lru_cache(maxsize=8)
def parts_marker(lexicon: frozenset[str]) -> str:
    """A lexeme naming how ``compound_parts`` was computed: rows written by other code
    (another lexicon, other limits) lack it, and a refill rewrites them. No query
    reaches it: query lexemes are [0-9a-z] only."""
    recipe = repr((PARTS_FORMAT, MIN_INFIX, MAX_COMPOUND, MIN_PART, LINKS, ENDINGS,
                   MIN_MODIFIER, MIN_OPEN_HEAD, sorted(PLURAL_BASES.items()),
                   sorted(LOOKALIKES), sorted(STOP_WORDS), sorted(lexicon)))
    return "#parts-" + hashlib.sha256(recipe.encode()).hexdigest()[:16]


class _TsVectorText(sa.types.TypeDecorator[str]):
    """A tsvector written from its text form (the cast happens in the statement)."""

    impl = sa.Text
    cache_ok = True

    def bind_expression(self, bindvalue: sa.BindParameter[str]) -> sa.ColumnElement[str]:
        return sa.cast(bindvalue, postgresql.TSVECTOR)


_metadata = sa.MetaData()
# The data columns; the generated ``search`` tsvector column is left to the database.
search_rows = sa.Table(
    SEARCH_TABLE, _metadata,
    sa.Column("uri", sa.String(2048), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("author", sa.String(2048), nullable=False),
    sa.Column("topics", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("municipality_key", sa.String(2048)),
    sa.Column("ags", sa.String(2048)),
    sa.Column("status", sa.String(80)),
    sa.Column("published", sa.String(64)),
    sa.Column("updated", sa.String(64)),
    sa.Column("url", sa.String(2048)),
    sa.Column("compound_parts", _TsVectorText),
)
_DATA_COLUMNS = [column.name for column in search_rows.columns]
_READ_COLUMNS = [column for column in search_rows.columns if column.name != "compound_parts"]
_HIT_COLUMNS = [column for column in _READ_COLUMNS if column.name != "content_text"]


def _row(view: ContributionView) -> dict[str, object]:
    return {
        "uri": view.uri, "kind": view.kind.value, "title": view.title, "summary": view.summary,
        "content_text": view.content_text, "author": view.author, "topics": list(view.topics),
        "municipality_key": view.municipality_key, "ags": view.ags, "status": view.status,
        "published": view.published, "updated": view.updated, "url": view.url,
        "compound_parts": compound_parts(view.title, view.summary, view.content_text),
    }


def _view(row: sa.Row[tuple[object, ...]]) -> ContributionView:
    """The row's view; without its text where the row has none (``_HIT_COLUMNS``)."""
    values = row._mapping
    return ContributionView(
        uri=values["uri"], kind=ContributionKind(values["kind"]), title=values["title"],
        summary=values["summary"], content_text=values.get("content_text", ""),
        author=values["author"],
        topics=tuple(values["topics"]), municipality_key=values["municipality_key"],
        status=values["status"], published=values["published"], updated=values["updated"],
        url=values["url"],
    )


class PostgresSearch:
    """Full-text search in PostgreSQL's ``german`` configuration over ``hub_search``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def refill(self) -> AsyncIterator[SearchRefill]:
        """One transaction: each page's URIs go into a temporary table and only its rows
        that differ from their view are written (the hub refills at every start, and
        rewriting a row costs its ``compound_parts`` in Python and the GIN inserts), or
        whose ``compound_parts`` lack this code's ``parts_marker`` (written with another
        lexicon: so the hub's first start after an upgrade fills in the new parts); at
        the end the rows whose URI no page named are deleted. Memory: one page."""
        async with self._sessions() as session, session.begin():
            await session.execute(sa.text(
                f"CREATE TEMPORARY TABLE {_SEEN} (uri text PRIMARY KEY) ON COMMIT DROP"))
            yield _PostgresRefill(session)
            await session.execute(sa.delete(search_rows).where(~sa.exists().where(
                _seen_rows.c.uri == search_rows.c.uri)))

    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        async with self.refill() as refill:
            await refill.add(views)

    async def kept_from_before(self) -> bool:
        """Rows are there once a refill committed (one transaction: a start stopped part
        way left none) or a sync added some; the table is empty before the first."""
        async with self._sessions() as session:
            return bool(await session.scalar(sa.select(sa.exists().select_from(search_rows))))

    async def count(self) -> int:
        """The rows of the table (``search_snapshot.TableStamp``)."""
        async with self._sessions() as session:
            return int(await session.scalar(sa.select(sa.func.count()).select_from(search_rows))
                       or 0)

    async def add(self, views: Sequence[ContributionView]) -> None:
        if views:
            async with self._sessions() as session, session.begin():
                await self._upsert(session, views)

    async def remove(self, uris: Sequence[str]) -> int:
        if not uris:
            return 0
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                sa.delete(search_rows).where(search_rows.c.uri.in_(list(uris))))
        return int(result.rowcount or 0)

    async def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        filters = filters or SearchFilters()
        statement = sa.select(*_HIT_COLUMNS)  # a hit is listed without its text
        plan = _plan(fold(query).strip())
        async with self._sessions() as session:
            if plan is None:
                statement = statement.add_columns(sa.literal(0.0).label("score"))
            else:
                matching = await _matching(session, plan)
                if matching is None:
                    return []  # nothing but stop words: websearch_to_tsquery finds nothing either
                statement = statement.add_columns(matching.score.label("score")).where(
                    *matching.conditions)
            statement = _filtered(statement, filters).order_by(
                sa.literal_column("score").desc(), search_rows.c.title, search_rows.c.uri,
            ).limit(limit)
            rows = (await session.execute(statement)).all()
        return [SearchHit(row.uri, float(row.score), _view(row)) for row in rows]

    @staticmethod
    async def _upsert(session: AsyncSession, views: Sequence[ContributionView]) -> None:
        unique = list({view.uri: view for view in views}.values())  # one row per URI
        for start in range(0, len(unique), INSERT_BATCH):
            statement = postgresql.insert(search_rows)
            statement = statement.on_conflict_do_update(
                index_elements=["uri"],
                set_={name: statement.excluded[name] for name in _DATA_COLUMNS if name != "uri"})
            await session.execute(statement, [_row(v) for v in unique[start:start + INSERT_BATCH]])


@dataclass(frozen=True)
class _Word:
    """A plain query word that may also match inside compounds."""

    text: str  # folded, as typed: for websearch_to_tsquery
    lemma_text: str | None  # its lexicon form where that stems otherwise ("bauamt")
    parts_query: str  # its stem (or lexicon form's stem) in compound_parts (``_part_query``)


@dataclass(frozen=True)
class _QueryPlan:
    whole: str  # the folded query ("or" in it: websearch_to_tsquery alone decides)
    words: tuple[_Word, ...]  # empty: websearch_to_tsquery alone decides
    rest: str  # phrases, -words and words under MIN_STEM: stem and prefix matches only


@dataclass(frozen=True)
class _Matching:
    conditions: list[sa.ColumnElement[bool]]
    score: sa.ColumnElement[float]


def _plan(folded: str) -> _QueryPlan | None:
    """Which words of a non-empty query may match inside compounds (None: no query).

    Words are read as the memory index reads them: hyphenated ones as their pieces
    ("e-akte" as "e" and "akte", each required anywhere, not as a phrase), stop words
    left out; pieces under ``MIN_STEM`` letters are matched by stem only."""
    if not folded:
        return None
    tokens = _TOKEN_RE.findall(folded)
    if "or" in tokens:  # "or" binds its neighbours; splitting the query would lose that
        return _QueryPlan(folded, (), folded)
    plain: list[_Word] = []
    rest: list[str] = []
    for token in tokens:
        if token[0] in '"-':
            rest.append(token)
            continue
        for (term, lemma), piece in zip(query_terms(token), _pieces(token), strict=True):
            if len(term) < MIN_STEM:
                rest.append(piece)
                continue
            parts_query = _part_query(term) if lemma == term else \
                f"{_part_query(term)} | {_part_query(lemma)}"
            lemma_text = lexicon_form(piece, GOVERNMENT_PARTS) if lemma != term else None
            plain.append(_Word(piece, lemma_text, parts_query))
    return _QueryPlan(folded, tuple(plain), " ".join(rest))


def _pieces(token: str) -> list[str]:
    """The words of a query token that ``query_terms`` gives terms for, in its order."""
    return [word for word in words(token) if word not in STOP_WORDS]


def _part_query(term: str) -> str:
    """A query stem in ``compound_parts``: a prefix of word endings when it is long
    enough to match inside words (as ``term in word`` in the memory index), else a
    lexicon part exactly ("akt" is a part of "personalakte", not of "kontakte")."""
    return f"'{term}':*" if len(term) >= MIN_INFIX else f"'{term}'"


async def _matching(session: AsyncSession, plan: _QueryPlan) -> _Matching | None:
    """Every word (or its lexicon form) by stem or prefix in ``search`` or inside a
    compound in ``compound_parts``; the rest in ``search``. Scores: 1 + ts_rank/(1 +
    ts_rank) when every word matches ``search``, below 1 when some word matched only
    inside a compound (so stem and prefix matches come first, as in the memory index)."""
    vector, parts = sa.literal_column("search"), sa.literal_column("compound_parts")
    if not plan.words:  # as before compounds: one statement
        tsquery = _prefix_query(plan.whole)
        rank = sa.func.ts_rank(vector, tsquery)
        return _Matching([vector.op("@@")(tsquery)], 1.0 + rank / (1.0 + rank))
    texts = [text for word in plan.words for text in (word.text, word.lemma_text) if text]
    # The German parse of each piece first (one round trip), so that the statement gets
    # constant tsqueries the planner can take to the GIN indexes, and stop words drop out.
    parsed = iter(str(text) for text in (await session.execute(
        sa.select(*(sa.cast(_prefix_query(text), sa.Text) for text in [*texts, plan.rest])))).one())
    word_queries = [_either(next(parsed), next(parsed) if word.lemma_text else "")
                    for word in plan.words]
    rest = next(parsed)
    whole = " & ".join(f"( {query} )" for query in [*word_queries, rest] if query)
    if not whole:
        return None
    conditions = [
        sa.or_(vector.op("@@")(_tsquery(main)), parts.op("@@")(_tsquery(word.parts_query)))
        for word, main in zip(plan.words, word_queries, strict=True) if main]
    if rest:
        conditions.append(vector.op("@@")(_tsquery(rest)))
    rank = sa.func.ts_rank(vector, _tsquery(whole))
    any_part = " | ".join(f"({word.parts_query})" for word in plan.words)
    inner = rank + INFIX * sa.func.ts_rank(parts, _tsquery(any_part))
    score = sa.case((vector.op("@@")(_tsquery(whole)), 1.0 + rank / (1.0 + rank)),
                    else_=inner / (1.0 + inner))
    return _Matching(conditions, score)


def _either(query: str, lemma_query: str) -> str:
    """Two parsed tsqueries as one matching either (an empty one: the other)."""
    if query and lemma_query:
        return f"( {query} ) | ( {lemma_query} )"
    return query or lemma_query


def _tsquery(text: str) -> sa.ColumnElement[object]:
    return sa.cast(sa.literal(text), postgresql.TSQUERY)


def _prefix_query(folded: str) -> sa.ColumnElement[object]:
    """``websearch_to_tsquery('german', …)`` with every stem of ``MIN_PREFIX`` letters or
    more made a prefix ("kontakt" finds "kontaktformular"), as the memory index does.

    The rewritten text is cast to ``tsquery`` rather than parsed again, so stems and
    phrases ("e-akt" <-> "e" <-> "akt") stay exactly as the German parser made them.
    """
    parsed = sa.func.websearch_to_tsquery(sa.literal_column("'german'::regconfig"), folded)
    prefixed = sa.func.regexp_replace(sa.cast(parsed, sa.Text), _LONG_LEXEME, r"'\1':*", "g")
    return sa.cast(prefixed, postgresql.TSQUERY)


def _filtered(statement: sa.Select[tuple[object, ...]],
              filters: SearchFilters) -> sa.Select[tuple[object, ...]]:
    if filters.topic is not None:
        statement = statement.where(search_rows.c.topics.contains([filters.topic]))
    if filters.kind is not None:
        statement = statement.where(search_rows.c.kind == filters.kind.value)
    if filters.municipality is not None:
        statement = statement.where(sa.or_(search_rows.c.ags == filters.municipality,
                                           search_rows.c.municipality_key == filters.municipality))
    if filters.status is not None:
        statement = statement.where(search_rows.c.status == filters.status)
    return statement


_SEEN = "hub_search_refill_seen"
_seen_rows = sa.Table(_SEEN, _metadata, sa.Column("uri", sa.Text, primary_key=True))


class _PostgresRefill:
    """A page of ``PostgresSearch.refill``: writes only what differs from the table."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, views: Sequence[ContributionView]) -> None:
        wanted = {view.uri: view for view in views}  # one row per URI, the last one
        uris, session = list(wanted), self._session
        for start in range(0, len(uris), READ_BATCH):
            batch = {uri: wanted[uri] for uri in uris[start:start + READ_BATCH]}
            await session.execute(postgresql.insert(_seen_rows).on_conflict_do_nothing(),
                                  [{"uri": uri} for uri in batch])
            current = search_rows.c.compound_parts.op("@@")(
                _tsquery(f"'{parts_marker(GOVERNMENT_PARTS)}'")).label("parts_current")
            for row in await session.execute(sa.select(*_READ_COLUMNS, current).where(
                    search_rows.c.uri.in_(list(batch)))):
                if row.parts_current and batch[row.uri] == _view(row):
                    del batch[row.uri]
            await PostgresSearch._upsert(session, list(batch.values()))


def search_backend_for(sessions: async_sessionmaker[AsyncSession]) -> SearchBackend:
    """PostgreSQL search for a hub on PostgreSQL, the in-memory index otherwise."""
    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "postgresql":
        return PostgresSearch(sessions)
    return MemorySearch()
