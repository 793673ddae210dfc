"""Node configuration: one frozen dataclass, read from ``DATA_DIR/praxisnetz.toml``.

Environment variables (``PRAXISNETZ_*``) override the file so containers can be
configured without editing it. Every validation error names the field it is about.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import tomli_w

from node.client_address import DEFAULT_TRUSTED_PROXIES, parse_network

CONFIG_FILE_NAME = "praxisnetz.toml"
KEYS_DIR_NAME = "keys"
RSA_KEY_FILE = "rsa.pem"
ED25519_KEY_FILE = "ed25519.pem"
DATABASE_FILE_NAME = "praxisnetz.db"

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
AGS_PATTERN = re.compile(r"^[0-9]{8}$")
ENV_PREFIX = "PRAXISNETZ_"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class NodeKind(enum.StrEnum):
    CITY = "city"
    MUNICIPALITY = "municipality"
    DISTRICT = "district"
    ASSOCIATION = "association"


class FollowApproval(enum.StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True)
class InboxTuning:
    max_body_bytes: int = 1024 * 1024
    requests_per_host_per_minute: int = 600  # per claimed host and client IP
    # per client IP whatever hosts it claims; wider, as one address may send for many hosts
    requests_per_ip_per_minute: int = 3000
    queue_limit: int = 10_000
    worker_batch_size: int = 50
    poll_interval_seconds: float = 0.5
    clock_skew_seconds: int = 12 * 3600
    # processed inbox items (the duplicate check) and settled Follow/Undo receipts are
    # deleted this long after they arrived (node.pruning); longer than any sender retries
    receipt_retention_days: float = 14.0

    def __post_init__(self) -> None:
        # below a day even a quick sender's retries would be processed twice: a typo
        if self.receipt_retention_days < 1:
            raise ConfigError("inbox.receipt_retention_days", "must be at least 1 (days)")


@dataclass(frozen=True)
class DeliveryTuning:
    global_concurrency: int = 32
    per_host_concurrency: int = 4
    claim_batch_size: int = 100
    claim_seconds: int = 120
    poll_interval_seconds: float = 0.5
    request_timeout_seconds: float = 30.0
    # retries (federation.retry.RetryPolicy): 30 s doubling up to 12 h, given up after 3 days
    retry_first_delay_seconds: float = 30.0
    retry_ceiling_seconds: float = 12 * 3600.0
    give_up_after_days: float = 3.0
    # per-host circuit breaker (federation.retry.CircuitBreaker)
    breaker_failure_threshold: int = 5
    breaker_cool_down_seconds: float = 30 * 60.0
    # delivered, failed and given-up rows are deleted this long after they finished
    # (node.pruning); until then `praxisnetz deliveries list|retry` and the counts see them
    settled_retention_days: float = 30.0

    def __post_init__(self) -> None:
        # below a day a given-up delivery would be gone before an operator could retry it
        if self.settled_retention_days < 1:
            raise ConfigError("delivery.settled_retention_days", "must be at least 1 (days)")
        if self.retry_ceiling_seconds < self.retry_first_delay_seconds:
            raise ConfigError("delivery.retry_ceiling_seconds",
                              "must not be below retry_first_delay_seconds")
        if not isinstance(self.breaker_failure_threshold, int):
            raise ConfigError("delivery.breaker_failure_threshold", "must be a whole number")


@dataclass(frozen=True)
class ServerTuning:
    # ``praxisnetz serve`` processes that accept requests on the one port (SO_REUSEPORT);
    # above 1 the workers run in one more process of their own (node.serve_processes)
    processes: int = 1
    # reverse proxies whose X-Forwarded-For is believed (CIDR), node.client_address;
    # the default, loopback only, fits a proxy on the same host
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES

    def __post_init__(self) -> None:
        if not isinstance(self.processes, int) or isinstance(self.processes, bool):
            raise ConfigError("server.processes", "must be a whole number")
        if not 1 <= self.processes <= 64:
            raise ConfigError("server.processes", "must be between 1 and 64")
        object.__setattr__(self, "trusted_proxies", parse_trusted_proxies(self.trusted_proxies))


def parse_trusted_proxies(values: object) -> tuple[str, ...]:
    """The CIDR list in canonical spelling (so a written config loads back equal)."""
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise ConfigError("server.trusted_proxies", 'must be a list such as ["127.0.0.1/32"]')
    networks: list[str] = []
    for value in values:
        try:
            networks.append(str(parse_network(value)))
        except (ValueError, TypeError, AttributeError):
            raise ConfigError("server.trusted_proxies",
                              f"{value!r} is no address or network in CIDR notation "
                              "(e.g. 172.30.0.0/24, without host bits)") from None
    return tuple(networks)


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    base_url: str
    name: str
    slug: str
    ags: str | None = None
    kind: NodeKind = NodeKind.MUNICIPALITY
    is_hub: bool = False
    allow_private_network: bool = False
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int | None = None
    follow_approval: FollowApproval = FollowApproval.AUTOMATIC
    follow_allow_hosts: tuple[str, ...] = ()
    inbox: InboxTuning = field(default_factory=InboxTuning)
    delivery: DeliveryTuning = field(default_factory=DeliveryTuning)
    server: ServerTuning = field(default_factory=ServerTuning)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url(self.data_dir))
        validate_base_url(self.base_url)
        validate_slug(self.slug)
        validate_name(self.name)
        if self.ags is not None:
            validate_ags(self.ags)

    # Derived URLs: one place decides the node's URL layout.
    @cached_property  # read per inbox request (the signed Host); the config is frozen
    def domain(self) -> str:
        """Host (and port, if any) of the base URL: the part after ``@`` in handles."""
        return urlsplit(self.base_url).netloc

    @property
    def actor_url(self) -> str:
        return f"{self.base_url}/actor"

    @property
    def inbox_url(self) -> str:
        return f"{self.base_url}/actor/inbox"

    @property
    def shared_inbox_url(self) -> str:
        return f"{self.base_url}/inbox"

    @property
    def outbox_url(self) -> str:
        return f"{self.base_url}/actor/outbox"

    @property
    def followers_url(self) -> str:
        return f"{self.base_url}/actor/followers"

    @property
    def following_url(self) -> str:
        return f"{self.base_url}/actor/following"

    @property
    def rsa_key_id(self) -> str:
        return f"{self.actor_url}#main-key"

    @property
    def ed25519_key_id(self) -> str:
        """The id of the node's first Ed25519 key; after a rotation the key in use has a
        versioned id (``federation.keys.ed25519_key_id``, ``NodeKeys.ed25519.key_id``)."""
        return f"{self.actor_url}#ed25519-key"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / KEYS_DIR_NAME

    @property
    def rsa_key_path(self) -> Path:
        return self.keys_dir / RSA_KEY_FILE

    @property
    def ed25519_key_path(self) -> Path:
        return self.keys_dir / ED25519_KEY_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME

    @property
    def listen_port(self) -> int:
        """The port to listen on: configured, else the base URL's, else the scheme default."""
        if self.port is not None:
            return self.port
        parts = urlsplit(self.base_url)
        if parts.port is not None:
            return parts.port
        return 443 if parts.scheme == "https" else 80

    @property
    def municipality_key_uri(self) -> str | None:
        if self.ags is None:
            return None
        return f"http://dcat-ap.de/def/politicalGeocoding/municipalityKey/{self.ags}"


