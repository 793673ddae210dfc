"""The first rows of a work queue in claim order, read through an index on both databases.

A queue's claimable rows are a few branches: a state, perhaps with a lease run out. One
``WHERE a OR b … ORDER BY … LIMIT`` made both databases collect every claimable row
and sort them at each claim — SQLite through a MULTI-INDEX OR and a temporary B-tree,
PostgreSQL through a scan and a sort, or a walk of the primary key past every row kept
after processing — so a claim cost more the longer the backlog, or the history. Each
branch alone walks an index that holds the claim's order (``(state, …order)``) and stops
after ``limit`` rows; the first ``limit`` of all branches are the rows the single query
chose. Used by ``node.delivery_queue`` and ``node.inbox_queue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Column, ColumnElement, Select, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter


@dataclass(frozen=True)
class ClaimOrder:
    """Which rows are claimable (``branches``, each served by an index in ``order``), the
    order they are claimed in (``order``, ending in the row id: a total order) and the
    parameter that says how many. The statements are built once, on first use."""

    row_id: Column[Any]
    order: tuple[Column[Any], ...]
    branches: tuple[ColumnElement[bool], ...]
    limit: BindParameter[int]

    @cached_property
    def _columns(self) -> tuple[Column[Any], ...]:
        return (self.row_id, *(column for column in self.order if column is not self.row_id))

    def _branch(self, condition: ColumnElement[bool]) -> Select[Any]:
        return select(*self._columns).where(condition).order_by(*self.order).limit(self.limit)

    @cached_property
    def first_ids(self) -> Any:
        """The ids of the first ``limit`` claimable rows, as a scalar subquery for an
        ``UPDATE … WHERE id IN (…)``: one statement, for SQLite, whose single writer
        keeps the chosen rows claimable until the UPDATE marks them."""
        branches = [self._branch(condition).subquery() for condition in self.branches]
        both = union_all(*(select(*branch.c) for branch in branches)).subquery()
        return (
            select(both.c[self.row_id.name])
            .order_by(*(both.c[column.name] for column in self.order))
            .limit(self.limit)
        ).scalar_subquery()

    @cached_property
    def _locking(self) -> tuple[Select[Any], ...]:
        return tuple(self._branch(condition).with_for_update(skip_locked=True)
                     for condition in self.branches)

    def first_locked(self, connection: Connection, parameters: Mapping[str, object],
                     limit: int) -> list[int]:
        """For PostgreSQL, in the caller's transaction: each branch locks its first
        ``limit`` claimable rows with ``FOR UPDATE SKIP LOCKED`` (a ``LIMIT`` subquery
        inside an ``UPDATE`` may run more than once, and with SKIP LOCKED each run picks
        other rows); the ids of the first ``limit`` of them all, in claim order. The few
        others a branch locked are left as they were and free again at the commit."""
        key = [self._columns.index(column) for column in self.order]
        rows = [tuple(row) for statement in self._locking
                for row in connection.execute(statement, {**parameters, self.limit.key: limit})]
        rows.sort(key=lambda row: [row[position] for position in key])
        return [row[0] for row in rows[:limit]]
