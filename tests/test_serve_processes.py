"""``[server] processes = N``: N acceptor processes on one port plus one worker process.

Real ``praxisnetz serve`` processes: both acceptors take requests, every 202 is a row
(none lost, none twice), the worker process processes them, and SIGTERM, SIGINT or a
child's death stops every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bench.load_client import _actor_app, _actor_document, prepare_posts
from federation.keys import SigningKey, generate_rsa_key
from node.config import (
    ConfigError,
    InboxTuning,
    NodeConfig,
    ServerTuning,
    load_config,
    write_config,
)
from node.inbox import InboxRateLimiter
from node.serve_processes import (
    WORKER_NICENESS,
    Child,
    check_multi_process,
    children_for,
    lower_autogroup_priority,
    start_child,
)
from node.storage.db import create_engine, session_maker
from node.storage.models import InboxArrival, InboxItem, InboxState
from tests.engine_support import eventually, free_port, node_config

pytestmark = pytest.mark.slow

ACTIVITIES = 40
ACTORS = 4
FAST_INBOX = InboxTuning(poll_interval_seconds=0.05)


def two_process_node(tmp_path: Path) -> NodeConfig:
    return node_config(tmp_path, "zwei", server=ServerTuning(processes=2), inbox=FAST_INBOX)


def start_supervisor(config: NodeConfig, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--data-dir", str(config.data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def child_pids(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(child) for child in text.split()}


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


async def wait_until_serving(
    config: NodeConfig, supervisor: subprocess.Popen[bytes], log: Path
) -> set[int]:
    """The supervisor's children (two acceptors, one worker) once both acceptors listen
    (aiohttp prints a line when its site is up) and the node answers."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert supervisor.poll() is None, "the supervisor ended early"
            if log.read_text().count("Running on http://127.0.0.1") == 2:
                async with session.get(f"{config.base_url}/.well-known/nodeinfo") as response:
                    assert response.status == 200
                    break
            await asyncio.sleep(0.1)
    children = child_pids(supervisor.pid)
    assert len(children) == 3
    return children


@contextlib.asynccontextmanager
async def serving(
    config: NodeConfig, log: Path
) -> AsyncIterator[tuple[subprocess.Popen[bytes], set[int]]]:
    """A running supervisor and its children; killed afterwards if a test left it running
    (its children then get SIGTERM from the kernel, see node.serve_processes)."""
    supervisor = start_supervisor(config, log)
    try:
        yield supervisor, await wait_until_serving(config, supervisor, log)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


