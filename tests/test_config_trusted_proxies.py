"""``[server] trusted_proxies``: a bad entry is refused naming the field, in the file, in
the environment and at ``praxisnetz serve``."""

from __future__ import annotations

import pytest

from node.cli import main
from node.config import ConfigError, ServerTuning, load_config

BASE = 'base_url = "https://n.example"\nname = "N"\nslug = "n"\n'


@pytest.mark.parametrize("value", [
    '"127.0.0.1/32"',  # a string, not a list
    '["10.0.0.1/24"]',  # host bits set: the operator meant 10.0.0.0/24 or 10.0.0.1/32
    '["10.0.0.0/33"]',
    '["proxy.example"]',
    '[""]',
    "[8080]",
    '["::1/129"]',
])
def test_a_bad_entry_names_the_field(tmp_path, value: str) -> None:
    (tmp_path / "praxisnetz.toml").write_text(f"{BASE}[server]\ntrusted_proxies = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.field == "server.trusted_proxies"


def test_a_bad_environment_value_names_the_field(tmp_path) -> None:
    (tmp_path / "praxisnetz.toml").write_text(BASE)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {"PRAXISNETZ_TRUSTED_PROXIES": "172.30.0.0/16 caddy"})
    assert caught.value.field == "server.trusted_proxies" and "'caddy'" in str(caught.value)


def test_serve_refuses_a_bad_entry_naming_the_field(tmp_path, capsys) -> None:
    (tmp_path / "praxisnetz.toml").write_text(f'{BASE}[server]\ntrusted_proxies = ["10.0.0.1/8"]\n')
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "error: server.trusted_proxies: '10.0.0.1/8'" in capsys.readouterr().err


def test_the_default_trusts_loopback_only() -> None:
    assert ServerTuning().trusted_proxies == ("127.0.0.1/32", "::1/128")


def test_a_table_without_the_setting_keeps_the_default(tmp_path) -> None:
    (tmp_path / "praxisnetz.toml").write_text(f"{BASE}[server]\nprocesses = 2\n")
    assert load_config(tmp_path, {}).server.trusted_proxies == ("127.0.0.1/32", "::1/128")
