"""Helpers for the node-core tests: a node directory, a movable clock, API tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.keys import PrivateKey, generate_ed25519_key, generate_rsa_key, save_private_key
from node import appkeys
from node.authoring import Author
from node.config import NodeConfig, write_config
from node.storage.db import create_engine
from node.storage.tokens import create_token
from node.validation import document_problems, known_topic_slugs

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
POSTGRES_URL_ENV = "PRAXISNETZ_TEST_POSTGRES_URL"


@dataclass
class MovableClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@cache
def _test_keys() -> tuple[PrivateKey, PrivateKey]:
    # RSA generation is the slowest part of a node's setup; tests may share one pair.
    return generate_rsa_key(), generate_ed25519_key()


def make_node(tmp_path: Path, slug: str = "guetersloh", **changes: Any) -> NodeConfig:
    """A node directory with keys and config, as ``praxisnetz init`` leaves it.

    The key pair is shared between test nodes (``praxisnetz init`` is tested on its own).
    """
    data_dir = tmp_path / slug
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "base_url": f"https://{slug}.example",
        "name": f"Stadt {slug.title()}",
        "slug": slug,
        "ags": "05754008",
    }
    values.update(changes)
    config = NodeConfig(**values)
    rsa_key, ed_key = _test_keys()
    save_private_key(config.rsa_key_path, rsa_key)
    save_private_key(config.ed25519_key_path, ed_key)
    write_config(config)
    return config


def author_for_app(app: web.Application) -> Author:
    return Author(
        app[appkeys.CONFIG],
        app[appkeys.NODE_KEYS],
        app[appkeys.CLOCK],
        document_problems,
        known_topic_slugs(),
    )


async def issue_token(app: web.Application, name: str = "test") -> tuple[int, str]:
    async with app[appkeys.SESSION_MAKER].begin() as session:
        issued = await create_token(session, name, now=app[appkeys.CLOCK]())
    return issued.token_id, issued.token


def practice_input(slug: str = "e-akte-bauamt", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": "practice",
        "slug": slug,
        "title": "E-Akte im Bauamt",
        "summary": "Wie wir die E-Akte eingeführt haben.",
        "topics": ["e-akte"],
        "status": "in-operation",
        "steps": ["Ist-Prozesse aufnehmen", "Pilot starten"],
        "body": "Wir haben die **Bauakten** umgestellt.",
    }
    values.update(changes)
    return values


@dataclass(frozen=True)
class Database:
    url: str
    engine: AsyncEngine


async def _postgres_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine bound to a fresh schema that is dropped afterwards."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    raw_url = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(raw_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
        try:
            yield engine
        finally:
            await engine.dispose()
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


async def database_engine(kind: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """SQLite in ``tmp_path``, or PostgreSQL when PRAXISNETZ_TEST_POSTGRES_URL is set."""
    if kind == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    async for engine in _postgres_engine(url):
        yield engine


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A throw-away PostgreSQL database (skips when PRAXISNETZ_TEST_POSTGRES_URL is unset)."""
    from bench._support import scratch_postgres_database

    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    async with scratch_postgres_database(url, prefix="praxisnetz_test") as scratch:
        yield scratch
