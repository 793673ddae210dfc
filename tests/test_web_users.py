"""Staff accounts and sessions in storage (SQLite and PostgreSQL): Argon2, lock-out,
session lifetime, password change ending sessions, migration 0003 up and down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from node.authoring import Author, create_contribution
from node.contribution_input import parse_contribution_input
from node.identity import load_node_keys
from node.storage.db import downgrade, migrate, session_maker
from node.storage.users import (
    LOCK_DURATION,
    MAX_FAILED_ATTEMPTS,
    SESSION_LIFETIME,
    SignInOutcome,
    UserError,
    add_user,
    authenticate,
    find_session,
    open_session,
    set_password,
)
from node.web.public import responses_to
from tests.node_support import START, MovableClock, database_engine, make_node, practice_input

PASSWORD = "korrekt-pferd-batterie"


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[AsyncEngine]:
    async for created in database_engine(request.param, tmp_path):
        await migrate(created)
        yield created


async def test_accounts_lock_out_and_sessions(engine: AsyncEngine) -> None:
    sessions = session_maker(engine)
    async with sessions.begin() as session:
        user = await add_user(session, "Anna", PASSWORD, now=START)
        with pytest.raises(UserError) as exc:
            await add_user(session, "anna", PASSWORD, now=START)
        assert exc.value.field == "username"
    async with sessions.begin() as session:
        ok = await authenticate(session, "ANNA ", PASSWORD, now=START)
        assert ok.outcome is SignInOutcome.OK and ok.user_id == user.id
        for _ in range(MAX_FAILED_ATTEMPTS):
            result = await authenticate(session, "anna", "falsch-falsch-falsch", now=START)
        assert result.outcome is SignInOutcome.LOCKED
        assert result.locked_until == START + LOCK_DURATION
        assert (await authenticate(session, "anna", PASSWORD, now=START)).outcome is (
            SignInOutcome.LOCKED
        )
        issued = await open_session(session, user.id, now=START)
    async with sessions() as session:
        found = await find_session(session, issued.cookie_value, now=START)
        assert found is not None and found.username == "anna"
        assert found.csrf_token == issued.csrf_token
        later = START + SESSION_LIFETIME + timedelta(seconds=1)
        assert await find_session(session, issued.cookie_value, now=later) is None
        assert await find_session(session, issued.cookie_value + "x", now=START) is None
    async with sessions.begin() as session:
        await set_password(session, "anna", "ein-neues-langes-passwort")  # unlocks, ends sessions
    async with sessions.begin() as session:
        assert await find_session(session, issued.cookie_value, now=START) is None
        result = await authenticate(session, "anna", "ein-neues-langes-passwort", now=START)
        assert result.outcome is SignInOutcome.OK


async def test_migration_0003_goes_down_and_up(engine: AsyncEngine) -> None:
    async def tables() -> set[str]:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))

    assert {"users", "web_sessions"} <= await tables()
    await downgrade(engine, "0002")
    assert not {"users", "web_sessions"} & await tables()
    await migrate(engine)
    assert {"users", "web_sessions"} <= await tables()


async def test_responses_to_a_contribution_are_found_on_both_databases(
    engine: AsyncEngine, tmp_path
) -> None:
    config = make_node(tmp_path)
    author = Author(config, load_node_keys(config), MovableClock())
    practice = f"{config.base_url}/practices/e-akte-bauamt"
    stance = {"kind": "stance", "slug": "ja", "title": "Ja", "about": practice,
              "position": "agree", "reason": "Passt."}  # fmt: skip
    other = {**stance, "slug": "anderes", "about": f"{config.base_url}/practices/anderes"}
    async with session_maker(engine).begin() as session:
        for raw in (practice_input(), stance, other):
            await create_contribution(session, author, parse_contribution_input(raw))
    async with session_maker(engine)() as session:
        found = await responses_to(session, practice)
    assert [view.uri for view in found] == [f"{config.base_url}/stances/ja"]
    assert found[0].position == "agree" and found[0].reason == "Passt."
