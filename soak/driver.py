"""The soak's course: set up, load under chaos, settle, the simulated week, verify.

1. ``praxisnetz init`` a hub (auto-accepting 127.0.0.1) and the members, start them;
   the hub follows every member, every member follows the hub and the others.
2. The load generator issues activities through the API while the chaos loop SIGKILLs
   random nodes and restarts them, all through the load; after a quarter of it one
   member is killed and held down.
3. Settle: every node's clock is moved on an hour at a time (backoffs and breaker
   cool-downs pass) until nothing is left to send to a live host.
4. The simulated week: every clock jumps seven days ahead, past the retry policy's
   give-up point (3 days) for the held-down host, and every sender gives up all it held
   for it; a little more load shows the live nodes are unaffected, then they settle again.
5. Verify from each node's database and ``praxisnetz status --json`` (``soak.verify``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from soak.cluster import Cluster, SoakNode, running_cluster
from soak.load import Load, LoadLedger, chaos, hold_down, restart_cleanly
from soak.verify import (
    SoakReport,
    drained,
    held_down_host,
    hub_log_since,
    hub_log_size,
    verify,
)

HOUR = 3600.0
WEEK = 7 * 24 * HOUR
GIVE_UP_WAIT = 120.0  # seconds of real time for the senders to give up after the jump
TRICKLE_SECONDS = 0.25


@dataclass(frozen=True)
class SoakPlan:
    members: int = 5
    activities: int = 5000
    kills: int = 12  # at least this many chaos kills and restarts (on while the load runs)
    concurrency: int = 8
    kill_interval: float = 10.0
    after_week: int = 100  # activities issued once the week has passed
    settle_steps: int = 12  # at most this many one-hour clock steps to settle
    step_wait: float = 15.0  # seconds of real time per step
    settle_grace: float = 300.0  # then at most this long for a backlog (a loaded machine)
    seed: int = 8


async def _follow_everyone(load: Load, cluster: Cluster) -> None:
    calls = [(follower, followed) for follower in cluster.nodes for followed in cluster.nodes
             if follower is not followed and not (follower.is_hub and followed.is_hub)]
    results = await asyncio.gather(*(load.call(follower, "POST", "/api/following",
                                               {"target": followed.actor_url})
                                     for follower, followed in calls))
    refused = [(a.slug, b.slug, status) for (a, b), (status, _) in zip(calls, results, strict=True)
               if not 200 <= status < 300]
    if refused:
        raise RuntimeError(f"follows refused: {refused}")


async def _wait_drained(cluster: Cluster, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(drained, cluster):
            return True
        await asyncio.sleep(0.5)
    return False


async def settle(cluster: Cluster, plan: SoakPlan, report: SoakReport) -> None:
    """Move the clocks on an hour at a time until nothing is left for a live host."""
    for _ in range(plan.settle_steps):
        if await _wait_drained(cluster, plan.step_wait):
            return
        cluster.set_offset(cluster.offset_seconds + HOUR)
    if not await _wait_drained(cluster, plan.settle_grace):
        report.problem("the federation did not settle: work left for live hosts")


async def watch_status(load: Load, cluster: Cluster, seen: Counter[str], stop: asyncio.Event) -> None:
    """Sample /api/status while the chaos runs: failing hosts show backoff and breakers."""
    while not stop.is_set():
        for node in [n for n in cluster.nodes if n.running and not n.held_down]:
            status, payload = await load.call(node, "GET", "/api/status")
            if status == 200:
                seen.update(entry["breaker_state"] for entry in payload.get("failing_hosts", [])
                            if entry["host"] != held_down_host(cluster))
        await asyncio.sleep(0.5)


async def _load_until(kills_done: asyncio.Event, load: Load, plan: SoakPlan,
                      chaos_task: asyncio.Task[None]) -> None:
    """A trickle of load (``concurrency`` activities every ``TRICKLE_SECONDS``) until the
    chaos has made its kills: a kill with no load sends nothing to the killed node, so no
    sender would meet a refusal (on a fast machine the short soak's load was over before
    its first kill, and no failing host ever showed in /api/status)."""
    while not kills_done.is_set() and not chaos_task.done():
        await load.run(load.ledger.activities + plan.concurrency, plan.concurrency)
        await asyncio.sleep(TRICKLE_SECONDS)


def _unfinished_to(node: SoakNode, host: str) -> int:
    return node.query("SELECT count(*) FROM deliveries WHERE host = ? AND state NOT IN "
                      "('delivered', 'gave_up')", host)[0][0]


async def _week(cluster: Cluster, load: Load, plan: SoakPlan, report: SoakReport) -> None:
    """Jump a week, past the give-up point: with no further clock move, every sender gives
    up everything it held for the dead host (a breaker's hold counts towards the deadline)."""
    dead = held_down_host(cluster)
    senders = [n for n in cluster.nodes if not n.held_down and _unfinished_to(n, dead)]
    if not senders:
        report.problem(f"no node had anything queued for the held-down host {dead}")
    cluster.set_offset(cluster.offset_seconds + WEEK)
    jumped = time.monotonic()
    while any(_unfinished_to(n, dead) for n in senders):
        if time.monotonic() - jumped > GIVE_UP_WAIT:
            left = {n.slug: _unfinished_to(n, dead) for n in senders}
            report.problem(f"{GIVE_UP_WAIT:.0f} s after the simulated week, deliveries to "
                           f"{dead} are still not given up: {left}")
            break
        await asyncio.sleep(1.0)
    else:
        report.notes.append(f"after the week's jump every sender gave up on {dead} within "
                            f"{time.monotonic() - jumped:.0f} s, the clock not moved again")
    await load.run(load.ledger.activities + plan.after_week, plan.concurrency)


async def _restart_hub_cleanly(cluster: Cluster, ledger: LoadLedger, report: SoakReport) -> None:
    """Once, with the members' work still queued: the hub stopped as an operator stops it
    and started again takes its search as the stop left it (``node.hub.search_snapshot``);
    the load and the week after it must reach that search too (``verify``)."""
    logged = hub_log_size(cluster.hub)
    await restart_cleanly(cluster, cluster.hub, ledger)
    said = hub_log_since(cluster.hub, logged)
    if "hub search as at its clean stop" not in said:
        report.problem("the hub restarted after a clean stop did not take its search from "
                       "its snapshot")
    else:
        report.notes.append("the hub, restarted after a clean stop, took its search from "
                            "its snapshot")


async def run_soak(root: Path, plan: SoakPlan) -> SoakReport:
    report, ledger, rng = SoakReport(), LoadLedger(), random.Random(plan.seed)
    seen: Counter[str] = Counter()
    started = time.monotonic()
    with running_cluster(root, plan.members) as cluster:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            load = Load(cluster, client, ledger, rng)
            await _follow_everyone(load, cluster)
            if not await _wait_drained(cluster, 60):
                report.problem("the follows were not all accepted within 60 s")
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_status(load, cluster, seen, stop))
            load_done, kills_done = asyncio.Event(), asyncio.Event()
            chaos_task = asyncio.create_task(chaos(cluster, ledger, rng, kills=plan.kills,
                                                   interval=plan.kill_interval,
                                                   load_done=load_done, kills_done=kills_done))
            before_week = plan.activities - plan.after_week
            await load.run(before_week // 4, plan.concurrency)
            hold_down(cluster, cluster.members[-1], ledger)  # dead from here on
            await load.run(before_week, plan.concurrency)
            await _load_until(kills_done, load, plan, chaos_task)
            load_done.set()
            await chaos_task
            stop.set()
            await watcher
            await _restart_hub_cleanly(cluster, ledger, report)
            await settle(cluster, plan, report)
            await _week(cluster, load, plan, report)
            await settle(cluster, plan, report)
        await asyncio.to_thread(verify, cluster, ledger, report, seen)
    report.seconds = time.monotonic() - started
    return report
