"""Smoke tests of the benchmarks: each ``run()`` finishes at a tiny size and returns rows
with the expected columns, and leaves no child process behind. Not timed tests: the
figures themselves are not checked (the machine is shared), only that they are figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest

import bench
from bench import fanout, hub_restart, hub_scale, inbox_ingest, small_node, validation
from bench._support import asyncpg_dsn
from tests.node_support import POSTGRES_URL_ENV

pytestmark = pytest.mark.timeout(120)


def _children_of_this_process() -> list[int]:
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if fields[1] == me and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _columns(rows: list[object]) -> list[str]:
    assert rows, "a benchmark returned no rows"
    return [field.name for field in dataclasses.fields(rows[0])]  # type: ignore[arg-type]


def _assert_table(rows: list[object]) -> None:
    table = bench.format_table(rows)
    assert len(table.splitlines()) == len(rows) + 2


def test_inbox_ingest_persists_every_activity_and_names_both_rates() -> None:
    before = set(_children_of_this_process())
    rows = inbox_ingest.run(activities=20, actors=4, concurrency=4, processes=1, rounds=2)
    assert _columns(rows)[:8] == ["activities", "actors", "node_per_s", "bare_aiohttp_per_s",
                                  "share_pct", "persisted", "refused", "target"]
    assert _columns(rows)[8:] == ["node_cpu_ms", "node_cpu_ms_to_processed", "sink_cpu_ms",
                                  "client_cpu_ms_bare", "client_cpu_ms_node",
                                  "processed_after_s", "database", "node_processes",
                                  "worker_cpu_ms", "bare_processes", "concurrency",
                                  "rounds", "share_min_pct", "share_max_pct",
                                  "loop_busy_pct", "machine_busy_pct"]
    (row,) = rows
    assert row.persisted == 40 and row.refused == "-"  # 20 new activities in each round
    assert row.rounds == 2 and row.share_min_pct <= row.share_pct <= row.share_max_pct
    assert row.node_cpu_ms > 0 and row.database == "sqlite"
    assert row.node_per_s > 0 and row.bare_aiohttp_per_s > 0
    assert row.node_processes == "1" and row.worker_cpu_ms == 0.0 and row.bare_processes == 1
    assert row.concurrency == 4
    # shares of the node phases' wall time (a tiny run may fall below one clock tick)
    assert 0 <= row.loop_busy_pct <= 100 and 0 <= row.machine_busy_pct <= 100
    assert set(_children_of_this_process()) <= before  # node, sink and load process are gone
    _assert_table(rows)


def test_inbox_ingest_runs_a_multi_process_node_and_says_so() -> None:
    before = set(_children_of_this_process())
    (row,) = inbox_ingest.run(activities=20, actors=4, concurrency=4, processes=[2], rounds=1)
    assert row.persisted == 20 and row.refused == "-"
    assert row.node_processes == "2+1"  # two acceptors and the worker process
    assert row.bare_processes == 2  # and two sink processes for the baseline
    assert row.node_cpu_ms > 0 and row.worker_cpu_ms >= 0.0
    assert 0 <= row.loop_busy_pct <= 100  # the mean over the two acceptors' loops
    assert set(_children_of_this_process()) <= before  # supervisor, acceptors, worker gone


def test_fanout_delivers_every_row_to_the_receivers() -> None:
    before = set(_children_of_this_process())
    rows = fanout.run(activities=4, followers=5, receivers=2, sign_seconds=0.05)
    assert _columns(rows) == ["activities", "followers", "deliveries", "receivers",
                              "deliveries_per_s", "rsa_sign_per_s", "share_of_signing_pct",
                              "received", "target", "workers", "worker_cpu_us_per_delivery",
                              "receiver_cpu_us_per_delivery", "per_worker_core_s", "load_1m",
                              "rsa_sign_cpu_us", "signing_share_of_worker_cpu_pct",
                              "idle_machine_estimate_per_s", "receiver", "malformed",
                              "database", "database_cpu_us_per_delivery"]
    (row,) = rows
    assert row.deliveries == 20 and row.received >= 20  # a lease may resend, never lose
    assert row.receiver == "lean" and row.malformed == "0"  # every POST signed and whole
    assert row.rsa_sign_per_s > 0 and row.database == "sqlite"
    assert row.database_cpu_us_per_delivery == 0.0  # SQLite's work is in the workers
    assert set(_children_of_this_process()) <= before
    _assert_table(rows)


def test_fanout_runs_its_queue_on_postgresql_and_drops_the_scratch_database() -> None:
    url = _postgres_url()
    before = set(_children_of_this_process())
    databases_before = _bench_databases(url)
    (row,) = fanout.run(activities=4, followers=5, receivers=2, sign_seconds=0.05,
                        postgres=url)
    assert row.database == "postgresql" and row.database_cpu_us_per_delivery >= 0
    assert row.deliveries == 20 and row.received >= 20 and row.malformed == "0"
    assert set(_children_of_this_process()) <= before
    assert _bench_databases(url) == databases_before  # the scratch database is gone


def test_fanout_counts_the_cpu_of_postgresql_and_of_its_ended_backends() -> None:
    url = _postgres_url()
    counter = fanout.DeliveredCount(url)
    try:
        assert counter.server_pid is not None  # the server runs on this machine
        before = counter.database_cpu()

        # on a connection of its own: a backend that ends
        _fetch(url, "SELECT count(*) FROM generate_series(1, 3000000)")
        time.sleep(0.2)  # the postmaster reaps the ended backend
        assert counter.database_cpu() - before >= 0.1  # its CPU stays counted
    finally:
        counter.close()


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    return url


def _fetch(url: str, query: str) -> list[tuple[object, ...]]:
    """``query``'s rows, on a connection of its own to the server of ``url``."""
    import asyncpg

    async def rows() -> list[tuple[object, ...]]:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()

    return asyncio.run(rows())


