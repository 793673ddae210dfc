"""``python -m bench``: run every benchmark module in this package and print its table."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(selected: list[str]) -> int:
    names = sorted(info.name for info in pkgutil.iter_modules(bench.__path__)
                   if not info.name.startswith("_"))
    for name in names:
        if selected and name not in selected:
            continue
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue
        title = (module.__doc__ or name).strip().splitlines()[0]
        print(f"== bench.{name}: {title}")
        print(bench.format_table(run()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
