"""Staff accounts and sessions in storage (SQLite and PostgreSQL): Argon2, lock-out,
session lifetime, password change ending sessions, migration 0003 up and down; the
lock-out per address and per account stops guessing without locking the owner out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from node.authoring import Author, create_contribution
from node.contribution_input import parse_contribution_input
from node.identity import load_node_keys
from node.storage import users as user_store
from node.storage.db import downgrade, migrate, session_maker
from node.storage.models import SignInAddress
from node.storage.users import (
    FORGET_FAILURES_AFTER,
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
OFFICE, HOME = "192.0.2.10", "198.51.100.7"  # the staff member's addresses


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
        ok = await authenticate(session, "ANNA ", PASSWORD, address=OFFICE, now=START)
        assert ok.outcome is SignInOutcome.OK and ok.user_id == user.id
        for _ in range(MAX_FAILED_ATTEMPTS):
            result = await authenticate(session, "anna", "falsch-falsch-falsch", address=OFFICE,
                                        now=START)
        assert result.outcome is SignInOutcome.LOCKED
        assert result.locked_until == START + LOCK_DURATION
        again = await authenticate(session, "anna", PASSWORD, address=OFFICE, now=START)
        assert again.outcome is SignInOutcome.LOCKED
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
        result = await authenticate(session, "anna", "ein-neues-langes-passwort", address=OFFICE,
                                    now=START)
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


WRONG = "falsch-falsch-falsch"


async def _try(engine: AsyncEngine, password: str, address: str, now=START):
    async with session_maker(engine).begin() as session:
        return await authenticate(session, "anna", password, address=address, now=now)


async def _addresses(engine: AsyncEngine) -> set[str]:
    async with session_maker(engine)() as session:
        return set(await session.scalars(select(SignInAddress.address)))


async def test_guessing_from_one_address_is_locked_out_but_the_owner_is_not(
    engine: AsyncEngine,
) -> None:
    async with session_maker(engine).begin() as session:
        await add_user(session, "anna", PASSWORD, now=START)
    attacker = "203.0.113.9"
    outcomes = [(await _try(engine, WRONG, attacker)).outcome for _ in range(MAX_FAILED_ATTEMPTS)]
    assert outcomes == [SignInOutcome.WRONG] * (MAX_FAILED_ATTEMPTS - 1) + [SignInOutcome.LOCKED]
    # guessing cannot go on from there, not even with the right password ...
    assert (await _try(engine, PASSWORD, attacker)).outcome is SignInOutcome.LOCKED
    # ... but the lock-out is no weapon: Anna signs in from the office and from home
    assert (await _try(engine, PASSWORD, OFFICE)).outcome is SignInOutcome.OK
    assert (await _try(engine, PASSWORD, HOME)).outcome is SignInOutcome.OK
    later = START + LOCK_DURATION + timedelta(seconds=1)
    assert (await _try(engine, WRONG, attacker, later)).outcome is SignInOutcome.WRONG
    # an address's failures are forgotten after a quiet day; where Anna signed in is kept
    await _try(engine, WRONG, "203.0.113.77", later + FORGET_FAILURES_AFTER * 2)
    assert await _addresses(engine) == {OFFICE, HOME, "203.0.113.77"}


async def test_guessing_from_many_addresses_locks_the_account_except_where_it_signed_in(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fewer Argon2 checks than the real 50; the rule is the same
    monkeypatch.setattr(user_store, "ACCOUNT_MAX_FAILED_ATTEMPTS", 3 * (MAX_FAILED_ATTEMPTS - 1))
    async with session_maker(engine).begin() as session:
        await add_user(session, "anna", PASSWORD, now=START)
    assert (await _try(engine, PASSWORD, OFFICE)).outcome is SignInOutcome.OK
    for n in range(3):  # each address stays below its own limit
        for _ in range(MAX_FAILED_ATTEMPTS - 1):
            assert (await _try(engine, WRONG, f"203.0.113.{n}")).outcome is SignInOutcome.WRONG
    fresh = await _try(engine, PASSWORD, "203.0.113.50")
    assert fresh.outcome is SignInOutcome.LOCKED and fresh.locked_until == START + LOCK_DURATION
    assert (await _try(engine, PASSWORD, HOME)).outcome is SignInOutcome.LOCKED
    assert "203.0.113.50" not in await _addresses(engine)  # a refused address leaves no row
    # where Anna has signed in before, she still can
    assert (await _try(engine, PASSWORD, OFFICE)).outcome is SignInOutcome.OK
    later = START + LOCK_DURATION + timedelta(seconds=1)
    assert (await _try(engine, PASSWORD, HOME, later)).outcome is SignInOutcome.OK
