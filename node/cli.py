"""``praxisnetz``: init, serve, worker, publish, follow, unfollow, status, token, keys, demo.

Commands that write work directly on the database; the running server's delivery
worker sends what they enqueue. Bad input prints a message naming the field and
exits with status 2, having changed nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from node.cli_errors import EXIT_BAD_INPUT, CliError
from node.config import (
    CONFIG_FILE_NAME,
    ConfigError,
    NodeConfig,
    NodeKind,
    load_config,
    parse_kind,
    resolve_data_dir,
    with_overrides,
    write_config,
)
from node.offset_clock import CLOCK_OFFSET_FILE_ENV, shifted_clock

if TYPE_CHECKING:  # the CLI imports its commands' modules only when they run
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from node.identity import RotationLock


def utc_now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def open_store(config: NodeConfig) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The database, migrated to the current schema, for one CLI command."""
    from node.storage.db import create_engine, migrate, session_maker

    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
        yield session_maker(engine)
    finally:
        await engine.dispose()


# --- init -----------------------------------------------------------------------


def _init_config(args: argparse.Namespace) -> NodeConfig:
    data_dir = resolve_data_dir(args.data_dir).resolve()
    if (data_dir / CONFIG_FILE_NAME).exists() or (data_dir / "keys").exists():
        raise CliError("data_dir", f"{data_dir} already holds a node; refusing to overwrite it")
    return NodeConfig(
        data_dir=data_dir,
        base_url=args.base_url,
        name=args.name,
        slug=args.slug,
        ags=args.ags,
        kind=parse_kind(args.kind),
        is_hub=args.hub,
        allow_private_network=args.allow_private_network,
        database_url=os.environ.get("PRAXISNETZ_DATABASE_URL", ""),
    )


async def _init_database(config: NodeConfig) -> str:
    from node.storage.tokens import create_token

    async with open_store(config) as sessions, sessions.begin() as session:
        issued = await create_token(session, "admin", now=utc_now())
    return issued.token


def cmd_init(args: argparse.Namespace) -> int:
    from node.identity import create_node_keys

    config = _init_config(args)  # validates every argument before anything is written
    config.data_dir.mkdir(parents=True, exist_ok=True)
    create_node_keys(config)
    token = asyncio.run(_init_database(config))
    if config.is_hub:  # hub.toml and the default handbook structure
        from node.hub.cli import init_hub

        init_hub(config, auto_accept_hosts=args.auto_accept_host)
    write_config(config)  # last: a directory with a config file is a complete node
    print(f"Node {config.name!r} created in {config.data_dir}")
    print(f"Actor: {config.actor_url}  (acct:{config.slug}@{config.domain})")
    print("Admin API token (shown once; only its hash is stored):")
    print(token)
    return 0


# --- serve / worker ---------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.data_dir)
    if args.host is not None:
        config = with_overrides(config, host=args.host)
    if args.port is not None:
        config = with_overrides(config, port=args.port)
    # No automatic collections while start-up builds its long-lived objects (modules,
    # mappers): they found next to nothing to free and cost ~50 ms CPU of ~1 s.
    gc.disable()
    try:
        return _serve(args, config)
    except BaseException:
        gc.unfreeze()  # a failed start-up leaves nothing frozen (tests run serve in-process)
        raise
    finally:
        gc.enable()


def _serve(args: argparse.Namespace, config: NodeConfig) -> int:
    from node.app import access_log_options, create_app
    from node.inbox_http import run_node
    from node.logs import configure_logging

    # The modules live as long as the process: out of the collector's view at once,
    # without a collection first. Finding the ~1,800 objects (~0.4 MiB) the imports left
    # as garbage took a full pass over ~140k objects (30-70 ms CPU); they stay frozen.
    gc.freeze()
    configure_logging()
    clock = shifted_clock(os.environ.get(CLOCK_OFFSET_FILE_ENV))
    if config.server.processes > 1 and not args.acceptor:
        from node.serve_processes import supervise

        gc.enable()  # the supervisor serves nothing itself: no start-up to freeze
        return supervise(config, config.host, config.listen_port)
    # An acceptor (node.serve_processes) shares the port with its siblings; the worker
    # process of its supervisor runs the workers.
    app = create_app(config, clock=clock, start_workers=not args.acceptor)
    app.on_startup.append(_freeze_start_up_objects)  # last: after the database and workers
    run_node(app, host=config.host, port=config.listen_port, reuse_port=args.acceptor or None,
             runner_options=access_log_options())
    return 0


