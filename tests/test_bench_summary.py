"""The one summary table of ``python -m bench``: headline figures read from each
benchmark's own rows, with the target verdict carried through (not timed; no figures
checked beyond what the rows say)."""

from __future__ import annotations

import pytest

from bench import _summary, fanout, format_table, hub_scale, inbox_ingest
from bench.__main__ import QUICK_SIZES, _module_names, main


def test_headlines_carry_each_benchmarks_figures_and_verdicts() -> None:
    results = {
        "inbox_ingest": [inbox_ingest.Row(2000, 100, 3000.0, 5000.0, 60.0, 2000, "-", ">= 50%: met")],
        "fanout": [fanout.Row(500, 100, 50_000, 4, 800.0, 2000.0, 40.0, 50_000,
                              ">= 1,000/s: NOT met")],
        "hub_scale": [hub_scale.Row("read back from SQL", 15.8, "s", "-"),
                      hub_scale.Row("ingest + read + index", 100.0, "s", "< 120 s: met")],
    }
    rows = _summary.headlines(results)
    assert [(row.benchmark, row.target) for row in rows] == [
        ("inbox_ingest", ">= 50%: met"),
        ("fanout", ">= 1,000/s: NOT met"),
        ("hub_scale", "< 120 s: met"),  # the row without a target is no headline
    ]
    assert "3,000 / 5,000 = 60.0%" in rows[0].value
    assert rows[1].value.startswith("800/s")
    assert len(format_table(rows).splitlines()) == len(rows) + 2


def test_each_inbox_ingest_row_says_how_many_processes_ran() -> None:
    rows = _summary.headlines({"inbox_ingest": [
        inbox_ingest.Row(2000, 100, 1000.0, 5000.0, 20.0, 2000, "-", ">= 50%: NOT met"),
        inbox_ingest.Row(2000, 100, 3000.0, 5000.0, 60.0, 2000, "-", ">= 50%: met",
                         node_processes="2+1", bare_processes=2, concurrency=128),
    ]})
    assert ["one process" in row.measure for row in rows] == [True, False]
    assert "2 acceptors" in rows[1].measure and rows[1].target == ">= 50%: met"
    assert ["32 in flight" in rows[0].measure, "128 in flight" in rows[1].measure] == [True, True]


def test_an_inbox_ingest_row_of_rounds_gives_the_median_share_and_its_range() -> None:
    (row,) = _summary.headlines({"inbox_ingest": [
        inbox_ingest.Row(4000, 100, 1500.0, 3500.0, 43.2, 20_000, "-", ">= 50%: NOT met",
                         rounds=5, share_min_pct=38.5, share_max_pct=51.0),
    ]})
    assert row.measure.startswith("5 rounds of 4,000 signed Creates")
    assert row.value == "1,500 / 3,500 = 43.2% (38.5–51.0)"


def test_signature_overhead_is_judged_against_25_percent() -> None:
    rows = _summary.headlines({"signatures": [
        {"scheme": "rfc9421", "algorithm": "ed25519", "operation": "verify",
         "ours_per_s": 10.0, "primitive_per_s": 13.0, "overhead_pct": 30.0, "added_us": 23.0},
        {"scheme": "rfc9421", "algorithm": "ed25519", "operation": "sign",
         "ours_per_s": 12.0, "primitive_per_s": 13.0, "overhead_pct": 8.3, "added_us": 6.4},
    ]})
    assert [row.target for row in rows] == ["<= 25%: NOT met", "<= 25%: met"]


def test_quick_sizes_name_only_existing_benchmarks() -> None:
    assert set(QUICK_SIZES) <= set(_module_names())


def test_an_unknown_benchmark_name_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["no_such_bench"])
    assert "no benchmark named no_such_bench" in capsys.readouterr().err


def test_the_machine_description_names_cores_and_load() -> None:
    text = _summary.machine_description()
    assert "cores" in text and "load average" in text
