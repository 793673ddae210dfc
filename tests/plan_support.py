"""What a database does with our statements: record the ones an engine runs, and ask
for their plans (``EXPLAIN`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def statements_run(engine: AsyncEngine, wanted: Callable[[str], bool]
                   ) -> Iterator[list[tuple[str, object]]]:
    """The statements (with their parameters) ``engine`` runs meanwhile that are ``wanted``."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if wanted(statement):
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def query_plan(engine: AsyncEngine, statement: str, parameters: object) -> list[str]:
    """The database's plan for ``statement``, a line (PostgreSQL) or a step (SQLite) each."""
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            f"{'EXPLAIN' if postgres else 'EXPLAIN QUERY PLAN'} {statement}", parameters)
        return [row[0] if postgres else row[3] for row in rows]