# Young collections after 20,000 net allocations, not 700: each walked the objects of the
# requests in flight (an ingest run of 12,000 activities: 364 collections, 0.50 s; now 2,
# 0.03 s; ~5,000 cyclic garbage objects in all: docs/performance.md, session 8).
YOUNG_COLLECTION_THRESHOLD = 20_000


async def _freeze_start_up_objects(app: object) -> None:
    """Move what start-up made after the imports (the application, the database engine,
    the workers) out of the garbage collector's view, as ``cmd_serve`` did with the
    modules: its full collections no longer scan them. This collection sees only what was
    made since. Then automatic collection is switched back on, young collections less
    often. In ``serve`` only, not in ``create_app``, which tests start hundreds of times."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()


def cmd_worker(args: argparse.Namespace) -> int:
    from node import workers
    from node.logs import configure_logging

    config = load_config(args.data_dir)
    configure_logging()
    # the same clock as serve's (the worker process of [server] processes = N included)
    asyncio.run(workers.run_standalone(config, shifted_clock(os.environ.get(CLOCK_OFFSET_FILE_ENV))))
    return 0


# --- publish ----------------------------------------------------------------------


async def _publish_all(config: NodeConfig, files: Sequence[Path]) -> list[tuple[Path, object]]:
    from node.authoring import Author, AuthoringError, publish
    from node.contribution_input import ContributionInputError
    from node.identity import load_node_keys
    from node.markdown_import import FileProblem, MarkdownImportError, load_markdown_files
    from node.validation import document_problems, known_topic_slugs

    topics = known_topic_slugs()
    loaded = load_markdown_files(files, known_topics=topics)  # all files checked first
    author = Author(config, load_node_keys(config), utc_now, document_problems, topics)
    results: list[tuple[Path, object]] = []
    problems: list[FileProblem] = []
    async with open_store(config) as sessions, sessions.begin() as session:
        for item in loaded:
            try:
                results.append((item.path, await publish(session, author, item.contribution)))
            except ContributionInputError as exc:
                problems += [FileProblem(item.path, p.field, p.message) for p in exc.problems]
            except AuthoringError as exc:
                problems.append(FileProblem(item.path, exc.field, exc.message))
        if problems:
            raise MarkdownImportError(problems)  # rolls the whole transaction back
    return results


def cmd_publish(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from node.markdown_import import MarkdownImportError

    config = load_config(args.data_dir)
    try:
        results = asyncio.run(_publish_all(config, [Path(f) for f in args.files]))
    except MarkdownImportError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print("nothing was published", file=sys.stderr)
        return EXIT_BAD_INPUT
    except IntegrityError as exc:
        # the unique slug refused a contribution another writer created at the same moment
        message = "another writer published one of these slugs at the same time; nothing was published, run again"
        raise CliError("slug", message, exit_code=1) from exc
    for _path, result in results:
        print(f"{result.outcome.value}\t{result.uri}")  # type: ignore[attr-defined]
    return 0


# --- follow / unfollow --------------------------------------------------------------


async def _follow(config: NodeConfig, target: str) -> object:
    from federation.fetch import SafeFetcher, make_client_session
    from node.follows import follow, resolve_target
    from node.http_client import address_policy, get_signer
    from node.identity import load_node_keys

    keys = load_node_keys(config)
    async with make_client_session() as http:
        fetcher = SafeFetcher(http, address_policy(config), sign=get_signer(keys, utc_now))
        info = await resolve_target(config, fetcher, target)
    async with open_store(config) as sessions, sessions.begin() as session:
        return await follow(session, config, keys, info, now=utc_now())


async def _unfollow(config: NodeConfig, target: str) -> object:
    from node.follows import find_following_uri, unfollow
    from node.identity import load_node_keys

    keys = load_node_keys(config)
    async with open_store(config) as sessions, sessions.begin() as session:
        uri = await find_following_uri(session, target)
        return await unfollow(session, config, keys, uri, now=utc_now())


def _run_follow_command(
    operation: Callable[[NodeConfig, str], object], args: argparse.Namespace
) -> int:
    from node.follows import FollowError

    config = load_config(args.data_dir)
    try:
        result = asyncio.run(operation(config, args.target))  # type: ignore[arg-type]
    except FollowError as exc:
        raise CliError(exc.field, exc.message, 1 if exc.status >= 500 else EXIT_BAD_INPUT) from exc
    sent = "sent" if result.activity_uri else "nothing new to send"  # type: ignore[attr-defined]
    print(f"{result.target_uri}: {result.state} ({sent})")  # type: ignore[attr-defined]
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    return _run_follow_command(_follow, args)


def cmd_unfollow(args: argparse.Namespace) -> int:
    return _run_follow_command(_unfollow, args)


# --- status / token / keys / demo ----------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from node.status import format_status, node_status

    async def collect() -> object:
        async with open_store(load_config(args.data_dir)) as sessions, sessions() as session:
            return await node_status(session)

    status = asyncio.run(collect())
    if args.json:
        print(json.dumps(status.as_json(), indent=2))  # type: ignore[attr-defined]
    else:
        print(format_status(status))  # type: ignore[arg-type]
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from node.storage.tokens import create_token, list_tokens, revoke_token

    async def run() -> int:
        async with open_store(load_config(args.data_dir)) as sessions, sessions.begin() as session:
            if args.token_command == "create":
                try:
                    issued = await create_token(session, args.name, now=utc_now())
                except ValueError as exc:
                    raise CliError("name", "1-100 characters") from exc
                print(f"token {issued.token_id} ({issued.name}), shown once:\n{issued.token}")
            elif args.token_command == "revoke":
                if not await revoke_token(session, args.id, now=utc_now()):
                    raise CliError("id", f"no active token with id {args.id}")
                print(f"token {args.id} revoked")
            else:
                for row in await list_tokens(session):
                    state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
                    print(f"{row.id}\t{row.name}\t{row.created_at.isoformat()}\t{state}")
        return 0

    return asyncio.run(run())


async def _rotate_keys(config: NodeConfig, kind_name: str, *, revoke: bool = False,
                       lock: RotationLock | None = None) -> int:
    from node.identity import (
        KEY_SWITCH_WAIT_SECONDS,
        KeyKind,
        actor_update_activity,
        rotate_node_key,
    )
    from node.outbox import recipients_for, record_local_activity

    keys = rotate_node_key(config, KeyKind(kind_name), revoke=revoke, lock=lock)
    # Switch first, announce after: every running process takes the new key file within
    # KEY_CHECK_SECONDS, so once the Update is queued every signature (the Update's own
    # delivery included) is made with the new key and the served actor shows it. In the
    # second before, a peer holding the old key sees a new-key signature, fetches the actor
    # again and finds the new key; the reverse order would leave peers that applied the
    # Update refusing old-key signatures.
    await asyncio.sleep(KEY_SWITCH_WAIT_SECONDS)
    now = utc_now()
    async with open_store(config) as sessions, sessions.begin() as session:
        recipients = await recipients_for(
            session, own_inboxes=(config.inbox_url, config.shared_inbox_url)
        )
        await record_local_activity(
            session, actor_update_activity(config, keys, now), recipients, now=now
        )
        if not config.is_hub:
            return len(recipients)
        from node.hub.key_rotation import queue_group_updates

        return len(recipients) + await queue_group_updates(session, config, keys, now=now)


KEYS_ROTATE_DESCRIPTION = (
    "Writes a new RSA key (or, with --kind ed25519, a new Ed25519 key for object proofs; "
    "the old one stays as keys/<kind>.pem.old) and queues an actor Update with the new "
    "public key for every follower. No restart: the running `praxisnetz serve` and "
    "`praxisnetz worker` processes of this node sign with, and serve, the new key about a "
    "second after the file is replaced; the command waits that long before it queues the Update. "
    "An Ed25519 key gets a new key id (#ed25519-key-2, -3, ...); the earlier public keys stay "
    "in the actor document, so proofs made before the rotation keep verifying. With --revoke "
    "(for a compromised key) the earlier Ed25519 keys are no longer published: every proof "
    "made with them, earlier contributions included, then fails verification on purpose."
)


def cmd_keys(args: argparse.Namespace) -> int:
    from node.identity import KeyKind, RotationBusy, key_path, rotation_lock

    config = load_config(args.data_dir)
    if args.revoke and args.kind != "ed25519":
        print("--revoke applies to --kind ed25519 only (RSA signatures are not stored)",
              file=sys.stderr)
        return 2
    try:
        # held for the whole rotation: key files, the switch wait and the queued Update
        with rotation_lock(config) as held:
            count = asyncio.run(_rotate_keys(config, args.kind, revoke=args.revoke, lock=held))
    except RotationBusy as exc:
        print(exc, file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again later
    path = key_path(config, KeyKind(args.kind))
    print(f"new {args.kind} key in {path}; the running node uses it now; "
          f"actor Update queued for {count} inbox(es)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from node import demo  # written by the lead; imported only when asked for

    return demo.main(args) or 0


# --- parser ------------------------------------------------------------------------


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="node directory (default: $PRAXISNETZ_DATA_DIR)")


def _add_init(commands: argparse._SubParsersAction) -> None:
    init = commands.add_parser("init", help="create a node: config, keys, database, admin token")
    _data_dir(init)
    init.add_argument(
        "--base-url", required=True, help="public URL, e.g. https://guetersloh.example"
    )
    init.add_argument("--name", required=True, help="display name of the municipality")
    init.add_argument("--slug", required=True, help="handle, e.g. guetersloh")
    init.add_argument("--ags", help="Amtlicher Gemeindeschlüssel (8 digits)")
    init.add_argument(
        "--kind", default=NodeKind.MUNICIPALITY.value, help="|".join(k.value for k in NodeKind)
    )
    init.add_argument("--hub", action="store_true", help="run in the hub role")
    init.add_argument(
        "--auto-accept-host",
        action="append",
        default=[],
        metavar="HOST",
        help="hub: approve members from this host without an editor (repeatable)",
    )
    init.add_argument(
        "--allow-private-network",
        action="store_true",
        help="allow loopback/private addresses (local federation only)",
    )
    init.set_defaults(handler=cmd_init)


def _add_server_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the node with its workers")
    _data_dir(serve)
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="default: the base URL's port")
    # one of the processes of [server] processes = N, started by node.serve_processes
    serve.add_argument("--acceptor", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)
    worker = commands.add_parser("worker", help="run delivery/inbox workers only (no HTTP)")
    _data_dir(worker)
    worker.set_defaults(handler=cmd_worker)


def _add_content_commands(commands: argparse._SubParsersAction) -> None:
    publish = commands.add_parser("publish", help="publish Markdown files with front matter")
    _data_dir(publish)
    publish.add_argument("files", nargs="+", metavar="FILE.md")
    publish.set_defaults(handler=cmd_publish)
    for name, handler in (("follow", cmd_follow), ("unfollow", cmd_unfollow)):
        sub = commands.add_parser(name, help=f"{name} an actor URL or acct: handle")
        _data_dir(sub)
        sub.add_argument("target")
        sub.set_defaults(handler=handler)
    status = commands.add_parser("status", help="followers, following, queues, failing hosts")
    _data_dir(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)


def _add_admin_commands(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create")
    create.add_argument("--name", default="api")
    revoke = token_commands.add_parser("revoke")
    revoke.add_argument("id", type=int)
    listing = token_commands.add_parser("list")
    for sub in (create, revoke, listing):
        _data_dir(sub)
    token.set_defaults(handler=cmd_token)
    keys = commands.add_parser("keys", help="key management")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser(
        "rotate", help="new RSA or Ed25519 key, used at once and announced with an actor Update",
        description=KEYS_ROTATE_DESCRIPTION)
    rotate.add_argument("--kind", choices=("rsa", "ed25519"), default="rsa",
                        help="which key to replace (default: rsa, the HTTP signature key)")
    rotate.add_argument("--revoke", action="store_true",
                        help="with --kind ed25519: stop publishing the earlier Ed25519 keys "
                             "(compromised key); proofs made with them then fail on purpose")
    _data_dir(rotate)
    keys.set_defaults(handler=cmd_keys)


def _add_demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the local demo federation")
    from node.demo import add_arguments as add_demo_arguments

    add_demo_arguments(demo)
    demo.set_defaults(handler=cmd_demo)


def _add_user_commands(commands: argparse._SubParsersAction) -> None:
    from node.web.user_cli import add_user_commands  # handlers live with the web interface

    add_user_commands(commands, _data_dir)


def _add_delivery_commands(commands: argparse._SubParsersAction) -> None:
    from node.delivery_cli import add_delivery_commands  # handlers live with the queue views

    add_delivery_commands(commands, _data_dir)


# The commands defined in this module. The others are defined next to their handlers
# (web interface, delivery queue, hub, demo); importing those modules costs more than
# half of `serve`'s start-up, so they are registered only when one of them (or --help)
# is asked for.
CORE_COMMANDS = frozenset(
    {"init", "serve", "worker", "publish", "follow", "unfollow", "status", "token", "keys"}
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with a core ``command``, only the core commands."""
    parser = argparse.ArgumentParser(prog="praxisnetz", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_init(commands)
    _add_server_commands(commands)
    _add_content_commands(commands)
    _add_admin_commands(commands)
    if command in CORE_COMMANDS:
        return parser
    _add_demo_command(commands)
    _add_user_commands(commands)
    _add_delivery_commands(commands)
    from node.hub.cli import add_hub_commands  # the hub role's commands live with the hub

    add_hub_commands(commands, _data_dir)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments[0] if arguments else None).parse_args(arguments)
    try:
        return args.handler(args)
    except (CliError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, CliError) else EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
