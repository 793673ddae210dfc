"""Peak memory of the hub's search refill on PostgreSQL: every contribution collected in a
list and handed to ``replace_all`` (as the aggregator did), against pages of 5,000 handed
to ``refill()`` and dropped.

    PRAXISNETZ_TEST_POSTGRES_URL=... .venv/bin/python -m bench.hub_search_refill
        [--contributions 20000] [--pairs 2] [--before-tree DIR]

Each variant runs in a fresh process on a throw-away database: the first refill writes
every row, the second (the hub's every start) finds them unchanged. Prints the peak RSS
(``ru_maxrss``) after the views were made and after each refill, with the 1-minute load
average. ``--before-tree`` runs the list variant from another checkout (older code
without ``refill``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

from bench._support import scratch_postgres_database
from node.hub.contribution import ContributionKind, ContributionView
from node.hub.search_backends import PostgresSearch
from node.storage.db import create_engine, migrate, session_maker

URL_ENV = "PRAXISNETZ_TEST_POSTGRES_URL"
PAGE = 5_000
WORDS = ("Posteingang", "Bearbeitung", "Bürgerportal", "Antrag", "Verfahren", "Kommune",
         "Personalakte", "Gewerbeanmeldung", "digital", "eingeführt", "Erfahrung")


def _view(number: int) -> ContributionView:
    text = " ".join(WORDS[(number + i) % len(WORDS)] + str(i % 7) for i in range(300))
    return ContributionView(
        uri=f"https://m{number % 500}.example/practices/p{number}",
        kind=ContributionKind.PRACTICE, title=f"Praxis {number}", summary="Wie wir es machen.",
        content_text=text, author=f"https://m{number % 500}.example/actor",
        topics=("e-akte",), municipality_key=None, status="piloting",
        published="2026-11-01T10:00:00Z", updated=None, url=None)


def _pages(total: int) -> Iterator[list[ContributionView]]:
    for start in range(0, total, PAGE):
        yield [_view(n) for n in range(start, min(start + PAGE, total))]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _refill(search: PostgresSearch, total: int, variant: str) -> None:
    if variant == "list":
        views: list[ContributionView] = []
        for page in _pages(total):
            views.extend(page)
        print(f"  views made: peak {_peak_mib():.0f} MiB", flush=True)
        await search.replace_all(views)
        return
    async with search.refill() as refill:
        for page in _pages(total):
            await refill.add(page)


async def run_variant(url: str, total: int, variant: str) -> None:
    async with scratch_postgres_database(url) as scratch:
        engine = create_engine(scratch)
        try:
            await migrate(engine)
            search = PostgresSearch(session_maker(engine))
            print(f"  start: peak {_peak_mib():.0f} MiB", flush=True)
            for name in ("first refill (writes)", "second refill (unchanged)"):
                started = time.process_time()
                await _refill(search, total, variant)
                print(f"  {name}: peak {_peak_mib():.0f} MiB, "
                      f"{time.process_time() - started:.1f} CPU s; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contributions", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--before-tree")
    parser.add_argument("--variant", choices=("list", "stream"))
    arguments = parser.parse_args()
    url = os.environ[URL_ENV]
    if arguments.variant:
        asyncio.run(run_variant(url, arguments.contributions, arguments.variant))
        return
    for _ in range(arguments.pairs):
        for variant, tree in (("list", arguments.before_tree), ("stream", None)):
            print(f"{variant}{' (' + tree + ')' if tree else ''}:", flush=True)
            environment = dict(os.environ)
            if tree:
                environment["PYTHONPATH"] = tree
            subprocess.run([sys.executable, "-m", "bench.hub_search_refill", "--variant", variant,
                            "--contributions", str(arguments.contributions)],
                           check=True, env=environment, cwd=tree or None)


if __name__ == "__main__":
    main()
