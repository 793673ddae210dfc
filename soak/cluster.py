"""The soak's federation: a hub and members as real ``praxisnetz serve`` processes.

Every node is created with ``praxisnetz init --allow-private-network`` (SQLite) on its
own 127.0.0.1 port. All processes read one shared clock-offset file
(``PRAXISNETZ_CLOCK_OFFSET_FILE``), so the driver moves every node's time forward
together — the "simulated week" — without restarting anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from node.cli import CLOCK_OFFSET_FILE_ENV
from node.config import DATABASE_FILE_NAME

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# Short leases and polls so a restarted node takes back what its killed self held.
FAST_WORKERS = """
[delivery]
claim_seconds = 4
poll_interval_seconds = 0.1

[inbox]
poll_interval_seconds = 0.1
requests_per_host_per_minute = 100000
requests_per_ip_per_minute = 100000
"""


class ClusterError(RuntimeError):
    """A node could not be created or started; the message says which and why."""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())", *args]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class SoakNode:
    """One node: its directory, port, admin token and (while running) its process."""

    slug: str
    port: int
    data_dir: Path
    is_hub: bool = False
    token: str = ""
    process: subprocess.Popen[bytes] | None = None
    held_down: bool = False  # the node kept dead for the simulated week

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def actor_url(self) -> str:
        return f"{self.base_url}/actor"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_FILE_NAME

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the node's SQLite database directly (read-only, beside the running node)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True,
                                                timeout=30)) as db:
            return db.execute(sql, params).fetchall()


@dataclass
class Cluster:
    root: Path
    nodes: list[SoakNode] = field(default_factory=list)
    clock_file: Path = field(init=False)
    offset_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.clock_file = self.root / "clock-offset"

    @property
    def hub(self) -> SoakNode:
        return next(node for node in self.nodes if node.is_hub)

    @property
    def members(self) -> list[SoakNode]:
        return [node for node in self.nodes if not node.is_hub]

    def create(self, members: int) -> None:
        """``praxisnetz init`` for the hub and ``members`` municipalities, in parallel."""
        self.root.mkdir(parents=True, exist_ok=True)
        ports = free_ports(members + 1)
        self.nodes = [SoakNode("hub", ports[0], self.root / "hub", is_hub=True)]
        self.nodes += [SoakNode(f"gemeinde-{n + 1}", ports[n + 1], self.root / f"gemeinde-{n + 1}")
                       for n in range(members)]
        started = [(node, subprocess.Popen(_cli(*self._init_args(node)), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True))
                   for node in self.nodes]
        for node, process in started:
            out, err = process.communicate()
            if process.returncode != 0:
                raise ClusterError(f"praxisnetz init for {node.slug} failed:\n{err or out}")
            node.token = [line for line in out.splitlines() if line.strip()][-1].strip()
            with (node.data_dir / "praxisnetz.toml").open("a", encoding="utf-8") as handle:
                handle.write(FAST_WORKERS)
        self.set_offset(0.0)

    def _init_args(self, node: SoakNode) -> list[str]:
        args = ["init", "--data-dir", str(node.data_dir), "--base-url", node.base_url,
                "--name", f"Soak {node.slug}", "--slug", node.slug, "--allow-private-network"]
        if node.is_hub:
            args += ["--hub", "--kind", "association", "--auto-accept-host", "127.0.0.1"]
        return args

    def set_offset(self, seconds: float) -> None:
        """Move every node's clock to real time + ``seconds`` (written atomically)."""
        self.offset_seconds = seconds
        partial = self.clock_file.with_suffix(".partial")
        partial.write_text(f"{seconds}\n", encoding="ascii")
        os.replace(partial, self.clock_file)

    def start(self, node: SoakNode) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", CLOCK_OFFSET_FILE_ENV: str(self.clock_file)}
        with (node.data_dir / "serve.log").open("ab") as log:
            node.process = subprocess.Popen(_cli("serve", "--data-dir", str(node.data_dir)),
                                            stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def kill(self, node: SoakNode) -> None:
        """SIGKILL: no shutdown handler runs, leases are left to expire."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=STOP_TIMEOUT)

    def stop(self, node: SoakNode) -> None:
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for node in self.nodes:
            self.stop(node)


def wait_listening(node: SoakNode, timeout: float = READY_TIMEOUT) -> None:
    """Until the node's port accepts connections (its app has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.running:
            raise ClusterError(f"{node.slug} exited; see {node.data_dir / 'serve.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", node.port), 0.5):
            return
        time.sleep(0.05)
    raise ClusterError(f"{node.slug} did not listen within {timeout:.0f} s")


@contextlib.contextmanager
def running_cluster(root: Path, members: int) -> Iterator[Cluster]:
    """A created and started cluster; every process is stopped on the way out."""
    cluster = Cluster(root)
    try:
        cluster.create(members)
        for node in cluster.nodes:
            cluster.start(node)
        for node in cluster.nodes:
            wait_listening(node)
        yield cluster
    finally:
        cluster.stop_all()
