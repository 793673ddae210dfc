"""``praxisnetz publish``: front matter per file and field, idempotent per slug, all or nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from node.cli import main
from node.config import load_config
from node.contribution_input import ContributionInputError
from node.markdown_import import (
    MarkdownImportError,
    load_markdown_files,
    parse_markdown,
    slug_from_file_name,
)
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import Activity, Contribution
from tests.node_support import fresh_postgres_database, make_node

TOPICS = frozenset({"e-akte", "prozessmanagement"})
PRACTICE = """---
kind: practice
title: E-Akte im Bauamt
summary: Wie wir die E-Akte eingeführt haben.
topics: [e-akte]
status: piloting
steps:
  - Ist-Prozesse aufnehmen
  - Pilot starten
duration: P9M
---
# Ausgangslage

Wir hatten **Papierakten**.
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(config) -> tuple[list[str], list[str]]:
    async def read() -> tuple[list[str], list[str]]:
        engine = create_engine(config.database_url)
        try:
            await migrate(engine)  # the database may not exist yet if nothing was published
            async with session_maker(engine)() as session:
                slugs = (
                    await session.scalars(select(Contribution.slug).order_by(Contribution.id))
                ).all()
                types = (await session.scalars(select(Activity.type).order_by(Activity.id))).all()
        finally:
            await engine.dispose()
        return list(slugs), list(types)

    return asyncio.run(read())


def test_front_matter_fields_become_the_contribution() -> None:
    contribution = parse_markdown(PRACTICE, default_slug="e-akte-im-bauamt", known_topics=TOPICS)
    assert contribution.slug == "e-akte-im-bauamt"
    assert contribution.kind.value == "practice" and contribution.status == "piloting"
    assert contribution.steps == ("Ist-Prozesse aufnehmen", "Pilot starten")
    assert contribution.body.startswith("# Ausgangslage")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("no front matter at all", "front_matter"),
        ("---\nkind: [unclosed\n---\nbody", "front_matter"),
        ("---\n- a list\n---\nbody", "front_matter"),
        ("---\nkind: practice\ntitle: T\ntopics: [e-akte]\nstatus: done\n---\n", "status"),
        ("---\nkind: stance\ntitle: Meinung\nposition: agree\n---\n", "about"),
        ("---\nkind: practice\ntitle: T\nbody: x\n---\n", "body"),
        ("---\nkind: practice\ntitle: T\nsteps: {a: 1}\n---\n", "steps"),
        ("---\nkind: material\ntitle: Dienstanweisung\n---\n", "url"),
    ],
)
def test_bad_front_matter_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ContributionInputError) as caught:
        parse_markdown(text, default_slug="x", known_topics=TOPICS)
    assert field in [problem.field for problem in caught.value.problems]


def test_slug_from_file_name_transliterates_umlauts() -> None:
    assert slug_from_file_name(Path("Bürgerportal für Düren.md")) == "buergerportal-fuer-dueren"
    assert slug_from_file_name(Path("E-Akte_im  Bauamt.md")) == "e-akte-im-bauamt"


def test_every_file_is_checked_and_all_problems_are_reported(tmp_path: Path) -> None:
    good = _write(tmp_path, "gut.md", PRACTICE)
    bad = _write(tmp_path, "schlecht.md", "---\nkind: practice\ntopics: [nope]\n---\n")
    duplicate = _write(tmp_path, "kopie.md", PRACTICE.replace("kind:", "slug: gut\nkind:"))
    with pytest.raises(MarkdownImportError) as caught:
        load_markdown_files([good, bad, duplicate, tmp_path / "missing.md"], known_topics=TOPICS)
    reported = {(problem.path.name, problem.field) for problem in caught.value.problems}
    assert {("schlecht.md", "title"), ("schlecht.md", "topics"), ("kopie.md", "slug"),
            ("missing.md", "file")} <= reported  # fmt: skip


def test_publish_is_idempotent_per_slug_and_republishing_a_change_is_an_update(
    tmp_path, capsys
) -> None:
    config = make_node(tmp_path)
    path = _write(tmp_path, "E-Akte im Bauamt.md", PRACTICE)
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 0
    assert (
        "created\thttps://guetersloh.example/practices/e-akte-im-bauamt" in capsys.readouterr().out
    )
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 0
    assert "unchanged\t" in capsys.readouterr().out
    path.write_text(PRACTICE.replace("piloting", "in-operation"), encoding="utf-8")
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 0
    assert "updated\t" in capsys.readouterr().out
    assert _rows(config) == (["e-akte-im-bauamt"], ["Create", "Update"])


