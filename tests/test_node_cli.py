"""``praxisnetz`` CLI: init (config, 0600 keys, database, token), validation with exit
code 2 and nothing changed, status, tokens, key rotation, environment overrides."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from federation.keys import load_private_key
from node import appkeys
from node.app import create_app
from node.cli import main
from node.config import ConfigError, load_config
from node.storage.db import create_engine, session_maker
from node.storage.models import Activity, ApiToken, Delivery, Follower
from tests.node_support import START

INIT = [
    "--base-url",
    "https://guetersloh.example",
    "--name",
    "Stadt Gütersloh",
    "--slug",
    "guetersloh",
]


def _init(data_dir: Path, *extra: str) -> int:
    return main(["init", "--data-dir", str(data_dir), *INIT, *extra])


def _token_from(output: str) -> str:
    return output.strip().splitlines()[-1]


async def _query(config, statement):
    engine = create_engine(config.database_url)
    try:
        async with session_maker(engine)() as session:
            return (await session.execute(statement)).all()
    finally:
        await engine.dispose()


def test_init_creates_config_private_keys_database_and_prints_a_token(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    assert _init(data_dir, "--ags", "05754008", "--kind", "city") == 0
    token = _token_from(capsys.readouterr().out)
    config = load_config(data_dir)
    assert (config.base_url, config.slug, config.ags, config.kind.value) == (
        "https://guetersloh.example", "guetersloh", "05754008", "city"
    )  # fmt: skip
    for key_path in (config.rsa_key_path, config.ed25519_key_path):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        load_private_key(key_path)
    assert (data_dir / "praxisnetz.db").is_file()
    hashes = [row[0] for row in asyncio.run(_query(config, select(ApiToken.token_hash)))]
    assert len(hashes) == 1 and token.startswith("pnx_") and token not in hashes
    assert token not in (data_dir / "praxisnetz.db").read_bytes().decode("latin-1")


async def test_the_printed_token_works_on_the_api(tmp_path, aiohttp_client, capsys) -> None:
    data_dir = tmp_path / "node"
    assert await asyncio.to_thread(_init, data_dir) == 0
    token = _token_from(capsys.readouterr().out)
    client = await aiohttp_client(create_app(load_config(data_dir), start_workers=False))
    ok = await client.get("/api/contributions", headers={"Authorization": f"Bearer {token}"})
    assert ok.status == 200
    refused = await client.get("/api/contributions", headers={"Authorization": f"Bearer {token}x"})
    assert refused.status == 401


def test_init_refuses_to_overwrite_an_existing_node(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    assert _init(data_dir) == 0
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file() and p.suffix != ".db"}
    capsys.readouterr()
    assert _init(data_dir) == 2
    assert "data_dir" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in before}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--base-url", "ftp://guetersloh.example"], "base_url"),
        (["--base-url", "guetersloh.example"], "base_url"),
        (["--slug", "Gütersloh!"], "slug"),
        (["--ags", "5754008"], "ags"),
        (["--ags", "0575400A"], "ags"),
        (["--kind", "village"], "kind"),
        (["--name", "  "], "name"),
    ],
)
def test_init_validates_every_argument_and_creates_nothing(tmp_path, capsys, args, field) -> None:
    data_dir = tmp_path / "node"
    assert _init(data_dir, *args) == 2
    assert f"error: {field}:" in capsys.readouterr().err
    assert not data_dir.exists()


def test_status_json_and_text(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    _init(data_dir)
    capsys.readouterr()
    assert main(["status", "--data-dir", str(data_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"contributions": 0, "followers": {}, "following": [], "deliveries": {},
                      "inbox": {}, "failing_hosts": []}  # fmt: skip
    assert main(["status", "--data-dir", str(data_dir)]) == 0
    assert "delivery queue: empty" in capsys.readouterr().out


def test_token_create_list_revoke(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    _init(data_dir)
    capsys.readouterr()
    assert main(["token", "create", "--data-dir", str(data_dir), "--name", "redaktion"]) == 0
    assert _token_from(capsys.readouterr().out).startswith("pnx_")
    assert main(["token", "revoke", "--data-dir", str(data_dir), "2"]) == 0
    assert main(["token", "list", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "admin\t" in listing and "redaktion" in listing and "revoked" in listing
    assert main(["token", "revoke", "--data-dir", str(data_dir), "2"]) == 2
    assert "error: id:" in capsys.readouterr().err


def test_keys_rotate_replaces_the_rsa_key_and_queues_an_actor_update(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    _init(data_dir)
    config = load_config(data_dir)
    old_pem = config.rsa_key_path.read_bytes()

    async def add_follower() -> None:
        engine = create_engine(config.database_url)
        async with session_maker(engine).begin() as session:
            session.add(Follower(actor_uri="https://b.example/actor", inbox="https://b.example/actor/inbox",
                                 shared_inbox="https://b.example/inbox", state="accepted", created_at=START))  # fmt: skip
        await engine.dispose()

    asyncio.run(add_follower())
    assert main(["keys", "rotate", "--data-dir", str(data_dir)]) == 0
    # the running node follows the key file: nothing to restart
    out = capsys.readouterr().out
    assert "the running node uses it now" in out and "restart" not in out
    assert config.rsa_key_path.read_bytes() != old_pem
    assert stat.S_IMODE(config.rsa_key_path.stat().st_mode) == 0o600
    rows = asyncio.run(_query(config, select(Activity.document, Delivery.inbox_url).join(Delivery)))
    assert len(rows) == 1
    document, inbox = rows[0]
    assert inbox == "https://b.example/inbox"
    assert document["type"] == "Update" and document["object"]["id"] == config.actor_url
    new_public = load_private_key(config.rsa_key_path).public_key()
    from federation.keys import public_key_pem

    assert document["object"]["publicKey"]["publicKeyPem"] == public_key_pem(new_public)


def test_keys_rotate_help_says_no_restart_is_needed_and_offers_ed25519(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "rotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "No restart" in text and "restart the" not in text
    assert "--kind {rsa,ed25519}" in text


def test_commands_on_a_missing_node_fail_naming_data_dir(tmp_path, capsys) -> None:
    assert main(["status", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "error: data_dir:" in capsys.readouterr().err


def test_environment_overrides_the_config_file(tmp_path) -> None:
    data_dir = tmp_path / "node"
    _init(data_dir)
    env = {"PRAXISNETZ_DATA_DIR": str(data_dir), "PRAXISNETZ_BASE_URL": "https://other.example",
           "PRAXISNETZ_DATABASE_URL": "postgresql+asyncpg://u@db/praxisnetz", "PRAXISNETZ_PORT": "9000"}  # fmt: skip
    config = load_config(None, env)
    assert config.base_url == "https://other.example"
    assert config.database_url.startswith("postgresql+asyncpg://")
    assert config.listen_port == 9000
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**env, "PRAXISNETZ_PORT": "many"})
    assert caught.value.field == "port"


def test_follow_with_a_bad_target_exits_2(tmp_path, capsys) -> None:
    data_dir = tmp_path / "node"
    _init(data_dir)
    capsys.readouterr()
    assert main(["follow", "--data-dir", str(data_dir), "not a handle"]) == 2
    assert "error: target:" in capsys.readouterr().err
    assert main(["unfollow", "--data-dir", str(data_dir), "https://b.example/actor"]) == 2


def test_console_script_entry_point_runs(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "init", "--data-dir", str(tmp_path / "n"), *INIT, "--ags", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "ags:" in result.stderr


async def test_serve_equivalent_app_starts_with_the_initialised_node(
    tmp_path, aiohttp_client, capsys
) -> None:
    data_dir = tmp_path / "node"
    await asyncio.to_thread(_init, data_dir, "--allow-private-network")
    client = await aiohttp_client(create_app(load_config(data_dir), start_workers=False))
    assert client.server.app[appkeys.CONFIG].allow_private_network
    response = await client.get("/actor", headers={"Accept": "application/activity+json"})
    assert (await response.json(content_type=None))["preferredUsername"] == "guetersloh"


def test_serve_runs_the_node_until_terminated(tmp_path) -> None:
    from tests.engine_support import free_port

    port = free_port()
    data_dir = tmp_path / "node"
    _init(data_dir, "--base-url", f"http://127.0.0.1:{port}", "--allow-private-network")
    server = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/.well-known/nodeinfo", timeout=30)
        assert json.loads(body)["links"][0]["href"] == f"http://127.0.0.1:{port}/nodeinfo/2.1"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert (
        "level=info logger=praxisnetz.http msg=request method=GET path=/.well-known/nodeinfo"
        in output
    )
    assert "workers started" in output


def _wait_for(url: str, timeout: float) -> bytes:
    import time
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("base_url = [", "praxisnetz.toml"),
        ('name = "N"\nslug = "n"', "base_url"),
        ('base_url = "https://n.example"\nname = "N"\nslug = "n"\nport = 70000', "port"),
        (
            'base_url = "https://n.example"\nname = "N"\nslug = "n"\n[delivery]\nspeed = 3',
            "delivery.speed",
        ),
        ('base_url = "https://n.example"\nname = "N"\nslug = "n"\nhub = "yes"', "hub"),
    ],
)
def test_a_broken_config_file_names_the_field(tmp_path, text: str, field: str) -> None:
    (tmp_path / "praxisnetz.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.field == field
