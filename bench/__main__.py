"""``python -m bench [--quick] [name ...]``: run the benchmark modules of this package, print
each one's detailed table as it finishes, then one summary table of the headline figures
against the issue's targets, with the machine and its load at the start and the end.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import bench
from bench._summary import headlines, machine_description

# Sizes for --quick: small enough for a few minutes in all, large enough to mean something.
QUICK_SIZES: dict[str, dict[str, object]] = {
    "fanout": {"activities": 50, "followers": 20},
    "hub_scale": {"members": 200, "repeats": 5},
    "inbox_door": {"requests": 200},
    "inbox_ingest": {"activities": 300, "actors": 30, "rounds": 3},
    "inbox_processing": {"items": 300, "actors": 30},
    "small_node": {"contributions": 100},
    "validation": {"repeats": 5, "seconds": 0.2},
    "signatures": {"seconds": 0.5},
    "fetch": {"seconds": 0.5},
}


def _module_names() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(bench.__path__)
                  if not info.name.startswith("_"))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (see QUICK_SIZES)")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {_module_names()})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(_module_names()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}")
    started_on = machine_description()
    results: dict[str, Sequence[object]] = {}
    for name in _module_names():
        if args.names and name not in args.names:
            continue
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue
        title = (module.__doc__ or name).strip().splitlines()[0]
        print(f"== bench.{name}: {title}", flush=True)
        results[name] = run(**QUICK_SIZES.get(name, {})) if args.quick else run()
        print(bench.format_table(results[name]), end="\n\n", flush=True)
    print("== Summary" + (" (--quick sizes)" if args.quick else ""))
    print(f"machine at the start: {started_on}")
    print(f"machine at the end:   {machine_description()}")
    print(bench.format_table(headlines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
