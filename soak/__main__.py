"""``python -m soak`` (``make soak``): the full crash-and-restart soak; exit 0 only if it passed."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from soak.driver import SoakPlan, run_soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    defaults = SoakPlan()
    parser.add_argument("--members", type=int, default=defaults.members)
    parser.add_argument("--activities", type=int, default=defaults.activities)
    parser.add_argument("--kills", type=int, default=defaults.kills,
                        help="at least this many SIGKILLs; they go on while the load runs")
    parser.add_argument("--kill-interval", type=float, default=defaults.kill_interval)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--keep", metavar="DIR", help="keep the nodes' folders here")
    args = parser.parse_args(argv)
    plan = SoakPlan(members=args.members, activities=args.activities, kills=args.kills,
                    kill_interval=args.kill_interval, seed=args.seed)
    print(f"soak: {plan}; load average {os.getloadavg()}", flush=True)
    if args.keep:
        report = asyncio.run(run_soak(Path(args.keep), plan))
    else:
        with tempfile.TemporaryDirectory(prefix="praxisnetz-soak-") as folder:
            report = asyncio.run(run_soak(Path(folder), plan))
    print("\n".join(report.lines()))
    print(f"load average after: {os.getloadavg()}")
    print("soak passed" if report.ok else "soak FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
