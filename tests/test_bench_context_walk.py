"""Smoke test of `bench.context_walk`: both rows come back as figures at a tiny size (not
timed: the machine is shared, only that they are figures)."""

from __future__ import annotations

import bench
from bench import context_walk


def test_both_fast_paths_are_measured_per_document() -> None:
    rows = context_walk.run(practices=20, rounds=1, repeats=1)
    assert [row.measure.split(" ")[0] for row in rows] == ["nquads", "data_graph"]
    assert rows[0].documents == 20 and rows[1].documents >= 10
    assert all(row.us_per_document > 0 for row in rows)
    assert len(bench.format_table(rows).splitlines()) == len(rows) + 2
