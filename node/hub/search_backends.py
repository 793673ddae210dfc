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

Both find "E-Akte" for "Akten" and "Bürgerportal" for "Bürgerportale", and both treat
a stem of ``MIN_PREFIX`` letters or more as a prefix ("Kontakte" finds
"Kontaktformular"); only the memory index also matches inside compounds ("Bearbeitung"
finds "Posteingangsbearbeitung"). Scores are each backend's own (weights title >
summary > text in both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.hub.contribution import ContributionKind, ContributionView
from node.hub.search import MIN_PREFIX, SearchFilters, SearchHit, SearchIndex, fold

SEARCH_TABLE = "hub_search"
INSERT_BATCH = 500
# A quoted lexeme without spaces or hyphens (hyphenated ones head a phrase of their parts).
_LONG_LEXEME = f"'([^' -]{{{MIN_PREFIX},}})'"


class SearchBackend(Protocol):
    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        """Start afresh with exactly these contributions."""

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

    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        self.index = SearchIndex(views)

    async def add(self, views: Sequence[ContributionView]) -> None:
        for view in views:
            self.index.add(view)

    async def remove(self, uris: Sequence[str]) -> int:
        return sum(int(self.index.remove(uri)) for uri in uris)

    async def search(
        self, query: str, filters: SearchFilters | None = None, *, limit: int = 50
    ) -> list[SearchHit]:
        return self.index.search(query, filters, limit=limit)


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
)
_DATA_COLUMNS = [column.name for column in search_rows.columns]


def _row(view: ContributionView) -> dict[str, object]:
    return {
        "uri": view.uri, "kind": view.kind.value, "title": view.title, "summary": view.summary,
        "content_text": view.content_text, "author": view.author, "topics": list(view.topics),
        "municipality_key": view.municipality_key, "ags": view.ags, "status": view.status,
        "published": view.published, "updated": view.updated, "url": view.url,
    }


def _view(row: sa.Row[tuple[object, ...]]) -> ContributionView:
    values = row._mapping
    return ContributionView(
        uri=values["uri"], kind=ContributionKind(values["kind"]), title=values["title"],
        summary=values["summary"], content_text=values["content_text"], author=values["author"],
        topics=tuple(values["topics"]), municipality_key=values["municipality_key"],
        status=values["status"], published=values["published"], updated=values["updated"],
        url=values["url"],
    )


class PostgresSearch:
    """Full-text search in PostgreSQL's ``german`` configuration over ``hub_search``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def replace_all(self, views: Sequence[ContributionView]) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(sa.delete(search_rows))
            await self._upsert(session, views)

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
        statement = sa.select(*search_rows.columns)
        folded = fold(query).strip()
        if folded:
            tsquery = _prefix_query(folded)
            vector = sa.literal_column("search")
            score = sa.func.ts_rank(vector, tsquery)
            statement = statement.add_columns(score.label("score")).where(vector.op("@@")(tsquery))
        else:
            statement = statement.add_columns(sa.literal(0.0).label("score"))
        statement = _filtered(statement, filters).order_by(
            sa.literal_column("score").desc(), search_rows.c.title, search_rows.c.uri).limit(limit)
        async with self._sessions() as session:
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


def search_backend_for(sessions: async_sessionmaker[AsyncSession]) -> SearchBackend:
    """PostgreSQL search for a hub on PostgreSQL, the in-memory index otherwise."""
    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "postgresql":
        return PostgresSearch(sessions)
    return MemorySearch()
