"""The hub's own settings: ``DATA_DIR/hub.toml``, table ``[hub]``.

``praxisnetz.toml`` already uses the key ``hub = true`` for the role, so the hub's
settings live beside it::

    [hub]
    auto_accept_hosts = ["guetersloh.example", "dueren.example"]
    sparql_timeout_seconds = 10
    sparql_max_rows = 10000

A hub started with ``--allow-private-network`` (a local federation) also accepts
members on loopback addresses without an editor, unless ``auto_accept_loopback = false``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from node.config import ConfigError

SETTINGS_FILE = "hub.toml"


@dataclass(frozen=True)
class HubSettings:
    auto_accept_hosts: tuple[str, ...] = ()
    auto_accept_loopback: bool = True  # only where allow_private_network is set
    sparql_timeout_seconds: float = 10.0
    sparql_max_rows: int = 10_000


def _number(raw: Mapping[str, object], key: str, default: float) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"hub.{key}", "must be a positive number")
    return value


def settings_from_mapping(raw: Mapping[str, object]) -> HubSettings:
    hosts = raw.get("auto_accept_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError("hub.auto_accept_hosts", "must be a list of host names")
    unknown = set(raw) - {"auto_accept_hosts", "auto_accept_loopback", "sparql_timeout_seconds",
                          "sparql_max_rows"}
    if unknown:
        raise ConfigError(f"hub.{sorted(unknown)[0]}", "unknown setting")
    loopback = raw.get("auto_accept_loopback", True)
    if not isinstance(loopback, bool):
        raise ConfigError("hub.auto_accept_loopback", "must be true or false")
    return HubSettings(
        auto_accept_hosts=tuple(h.lower() for h in hosts),
        auto_accept_loopback=loopback,
        sparql_timeout_seconds=float(_number(raw, "sparql_timeout_seconds", 10.0)),
        sparql_max_rows=int(_number(raw, "sparql_max_rows", 10_000)),
    )


def load_settings(data_dir: Path) -> HubSettings:
    path = data_dir / SETTINGS_FILE
    if not path.is_file():
        return HubSettings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(SETTINGS_FILE, f"not valid TOML: {exc}") from exc
    table = raw.get("hub", {})
    if not isinstance(table, Mapping):
        raise ConfigError("hub", "must be a table")
    return settings_from_mapping(table)


def write_settings(data_dir: Path, *, auto_accept_hosts: Iterable[str],
                   auto_accept_loopback: bool = True) -> Path:
    path = data_dir / SETTINGS_FILE
    settings = settings_from_mapping({"auto_accept_hosts": list(auto_accept_hosts),
                                      "auto_accept_loopback": auto_accept_loopback})
    path.write_text(tomli_w.dumps({"hub": {
        "auto_accept_hosts": list(settings.auto_accept_hosts),
        "auto_accept_loopback": settings.auto_accept_loopback,
        "sparql_timeout_seconds": settings.sparql_timeout_seconds,
        "sparql_max_rows": settings.sparql_max_rows,
    }}), encoding="utf-8")
    return path
