"""The command line's error: bad input or a refused operation, printed as
``error: FIELD: MESSAGE`` with exit status 2 (apart so that modules the CLI imports can
raise it without importing the CLI)."""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """Bad input or a refused operation; printed as ``error: FIELD: MESSAGE``."""

    def __init__(self, field: str, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(f"{field}: {message}")
        self.exit_code = exit_code
