"""SQLite write transactions start with BEGIN IMMEDIATE, so concurrent writers queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from node.storage.db import create_engine

# long enough that both transactions have read before either writes, were they deferred
PAUSE_BETWEEN_READ_AND_WRITE = 0.2


async def _increment(engine: AsyncEngine) -> None:
    """Read, pause, write: the pattern that fails when the read lock must be upgraded."""
    async with engine.begin() as connection:
        value = (await connection.execute(text("SELECT n FROM counter"))).scalar_one()
        await asyncio.sleep(PAUSE_BETWEEN_READ_AND_WRITE)
        await connection.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})


async def test_two_concurrent_writing_transactions_both_succeed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'two-writers.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
            await connection.execute(text("INSERT INTO counter (n) VALUES (0)"))
        await asyncio.gather(_increment(engine), _increment(engine))
        async with engine.connect() as connection:
            final = (await connection.execute(text("SELECT n FROM counter"))).scalar_one()
        assert final == 2  # both committed, and neither lost the other's update
    finally:
        await engine.dispose()


async def test_a_failed_transaction_still_rolls_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rollback.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (n INTEGER)"))
        try:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t (n) VALUES (1)"))
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        async with engine.connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
        assert count == 0  # the driver no longer manages transactions: ours must still end
    finally:
        await engine.dispose()
