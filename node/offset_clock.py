"""The test-only clock of ``praxisnetz serve`` and ``praxisnetz worker`` (the soak's
"simulated week"): real time plus the seconds held in a shared file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node.cli_errors import CliError

# Test only (the soak's "simulated week"): every serve process started with this variable
# reads a shared file holding seconds to add to the real clock, so the driver can move
# all nodes' time forward together without restarting them. Never set in production.
CLOCK_OFFSET_FILE_ENV = "PRAXISNETZ_CLOCK_OFFSET_FILE"


class OffsetFileClock:
    """UTC now plus the seconds in ``path`` (0 while the file is missing or empty).

    The file is read again only when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: int | None = None
        self._shift = timedelta(0)

    def __call__(self) -> datetime:
        try:
            stamp = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self._seen:
            self._seen, self._shift = stamp, self._read_shift()
        return datetime.now(UTC) + self._shift

    def _read_shift(self) -> timedelta:
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return timedelta(0)
        try:
            return timedelta(seconds=float(text or "0"))  # nan: ValueError, inf: OverflowError
        except (ValueError, OverflowError):
            raise CliError(CLOCK_OFFSET_FILE_ENV, f"{self._path} must hold a number of seconds") from None


def shifted_clock(path: str | None) -> Callable[[], datetime] | None:
    """None (the real clock) unless a clock offset file is named."""
    if path is None or not path.strip():
        return None
    clock = OffsetFileClock(Path(path))
    clock()  # a bad file is refused at start-up, not in the middle of a request
    return clock
