"""Write docker/constraints.txt: the tested version of every runtime dependency.

The image installs exactly the versions the test suite runs with, found by walking the
installed ``praxisnetz`` distribution's requirements (extras included where a requirement
asks for them, test extras left out).

    .venv/bin/python docker/pin_constraints.py           # rewrite the file
    .venv/bin/python docker/pin_constraints.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
HEADER = """\
# Versions the image installs: the ones the test suite runs with (.venv), for every
# runtime dependency, direct and transitive. pyproject.toml keeps open ranges; this file
# keeps the image from picking up an untested release.
# Regenerate after changing dependencies: .venv/bin/python docker/pin_constraints.py
"""


def runtime_versions(root: str = "praxisnetz") -> dict[str, str]:
    """Canonical name -> installed version for everything ``root`` needs at run time."""
    versions: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is not installed; install the project first") from None
        if canonicalize_name(name) != root:
            versions[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return versions


def constraints_text(versions: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={versions[name]}\n" for name in sorted(versions))


def main(argv: list[str]) -> int:
    expected = constraints_text(runtime_versions())
    if "--check" in argv:
        current = CONSTRAINTS.read_text(encoding="utf-8") if CONSTRAINTS.exists() else ""
        if current != expected:
            print(f"{CONSTRAINTS} is out of date; run: .venv/bin/python docker/pin_constraints.py")
            return 1
        return 0
    CONSTRAINTS.write_text(expected, encoding="utf-8")
    print(f"wrote {CONSTRAINTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