def test_publish_is_all_or_nothing_on_front_matter_errors(tmp_path, capsys) -> None:
    config = make_node(tmp_path)
    good = _write(tmp_path, "gut.md", PRACTICE)
    bad = _write(tmp_path, "schlecht.md", "---\nkind: stance\ntitle: Meinung\n---\n")
    assert main(["publish", "--data-dir", str(config.data_dir), str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: position:" in err and f"{bad}: about:" in err
    assert "nothing was published" in err
    assert _rows(config) == ([], [])


def test_publish_is_all_or_nothing_when_the_vocabulary_refuses_a_document(tmp_path, capsys) -> None:
    config = make_node(tmp_path)
    good = _write(tmp_path, "gut.md", PRACTICE)
    # valid front matter, but the practice shape needs a topic and a status
    no_topic = _write(
        tmp_path, "ohne-thema.md", "---\nkind: practice\ntitle: Ohne Thema\n---\nText\n"
    )
    assert main(["publish", "--data-dir", str(config.data_dir), str(good), str(no_topic)]) == 2
    err = capsys.readouterr().err
    assert f"{no_topic}: topics:" in err and f"{no_topic}: status:" in err
    assert _rows(config) == ([], [])


def test_changing_the_kind_of_a_published_slug_is_refused(tmp_path, capsys) -> None:
    config = make_node(tmp_path)
    path = _write(tmp_path, "gut.md", PRACTICE)
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 0
    path.write_text(
        "---\nkind: experience\ntitle: Erfahrung\nabout: https://x.example/practices/p\n---\nText\n",
        encoding="utf-8",
    )
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 2
    assert "kind:" in capsys.readouterr().err
    assert _rows(config) == (["gut"], ["Create"])


def test_published_count_matches_files(tmp_path, capsys) -> None:
    config = make_node(tmp_path)
    files = [_write(tmp_path, f"p{n}.md", PRACTICE) for n in range(3)]
    assert main(["publish", "--data-dir", str(config.data_dir), *map(str, files)]) == 0
    assert capsys.readouterr().out.count("created\t") == 3

    async def count() -> int:
        engine = create_engine(config.database_url)
        async with session_maker(engine)() as session:
            total = await session.scalar(select(func.count()).select_from(Contribution))
        await engine.dispose()
        return total

    assert asyncio.run(count()) == 3


async def test_init_and_publish_on_postgresql(tmp_path, monkeypatch, capsys) -> None:
    async with fresh_postgres_database() as url:
        monkeypatch.setenv("PRAXISNETZ_DATABASE_URL", url)
        data_dir = tmp_path / "node"
        path = _write(tmp_path, "gut.md", PRACTICE)
        args = ["--base-url", "https://g.example", "--name", "G", "--slug", "g"]
        assert await asyncio.to_thread(main, ["init", "--data-dir", str(data_dir), *args]) == 0
        for _ in range(2):
            assert (
                await asyncio.to_thread(main, ["publish", "--data-dir", str(data_dir), str(path)])
                == 0
            )
        out = capsys.readouterr().out
        assert "created\thttps://g.example/practices/gut" in out and "unchanged\t" in out
        assert not (data_dir / "praxisnetz.db").exists()  # everything went to PostgreSQL
        rows = await asyncio.to_thread(_rows, load_config(data_dir))
        assert rows == (["gut"], ["Create"])


def test_a_concurrent_writer_on_the_same_slug_is_reported_not_a_traceback(
    tmp_path, monkeypatch, capsys
) -> None:
    from sqlalchemy.exc import IntegrityError

    config = make_node(tmp_path)
    path = _write(tmp_path, "gut.md", PRACTICE)

    async def raced(*_args):
        raise IntegrityError("INSERT INTO contributions", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr("node.cli._publish_all", raced)
    assert main(["publish", "--data-dir", str(config.data_dir), str(path)]) == 1
    assert "error: slug: another writer" in capsys.readouterr().err


async def test_authoring_refuses_what_fails_the_shapes_and_stores_nothing(tmp_path) -> None:
    # Every path that publishes goes through node.authoring: an Author built without a
    # validator (as the test beds and the CLI used to) still checks the shapes.
    from node.authoring import Author, publish
    from node.contribution_input import ContributionInput
    from node.identity import load_node_keys
    from node.storage.models import ContributionKind
    from tests.node_support import MovableClock

    config = make_node(tmp_path)
    author = Author(config, load_node_keys(config), MovableClock())
    engine = create_engine(config.database_url)
    try:
        await migrate(engine)
        practice = ContributionInput(kind=ContributionKind.PRACTICE, slug="ohne-themen",
                                     title="Ohne Themen", body="Text")
        stance = ContributionInput(kind=ContributionKind.STANCE, slug="ohne-grund", title="Ja",
                                   about=f"{config.base_url}/practices/x", position="agree")
        for inp, fields in ((practice, {"topics", "status"}), (stance, {"reason"})):
            with pytest.raises(ContributionInputError) as caught:
                async with session_maker(engine)() as session, session.begin():
                    await publish(session, author, inp)
            assert {problem.field for problem in caught.value.problems} == fields
        async with session_maker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Contribution)) == 0
            assert await session.scalar(select(func.count()).select_from(Activity)) == 0
    finally:
        await engine.dispose()
