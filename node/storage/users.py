"""Staff accounts and browser sessions of the web interface.

Passwords are hashed with Argon2id (argon2-cffi). Lock-out has two levels, so that
guessing is bounded but a stranger who knows a user name cannot lock its owner out:

- Per account and client address: after ``MAX_FAILED_ATTEMPTS`` wrong passwords in a
  row from one address, that address is locked out of that account for
  ``LOCK_DURATION``; while locked, even the right password is refused from there, so
  guessing cannot continue in the background. Other addresses are not affected. An IPv6
  address counts as its whole /64 (``node.client_address.lockout_key``): one holder
  has all of them.
- Per account: after ``ACCOUNT_MAX_FAILED_ATTEMPTS`` wrong passwords from any
  addresses (a guesser with many addresses), the account refuses every address for
  ``LOCK_DURATION`` except those it was signed in from within ``KNOWN_ADDRESS_DAYS``.

An unknown user name costs one hash verification too, so timing does not tell
which names exist. Session cookies are random; only their SHA-256 is stored.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.client_address import lockout_key
from node.storage.models import SignInAddress, User, WebSession
from node.storage.upsert import insert_for

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_FAILED_ATTEMPTS = 5  # in a row, from one address
ACCOUNT_MAX_FAILED_ATTEMPTS = 50  # in a row, from all addresses together
LOCK_DURATION = timedelta(minutes=15)
KNOWN_ADDRESS_DAYS = 90
# An address's record of failures (no lock, no success) is dropped after a quiet day.
FORGET_FAILURES_AFTER = timedelta(days=1)
MAX_ADDRESS_LENGTH = 64
SESSION_LIFETIME = timedelta(hours=12)
_HASHER = PasswordHasher()  # Argon2id with argon2-cffi's default (RFC 9106 low-memory) cost


class UserError(ValueError):
    """A user operation was refused; ``field`` names the input at fault."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class SignInOutcome(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"  # unknown user or wrong password: never say which
    LOCKED = "locked"


@dataclass(frozen=True)
class SignInResult:
    outcome: SignInOutcome
    user_id: int | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class SessionInfo:
    """A valid browser session: who is signed in and the token forms must carry."""

    user_id: int
    username: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedSession:
    cookie_value: str  # shown to the browser once, never stored
    csrf_token: str
    expires_at: datetime


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise UserError("username", "2-64 lower-case letters, digits, dots, hyphens or underscores")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError("password", f"at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def find_user(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username.strip().lower()))


async def add_user(session: AsyncSession, username: str, password: str, *, now: datetime) -> User:
    name = check_username(username)
    check_password(password)
    if await find_user(session, name) is not None:
        raise UserError("username", f"{name!r} exists already; use passwd to change it")
    user = User(
        username=name, password_hash=hash_password(password), failed_attempts=0, created_at=now
    )
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, username: str, password: str) -> None:
    """New password; unlocks the account and ends its sessions."""
    user = await find_user(session, username)
    if user is None:
        raise UserError("username", f"no user {username!r}")
    user.password_hash = hash_password(check_password(password))
    user.failed_attempts, user.locked_until = 0, None
    await session.execute(update(SignInAddress).where(SignInAddress.user_id == user.id)
                          .values(failed_attempts=0, locked_until=None))
    await session.execute(delete(WebSession).where(WebSession.user_id == user.id))


async def remove_user(session: AsyncSession, username: str) -> None:
    user = await find_user(session, username)
    if user is None:
        raise UserError("username", f"no user {username!r}")
    await session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    await session.delete(user)


async def list_usernames(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(User.username).order_by(User.username)))


def _is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


def _is_known(row: SignInAddress, now: datetime) -> bool:
    return row.last_success_at is not None and (
        now - row.last_success_at < timedelta(days=KNOWN_ADDRESS_DAYS))