def default_database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve() / DATABASE_FILE_NAME}"


def validate_base_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ConfigError("base_url", "must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError("base_url", "must name a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("base_url", "must not carry a query, fragment or credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError as exc:
        raise ConfigError("base_url", f"invalid port: {exc}") from exc


def validate_slug(value: str) -> None:
    if not SLUG_PATTERN.match(value):
        raise ConfigError(
            "slug", "use 1-64 lower-case letters, digits and inner hyphens (e.g. guetersloh)"
        )


def validate_ags(value: str) -> None:
    if not AGS_PATTERN.match(value):
        raise ConfigError("ags", "the Amtlicher Gemeindeschlüssel has exactly 8 digits")


def validate_name(value: str) -> None:
    if not value.strip():
        raise ConfigError("name", "must not be empty")
    if len(value) > 200:
        raise ConfigError("name", "at most 200 characters")


def parse_kind(value: str) -> NodeKind:
    try:
        return NodeKind(value)
    except ValueError:
        allowed = ", ".join(kind.value for kind in NodeKind)
        raise ConfigError("kind", f"must be one of {allowed}") from None


def parse_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]+$", value):
            raise ConfigError("host", "must be an IP address or host name") from None
    return value


def _tuning_from(cls: type, raw: object, section: str) -> object:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(section, "must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{section}.{key}", "unknown setting")
        if isinstance(known[key].default, tuple):  # a list setting, checked by its class
            values[key] = value
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{section}.{key}", "must be a positive number")
        values[key] = value
    return cls(**values)


def _bool(raw: Mapping[str, object], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false")
    return value


def _optional_str(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    return value


def _required_str(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "is required")
    return value


def config_from_mapping(data_dir: Path, raw: Mapping[str, object]) -> NodeConfig:
    """Build a config from the TOML table (already merged with the environment)."""
    port = raw.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigError("port", "must be a number between 1 and 65535")
    approval = raw.get("follow_approval", FollowApproval.AUTOMATIC.value)
    try:
        follow_approval = FollowApproval(approval)
    except ValueError:
        raise ConfigError("follow_approval", "must be automatic or manual") from None
    allow_hosts = raw.get("follow_allow_hosts", [])
    if not isinstance(allow_hosts, list) or not all(isinstance(h, str) for h in allow_hosts):
        raise ConfigError("follow_allow_hosts", "must be a list of host names")
    return NodeConfig(
        data_dir=Path(data_dir),
        base_url=_required_str(raw, "base_url"),
        name=_required_str(raw, "name"),
        slug=_required_str(raw, "slug"),
        ags=_optional_str(raw, "ags"),
        kind=parse_kind(str(raw.get("kind", NodeKind.MUNICIPALITY.value))),
        is_hub=_bool(raw, "hub", False),
        allow_private_network=_bool(raw, "allow_private_network", False),
        database_url=_optional_str(raw, "database_url") or "",
        host=parse_host(str(raw.get("host", "127.0.0.1"))),
        port=port,
        follow_approval=follow_approval,
        follow_allow_hosts=tuple(allow_hosts),
        inbox=_tuning_from(InboxTuning, raw.get("inbox"), "inbox"),  # type: ignore[arg-type]
        delivery=_tuning_from(DeliveryTuning, raw.get("delivery"), "delivery"),  # type: ignore[arg-type]
        server=_tuning_from(ServerTuning, raw.get("server"), "server"),  # type: ignore[arg-type]
    )


# Environment variable -> (TOML key, converter)
def _env_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError("allow_private_network", f"cannot read {value!r} as true/false")


def _env_port(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError("port", f"{ENV_PREFIX}PORT must be a number") from None


_ENV_OVERRIDES = {
    "DATABASE_URL": ("database_url", str),
    "BASE_URL": ("base_url", str),
    "NAME": ("name", str),
    "SLUG": ("slug", str),
    "AGS": ("ags", str),
    "KIND": ("kind", str),
    "HOST": ("host", str),
    "PORT": ("port", _env_port),
    "HUB": ("hub", _env_bool),
    "ALLOW_PRIVATE_NETWORK": ("allow_private_network", _env_bool),
    "FOLLOW_APPROVAL": ("follow_approval", str),
}


def resolve_data_dir(data_dir: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The data directory from the argument, else ``PRAXISNETZ_DATA_DIR``."""
    env = os.environ if env is None else env
    chosen = data_dir if data_dir is not None else env.get(f"{ENV_PREFIX}DATA_DIR")
    if not chosen:
        raise ConfigError("data_dir", f"give --data-dir or set {ENV_PREFIX}DATA_DIR")
    return Path(chosen)


def load_config(
    data_dir: str | Path | None = None, env: Mapping[str, str] | None = None
) -> NodeConfig:
    """Read ``DATA_DIR/praxisnetz.toml`` and apply ``PRAXISNETZ_*`` overrides."""
    env = os.environ if env is None else env
    directory = resolve_data_dir(data_dir, env)
    path = directory / CONFIG_FILE_NAME
    if not path.is_file():
        raise ConfigError("data_dir", f"no node here: {path} does not exist (run praxisnetz init)")
    try:
        raw: dict[str, object] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("praxisnetz.toml", f"not valid TOML: {exc}") from exc
    for suffix, (key, convert) in _ENV_OVERRIDES.items():
        if f"{ENV_PREFIX}{suffix}" in env:
            raw[key] = convert(env[f"{ENV_PREFIX}{suffix}"])
    _apply_table_overrides(raw, env)
    return config_from_mapping(directory, raw)


# Environment variable -> (table, key) for list settings: addresses separated by commas
# or spaces; the value replaces the file's list (say loopback again if it is wanted).
_ENV_TABLE_LISTS = {"TRUSTED_PROXIES": ("server", "trusted_proxies")}


def _apply_table_overrides(raw: dict[str, object], env: Mapping[str, str]) -> None:
    for suffix, (table, key) in _ENV_TABLE_LISTS.items():
        if f"{ENV_PREFIX}{suffix}" not in env:
            continue
        current = raw.get(table, {})
        if not isinstance(current, Mapping):
            raise ConfigError(table, "must be a table")
        value = env[f"{ENV_PREFIX}{suffix}"].replace(",", " ").split()
        raw[table] = {**current, key: value}


def config_to_mapping(config: NodeConfig) -> dict[str, object]:
    """The TOML table for a config; the database URL is written only when not the default."""
    raw: dict[str, object] = {
        "base_url": config.base_url,
        "name": config.name,
        "slug": config.slug,
        "kind": config.kind.value,
        "hub": config.is_hub,
        "allow_private_network": config.allow_private_network,
        "host": config.host,
        "follow_approval": config.follow_approval.value,
        "follow_allow_hosts": list(config.follow_allow_hosts),
    }
    if config.ags is not None:
        raw["ags"] = config.ags
    if config.port is not None:
        raw["port"] = config.port
    if config.database_url != default_database_url(config.data_dir):
        raw["database_url"] = config.database_url
    # Only the settings that differ from the defaults: a new release's defaults then
    # reach every node whose operator did not choose otherwise.
    for section, tuning in (("inbox", config.inbox), ("delivery", config.delivery),
                            ("server", config.server)):
        changed = _changed_settings(tuning)
        if changed:
            raw[section] = changed
    return raw


def _changed_settings(tuning: InboxTuning | DeliveryTuning | ServerTuning) -> dict[str, object]:
    default = type(tuning)()
    changed = {f.name: getattr(tuning, f.name) for f in fields(tuning)
               if getattr(tuning, f.name) != getattr(default, f.name)}
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in changed.items()}


def write_config(config: NodeConfig) -> Path:
    path = config.config_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config_to_mapping(config)), encoding="utf-8")
    return path


def with_overrides(config: NodeConfig, **changes: object) -> NodeConfig:
    """A copy with some fields changed (tests and the CLI's --host/--port)."""
    return replace(config, **changes)  # type: ignore[arg-type]
