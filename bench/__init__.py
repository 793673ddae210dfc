"""Benchmarks that print figures (not timed tests). Run them all with ``python -m bench``.

Each benchmark module exposes ``run()`` returning a list of rows (dataclasses or
mappings); ``format_table`` turns such rows into a plain text table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence


def _as_mapping(row: object) -> Mapping[str, object]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return row
    raise TypeError(f"a benchmark row must be a dataclass or a mapping, not {type(row).__name__}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[object]) -> str:
    """Rows as an aligned text table with a header line."""
    if not rows:
        return "(no rows)"
    mappings = [_as_mapping(row) for row in rows]
    columns = list(mappings[0])
    cells = [[_cell(mapping.get(column, "")) for column in columns] for mapping in mappings]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(_is_number(m.get(c)) for m in mappings) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(columns), separator, *(line(values) for values in cells)])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