async def exits_with(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    return await asyncio.to_thread(process.wait, timeout)


@pytest.fixture
async def actors() -> AsyncIterator[list[SigningKey]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pool = [generate_rsa_key() for _ in range(2)]
    keys = [SigningKey(f"{base}/users/{n}#main-key", pool[n % 2]) for n in range(ACTORS)]
    documents = {
        str(n): json.dumps(_actor_document(base, n, key)).encode() for n, key in enumerate(keys)
    }
    runner = web.AppRunner(_actor_app(documents), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield keys
    await runner.cleanup()


async def post_each_on_a_new_connection(config: NodeConfig, keys: list[SigningKey]) -> list[str]:
    """Signed Creates (cavage and RFC 9421), every one on a connection of its own so the
    kernel spreads them over the acceptors; the ids of those answered 202."""
    posts = prepare_posts(keys, ACTIVITIES, config.inbox_url)
    accepted: list[str] = []
    connector = aiohttp.TCPConnector(force_close=True, limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(body: bytes, headers: dict[str, str]) -> None:
            async with session.post(config.inbox_url, data=body, headers=headers) as response:
                assert response.status == 202, await response.text()
                accepted.append(json.loads(body)["id"])

        await asyncio.gather(*(send(post.body, post.headers) for post in posts))
    return accepted


async def stored(config: NodeConfig) -> dict[str, str]:
    engine = create_engine(config.database_url)
    try:
        async with session_maker(engine)() as session:
            rows = await session.execute(select(InboxItem.activity_uri, InboxItem.state))
            found = {uri: state for uri, state in rows}
            # what a saturated acceptor appended and no claim has moved yet: received
            arrivals = await session.scalars(select(InboxArrival.activity_uri))
            return {uri: InboxState.RECEIVED.value for uri in arrivals} | found
    finally:
        await engine.dispose()


def acceptor_pids_in_log(log: Path) -> set[int]:
    lines = [
        line
        for line in log.read_text().splitlines()
        if "msg=request method=POST path=/actor/inbox status=202" in line
    ]
    assert len(lines) == ACTIVITIES  # the access log has a line per request in every process
    return {int(re.search(r"\bpid=(\d+)", line).group(1)) for line in lines}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_two_acceptors_persist_every_activity_and_stop_on_a_signal(
    tmp_path, actors, stop_signal
) -> None:
    config = two_process_node(tmp_path)
    log = tmp_path / "serve.log"
    async with serving(config, log) as (supervisor, children):
        accepted = await post_each_on_a_new_connection(config, actors)
        rows = await stored(config)
        assert sorted(rows) == sorted(accepted) and len(accepted) == ACTIVITIES
        acceptors = acceptor_pids_in_log(log)
        assert len(acceptors) == 2 and acceptors < children  # both took requests

        async def processed() -> bool:
            return set((await stored(config)).values()) == {"done"}

        await eventually(processed, timeout=60)  # by the worker process
        supervisor.send_signal(stop_signal)
        assert await exits_with(supervisor) == 0
    assert not any(running(pid) for pid in children)
    assert "stopped exit_codes=[0, 0, 0]" in log.read_text()


async def test_a_child_that_dies_stops_the_node(tmp_path) -> None:
    config = two_process_node(tmp_path)
    log = tmp_path / "serve.log"
    async with serving(config, log) as (supervisor, children):
        victim = min(children)
        os.kill(victim, signal.SIGKILL)
        assert await exits_with(supervisor) == 1
    assert not any(running(pid) for pid in children)
    assert f"a child process ended by itself; stopped the others pid={victim}" in log.read_text()


def test_processes_setting_is_read_written_and_checked(tmp_path) -> None:
    config = node_config(tmp_path, "eins")
    assert load_config(config.data_dir).server.processes == 1
    write_config(replace(config, server=ServerTuning(processes=3)))
    assert load_config(config.data_dir).server.processes == 3
    for bad in (0, 65, 1.5, True):
        with pytest.raises(ConfigError, match="server.processes"):
            ServerTuning(processes=bad)  # type: ignore[arg-type]
    roles = [child.role for child in children_for(load_config(config.data_dir), "127.0.0.1", 8080)]
    assert roles == ["acceptor", "acceptor", "acceptor", "worker"]
    worker = children_for(load_config(config.data_dir), "127.0.0.1", 8080)[-1]
    assert worker.niceness == WORKER_NICENESS and "worker" in worker.argv
    with pytest.raises(ConfigError, match="hub"):
        check_multi_process(replace(config, is_hub=True))


def test_each_process_takes_its_share_of_the_rate_limit() -> None:
    tuning = InboxTuning(requests_per_host_per_minute=10, requests_per_ip_per_minute=1000)
    now = [0.0]
    single = InboxRateLimiter(tuning, monotonic=lambda: now[0])
    halves = InboxRateLimiter(tuning, processes=2, monotonic=lambda: now[0])
    assert sum(single.take("a.example", "192.0.2.1").allowed for _ in range(20)) == 10
    assert sum(halves.take("a.example", "192.0.2.1").allowed for _ in range(20)) == 5


def test_the_worker_process_keeps_the_shifted_clock(tmp_path, monkeypatch) -> None:
    """The worker process of ``processes = N`` is ``praxisnetz worker``: it must read the
    same clock offset file as the acceptors (``serve``) do."""
    from datetime import UTC, datetime, timedelta

    from node import cli, workers

    config = node_config(tmp_path, "uhr")
    offset = tmp_path / "offset"
    offset.write_text("86400")
    monkeypatch.setenv(cli.CLOCK_OFFSET_FILE_ENV, str(offset))
    seen = []

    async def run_standalone(config: NodeConfig, clock=None) -> None:  # noqa: ANN001
        seen.append(clock)

    monkeypatch.setattr(workers, "run_standalone", run_standalone)
    root = logging.getLogger()  # the command configures logging: undone after the test
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    assert cli.main(["worker", "--data-dir", str(config.data_dir)]) == 0
    assert seen[0]() - datetime.now(UTC) > timedelta(hours=23)


def test_the_worker_is_nice_also_against_other_sessions(tmp_path) -> None:
    # Under autogroup scheduling a nice value counts only inside its session, and every
    # child has a session of its own: its autogroup gets the niceness too.
    child = start_child(Child("worker", (sys.executable, "-c", "import time; time.sleep(30)"),
                              niceness=7))
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)  # the tests may run niced themselves
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, own + 7)
        autogroups = Path("/proc/sys/kernel/sched_autogroup_enabled")
        if autogroups.exists() and autogroups.read_text().strip() == "1":
            assert Path(f"/proc/{child.pid}/autogroup").read_text().split()[-1] == "7"
    finally:
        child.terminate()
        child.wait(timeout=10)
    written = tmp_path / "autogroup"
    assert lower_autogroup_priority(10, written) and written.read_text() == "10\n"
    assert not lower_autogroup_priority(10, tmp_path / "no-such-dir" / "autogroup")
