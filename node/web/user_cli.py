"""``praxisnetz user add|passwd|remove|list``: staff accounts of the web interface.

Passwords never go on the command line (where ``ps`` shows them): they are asked
for twice on a terminal, or read as one line from standard input with
``--password-stdin`` (for scripts).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable

from node.config import load_config
from node.storage.users import UserError, add_user, list_usernames, remove_user, set_password


def _read_password(args: argparse.Namespace) -> str:
    from node.cli import CliError

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise CliError("password", "the two passwords differ")
    return first


async def _run(args: argparse.Namespace, password: str | None) -> list[str]:
    from node.cli import open_store, utc_now

    config = load_config(args.data_dir)
    async with open_store(config) as sessions, sessions.begin() as session:
        if args.user_command == "add":
            await add_user(session, args.username, password or "", now=utc_now())
        elif args.user_command == "passwd":
            await set_password(session, args.username, password or "")
        elif args.user_command == "remove":
            await remove_user(session, args.username)
        return await list_usernames(session)


def cmd_user(args: argparse.Namespace) -> int:
    from node.cli import CliError

    needs_password = args.user_command in ("add", "passwd")
    password = _read_password(args) if needs_password else None
    try:
        names = asyncio.run(_run(args, password))
    except UserError as exc:
        raise CliError(exc.field, exc.message) from exc
    if args.user_command == "list":
        print("\n".join(names) if names else "no users")
    else:
        done = {"add": "added", "passwd": "password changed for", "remove": "removed"}
        print(f"{done[args.user_command]} {args.username}")
    return 0


def add_user_commands(
    commands: argparse._SubParsersAction, data_dir: Callable[[argparse.ArgumentParser], None]
) -> None:
    user = commands.add_parser("user", help="staff accounts of the web interface")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    for name, help_text in (
        ("add", "create an account (Argon2-hashed password)"),
        ("passwd", "set a new password; unlocks the account and ends its sessions"),
        ("remove", "delete an account and its sessions"),
    ):
        sub = user_commands.add_parser(name, help=help_text)
        sub.add_argument("username")
        if name != "remove":
            sub.add_argument(
                "--password-stdin", action="store_true", help="read the password from stdin"
            )
        data_dir(sub)
    data_dir(user_commands.add_parser("list", help="list the accounts"))
    user.set_defaults(handler=cmd_user)
