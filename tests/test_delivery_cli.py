"""``praxisnetz deliveries list|retry``: an operator sees failed deliveries and resends them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from node.cli import main, open_store
from node.config import NodeConfig
from node.outbox import record_local_activity
from node.storage.models import Delivery
from tests.engine_support import node_config

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# host -> the state its delivery is put in
SCENARIO = {"down.example": "gave_up", "gone.example": "failed", "fine.example": "delivered"}


async def _seed(config: NodeConfig) -> dict[str, int]:
    """One activity to three hosts; each delivery put in the state SCENARIO names."""
    document = {"@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{config.base_url}/activities/{uuid.uuid4()}", "type": "Like",
                "actor": config.actor_url, "object": "https://down.example/notes/1"}
    inboxes = [f"https://{host}/inbox" for host in SCENARIO]
    async with open_store(config) as sessions, sessions.begin() as session:
        await record_local_activity(session, document, inboxes, now=NOW)
        ids = {}
        for host, state in SCENARIO.items():
            ids[host] = await session.scalar(select(Delivery.id).where(Delivery.host == host))
            await session.execute(update(Delivery).where(Delivery.host == host).values(
                state=state, attempts=4, last_status=503, last_error="HTTP 503", finished_at=NOW))
        return ids


async def _states(config: NodeConfig) -> dict[int, str]:
    async with open_store(config) as sessions, sessions() as session:
        return dict((await session.execute(select(Delivery.id, Delivery.state))).all())


@pytest.fixture
def seeded(tmp_path) -> tuple[NodeConfig, dict[str, int]]:
    config = node_config(tmp_path, "node")
    return config, asyncio.run(_seed(config))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_failed_and_given_up_by_default(seeded, capsys) -> None:
    config, ids = seeded
    code, out, _ = run(capsys, "deliveries", "list", "--data-dir", str(config.data_dir))
    listed = {int(line.split("\t")[0]) for line in out.splitlines()}
    assert code == 0 and listed == {ids["down.example"], ids["gone.example"]}


def test_list_filters_by_state_and_host_and_speaks_json(seeded, capsys) -> None:
    config, ids = seeded
    data_dir = str(config.data_dir)
    _, out, _ = run(capsys, "deliveries", "list", "--data-dir", data_dir, "--state", "gave_up",
                    "--json")
    [row] = json.loads(out)
    assert (row["id"], row["host"], row["state"]) == (ids["down.example"], "down.example",
                                                      "gave_up")
    _, out, _ = run(capsys, "deliveries", "list", "--data-dir", data_dir,
                    "--host", "fine.example")
    assert out == ""  # delivered rows are not listed


def test_retry_by_id_requeues_one(seeded, capsys) -> None:
    config, ids = seeded
    code, out, _ = run(capsys, "deliveries", "retry", str(ids["gone.example"]),
                       "--data-dir", str(config.data_dir))
    states = asyncio.run(_states(config))
    assert code == 0 and "1 deliveries requeued" in out
    assert states[ids["gone.example"]] == "pending" and states[ids["down.example"]] == "gave_up"


def test_retry_by_host_requeues_its_failed_deliveries(seeded, capsys) -> None:
    config, ids = seeded
    code, out, _ = run(capsys, "deliveries", "retry", "--host", "down.example",
                       "--data-dir", str(config.data_dir))
    assert code == 0 and out.startswith("1 deliveries requeued")
    assert asyncio.run(_states(config))[ids["down.example"]] == "pending"
    attempts, window = asyncio.run(_round(config, ids["down.example"]))
    assert attempts == 0 and window > NOW  # a fresh round: not given up again at once


async def _round(config: NodeConfig, delivery_id: int) -> tuple[int, datetime]:
    async with open_store(config) as sessions, sessions() as session:
        row = await session.get(Delivery, delivery_id)
        return row.attempts, row.first_attempt_at


@pytest.mark.parametrize("argv,expected", [
    (["retry"], "give a delivery id or --host"),
    (["retry", "999999"], "no delivery with id 999999"),
    (["retry", "1", "--host", "down.example"], "give a delivery id or --host"),
])
def test_retry_refuses_bad_input_naming_the_field(seeded, capsys, argv, expected) -> None:
    config, _ = seeded
    code, _, err = run(capsys, "deliveries", *argv, "--data-dir", str(config.data_dir))
    assert code == 2 and err.startswith("error: id:") and expected in err


def test_a_delivered_delivery_is_not_resent(seeded, capsys) -> None:
    config, ids = seeded
    code, _, err = run(capsys, "deliveries", "retry", str(ids["fine.example"]),
                       "--data-dir", str(config.data_dir))
    assert code == 2 and "is delivered" in err
    assert asyncio.run(_states(config))[ids["fine.example"]] == "delivered"
