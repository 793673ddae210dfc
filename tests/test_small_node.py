"""A small node starts light: what `praxisnetz serve` must not import, and the migration
shortcut that keeps Alembic out of a restart (#9 item 4).

The import checks run in a fresh interpreter, because this test process has imported
everything already. They guard the structure, not a time: `python -m bench.small_node`
measures the start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from node.config import NodeConfig, write_config
from node.storage.db import (
    alembic_config,
    create_engine,
    current_revisions,
    downgrade,
    migrate,
    script_heads,
)

REPO = Path(__file__).resolve().parent.parent
# Needed only to publish (Markdown, validation), for JSON-LD outside the known contexts,
# Turtle, a hub, the other commands, a schema that is behind, PostgreSQL, the pyshacl
# cross-check or a PDF edition.
NOT_FOR_SERVE = (
    "pyld", "requests", "urllib3", "lxml", "rdflib", "alembic", "mako", "pygments",
    "markdown_it", "node.hub", "node.demo", "node.web.user_cli", "node.delivery_cli",
    "oxrdflib", "pyoxigraph", "vocab.validate", "vocab.namespace", "vocab.rdf",
    "sqlalchemy.dialects.postgresql", "pyshacl", "fpdf",
    # made on the first page, the first feed (node.web.render, node.routes.feed)
    "jinja2", "aiohttp_jinja2", "xml.etree",
)  # fmt: skip

# What `node.cli.main(["serve", ...])` imports before its first answer, without serving:
# the parser, the app factory and the workers that start with the app.
SERVE_IMPORTS = """
import json, sys
import node.cli
node.cli.build_parser("serve").parse_args(["serve", "--data-dir", sys.argv[1]])
from aiohttp import web
from node.app import create_app
from node.logs import configure_logging
from node.config import load_config
from node import workers
create_app(load_config(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


# The first contribution published through the API, in a fresh interpreter: Markdown and
# validation are imported then, but validation of our own documents goes through the
# compiled shapes and term table (vocab.compiled), never pyld, rdflib or requests.
NOT_FOR_PUBLISHING = (
    "pyld", "requests", "urllib3", "lxml", "rdflib", "html5rdf", "pyoxigraph", "oxrdflib",
    "vocab.rdf", "vocab.namespace", "vocab.shapes_turtle", "node.hub",
)  # fmt: skip
FIRST_PUBLISH = """
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from node import appkeys
from node.app import create_app
from node.config import load_config
from node.identity import create_node_keys
from node.storage.tokens import create_token

async def main():
    config = load_config(sys.argv[1])
    create_node_keys(config)
    app = create_app(config, start_workers=False)
    async with TestClient(TestServer(app)) as client:
        async with app[appkeys.SESSION_MAKER].begin() as session:
            token = (await create_token(session, "t", now=app[appkeys.CLOCK]())).token
        practice = {"kind": "practice", "slug": "e-akte", "title": "E-Akte im Bauamt",
                    "summary": "Wie.", "topics": ["e-akte"], "status": "in-operation",
                    "steps": ["Pilot"], "body": "Wir haben **umgestellt**."}
        response = await client.post("/api/contributions", json=practice,
                                     headers={"Authorization": f"Bearer {token}"})
        assert response.status == 201, await response.text()
        refused = await client.post("/api/contributions",
                                    json={**practice, "slug": "b", "status": "running"},
                                    headers={"Authorization": f"Bearer {token}"})
        assert refused.status == 422, await refused.text()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(script: str, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout.splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


def _node_dir(tmp_path: Path, *, hub: bool = False) -> Path:
    config = NodeConfig(data_dir=tmp_path, base_url="http://127.0.0.1:8123", name="Klein",
                        slug="klein", is_hub=hub)  # fmt: skip
    write_config(config)
    return tmp_path


def test_serve_imports_none_of_the_heavy_optional_modules(tmp_path: Path) -> None:
    modules = _modules_after(SERVE_IMPORTS, str(_node_dir(tmp_path)))
    assert "node.app" in modules and "sqlalchemy" in modules  # the script did import the app
    assert [name for name in NOT_FOR_SERVE if _loaded(modules, name)] == []


def test_the_first_publish_validates_without_pyld_or_rdflib(tmp_path: Path) -> None:
    modules = _modules_after(FIRST_PUBLISH, str(_node_dir(tmp_path)))
    assert "vocab.validate" in modules and "markdown_it" in modules  # it did publish
    assert [name for name in NOT_FOR_PUBLISHING if _loaded(modules, name)] == []


def test_a_hub_still_gets_its_modules(tmp_path: Path) -> None:
    modules = _modules_after(SERVE_IMPORTS, str(_node_dir(tmp_path, hub=True)))
    assert _loaded(modules, "node.hub") and "node.web.hub_editor" in modules


def test_the_full_parser_still_has_every_command() -> None:
    from node.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "demo", "user", "deliveries", "hub"} <= set(commands)
    light = build_parser("serve")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "serve" in light and "demo" not in light


def test_help_lists_the_commands_defined_elsewhere() -> None:
    done = subprocess.run([sys.executable, "-m", "node.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0
    assert "demo" in done.stdout and "deliveries" in done.stdout


def test_the_script_heads_agree_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert script_heads() == frozenset(heads)
    assert len(heads) == 1


async def test_migrate_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    script = f"""
import asyncio, json, sys
from node.storage.db import create_engine, migrate
async def main():
    engine = create_engine({url!r})
    await migrate(engine)
    await engine.dispose()
asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""
    assert not _loaded(_modules_after(script), "alembic")


async def test_migrate_still_upgrades_a_database_that_is_behind(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    try:
        await migrate(engine)
        await downgrade(engine, "0003")  # before the hub tables (0004) and every revision above
        async with engine.connect() as connection:
            behind = await connection.run_sync(current_revisions)
        assert behind and behind != script_heads()
        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(current_revisions) == script_heads()
            await connection.execute(text("SELECT count(*) FROM hub_members"))
    finally:
        await engine.dispose()


async def test_an_unknown_recorded_revision_goes_to_alembic(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    try:
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
        with pytest.raises(Exception, match="zzzz"):  # noqa: B017 - Alembic's own error
            await migrate(engine)  # the shortcut must not take an unknown revision for current
    finally:
        await engine.dispose()


@pytest.mark.parametrize("dialect_name", ["postgresql", "sqlite"])
def test_insert_for_gives_the_dialects_upsert(dialect_name: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from node.storage.models import RemoteActor
    from node.storage.upsert import insert_for

    statement = insert_for(dialect_name, RemoteActor).values(uri="https://a.example/actor")
    statement = statement.on_conflict_do_update(
        index_elements=[RemoteActor.uri], set_={"name": statement.excluded["name"]}
    )
    dialect = (postgresql if dialect_name == "postgresql" else sqlite).dialect()
    sql = str(statement.compile(dialect=dialect))
    assert "ON CONFLICT (uri) DO UPDATE SET name = excluded.name" in sql
