"""What ``praxisnetz status`` and ``GET /api/status`` report: social graph, queues, failing hosts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.retry import BreakerState
from node.storage.models import (
    Contribution,
    Delivery,
    DeliveryState,
    Follower,
    Following,
    Host,
    InboxArrival,
    InboxItem,
    InboxState,
)


@dataclass(frozen=True)
class FollowingEntry:
    target: str
    state: str
    backfill: str


@dataclass(frozen=True)
class FailingHost:
    host: str
    consecutive_failures: int
    breaker_state: str
    pending: int
    failed: int
    gave_up: int
    last_failure_at: str | None
    # failures on several distinct days and no success since (cleared on the next success)
    unavailable_since: str | None = None


@dataclass(frozen=True)
class NodeStatus:
    contributions: int
    followers: dict[str, int]
    following: list[FollowingEntry]
    deliveries: dict[str, int]
    inbox: dict[str, int]
    failing_hosts: list[FailingHost]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def _counts(session: AsyncSession, column: Any) -> dict[str, int]:
    rows = await session.execute(select(column, func.count()).group_by(column))
    return {state: count for state, count in rows}


async def _inbox_counts(session: AsyncSession) -> dict[str, int]:
    """Items by state; the arrivals a saturated inbox appended are received items that
    the next claim moves into the queue (``node.inbox_sqlite``)."""
    counts = await _counts(session, InboxItem.state)
    arrivals = await session.scalar(select(func.count()).select_from(InboxArrival))
    if arrivals:
        received = InboxState.RECEIVED.value
        counts[received] = counts.get(received, 0) + arrivals
    return counts


async def _delivery_problems_by_host(session: AsyncSession) -> dict[str, dict[str, int]]:
    unfinished = (
        DeliveryState.PENDING.value,
        DeliveryState.FAILED.value,
        DeliveryState.GAVE_UP.value,
    )
    rows = await session.execute(
        select(Delivery.host, Delivery.state, func.count())
        .where(Delivery.state.in_(unfinished))
        .group_by(Delivery.host, Delivery.state)
    )
    result: dict[str, dict[str, int]] = {}
    for host, state, count in rows:
        result.setdefault(host, {})[state] = count
    return result


async def _failing_hosts(session: AsyncSession) -> list[FailingHost]:
    by_host = await _delivery_problems_by_host(session)
    hosts = await session.scalars(
        select(Host).where(
            or_(Host.consecutive_failures > 0, Host.breaker_state != BreakerState.CLOSED.value)
        )
    )
    found: dict[str, FailingHost] = {}
    for row in hosts:
        states = by_host.get(row.host, {})
        found[row.host] = FailingHost(
            row.host, row.consecutive_failures, row.breaker_state,
            states.get("pending", 0), states.get("failed", 0), states.get("gave_up", 0),
            row.last_failure_at.isoformat() if row.last_failure_at else None,
            row.unavailable_since.isoformat() if row.unavailable_since else None,
        )  # fmt: skip
    for host, states in by_host.items():
        if host not in found and (states.get("failed") or states.get("gave_up")):
            found[host] = FailingHost(
                host, 0, BreakerState.CLOSED.value, states.get("pending", 0), states.get("failed", 0),
                states.get("gave_up", 0), None,
            )  # fmt: skip
    return sorted(found.values(), key=lambda entry: entry.host)


async def node_status(session: AsyncSession) -> NodeStatus:
    contributions = await session.scalar(
        select(func.count()).select_from(Contribution).where(Contribution.deleted_at.is_(None))
    )
    following = await session.execute(
        select(Following.target_uri, Following.state, Following.backfill_state).order_by(
            Following.id
        )
    )
    return NodeStatus(
        contributions=contributions or 0,
        followers=await _counts(session, Follower.state),
        following=[FollowingEntry(*row) for row in following],
        deliveries=await _counts(session, Delivery.state),
        inbox=await _inbox_counts(session),
        failing_hosts=await _failing_hosts(session),
    )


def format_status(status: NodeStatus) -> str:
    """Plain-text report for the terminal."""
    lines = [f"contributions: {status.contributions}"]
    followers = ", ".join(f"{k}={v}" for k, v in sorted(status.followers.items())) or "none"
    lines.append(f"followers: {followers}")
    lines.append(f"following: {len(status.following)}")
    lines += [
        f"  {entry.target} ({entry.state}, backfill {entry.backfill})" for entry in status.following
    ]
    deliveries = ", ".join(f"{k}={v}" for k, v in sorted(status.deliveries.items())) or "empty"
    lines.append(f"delivery queue: {deliveries}")
    inbox = ", ".join(f"{k}={v}" for k, v in sorted(status.inbox.items())) or "empty"
    lines.append(f"inbox queue: {inbox}")
    lines.append(f"failing hosts: {len(status.failing_hosts)}")
    lines += [
        f"  {h.host}: breaker {h.breaker_state}, {h.consecutive_failures} failures in a row, "
        f"pending {h.pending}, failed {h.failed}, gave up {h.gave_up}"
        + (f", unavailable since {h.unavailable_since}" if h.unavailable_since else "")
        for h in status.failing_hosts
    ]
    return "\n".join(lines)
