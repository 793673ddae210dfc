"""``praxisnetz hub …``: the editorial actions from the command line.

``members [--pending]``, ``approve``/``reject HANDLE_OR_URL``,
``triage [--limit] [--offset] [--json]`` (a page of the contributions waiting, with
their counts),
``feedback URL_OR_SLUG [--position] [--limit] [--offset] [--json]`` (the stances with
their reasons, newest first), ``sections [--json]``,
``section add SLUG TITLE [--parent] [--text-file] [--order]``,
``place CONTRIBUTION_URL SECTION_SLUG [--decline|--defer] [--note]``,
``freeze [--publish]`` and ``reindex``. They work on the database; the running hub's
workers send what they enqueue (Accepts, Follows, announcements) and its indexer
picks up the changes. ``init_hub`` is what ``praxisnetz init --hub`` adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from node.cli import CliError, open_store, utc_now
from node.config import NodeConfig, load_config
from node.hub import edition_store, editorial, feedback, membership, triage
from node.hub.aggregation import Aggregator
from node.hub.contribution import STANCE_POSITIONS
from node.hub.search_backends import search_backend_for
from node.hub.settings import write_settings
from node.hub.structure import Section
from node.hub.tables import Decision, MemberState


def init_hub(config: NodeConfig, *, auto_accept_hosts: Iterable[str] = ()) -> None:
    """Write ``hub.toml`` and the default handbook structure (``init --hub``)."""
    write_settings(config.data_dir, auto_accept_hosts=auto_accept_hosts)

    async def seed() -> None:
        async with open_store(config) as sessions, sessions.begin() as session:
            await editorial.ensure_structure(session, now=utc_now())

    asyncio.run(seed())


def _hub_config(args: argparse.Namespace) -> NodeConfig:
    config = load_config(args.data_dir)
    if not config.is_hub:
        raise CliError("data_dir", f"{config.data_dir} is not a hub (init --hub)")
    return config


def cmd_members(args: argparse.Namespace) -> int:
    async def run() -> list[membership.MemberView]:
        async with open_store(_hub_config(args)) as sessions, sessions() as session:
            state = MemberState.PENDING if args.pending else None
            return await membership.list_members(session, state=state)

    rows = asyncio.run(run())
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print(f"{row.id}\t{row.state}\t{row.ags or '-'}\t{row.name}\t{row.actor}")
    return 0


def _decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        config = _hub_config(args)

        async def run() -> membership.MemberView:
            from node.identity import load_node_keys

            async with open_store(config) as sessions, sessions.begin() as session:
                member = await membership.decide(
                    session, args.member, approved=approve, config=config,
                    keys=load_node_keys(config), now=utc_now())
                return membership.MemberView.of(member)

        try:
            view = asyncio.run(run())
        except membership.MembershipError as exc:
            raise CliError(exc.field, exc.message) from exc
        print(f"{view.name} ({view.actor}): {view.state}")
        return 0

    return command


def cmd_triage(args: argparse.Namespace) -> int:
    try:
        query = triage.read_query(args.limit, args.offset)
    except editorial.EditorialError as exc:
        raise CliError(exc.field, exc.message) from exc

    async def run() -> triage.TriagePage:
        async with open_store(_hub_config(args)) as sessions, sessions() as session:
            return await triage.triage_page(session, query)

    found = asyncio.run(run())
    if args.json:
        print(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
        return 0
    for item in found.items:
        counts = item.feedback
        print(f"{item.decision or 'new'}\t{item.kind}\t{item.title}\t{item.member}\t"
              f"+{counts.agree}/-{counts.disagree}/~{counts.partly}\t{item.uri}")
    shown = f"{query.offset + 1}-{query.offset + len(found.items)}" if found.items else "none"
    print(f"{shown} of {found.total}"
          + (f"; next: --offset {found.next_offset()}" if found.next_offset() is not None else ""))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    config = _hub_config(args)
    try:
        target = feedback.target_url(config.base_url, args.target)
        query = feedback.read_query(args.limit, args.offset, args.position or ())
    except editorial.EditorialError as exc:
        raise CliError(exc.field, exc.message) from exc

    async def run() -> feedback.FeedbackPage:
        async with open_store(config) as sessions, sessions() as session:
            return await feedback.stances_about(session, target, query)

    found = asyncio.run(run())
    if args.json:
        print(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
        return 0
    counts = found.counts
    print(f"{found.target}\t+{counts.agree}/-{counts.disagree}/~{counts.partly}\t"
          f"{counts.comments} comments\t{len(found.stances)} of {found.total} stances "
          f"(offset {query.offset})")
    for entry in found.stances:
        when = entry.updated or entry.published
        # one line per stance: a reason's own line breaks and tabs become spaces
        print(f"{entry.position}\t{entry.municipality}\t{when.isoformat() if when else '-'}\t"
              f"{' '.join(entry.reason.split()) or '-'}\t{entry.link}")
    return 0


def cmd_sections(args: argparse.Namespace) -> int:
    async def run() -> list[dict[str, object]]:
        async with open_store(_hub_config(args)) as sessions, sessions() as session:
            return (await editorial.load_structure(session)).to_json()

    sections = asyncio.run(run())
    if args.json:
        print(json.dumps(sections, indent=2, ensure_ascii=False))
        return 0
    for section in sections:
        indent = "  " if section["parent"] else ""
        print(f"{indent}{section['slug']}\t{section['title_de']}\t{section['parent'] or '-'}")
    return 0


def cmd_section_add(args: argparse.Namespace) -> int:
    text = ""
    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError("text-file", str(exc)) from exc
    section = Section(args.slug, args.title, order=args.order, parent=args.parent, text=text)

    async def run() -> None:
        async with open_store(_hub_config(args)) as sessions, sessions.begin() as session:
            await editorial.save_section(session, section, now=utc_now())

    try:
        asyncio.run(run())
    except editorial.EditorialError as exc:
        raise CliError(exc.field, exc.message) from exc
    print(f"section {section.slug} saved")
    return 0


def cmd_place(args: argparse.Namespace) -> int:
    decision = Decision.DECLINE if args.decline else Decision.DEFER if args.defer else Decision.ACCEPT
    try:
        placement = editorial.read_placement({
            "contribution": args.contribution, "sections": [args.section],
            "decision": decision.value, "note": args.note or ""})
    except editorial.EditorialError as exc:
        raise CliError(exc.field, exc.message) from exc

    async def run() -> editorial.PlacementView:
        async with open_store(_hub_config(args)) as sessions, sessions.begin() as session:
            return await editorial.place(session, placement, decided_by="cli", now=utc_now())

    try:
        view = asyncio.run(run())
    except editorial.EditorialError as exc:
        raise CliError(exc.field, exc.message) from exc
    print(f"{view.decision}: {view.contribution} "
          + " ".join(f"{slug}@{order}" for slug, order in view.sections))
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    config = _hub_config(args)

    async def run() -> edition_store.StoredEdition:
        from node.identity import load_node_keys

        keys = load_node_keys(config)
        async with open_store(config) as sessions, sessions.begin() as session:
            stored = await edition_store.freeze_next(session, config, keys, clock=utc_now,
                                                     frozen_by="cli")
            if args.publish:
                await edition_store.publish_edition(session, stored.number, config, keys,
                                                    now=utc_now())
            return stored

    try:
        stored = asyncio.run(run())
    except edition_store.EditionStoreError as exc:
        raise CliError(exc.field, exc.message) from exc
    print(f"edition {stored.number}\t{stored.edition.manifest.url}\t{stored.edition.manifest_hash}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    config = _hub_config(args)

    async def run() -> tuple[int, int]:
        from node.hub.runtime import bundled_contexts
        from node.hub.wiring import INDEX_DIR, open_index

        index = open_index(config, bundled_contexts())
        if index is None:
            raise CliError("index", f"{config.data_dir / INDEX_DIR} is in use by the running "
                           "hub; stop it, or POST /api/hub/reindex", exit_code=1)
        async with open_store(config) as sessions:
            aggregator = Aggregator(sessions=sessions, index=index, search=search_backend_for(sessions),
                                    clock=utc_now)
            report = await aggregator.rebuild()
        index.flush()
        return report.indexed, len(report.skipped)

    indexed, skipped = asyncio.run(run())
    print(f"index rebuilt from SQL: {indexed} contributions, {skipped} skipped")
    return 0


def add_hub_commands(commands: argparse._SubParsersAction,
                     data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    hub = commands.add_parser("hub", help="hub editorial work: members, triage, sections, editions")
    sub = hub.add_subparsers(dest="hub_command", required=True)
    members = sub.add_parser("members", help="list members (and applicants)")
    members.add_argument("--pending", action="store_true")
    members.add_argument("--json", action="store_true")
    members.set_defaults(handler=cmd_members)
    for name, approve in (("approve", True), ("reject", False)):
        decide = sub.add_parser(name, help=f"{name} an applicant (id, actor URL or handle)")
        decide.add_argument("member", metavar="HANDLE_OR_URL")
        decide.set_defaults(handler=_decide(approve))
    waiting = sub.add_parser("triage", help="contributions not yet decided, a page at a time")
    waiting.add_argument("--limit", help=f"contributions per page (1 to {triage.MAX_LIMIT}, "
                         f"default {triage.DEFAULT_LIMIT})")
    waiting.add_argument("--offset", help="contributions to skip (default 0)")
    waiting.add_argument("--json", action="store_true", help="as /api/hub/triage answers")
    waiting.set_defaults(handler=cmd_triage)
    stances = sub.add_parser("feedback", help="the stances about a contribution or section, "
                             "with their reasons, newest first")
    stances.add_argument("target", metavar="CONTRIBUTION_URL_OR_SECTION_SLUG")
    stances.add_argument("--position", action="append", choices=STANCE_POSITIONS,
                         help="only this position (repeat it for more)")
    stances.add_argument("--limit", help=f"stances per page (1 to {feedback.MAX_LIMIT}, "
                         f"default {feedback.DEFAULT_LIMIT})")
    stances.add_argument("--offset", help="stances to skip (default 0)")
    stances.add_argument("--json", action="store_true", help="as /api/hub/feedback answers")
    stances.set_defaults(handler=cmd_feedback)
    sections = sub.add_parser("sections", help="the handbook's chapters and sections")
    sections.add_argument("--json", action="store_true")
    sections.set_defaults(handler=cmd_sections)
    section = sub.add_parser("section", help="add or change a section")
    section_sub = section.add_subparsers(dest="section_command", required=True)
    add = section_sub.add_parser("add")
    add.add_argument("slug")
    add.add_argument("title")
    add.add_argument("--parent")
    add.add_argument("--order", type=int, default=0)
    add.add_argument("--text-file")
    add.set_defaults(handler=cmd_section_add)
    place = sub.add_parser("place", help="decide about a contribution")
    place.add_argument("contribution", metavar="CONTRIBUTION_URL")
    place.add_argument("section", metavar="SECTION_SLUG")
    choice = place.add_mutually_exclusive_group()
    choice.add_argument("--decline", action="store_true")
    choice.add_argument("--defer", action="store_true")
    place.add_argument("--note")
    place.set_defaults(handler=cmd_place)
    freeze = sub.add_parser("freeze", help="freeze the draft as the next edition")
    freeze.add_argument("--publish", action="store_true", help="announce it to the followers")
    freeze.set_defaults(handler=cmd_freeze)
    reindex = sub.add_parser("reindex", help="rebuild the RDF index from SQL (hub stopped)")
    reindex.set_defaults(handler=cmd_reindex)
    for parser in (members, waiting, stances, sections, add, place, freeze, reindex,
                   *(sub.choices[name] for name in ("approve", "reject"))):
        data_dir(parser)
