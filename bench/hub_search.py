"""Hub search on PostgreSQL: writing and asking ``hub_search`` for N German contributions
(and, for comparison, building the in-memory index a SQLite hub uses).

Not part of ``python -m bench`` (it needs a PostgreSQL server): run
``python -m bench.hub_search [--contributions 20000] [--before REV] [--pairs 2]`` with
PRAXISNETZ_TEST_POSTGRES_URL set. Each variant gets a fresh database. ``--before REV``
also measures ``node/hub/search_backends.py`` as it was at git revision REV (with that
revision's ``search.py`` and ``compounds.py``; its table at ``--before-schema``, the
newest migration unless told, 0006 for code before ``compound_parts``), alternating
before/after. CPU seconds are this process's and the
PostgreSQL backend's (read from /proc: the server must run on this machine); the
1-minute load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._support import cpu_seconds, scratch_postgres_database
from node.hub.contribution import ContributionKind, ContributionView
from node.storage.db import create_engine, migrate, session_maker

URL_ENV = "PRAXISNETZ_TEST_POSTGRES_URL"
QUERIES = ("Bearbeitung", "Antrag", "Akte", "Bürgerportal", "Posteingang digital",
           "Verfahren Kommune", "Anmeldung -Kita", "xyzzy")
PARTS = ("Bau", "Antrag", "Verfahren", "Post", "Eingang", "Bearbeitung", "Personal", "Akte",
         "Bürger", "Portal", "Dienst", "Gewerbe", "Anmeldung", "Melde", "Register", "Kita",
         "Platz", "Vergabe", "Wohn", "Geld", "Steuer", "Bescheid", "Rechnung", "Eingangs",
         "Zuständigkeit", "Termin", "Verwaltung", "Leistung", "Führerschein", "Ausweis")
WORDS = ("die", "der", "und", "wir", "haben", "digital", "elektronisch", "eingeführt",
         "Kommune", "Stadt", "Landkreis", "Papier", "online", "schneller", "Mitarbeitende",
         "Prozess", "Schulung", "zentral", "E-Akte", "Ablauf", "Formular", "Fachverfahren")


@dataclass(frozen=True)
class Figure:
    variant: str
    measure: str
    value: float
    unit: str
    load: str


def _compound(rng: random.Random) -> str:
    parts = rng.sample(PARTS, rng.choice((2, 2, 3)))
    return parts[0] + "".join(part.lower() for part in parts[1:])


def _words(rng: random.Random, count: int) -> str:
    return " ".join(_compound(rng) if rng.random() < 0.3 else rng.choice(WORDS)
                    for _ in range(count))


def contributions(count: int) -> list[ContributionView]:
    rng = random.Random(20261123)
    return [ContributionView(
        uri=f"https://m{n % 500}.example/practices/p{n}", kind=ContributionKind.PRACTICE,
        title=_words(rng, 4), summary=_words(rng, 15), content_text=_words(rng, 150),
        author=f"https://m{n % 500}.example/actor", topics=("e-akte",),
        municipality_key=f"{5_000_000 + n % 500:08d}", status="in-operation",
        published="2026-11-01T10:00:00Z", updated=None, url=None) for n in range(count)]


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


# The search modules an earlier revision is measured with: its own copies, so that "before"
# also has the normaliser and splitter of its time (each imports the ones before it).
_SEARCH_MODULES = ("compounds", "search", "search_backends")


def _old_backends(revision: str) -> ModuleType:
    """``node/hub/search_backends.py`` at ``revision``, with that revision's
    ``search.py`` (and ``compounds.py`` where it has one) in place of today's."""
    folder = Path(tempfile.mkdtemp(prefix="bench-search-"))
    loaded: dict[str, str] = {}  # node.hub.<name> -> the name it is loaded under
    module: ModuleType | None = None
    for name in _SEARCH_MODULES:
        shown = subprocess.run(["git", "show", f"{revision}:node/hub/{name}.py"],
                               capture_output=True, text=True)
        if shown.returncode != 0:
            continue  # not in that revision
        source = shown.stdout
        for original, renamed in loaded.items():
            source = source.replace(f"from {original} import", f"from {renamed} import")
        renamed = f"old_{name}_{revision.replace('/', '_').replace('~', '_')}"
        path = folder / f"{renamed}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(renamed, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[renamed] = module
        spec.loader.exec_module(module)
        loaded[f"node.hub.{name}"] = renamed
    assert module is not None and module.__name__.startswith("old_search_backends")
    return module


