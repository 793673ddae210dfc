"""``write_config`` writes every setting ``load_config`` reads: a tuned config survives a
write and a load unchanged."""

from __future__ import annotations

import tomllib
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import TypeVar

from node.config import (
    DeliveryTuning,
    FollowApproval,
    InboxTuning,
    NodeConfig,
    NodeKind,
    ServerTuning,
    load_config,
    write_config,
)

Tuning = TypeVar("Tuning", InboxTuning, DeliveryTuning, ServerTuning)


def _changed(value: object) -> object:
    if isinstance(value, tuple):  # a list setting: trusted_proxies
        return ("172.30.0.0/24", "2001:db8::/64")
    if isinstance(value, int):
        return value * 2 + 1
    return value * 1.5  # type: ignore[operator]


def _tuned(tuning: Tuning) -> Tuning:
    """Every setting changed; the ratios keep the ceiling above the first retry delay."""
    return replace(tuning, **{f.name: _changed(getattr(tuning, f.name)) for f in fields(tuning)})


def _everything_changed(data_dir: Path) -> NodeConfig:
    return NodeConfig(
        data_dir=data_dir,
        base_url="https://kommune.example:8443",
        name="Gütersloh",
        slug="guetersloh",
        ags="05754008",
        kind=NodeKind.CITY,
        is_hub=True,
        allow_private_network=True,
        database_url="postgresql+asyncpg://pn@db/praxisnetz",
        host="0.0.0.0",
        port=9000,
        follow_approval=FollowApproval.MANUAL,
        follow_allow_hosts=("hub.example", "dueren.example"),
        inbox=_tuned(InboxTuning()),
        delivery=_tuned(DeliveryTuning()),
        server=_tuned(ServerTuning()),
    )


def test_every_setting_differs_from_its_default(tmp_path) -> None:
    # Guards the round trip below: a new field left at its default would pass unseen.
    config = _everything_changed(tmp_path)
    default = NodeConfig(data_dir=tmp_path, base_url="https://n.example", name="N", slug="n")
    for item in fields(NodeConfig):
        if item.name != "data_dir":
            assert getattr(config, item.name) != getattr(default, item.name), item.name
    tables = [
        getattr(config, item.name)
        for item in fields(NodeConfig)
        if is_dataclass(getattr(config, item.name))
    ]  # [inbox], [delivery], ...
    assert len(tables) >= 3
    for tuning in tables:
        for item in fields(tuning):
            assert getattr(tuning, item.name) != getattr(type(tuning)(), item.name), item.name


def test_write_then_load_round_trips_every_setting(tmp_path) -> None:
    config = _everything_changed(tmp_path)
    write_config(config)
    assert load_config(tmp_path, env={}) == config


def test_one_changed_setting_keeps_the_others_at_their_defaults(tmp_path) -> None:
    config = NodeConfig(
        data_dir=tmp_path,
        base_url="https://n.example",
        name="N",
        slug="n",
        inbox=InboxTuning(requests_per_host_per_minute=100_000),
    )
    raw = tomllib.loads(write_config(config).read_text(encoding="utf-8"))
    # Only what differs is written, so a later release's defaults still reach this node.
    assert raw["inbox"] == {"requests_per_host_per_minute": 100_000}
    assert "delivery" not in raw
    assert load_config(tmp_path, env={}) == config


def test_a_default_config_writes_no_tuning_tables(tmp_path) -> None:
    # Scripts (the soak cluster) append their own [inbox]/[delivery] after praxisnetz init;
    # a second table of the same name would make the file invalid TOML.
    config = NodeConfig(data_dir=tmp_path, base_url="https://n.example", name="N", slug="n")
    raw = tomllib.loads(write_config(config).read_text(encoding="utf-8"))
    assert "inbox" not in raw and "delivery" not in raw


def test_trusted_proxies_are_written_as_a_list_and_read_back(tmp_path) -> None:
    config = NodeConfig(data_dir=tmp_path, base_url="https://n.example", name="N", slug="n",
                        server=ServerTuning(trusted_proxies=("172.30.0.2", "fd00::/8")))
    # canonical spelling, so the loaded config equals the written one
    assert config.server.trusted_proxies == ("172.30.0.2/32", "fd00::/8")
    raw = tomllib.loads(write_config(config).read_text(encoding="utf-8"))
    assert raw["server"] == {"trusted_proxies": ["172.30.0.2/32", "fd00::/8"]}
    assert load_config(tmp_path, env={}) == config
    # an empty list (trust no proxy) differs from the default and survives too
    nothing = replace(config, server=ServerTuning(trusted_proxies=()))
    write_config(nothing)
    assert load_config(tmp_path, env={}).server.trusted_proxies == ()


def test_the_environment_replaces_the_trusted_proxies(tmp_path) -> None:
    write_config(NodeConfig(data_dir=tmp_path, base_url="https://n.example", name="N", slug="n",
                            server=ServerTuning(processes=2)))
    env = {"PRAXISNETZ_TRUSTED_PROXIES": "172.30.0.2/32, ::1/128 127.0.0.1"}
    loaded = load_config(tmp_path, env=env)
    assert loaded.server.trusted_proxies == ("172.30.0.2/32", "::1/128", "127.0.0.1/32")
    assert loaded.server.processes == 2  # the rest of [server] stays
