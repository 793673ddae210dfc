"""The demo's nodes as processes: ``praxisnetz init``, a staff account, ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from examples.catalog import (
    load_nodes,
)
from node.demo.common import (
    DEMO_USER,
    READY_TIMEOUT,
    SIGNIN_FILE,
    TOKEN_FILE,
    DemoError,
    DemoNode,
)


def plan_nodes(data_dir: Path, base_port: int) -> list[DemoNode]:
    """The hub first, then the municipalities, each on the next port."""
    examples = sorted(load_nodes(), key=lambda node: (not node.is_hub, node.slug))
    return [
        DemoNode(example=example, port=base_port + index, data_dir=data_dir / example.slug)
        for index, example in enumerate(examples)
    ]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())", *args]


def _init_command(node: DemoNode) -> list[str]:
    example = node.example
    kind = "association" if example.is_hub else example.kind
    command = [
        "init", "--data-dir", str(node.data_dir), "--base-url", node.base_url,
        "--name", example.name, "--slug", example.slug, "--kind", kind,
        "--allow-private-network",
    ]  # fmt: skip
    if example.ags:
        command += ["--ags", example.ags]
    if example.is_hub:
        command.append("--hub")
    return _cli(*command)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _add_demo_user(data_dir: Path) -> None:
    """A staff account for the web interface; its password is kept beside the token."""
    password = secrets.token_urlsafe(12)
    command = _cli("user", "add", "--password-stdin", "--data-dir", str(data_dir), DEMO_USER)
    done = subprocess.run(command, input=password + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"praxisnetz user add in {data_dir} failed:\n{done.stderr or done.stdout}")
    _write_private(data_dir / SIGNIN_FILE, f"{DEMO_USER} {password}\n")


def prepare_nodes(nodes: list[DemoNode]) -> dict[str, str]:
    """Create the nodes that do not exist yet (in parallel); return each admin token."""
    pending = {
        node.slug: subprocess.Popen(_init_command(node), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in nodes
        if not (node.data_dir / TOKEN_FILE).exists()
    }
    for slug, process in pending.items():
        out, err = process.communicate()
        if process.returncode != 0:
            raise DemoError(f"praxisnetz init for {slug} failed:\n{err or out}")
        token = [line for line in out.splitlines() if line.strip()][-1].strip()
        token_path = next(node.data_dir for node in nodes if node.slug == slug) / TOKEN_FILE
        _write_private(token_path, token)
        _add_demo_user(token_path.parent)
    return {node.slug: (node.data_dir / TOKEN_FILE).read_text().strip() for node in nodes}


@contextlib.contextmanager
def running_servers(nodes: list[DemoNode]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``praxisnetz serve`` for every node; stop them all on the way out."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for node in nodes:
            log = open(node.data_dir / "serve.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(
                    _cli("serve", "--data-dir", str(node.data_dir)),
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )
            log.close()
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
                process.wait()


class Interrupted:
    """Set by Ctrl-C; a plain flag, because the handler runs in the thread it interrupts
    (a threading.Event's lock, held by that thread's own wait, would deadlock it)."""

    def __init__(self) -> None:
        self.is_set = False

    def set(self, _signum: int = 0, _frame: object = None) -> None:
        self.is_set = True


@contextlib.contextmanager
def interrupt_flag() -> Iterator[Interrupted]:
    """Ctrl-C (SIGINT) sets the flag instead of raising KeyboardInterrupt.

    Raised inside ``Popen.poll`` between taking and releasing the process's internal
    lock, KeyboardInterrupt leaves the lock taken, and the next ``wait`` on that
    process hangs for ever: the demo printed "Stopping …" and never exited (twice in
    test_demo, with every node already gone)."""
    interrupted = Interrupted()
    previous = signal.signal(signal.SIGINT, interrupted.set)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_until_stopped(processes: list[subprocess.Popen[bytes]], interrupted: Interrupted) -> None:
    """Until Ctrl-C (see ``interrupt_flag``) or until one of the nodes ends."""
    while not interrupted.is_set and all(process.poll() is None for process in processes):
        time.sleep(0.2)


async def wait_until_ready(client: aiohttp.ClientSession, nodes: list[DemoNode]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    for node in nodes:
        while True:
            try:
                async with client.get(f"{node.base_url}/.well-known/nodeinfo") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass  # not listening yet; the deadline below bounds the wait
            if time.monotonic() > deadline:
                log = node.data_dir / "serve.log"
                tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-5:])
                raise DemoError(f"{node.slug} did not start within {READY_TIMEOUT:.0f} s; {log} ends:\n{tail}")
            await asyncio.sleep(0.2)
        print(f"  {node.example.name:<36} {node.base_url}", flush=True)
