"""The Docker files, checked without a Docker engine.

What can go wrong without anyone noticing until a container starts: a command the CLI
does not have, an environment variable the node never reads, a health check on a route
that does not exist, a root user, a port published past the proxy, an entrypoint that
initialises twice or builds a wrong ``praxisnetz init`` line. Each is tested here.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import tomli_w
import yaml

from node.cli import build_parser
from node.config import CONFIG_FILE_NAME, NodeConfig, config_to_mapping, load_config, parse_kind

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
CADDYFILE = DOCKER / "Caddyfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"
PROXY = "caddy"
APP_PORT = 8080
MEMBERS = ("guetersloh", "cochem-zell", "ibbenbueren")


# --- reading the files ----------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages(path: Path = DOCKERFILE) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per ``FROM`` stage (continuations joined)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def instruction(keyword: str) -> Instruction:
    found = [item for item in final_stage() if item.keyword == keyword]
    assert len(found) == 1, f"the final stage needs exactly one {keyword}"
    return found[0]


def exec_form(keyword: str) -> list[str]:
    value = json.loads(instruction(keyword).arguments)
    assert isinstance(value, list), f"{keyword} must use the exec (JSON) form"
    return value


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for item in final_stage():
        if item.keyword == "ENV":
            for word in shlex.split(item.arguments):
                name, _, value = word.partition("=")
                values[name] = value
    return values


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict]:
    return compose()["services"]


def node_services() -> dict[str, dict]:
    """Services running our image (the ones started through praxisnetz-entrypoint)."""
    return {
        name: service
        for name, service in services().items()
        if service.get("entrypoint") == ["praxisnetz-entrypoint"]
    }


def serving_nodes() -> dict[str, dict]:
    return {name: s for name, s in node_services().items() if s["command"][0] == "serve"}


def environment(service: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def base_url_host(service: dict) -> str:
    return urlsplit(environment(service)["PRAXISNETZ_BASE_URL"]).hostname or ""


def caddy_sites() -> dict[str, str]:
    """Site address -> reverse_proxy upstream, from the Caddyfile."""
    sites: dict[str, str] = {}
    pattern = re.compile(r"^(\S+\.localhost) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
    for match in pattern.finditer(CADDYFILE.read_text(encoding="utf-8")):
        upstream = re.search(r"reverse_proxy (\S+)", match.group(2))
        sites[match.group(1)] = upstream.group(1) if upstream else ""
    return sites


def assert_cli_accepts(argv: list[str]) -> None:
    """``praxisnetz ARGV`` parses with the real CLI (argparse exits on anything unknown)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"praxisnetz {shlex.join(argv)} is not a command of our CLI ({exc})")
    assert callable(args.handler)


# --- the Dockerfile -------------------------------------------------------------------


def test_cli_check_refuses_a_command_we_do_not_have() -> None:
    with pytest.raises(pytest.fail.Exception):
        assert_cli_accepts(["serv", "--host", "0.0.0.0"])
    with pytest.raises(pytest.fail.Exception):
        assert_cli_accepts(["serve", "--listen", "0.0.0.0"])


def test_image_entry_point_and_command_exist_in_the_cli() -> None:
    assert exec_form("ENTRYPOINT") == ["praxisnetz"]
    command = exec_form("CMD")
    assert command == ["serve", "--host", "0.0.0.0"]
    assert_cli_accepts(command)


