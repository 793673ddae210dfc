"""What `praxisnetz serve` does differently to start fast (#9 item 4), and that it still
holds: its own RSA key is read without OpenSSL's slow key check but a damaged key is
still refused; the garbage collector is off during start-up and on again once the
start-up objects are frozen; pages render with Jinja2 imported on first use and their
compiled templates kept in the data directory. `python -m bench.small_node` measures the time.
"""

from __future__ import annotations

import gc
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.keys import KeyFormatError, generate_ed25519_key, generate_rsa_key
from node import appkeys
from node.cli import YOUNG_COLLECTION_THRESHOLD, _freeze_start_up_objects
from node.config import NodeConfig, write_config
from node.identity import create_node_keys, read_key_pair
from node.web.render import TEMPLATE_CACHE_DIR, Templates
from tests.web_support import web_app


def _config(tmp_path: Path) -> NodeConfig:
    return NodeConfig(data_dir=tmp_path, base_url="http://127.0.0.1:8123", name="Klein",
                      slug="klein")  # fmt: skip


def _pem(key: rsa.RSAPrivateKey | object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip


def test_the_node_key_pair_reads_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    created = create_node_keys(config)
    pair = read_key_pair(config)
    assert pair.rsa.private_key.private_numbers() == created.rsa.private_key.private_numbers()
    assert pair.rsa.key_id == config.rsa_key_id


def test_a_damaged_rsa_key_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    create_node_keys(config)
    good = generate_rsa_key().private_numbers()
    # a private exponent that does not belong to the public one: parseable, and OpenSSL's
    # key check (skipped now) would have refused it; its signatures verify under nothing
    d = good.d + 2
    damaged = rsa.RSAPrivateNumbers(
        p=good.p, q=good.q, d=d, dmp1=d % (good.p - 1), dmq1=d % (good.q - 1),
        iqmp=good.iqmp, public_numbers=good.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    config.rsa_key_path.write_bytes(_pem(damaged))
    with pytest.raises(KeyFormatError, match="does not verify its own signature"):
        read_key_pair(config)


def test_an_ed25519_key_in_the_rsa_file_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    create_node_keys(config)
    config.rsa_key_path.write_bytes(_pem(generate_ed25519_key()))
    with pytest.raises(KeyFormatError, match="rsa.pem"):
        read_key_pair(config)


async def test_the_freeze_switches_the_collector_back_on() -> None:
    thresholds = gc.get_threshold()
    gc.disable()  # as cmd_serve does before its imports
    try:
        await _freeze_start_up_objects(object())
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        # young collections less often, the older generations as they were
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()


async def test_pages_compile_their_templates_once_into_the_data_directory(
    aiohttp_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = web_app(tmp_path)
    client = await aiohttp_client(app)
    first = await client.get("/")
    assert first.status == 200
    cache = app[appkeys.CONFIG].data_dir / TEMPLATE_CACHE_DIR
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    cached = sorted(cache.iterdir())
    assert len(cached) >= 2  # the home page and the base template it extends

    # a restarted node on the same data directory renders from the cache, compiling nothing
    import jinja2

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached template was compiled again")

    monkeypatch.setattr(jinja2.Environment, "compile", no_compiling)
    again = await aiohttp_client(web_app(tmp_path))
    second = await again.get("/")
    assert second.status == 200
    assert sorted(cache.iterdir()) == cached
    assert _without_csrf(await second.text()) == _without_csrf(await first.text())


async def test_a_changed_template_is_compiled_again(tmp_path: Path) -> None:
    source = tmp_path / "templates"
    (source / "web").mkdir(parents=True)
    page_file = source / "web" / "page.html.j2"
    page_file.write_text("one {{ x }}")
    cache = tmp_path / "data" / TEMPLATE_CACHE_DIR
    (tmp_path / "data").mkdir()
    templates = Templates(cache, source)
    assert templates.get("web/page.html.j2").render(x=1) == "one 1"
    page_file.write_text("two {{ x }}")
    assert Templates(cache, source).get("web/page.html.j2").render(x=1) == "two 1"


def _without_csrf(page: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", page)


def test_a_serve_that_fails_to_start_leaves_the_collector_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node import app as app_module
    from node import logs
    from node.cli import main

    assert main(["serve", "--data-dir", str(tmp_path / "nothing")]) == 2  # no node there
    assert gc.isenabled() and gc.get_freeze_count() == 0

    create_node_keys(config := _config(tmp_path))
    write_config(config)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no application today")

    monkeypatch.setattr(app_module, "create_app", broken)
    monkeypatch.setattr(logs, "configure_logging", lambda: None)  # keep pytest's handlers
    with pytest.raises(RuntimeError, match="no application today"):
        main(["serve", "--data-dir", str(tmp_path)])
    assert gc.isenabled() and gc.get_freeze_count() == 0