async def _forget_stale(session: AsyncSession, user: User, now: datetime) -> None:
    """Drop this account's records of addresses that only failed, and not for a day."""
    await session.execute(delete(SignInAddress).where(
        SignInAddress.user_id == user.id, SignInAddress.last_success_at.is_(None),
        or_(SignInAddress.locked_until.is_(None), SignInAddress.locked_until <= now),
        SignInAddress.last_failure_at < now - FORGET_FAILURES_AFTER))


async def _locked_row(session: AsyncSession, user: User, address: str) -> SignInAddress:
    """This account's record for this address, created if missing and locked for the
    update, so that two sign-ins at once from one address both count."""
    dialect = session.get_bind().dialect.name
    await session.execute(insert_for(dialect, SignInAddress).values(
        user_id=user.id, address=address, failed_attempts=0).on_conflict_do_nothing())
    row = await session.scalar(
        select(SignInAddress)
        .where(SignInAddress.user_id == user.id, SignInAddress.address == address)
        .with_for_update().execution_options(populate_existing=True))
    assert row is not None  # inserted above or by the sign-in that held the lock
    return row


def _count_failure(user: User, row: SignInAddress, now: datetime) -> SignInResult:
    row.failed_attempts, row.last_failure_at = row.failed_attempts + 1, now
    user.failed_attempts += 1
    if user.failed_attempts >= ACCOUNT_MAX_FAILED_ATTEMPTS:
        user.locked_until, user.failed_attempts = now + LOCK_DURATION, 0
    if row.failed_attempts >= MAX_FAILED_ATTEMPTS:
        row.locked_until, row.failed_attempts = now + LOCK_DURATION, 0
        return SignInResult(SignInOutcome.LOCKED, locked_until=row.locked_until)
    return SignInResult(SignInOutcome.WRONG)


async def authenticate(
    session: AsyncSession, username: str, password: str, *, address: str, now: datetime
) -> SignInResult:
    """Check a sign-in from a client address and count failures; the caller commits."""
    user = await find_user(session, username)
    if user is None:
        hash_password(password)  # the same cost as a real check: timing reveals no names
        return SignInResult(SignInOutcome.WRONG)
    address = lockout_key(address)[:MAX_ADDRESS_LENGTH]
    await _forget_stale(session, user, now)
    known = await session.get(SignInAddress, (user.id, address))
    if _is_locked(user.locked_until, now) and not (known is not None and _is_known(known, now)):
        # refused before any row is written: the guesser's addresses leave nothing behind
        return SignInResult(SignInOutcome.LOCKED, locked_until=user.locked_until)
    row = await _locked_row(session, user, address)
    if _is_locked(row.locked_until, now):
        return SignInResult(SignInOutcome.LOCKED, locked_until=row.locked_until)
    if not _verify(user.password_hash, password):
        return _count_failure(user, row, now)
    # The account lock stays: it holds the many-address guesser off, not this user.
    user.failed_attempts = 0
    row.failed_attempts, row.locked_until, row.last_success_at = 0, None, now
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return SignInResult(SignInOutcome.OK, user_id=user.id)


def hash_session_token(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def open_session(session: AsyncSession, user_id: int, *, now: datetime) -> IssuedSession:
    """A fresh session (a new id at every sign-in, so a planted cookie is useless)."""
    cookie_value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    session.add(
        WebSession(
            token_hash=hash_session_token(cookie_value), user_id=user_id, csrf_token=csrf,
            created_at=now, expires_at=expires,
        )
    )  # fmt: skip
    await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    return IssuedSession(cookie_value, csrf, expires)


async def find_session(
    session: AsyncSession, cookie_value: str, *, now: datetime
) -> SessionInfo | None:
    row = await session.execute(
        select(WebSession, User.username)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == hash_session_token(cookie_value))
    )
    found = row.first()
    if found is None:
        return None
    web_session, username = found
    if web_session.expires_at <= now:
        return None
    return SessionInfo(
        web_session.user_id, username, web_session.csrf_token, web_session.expires_at
    )


async def close_session(session: AsyncSession, cookie_value: str) -> None:
    await session.execute(
        delete(WebSession).where(WebSession.token_hash == hash_session_token(cookie_value))
    )
