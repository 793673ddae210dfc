"""The one summary table of ``python -m bench``: each benchmark's headline figures beside
the issue's targets, with the machine they were measured on.

Each benchmark keeps its own detailed rows; this module only reads them. A benchmark
without a reader here still prints its own table, it just adds no headline.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Headline:
    benchmark: str
    measure: str
    value: str
    target: str


def _fields(row: object) -> Mapping[str, object]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return row
    raise TypeError(f"a benchmark row must be a dataclass or a mapping, not {type(row).__name__}")


def _number(value: object, digits: int = 1) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.{digits}f}"
    return str(value)


def _processes(row: Mapping[str, object]) -> str:
    acceptors = str(row.get("node_processes", "1")).split("+", 1)[0]
    return "one process" if acceptors == "1" else f"{acceptors} acceptors (each side)"


def _inbox_ingest(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    return [Headline("inbox_ingest", f"{_rounds(row)}{row['activities']:,} signed Creates,"
                     f" {_processes(row)}, {row.get('concurrency', 32)} in flight:"
                     " node/s vs bare aiohttp/s",
                     f"{_number(row['node_per_s'], 0)} / {_number(row['bare_aiohttp_per_s'], 0)}"
                     f" = {_number(row['share_pct'])}%{_share_range(row)}", str(row["target"]))
            for row in rows]


def _rounds(row: Mapping[str, object]) -> str:
    rounds = int(row.get("rounds", 1))  # type: ignore[call-overload]
    return f"{rounds} rounds of " if rounds > 1 else ""


def _share_range(row: Mapping[str, object]) -> str:
    """The rounds' lowest and highest shares beside their median (medians of the rates
    before it, so the three figures need not divide exactly)."""
    if int(row.get("rounds", 1)) < 2:  # type: ignore[call-overload]
        return ""
    return f" ({_number(row['share_min_pct'])}–{_number(row['share_max_pct'])})"


def _fanout(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    return [Headline("fanout", f"{row['deliveries']:,} signed deliveries/s"
                     f" (share of RSA-2048 signs/s)",
                     f"{_number(row['deliveries_per_s'], 0)}/s"
                     f" ({_number(row['share_of_signing_pct'])}% of {_number(row['rsa_sign_per_s'], 0)})",
                     str(row["target"]))
            for row in rows]


def _measures_with_targets(name: str) -> Callable[[Sequence[Mapping[str, object]]], list[Headline]]:
    """For benchmarks whose rows are (measure, value, unit, target): the rows with a target."""
    def read(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
        return [Headline(name, str(row["measure"]), f"{_number(row['value'])} {row['unit']}",
                         str(row["target"]))
                for row in rows if row.get("target") not in (None, "-", "")]
    return read


# The verification overhead target is issue #3's (25% over the raw primitive).
SIGNATURE_OVERHEAD_TARGET_PCT = 25.0


def _signatures(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    headlines = []
    for row in rows:
        overhead = float(row["overhead_pct"])  # type: ignore[arg-type]
        met = "met" if overhead <= SIGNATURE_OVERHEAD_TARGET_PCT else "NOT met"
        headlines.append(Headline(
            "signatures", f"{row['scheme']} {row['algorithm']} {row['operation']}: overhead",
            f"+{_number(overhead)}% (+{_number(row['added_us'])} µs)",
            f"<= {SIGNATURE_OVERHEAD_TARGET_PCT:.0f}%: {met}"))
    return headlines


def _inbox_processing(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    # No target of the issue's: what the door accepts, the worker must keep up with.
    return [Headline("inbox_processing", f"{row['items']:,} received {row['kind']}s processed"
                     f" ({row['database']}{', hub' if row['hub'] else ''}): CPU per item",
                     f"{_number(row['cpu_ms_per_item'], 2)} ms"
                     f" ({_number(row['processed_per_s'], 0)}/s)", "-")
            for row in rows]


def _inbox_door(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    # No target of its own: what our code adds per request to aiohttp and the RSA check.
    return [Headline("inbox_door", "the door's own CPU per signed Create (without RSA)",
                     f"{_number(row['us_per_request'])} µs", "-")
            for row in rows if row["part"] == "ours (sum of the above)"]


def _validation(rows: Sequence[Mapping[str, object]]) -> list[Headline]:
    return [Headline("validation", f"{row['measure']} ({row['document']})",
                     f"{_number(row['us_per_op'], 0)} µs", "-")
            for row in rows]


READERS: dict[str, Callable[[Sequence[Mapping[str, object]]], list[Headline]]] = {
    "inbox_door": _inbox_door,
    "inbox_ingest": _inbox_ingest,
    "inbox_processing": _inbox_processing,
    "fanout": _fanout,
    "hub_scale": _measures_with_targets("hub_scale"),
    "small_node": _measures_with_targets("small_node"),
    "signatures": _signatures,
    "validation": _validation,
}


def headlines(results: Mapping[str, Sequence[object]]) -> list[Headline]:
    """The headline rows of every benchmark that ran, in the order they ran."""
    found: list[Headline] = []
    for name, rows in results.items():
        reader = READERS.get(name)
        if reader is not None:
            found += reader([_fields(row) for row in rows])
    return found


def machine_description() -> str:
    """CPU model, core count, Python and the 1-minute load average, for the record."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()},"
            f" load average {load:.1f}")
