"""``praxisnetz init --hub`` and ``praxisnetz hub …``: settings, default structure,
sections, and refusals that name the field (exit status 2, nothing changed)."""

from __future__ import annotations

import asyncio
import gc
import json

from node.cli import main
from node.hub.settings import load_settings


def _init(tmp_path, capsys) -> str:
    data_dir = str(tmp_path / "hub")
    assert main(["init", "--data-dir", data_dir, "--base-url", "https://hub.example",
                 "--name", "Kochbuch", "--slug", "kochbuch", "--hub",
                 "--auto-accept-host", "Dueren.Example", "--auto-accept-host", "cochem.example"]) == 0
    capsys.readouterr()
    return data_dir


def test_init_hub_writes_settings_and_the_default_structure(tmp_path, capsys) -> None:
    data_dir = _init(tmp_path, capsys)
    settings = load_settings(tmp_path / "hub")
    assert settings.auto_accept_hosts == ("dueren.example", "cochem.example")
    assert main(["hub", "sections", "--json", "--data-dir", data_dir]) == 0
    sections = json.loads(capsys.readouterr().out)
    assert {"einleitung", "e-akte", "e-akte-einfuehrung"} <= {s["slug"] for s in sections}
    text = tmp_path / "text.md"
    text.write_text("**Archiv** ist Pflicht.", encoding="utf-8")
    assert main(["hub", "section", "add", "e-akte-archiv", "Archivierung", "--parent", "e-akte",
                 "--text-file", str(text), "--data-dir", data_dir]) == 0
    assert "e-akte-archiv saved" in capsys.readouterr().out
    assert main(["hub", "sections", "--json", "--data-dir", data_dir]) == 0
    added = [s for s in json.loads(capsys.readouterr().out)
             if s["slug"] == "e-akte-archiv"]
    assert added and added[0]["parent"] == "e-akte" and "Archiv" in added[0]["text"]


def test_refusals_name_the_field_and_exit_2(tmp_path, capsys) -> None:
    data_dir = _init(tmp_path, capsys)
    cases = [
        (["hub", "freeze"], "placements:"),
        (["hub", "section", "add", "neu", "Neu", "--parent", "fehlt"], "parent:"),
        (["hub", "approve", "https://x.example/actor"], "member:"),
        (["hub", "place", "ftp://x.example/p", "e-akte"], "contribution:"),
        (["hub", "place", "https://x.example/p", "e-akte", "--defer"], "contribution:"),
        (["hub", "triage", "--limit", "0"], "limit:"),
        (["hub", "triage", "--offset", "-1"], "offset:"),
    ]
    for argv, field in cases:
        assert main([*argv, "--data-dir", data_dir]) == 2, argv
        assert f"error: {field}" in capsys.readouterr().err, argv
    assert main(["hub", "members", "--pending", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out == ""
    assert main(["hub", "triage", "--json", "--limit", "5", "--data-dir", data_dir]) == 0
    waiting = json.loads(capsys.readouterr().out)  # a page, as /api/hub/triage answers
    assert (waiting["total"], waiting["limit"], waiting["items"]) == (0, 5, [])


def test_hub_commands_refuse_a_node_that_is_not_a_hub(tmp_path, capsys) -> None:
    data_dir = str(tmp_path / "node")
    assert main(["init", "--data-dir", data_dir, "--base-url", "https://a.example",
                 "--name", "A", "--slug", "a"]) == 0
    capsys.readouterr()
    assert main(["hub", "triage", "--data-dir", data_dir]) == 2
    assert "is not a hub" in capsys.readouterr().err
    assert not (tmp_path / "node" / "hub.toml").exists()


async def test_reindex_rebuilds_from_sql_and_refuses_while_the_hub_runs(tmp_path, capsys) -> None:
    from datetime import UTC, datetime

    from node.hub.tables import HubMember
    from node.storage.models import RemoteObject
    from tests.hub_node_support import start_hub
    from tests.hub_support import practice

    hub = await start_hub(tmp_path)
    now = datetime.now(UTC)
    document = {**practice("dueren.example", "x", name="X"), "proof": {"type": "DataIntegrityProof"}}
    async with hub.sessions()() as session, session.begin():
        session.add(HubMember(actor_uri="https://dueren.example/actor", name="Düren",
                              state="approved", applied_at=now))
        session.add(RemoteObject(uri=document["id"], kind="Practice", deleted=False,
                                 attributed_to="https://dueren.example/actor", document=document,
                                 received_at=now, updated=now))
    data_dir = str(hub.config.data_dir)
    try:
        # the command runs its own event loop, so it gets a thread of its own here
        assert await asyncio.to_thread(main, ["hub", "reindex", "--data-dir", data_dir]) == 1
        assert "in use by the running hub" in capsys.readouterr().err
    finally:
        await hub.stop()
    gc.collect()  # the stopped hub's store goes with its last reference
    assert await asyncio.to_thread(main, ["hub", "reindex", "--data-dir", data_dir]) == 0
    assert "1 contributions, 0 skipped" in capsys.readouterr().out


def test_feedback_prints_the_stances_with_their_reasons_newest_first(tmp_path, capsys) -> None:
    from datetime import UTC, datetime, timedelta

    from node.cli import open_store
    from node.config import load_config
    from node.hub.tables import HubMember
    from node.storage.models import RemoteObject
    from tests.hub_support import stance

    data_dir = _init(tmp_path, capsys)
    about = "https://dueren.example/practices/e-akte"
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    async def seed() -> None:
        async with open_store(load_config(tmp_path / "hub")) as sessions, sessions.begin() as session:
            session.add(HubMember(actor_uri="https://dueren.example/actor", name="Stadt Düren",
                                  state="approved", applied_at=now))
            for hours, slug, position, reason in ((1, "alt", "disagree", "Zu\tteuer,\nleider."),
                                                  (2, "neu", "partly", "Erst schulen.")):
                document = stance("dueren.example", slug, about=about, position=position,
                                  reason=reason)
                session.add(RemoteObject(uri=document["id"], kind="Stance", deleted=False,
                                         attributed_to=document["attributedTo"], about=about,
                                         document=document, received_at=now,
                                         updated=now + timedelta(hours=hours)))

    asyncio.run(seed())
    assert main(["hub", "feedback", about, "--data-dir", data_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{about}\t+0/-1/~1\t0 comments\t2 of 2 stances (offset 0)"
    assert lines[1:] == [
        "partly\tStadt Düren\t2026-11-22T14:00:00+00:00\tErst schulen.\t"
        "https://dueren.example/stances/neu",
        "disagree\tStadt Düren\t2026-11-22T13:00:00+00:00\tZu teuer, leider.\t"
        "https://dueren.example/stances/alt"]
    assert main(["hub", "feedback", about, "--json", "--limit", "1", "--position", "disagree",
                 "--data-dir", data_dir]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [s["reason"] for s in answer["stances"]] == ["Zu\tteuer,\nleider."]
    assert answer["total"] == 1 and answer["next"] is None
    assert main(["hub", "feedback", "e-akte", "--data-dir", data_dir]) == 0  # a section slug
    assert "https://hub.example/handbook/sections/e-akte\t+0/-0/~0" in capsys.readouterr().out
    for argv, field in (([about, "--limit", "0"], "limit"), ([about, "--offset", "x"], "offset"),
                        ([""], "target")):
        assert main(["hub", "feedback", *argv, "--data-dir", data_dir]) == 2, argv
        assert f"error: {field}:" in capsys.readouterr().err, argv