def test_image_is_multi_stage_slim_and_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build the wheel in one stage, run it in another"
    assert any("pip wheel" in item.arguments for item in stages[0] if item.keyword == "RUN")
    base = re.search(r'PYTHON_IMAGE=(\S+)', DOCKERFILE.read_text(encoding="utf-8"))
    assert base and base.group(1).startswith("python:3.11-slim")
    run_lines = " ".join(item.arguments for item in final_stage() if item.keyword == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install", "curl"):
        assert tool not in run_lines, f"the final image must not install {tool}"
    assert "--no-index" in run_lines, "the final stage installs only the built wheels"
    build_lines = " ".join(item.arguments for item in stages[0] if item.keyword == "RUN")
    assert "--constraint constraints.txt" in build_lines, "the image gets the tested versions"
    user = instruction("USER").arguments.split(":")[0]
    assert user not in ("root", "0", "")
    assert user.isdigit() and int(user) >= 1000


def test_image_keeps_its_data_in_a_volume_at_data() -> None:
    env = dockerfile_env()
    assert env["PRAXISNETZ_DATA_DIR"] == "/data"
    assert int(env["PRAXISNETZ_PORT"]) == APP_PORT
    assert json.loads(instruction("VOLUME").arguments) == ["/data"]
    assert instruction("EXPOSE").arguments == str(APP_PORT)


def healthcheck_path() -> str:
    arguments = instruction("HEALTHCHECK").arguments
    command = json.loads(arguments[arguments.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"], "the health check needs no curl: Python's urllib"
    assert "urllib.request" in command[2]
    match = re.search(r"\+ '(/[^']*)'", command[2])
    assert match, "the health check names a path"
    return match.group(1)


def test_healthcheck_path_is_a_route_of_the_node(tmp_path: Path) -> None:
    from node.app import create_app

    path = healthcheck_path()
    assert path == "/nodeinfo/2.1"
    config = NodeConfig(data_dir=tmp_path, base_url="https://hub.localhost", name="Hub",
                        slug="kochbuch", is_hub=True)
    app = create_app(config, start_workers=False)
    routes = {resource.canonical for resource in app.router.resources()}
    assert path in routes


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".venv" in patterns and ".git" in patterns
    copied: list[str] = []
    for item in (i for stage in dockerfile_stages() for i in stage if i.keyword == "COPY"):
        words = [w for w in item.arguments.split() if not w.startswith("--")]
        copied += words[:-1]
    assert "docker/entrypoint.sh" in copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        ignored = [p for p in patterns if fnmatch.fnmatch(source, p.removeprefix("**/"))]
        assert not ignored, f"COPY {source} is excluded by .dockerignore {ignored}"


# --- the compose file -----------------------------------------------------------------


def test_compose_has_a_hub_on_postgres_a_worker_three_members_and_a_proxy() -> None:
    names = set(services())
    assert names == {"postgres", "hub", "hub-worker", *MEMBERS, PROXY, "ca-export"}
    postgres = services()["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["volumes"][0].startswith("postgres-data:")
    declared = set(compose()["volumes"])
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in declared, f"undeclared volume {source}"


def test_hub_and_worker_share_the_postgres_database_and_data_folder() -> None:
    hub, worker = services()["hub"], services()["hub-worker"]
    url = environment(hub)["PRAXISNETZ_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert environment(worker)["PRAXISNETZ_DATABASE_URL"] == url
    assert environment(hub)["PRAXISNETZ_HUB"] == "true"
    assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["hub"]["condition"] == "service_healthy"
    assert worker["command"] == ["worker"]
    assert "hub-data:/data" in hub["volumes"] and "hub-data:/data" in worker["volumes"]


def test_members_run_on_their_own_sqlite_volumes() -> None:
    for name in MEMBERS:
        service = services()[name]
        assert "PRAXISNETZ_DATABASE_URL" not in environment(service), "SQLite is the default"
        assert f"{name}-data:/data" in service["volumes"]
        assert service["command"] == ["serve", "--host", "0.0.0.0"]


def test_every_command_in_compose_exists_in_the_cli() -> None:
    assert node_services(), "the nodes start through praxisnetz-entrypoint"
    for name, service in node_services().items():
        assert service["image"] == "praxisnetz:local", name
        assert service["build"]["dockerfile"] == "docker/Dockerfile", name
        assert_cli_accepts(service["command"])


def test_only_the_proxy_publishes_ports_and_only_on_loopback() -> None:
    for name, service in services().items():
        assert service.get("network_mode") != "host", name
        if name != PROXY:
            assert "ports" not in service, f"{name} must be reached through the proxy"
    ports = services()[PROXY]["ports"]
    assert ports and all(port.startswith("127.0.0.1:") for port in ports)
    assert "127.0.0.1:443:443" in ports


def test_base_urls_are_https_names_that_the_proxy_serves() -> None:
    sites = caddy_sites()
    aliases = services()[PROXY]["networks"]["default"]["aliases"]
    nodes = serving_nodes()
    assert set(nodes) == {"hub", *MEMBERS}
    for name, service in nodes.items():
        url = environment(service)["PRAXISNETZ_BASE_URL"]
        host = base_url_host(service)
        assert url == f"https://{host}" and host.endswith(".localhost"), name
        assert sites.get(host) == f"{name}:{APP_PORT}", f"Caddy must route {host} to {name}"
        assert host in aliases, f"other nodes must reach {host} through the proxy"
    assert set(sites) == {base_url_host(s) for s in nodes.values()}
    assert "tls internal" in CADDYFILE.read_text(encoding="utf-8")


def entrypoint_variables() -> set[str]:
    text = ENTRYPOINT.read_text(encoding="utf-8")
    return set(re.findall(r"\$\{([A-Z_]+)", text))


# Standard variables read by libraries, not by our code: OpenSSL's CA bundle for Python's ssl.
LIBRARY_VARIABLES = {"SSL_CERT_FILE"}


def write_base_config(data_dir: Path) -> NodeConfig:
    """A node whose every setting differs from the compose values; loaded without env."""
    base = NodeConfig(data_dir=data_dir, base_url="https://basis.example", name="Basis",
                      slug="basis")
    (data_dir / CONFIG_FILE_NAME).write_text(tomli_w.dumps(config_to_mapping(base)))
    return load_config(data_dir, env={})


def test_compose_variables_are_read_by_the_node_or_the_entrypoint(tmp_path: Path) -> None:
    """Every PRAXISNETZ_* value in compose changes what load_config returns; the few
    other names are the entrypoint's own or a library's."""
    plain = write_base_config(tmp_path)
    checked = 0
    for name, service in node_services().items():
        for key, value in environment(service).items():
            if key.startswith("PRAXISNETZ_"):
                changed = load_config(tmp_path, env={key: value})
                assert changed != plain, f"{name}: node/config.py does not read {key}"
                checked += 1
            else:
                known = entrypoint_variables() | LIBRARY_VARIABLES
                assert key in known, f"{name}: nothing reads {key}"
    assert checked >= 20


def test_env_check_notices_a_variable_nobody_reads(tmp_path: Path) -> None:
    plain = write_base_config(tmp_path)
    typo = load_config(tmp_path, env={"PRAXISNETZ_BASEURL": "https://other.example"})
    assert typo == plain
    assert "PRAXISNETZ_BASEURL" not in entrypoint_variables()


def dependencies_of(name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through others."""
    found: set[str] = set()
    pending = list(services()[name].get("depends_on", {}))
    while pending:
        other = pending.pop()
        if other not in found:
            found.add(other)
            pending += list(services()[other].get("depends_on", {}))
    return found


def test_nodes_trust_the_bundle_that_ca_export_writes() -> None:
    export = services()["ca-export"]
    script = " ".join(export["entrypoint"])
    bundle = re.search(r"> (/ca/\S+)", script)
    assert bundle, "ca-export writes a bundle into the shared volume"
    assert "/etc/ssl/certs/ca-certificates.crt" in script, "the system CAs stay trusted"
    assert "pki/authorities/local/root.crt" in script
    assert "caddy-data:/caddy-data:ro" in export["volumes"]
    for name, service in node_services().items():
        assert environment(service)["SSL_CERT_FILE"] == bundle.group(1), name
        assert "demo-ca:/ca:ro" in service["volumes"], name
        assert "caddy-data" not in " ".join(service["volumes"]), "the CA key stays with Caddy"
        assert "ca-export" in dependencies_of(name), f"{name} must start after the bundle exists"
    for service in services().values():
        if "ca-export" in service.get("depends_on", {}):
            condition = service["depends_on"]["ca-export"]["condition"]
            assert condition == "service_completed_successfully"


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the entrypoint script ------------------------------------------------------------


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_entrypoint_script_is_valid_shell(shell: str) -> None:
    result = subprocess.run([shell, "-n", str(ENTRYPOINT)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert ENTRYPOINT.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert os.access(ENTRYPOINT, os.X_OK)


@dataclass(frozen=True)
class Run:
    returncode: int
    stderr: str
    calls: list[list[str]]


FAKE_PRAXISNETZ = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def run_entrypoint(tmp_path: Path, argv: list[str], env: dict[str, str]) -> Run:
    """Run the entrypoint with a stand-in ``praxisnetz`` that records its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "praxisnetz"
    fake.write_text(FAKE_PRAXISNETZ.format(python=sys.executable), encoding="utf-8")
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log),
                "PRAXISNETZ_DATA_DIR": str(data_dir), **env}
    result = subprocess.run(["sh", str(ENTRYPOINT), *argv], env=full_env, capture_output=True,
                            text=True, timeout=30, check=False)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    calls = [json.loads(line) for line in lines]
    return Run(result.returncode, result.stderr, calls)


def config_from_init(argv: list[str]) -> NodeConfig:
    """The NodeConfig ``praxisnetz init ARGV`` would create (validates every value)."""
    args = build_parser().parse_args(argv)
    return NodeConfig(data_dir=Path(args.data_dir), base_url=args.base_url, name=args.name,
                      slug=args.slug, ags=args.ags, kind=parse_kind(args.kind),
                      is_hub=args.hub, allow_private_network=args.allow_private_network)


@pytest.mark.parametrize("service_name", ["hub", *MEMBERS])
def test_first_start_initialises_each_compose_node(tmp_path: Path, service_name: str) -> None:
    service = services()[service_name]
    env = environment(service)
    run = run_entrypoint(tmp_path, service["command"], env)
    assert run.returncode == 0, run.stderr
    init, serve = run.calls
    assert init[0] == "init" and serve == service["command"]
    assert_cli_accepts(init)
    assert_cli_accepts(serve)
    config = config_from_init(init)
    assert config.base_url == env["PRAXISNETZ_BASE_URL"]
    assert config.slug == env["PRAXISNETZ_SLUG"] and config.name == env["PRAXISNETZ_NAME"]
    assert config.kind.value == env["PRAXISNETZ_KIND"]
    assert config.is_hub == (service_name == "hub")
    assert config.data_dir == tmp_path / "data"
    if service_name == "hub":
        accepted = build_parser().parse_args(init).auto_accept_host
        assert accepted == [base_url_host(services()[m]) for m in MEMBERS]
    else:
        assert config.ags == env["PRAXISNETZ_AGS"]


def test_entrypoint_never_initialises_an_existing_node(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / CONFIG_FILE_NAME).write_text("base_url = 'https://a.example'\n")
    env = environment(services()["guetersloh"])
    run = run_entrypoint(tmp_path, ["serve", "--host", "0.0.0.0"], env)
    assert run.returncode == 0, run.stderr
    assert run.calls == [["serve", "--host", "0.0.0.0"]]


def test_entrypoint_passes_other_commands_through_without_init(tmp_path: Path) -> None:
    env = environment(services()["guetersloh"])
    for argv in (["worker"], ["hub", "members", "--pending"], ["user", "add", "redaktion"]):
        run = run_entrypoint(tmp_path, argv, env)
        assert run.returncode == 0, run.stderr
        assert run.calls == [argv]
        assert_cli_accepts(argv)


def test_entrypoint_refuses_a_first_start_without_a_base_url(tmp_path: Path) -> None:
    env = {"PRAXISNETZ_NAME": "Stadt X", "PRAXISNETZ_SLUG": "x"}
    run = run_entrypoint(tmp_path, ["serve"], env)
    assert run.returncode != 0
    assert "PRAXISNETZ_BASE_URL" in run.stderr
    assert run.calls == [], "nothing may run with half a configuration"


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    binary = shutil.which("caddy")
    if binary is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run(
        [binary, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]["routes"]
    hosts = {host for route in routes for match in route["match"] for host in match["host"]}
    assert hosts == set(caddy_sites())


# --- the documentation ------------------------------------------------------------------

DOCUMENTS = (ROOT / "docs" / "deploy.md", DOCKER / "README.md")
DOCKER_VALUE_OPTIONS = {"--name", "-v", "--volume", "-p", "--publish", "--restart", "-e",
                        "--env", "--entrypoint", "-f", "--file", "--project-name"}


def shell_lines(path: Path) -> list[str]:
    """The logical lines of the document's ```sh blocks (continuations joined)."""
    lines: list[str] = []
    inside, pending = False, ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            inside = raw.strip() == "```sh"
            continue
        if not inside:
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    return lines


def skip_options(tokens: list[str], start: int) -> int:
    index = start
    while index < len(tokens) and tokens[index].startswith("-"):
        index += 2 if tokens[index] in DOCKER_VALUE_OPTIONS else 1
    return index


def praxisnetz_arguments(line: str) -> list[str] | None:
    """The CLI arguments of a documented ``praxisnetz …`` call, however it is started."""
    tokens = shlex.split(line, comments=True)
    if tokens[:2] == ["sudo", "-u"]:
        tokens = tokens[3:]
    if tokens and Path(tokens[0]).name == "praxisnetz":
        return tokens[1:]
    if tokens[:2] == ["docker", "run"]:
        image = skip_options(tokens, 2)
        rest = tokens[image + 1 :]
        return rest or None  # no arguments: the image's CMD, tested above
    if tokens[:1] == ["docker"] and "exec" in tokens:
        service = skip_options(tokens, tokens.index("exec") + 1)
        rest = tokens[service + 1 :]
        return rest[1:] if rest[:1] == ["praxisnetz"] else None
    return None


def test_every_praxisnetz_command_in_the_docs_exists() -> None:
    checked = 0
    for document in DOCUMENTS:
        for line in shell_lines(document):
            arguments = praxisnetz_arguments(line)
            if arguments is not None:
                assert_cli_accepts(arguments)
                checked += 1
    assert checked >= 10, "the pages show how to run the node"


def test_docs_command_check_sees_through_docker_and_sudo() -> None:
    assert praxisnetz_arguments(
        "docker run --rm -v data:/data praxisnetz init --base-url https://a.example"
    ) == ["init", "--base-url", "https://a.example"]
    assert praxisnetz_arguments(
        "docker compose -f docker/compose.yaml exec hub praxisnetz hub triage"
    ) == ["hub", "triage"]
    assert praxisnetz_arguments("sudo -u praxisnetz /opt/praxisnetz/bin/praxisnetz status") == [
        "status"
    ]
    assert praxisnetz_arguments("createdb --owner praxisnetz praxisnetz") is None


def test_deploy_page_covers_what_an_operator_needs() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    german, _, english = text.partition("## English summary")
    assert english, "German first, then an English summary"
    for topic in ("proxy_set_header Host $host", "X-Forwarded-Proto", "reverse_proxy",
                  "praxisnetz init", "postgresql+asyncpg://", "pg_dump", "keys/", "0600",
                  "keys rotate", "443", "--allow-private-network"):
        assert topic in german, f"docs/deploy.md does not cover {topic}"


def load_pin_constraints() -> object:
    spec = importlib.util.spec_from_file_location("pin_constraints", DOCKER / "pin_constraints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned_versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (DOCKER / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[name] = version
    return pins


def test_image_constraints_pin_every_runtime_dependency() -> None:
    """Nothing the node needs at run time floats in the image; no test tool is pinned.
    (Exact agreement with this .venv: ``python docker/pin_constraints.py --check``.)"""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = pinned_versions()
    needed = load_pin_constraints().runtime_versions()  # type: ignore[attr-defined]
    assert set(needed) <= set(pins), f"not pinned: {sorted(set(needed) - set(pins))}"
    assert "pytest" not in pins and "ruff" not in pins
    direct = [Requirement(line) for line in distribution("praxisnetz").requires or []]
    for requirement in (r for r in direct if r.marker is None):
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement}: pinned {version}"
