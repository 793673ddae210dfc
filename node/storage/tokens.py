"""API bearer tokens: only a SHA-256 hash is stored, the token is shown once."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import ApiToken

TOKEN_PREFIX = "pnx_"


class TokenStatus(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class TokenCheck:
    status: TokenStatus
    token_id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    name: str
    token: str  # plaintext, never stored


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(session: AsyncSession, name: str, *, now: datetime) -> IssuedToken:
    """A new random token (256 bits); the caller commits."""
    if not name.strip() or len(name) > 100:
        raise ValueError("name: 1-100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=hash_token(token), created_at=now)
    session.add(row)
    await session.flush()
    return IssuedToken(row.id, name, token)


async def check_token(session: AsyncSession, token: str) -> TokenCheck:
    digest = hash_token(token)
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    # compare_digest keeps the final comparison constant-time even though the lookup is indexed
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return TokenCheck(TokenStatus.UNKNOWN)
    if row.revoked_at is not None:
        return TokenCheck(TokenStatus.REVOKED, row.id, row.name)
    return TokenCheck(TokenStatus.VALID, row.id, row.name)


async def revoke_token(session: AsyncSession, token_id: int, *, now: datetime) -> bool:
    """Revoke by id; False if there is no such token or it was already revoked."""
    row = await session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list(await session.scalars(select(ApiToken).order_by(ApiToken.id)))