def _bench_databases(url: str) -> set[str]:
    return {str(name) for (name,) in _fetch(
        url, "SELECT datname FROM pg_database WHERE datname LIKE 'praxisnetz_bench_%'")}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_hub_restart_times_its_starts_and_leaves_nothing_behind(database: str) -> None:
    url = _postgres_url() if database == "postgresql" else None
    before = set(_children_of_this_process())
    databases_before = _bench_databases(url) if url else set()
    loaded = url is None  # the inbox load on one database only: the load client takes seconds
    rows = hub_restart.measure(members=10, practices=3, postgres=url,
                               inbox_load=40 if loaded else 0)
    assert _columns(rows) == ["start", "first_answer_s", "search_whole_s", "stop_s",
                              "stopped_while_filling", "fill_answer_p50_ms",
                              "fill_answer_max_ms", "inbox_in_fill_per_s", "inbox_in_fill_pct",
                              "load_ended_in_fill", "inbox_after_fill_per_s",
                              "inbox_after_fill_pct", "search_from"]
    rates = [(row.inbox_in_fill_per_s, row.inbox_after_fill_per_s) for row in rows]
    if loaded:  # posted in the first two starts (every activity accepted, or it raised)
        assert all(during > 0 and after > 0 for during, after in rates[:2])
        assert rows[1].load_ended_in_fill is False  # a small hub's fill ends at once
    assert rates[2:] == [(None, None)] * (len(rows) - 2)
    assert loaded or rates == [(None, None)] * len(rows)
    # the search as the clean stop before left it, and once without the snapshot, from
    # SQL, as after a crash
    assert [row.start.split(" (")[0] for row in rows] == [
        "first start", "restart", "restart without the search's snapshot",
        "stopped while filling"]
    assert [row.search_from for row in rows] == ["SQL", "snapshot", "SQL", "SQL"]
    assert all(row.first_answer_s > 0 and row.stop_s >= 0 for row in rows)
    # the search answered in full, after the first answer; the last start was stopped
    assert [row.search_whole_s is not None for row in rows[:-1]] == [True] * (len(rows) - 1)
    assert rows[-1].search_whole_s is None
    assert all(row.search_whole_s >= row.first_answer_s for row in rows[:-1])
    assert set(_children_of_this_process()) <= before
    if url:
        assert _bench_databases(url) == databases_before
    _assert_table(rows)


def test_small_node_reports_start_up_and_memory() -> None:
    rows = small_node.run(contributions=5, settle_seconds=0.1)
    assert _columns(rows) == ["measure", "value", "unit", "target"]
    measures = [row.measure for row in rows]
    assert measures[:3] == ["start-up, new database", "start-up, restart", "RSS idle"]
    assert all(row.value > 0 for row in rows)
    _assert_table(rows)


def test_validation_times_every_valid_example_and_both_proof_operations() -> None:
    rows = validation.run(repeats=1, seconds=0.01)
    assert _columns(rows) == ["measure", "document", "us_per_op", "per_s", "raw_per_s",
                              "overhead_x"]
    documents = {row.document for row in rows if row.measure == "vocab.validate"}
    assert documents == {path.name for path in validation.EXAMPLES.glob("*.json")}
    assert [row.measure for row in rows[-2:]] == ["proof sign", "proof verify"]
    _assert_table(rows)


def test_hub_scale_indexes_everything_and_times_each_example_query() -> None:
    rows = hub_scale.run(members=4, practices=2, repeats=1, edition_size=6)
    assert _columns(rows) == ["measure", "value", "unit", "target"]
    by_measure = {row.measure: row for row in rows}
    assert by_measure["documents not indexed"].value == 0
    assert any("12 docs" in measure for measure in by_measure)  # 4 x 2 practices + 4 stances
    for example in hub_scale.example_queries():
        assert f"SPARQL {example.slug} p50" in by_measure
    assert "edition freeze (6 contributions)" in by_measure
    _assert_table(rows)


def test_hub_scale_ingests_into_postgresql_and_indexes_what_it_reads_back() -> None:
    url = _postgres_url()
    databases_before = _bench_databases(url)
    rows = hub_scale.run(members=4, practices=2, repeats=1, edition_size=6, postgres=url)
    by_measure = {row.measure: row for row in rows}
    assert by_measure["documents not indexed"].value == 0
    assert any("12 docs" in measure for measure in by_measure)  # all read back from SQL
    assert _bench_databases(url) == databases_before


def test_inbox_processing_processes_every_item_and_heads_the_summary() -> None:
    from bench import _summary, inbox_processing

    rows = inbox_processing.run(items=40, actors=4)
    (row,) = rows
    assert row.stored_objects == 40 and row.cpu_ms_per_item > 0 and row.processed_per_s > 0
    _assert_table(rows)
    (headline,) = _summary.headlines({"inbox_processing": rows})
    assert "40 received" in headline.measure and "ms" in headline.value



def test_inbox_door_times_every_part_and_heads_the_summary() -> None:
    from bench import _summary, inbox_door

    rows = inbox_door.run(requests=20, keys=2)
    parts = {row.part for row in rows}
    assert {"check_rate", "parse_body", "ours (sum of the above)"} <= parts
    # "without RSA" rows are differences of two timings: on a noisy machine one may dip
    # below zero at this size; the sum and the directly timed parts may not
    ours = next(row for row in rows if row.part == "ours (sum of the above)")
    assert ours.us_per_request > 0
    assert all(row.us_per_request > 0 for row in rows if "without" not in row.part)
    _assert_table(rows)
    (headline,) = _summary.headlines({"inbox_door": rows})
    assert "µs" in headline.value