async def _measure(engine: AsyncEngine, backends: ModuleType, variant: str,
                   views: list[ContributionView], repeats: int) -> list[Figure]:
    search = backends.PostgresSearch(session_maker(engine))
    async with engine.connect() as connection:  # the pool's one connection: one backend
        backend_pid = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    started = time.process_time()
    await backends.MemorySearch().replace_all(views)  # what a SQLite hub builds at start
    figures = [Figure(variant, "memory index (SQLite hubs) build, CPU",
                      time.process_time() - started, "s", _load())]
    wall, client, server = time.perf_counter(), time.process_time(), cpu_seconds(backend_pid)
    await search.replace_all(views)
    figures += [
        Figure(variant, "write all (replace_all), wall", time.perf_counter() - wall, "s", _load()),
        Figure(variant, "write all, CPU of this process", time.process_time() - client, "s",
               _load()),
        Figure(variant, "write all, CPU of the PostgreSQL backend",
               cpu_seconds(backend_pid) - server, "s", _load())]
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text("VACUUM ANALYZE hub_search"))
        size = (await connection.execute(sa.text(
            "SELECT pg_total_relation_size('hub_search')"))).scalar_one()
    figures.append(Figure(variant, "hub_search with indexes and TOAST", size / 2**20, "MiB",
                          _load()))
    for query in QUERIES:
        times, server = [], cpu_seconds(backend_pid)
        for _ in range(repeats):
            started = time.perf_counter()
            hits = await search.search(query, limit=50)
            times.append(time.perf_counter() - started)
        figures.append(Figure(variant, f"query {query!r} ({len(hits)} hits), wall p50",
                              statistics.median(times) * 1000, "ms", _load()))
        figures.append(Figure(variant, f"query {query!r}, backend CPU per query",
                              (cpu_seconds(backend_pid) - server) / repeats * 1000, "ms",
                              _load()))
    return figures


async def _variant(url: str, backends: ModuleType, variant: str, revision: str,
                   views: list[ContributionView], repeats: int) -> list[Figure]:
    async with scratch_postgres_database(url) as scratch:
        engine = create_engine(scratch, pool_size=1, max_overflow=0)
        try:
            await migrate(engine, revision)
            return await _measure(engine, backends, variant, views, repeats)
        finally:
            await engine.dispose()


async def compare(url: str, count: int, before: str | None, pairs: int, repeats: int,
                  before_schema: str = "head") -> None:
    import node.hub.search_backends as current

    views = contributions(count)
    variants = [("after", current, "head")]
    if before is not None:
        variants.insert(0, (f"before ({before})", _old_backends(before), before_schema))
    for pair in range(pairs):
        for variant, backends, revision in variants:
            for figure in await _variant(url, backends, variant, revision, views, repeats):
                print(f"{pair + 1}\t{figure.variant}\t{figure.measure}\t"
                      f"{figure.value:.2f} {figure.unit}\tload {figure.load}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hub_search", description=__doc__)
    parser.add_argument("--contributions", type=int, default=20_000)
    parser.add_argument("--before", help="a git revision to compare with")
    parser.add_argument("--before-schema", default="head",
                        help="the migration the earlier revision's table is at (0006 before "
                             "compound_parts)")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20, help="runs of each query")
    args = parser.parse_args()
    url = os.environ.get(URL_ENV)
    if not url:
        sys.exit(f"{URL_ENV} is not set")
    asyncio.run(compare(url, args.contributions, args.before, args.pairs, args.repeats,
                        args.before_schema))


if __name__ == "__main__":
    main()
