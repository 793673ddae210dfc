"""``praxisnetz deliveries list|retry``: see and resend failed deliveries.

A delivery the worker gave up on (or one refused for good) stays in the queue as
``failed`` or ``gave_up``; an operator who fixed the cause (the remote server is back,
a key was updated) sends it again with ``retry``. The running worker picks requeued
rows up on its next poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from node.cli import CliError, open_store, utc_now
from node.config import load_config
from node.delivery_queue import (
    RETRYABLE_STATES,
    DeliverySummary,
    list_deliveries,
    requeue,
    requeue_host,
)
from node.delivery_state import DeliveryState, IllegalTransition

DEFAULT_LIST_LIMIT = 100


def _line(row: DeliverySummary) -> str:
    status = str(row.last_status) if row.last_status is not None else "-"
    error = (row.last_error or "").replace("\n", " ")[:120]
    return (f"{row.id}\t{row.state}\t{row.host}\t{row.attempts}\t{status}\t"
            f"{row.activity_uri}\t{error}")


def _as_json(row: DeliverySummary) -> dict[str, object]:
    return {"id": row.id, "state": row.state, "host": row.host, "inbox": row.inbox_url,
            "activity": row.activity_uri, "attempts": row.attempts,
            "last_status": row.last_status, "last_error": row.last_error,
            "finished_at": row.finished_at.isoformat() if row.finished_at else None}


def cmd_list(args: argparse.Namespace) -> int:
    states = (DeliveryState(args.state),) if args.state else RETRYABLE_STATES

    async def collect() -> list[DeliverySummary]:
        async with open_store(load_config(args.data_dir)) as sessions, sessions() as session:
            return await list_deliveries(session, states=states, host=args.host,
                                         limit=args.limit)

    rows = asyncio.run(collect())
    if args.json:
        print(json.dumps([_as_json(row) for row in rows], indent=2))
    else:
        for row in rows:
            print(_line(row))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.host is None):
        raise CliError("id", "give a delivery id or --host HOST (one of them)")

    async def run() -> list[int]:
        async with open_store(load_config(args.data_dir)) as sessions, sessions.begin() as session:
            if args.host is not None:
                return await requeue_host(session, args.host, now=utc_now())
            try:
                await requeue(session, args.id, now=utc_now())
            except LookupError as exc:
                raise CliError("id", f"no delivery with id {args.id}") from exc
            except IllegalTransition as exc:
                raise CliError("id", f"delivery {args.id} is {exc.state.value}; only failed "
                                     "or gave_up deliveries can be retried") from exc
            return [args.id]

    requeued = asyncio.run(run())
    print(f"{len(requeued)} deliveries requeued" + (f": {', '.join(map(str, requeued))}"
                                                   if requeued else ""))
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def add_delivery_commands(commands: argparse._SubParsersAction,
                          data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    deliveries = commands.add_parser("deliveries", help="failed deliveries: list, retry")
    sub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    listing = sub.add_parser("list", help="failed and given-up deliveries, newest first")
    data_dir(listing)
    listing.add_argument("--state", choices=[state.value for state in RETRYABLE_STATES])
    listing.add_argument("--host")
    listing.add_argument("--limit", type=_positive, default=DEFAULT_LIST_LIMIT)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    retry = sub.add_parser("retry", help="send a failed delivery (or all to a host) again")
    data_dir(retry)
    retry.add_argument("id", nargs="?", type=int, metavar="ID")
    retry.add_argument("--host")
    retry.set_defaults(handler=cmd_retry)
