"""Retry and breaker settings come from praxisnetz.toml's [delivery] table to the worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from node import appkeys
from node.config import ConfigError, DeliveryTuning, config_from_mapping, load_config
from node.delivery import DeliveryWorker, circuit_breaker, retry_policy
from node.outbox import record_local_activity
from node.storage.models import Delivery, Host
from tests.engine_support import free_port, node_config, start_node

DELIVERY_TABLE = """
[delivery]
poll_interval_seconds = 0.05
claim_seconds = 5
retry_first_delay_seconds = 7
retry_ceiling_seconds = 60
give_up_after_days = 0.5
breaker_failure_threshold = 1
breaker_cool_down_seconds = 90
"""


def test_defaults_are_the_library_defaults() -> None:
    policy, breaker = retry_policy(DeliveryTuning()), circuit_breaker(DeliveryTuning())
    assert (policy.first_delay, policy.ceiling, policy.give_up_after) == (
        timedelta(seconds=30), timedelta(hours=12), timedelta(days=3))
    assert (breaker.failure_threshold, breaker.cool_down) == (5, timedelta(minutes=30))


@pytest.mark.parametrize("table,field", [
    ({"retry_first_delay_seconds": 60, "retry_ceiling_seconds": 10},
     "delivery.retry_ceiling_seconds"),
    ({"breaker_failure_threshold": 2.5}, "delivery.breaker_failure_threshold"),
    ({"give_up_after_days": 0}, "delivery.give_up_after_days"),
    ({"retry_first_delay_sec": 5}, "delivery.retry_first_delay_sec"),
])
def test_bad_values_name_the_setting(tmp_path, table: dict, field: str) -> None:
    raw = {"base_url": "https://kommune.example", "name": "Testkommune", "slug": "k",
           "delivery": table}
    with pytest.raises(ConfigError) as refused:
        config_from_mapping(tmp_path, raw)
    assert refused.value.field == field


async def test_toml_values_reach_the_worker(tmp_path) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    failing = web.Application()
    failing.router.add_post("/inbox", unavailable)
    runner = web.AppRunner(failing)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # default tuning, so write_config writes no [delivery] table of its own
    written = node_config(tmp_path, "sender", delivery=DeliveryTuning())
    with written.config_path.open("a", encoding="utf-8") as toml:
        toml.write(DELIVERY_TABLE)
    config = load_config(written.data_dir, env={})
    node = await start_node(config, start_workers=False)
    try:
        now = datetime.now(UTC)
        document = {"@context": "https://www.w3.org/ns/activitystreams",
                    "id": f"{node.url}/activities/{uuid.uuid4()}", "type": "Like",
                    "actor": node.actor, "object": f"http://127.0.0.1:{port}/notes/1"}
        async with node.sessions()() as session, session.begin():
            await record_local_activity(session, document, [f"http://127.0.0.1:{port}/inbox"],
                                        now=now)
        # built as node.workers builds it: from the config's [delivery] table only
        worker = DeliveryWorker(session_maker=node.sessions(), fetcher=node.app[appkeys.FETCHER],
                                keys=node.keys, clock=lambda: now, tuning=config.delivery,
                                random_fraction=lambda: 0.0)
        assert await worker.run_once() == 1
        [row] = await node.rows(Delivery)
        assert row.state == "pending" and row.next_attempt_at == now + timedelta(seconds=7)
        [host] = await node.rows(Host)
        assert host.breaker_opened_at is not None  # one failure opens it at threshold 1
    finally:
        await node.stop()
        await runner.cleanup()
