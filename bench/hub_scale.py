"""Hub scale: members x practices through the hub's SQL storage and RDF index, SPARQL
latency of the example queries, and freezing and rendering an edition.

- **ingest**: every member (approved ``hub_members`` row) and its practices, plus one
  disagreeing stance per member, are written to the hub's ``remote_objects`` table
  (SQLite, or with ``--postgres URL`` a scratch database on that server) in batches of 2,000 rows (Core ``executemany``, one transaction per batch), the
  columns filled as ``node.remote_objects`` fills them.
  HTTP, signature checks and the inbox worker are bypassed (``bench.inbox_ingest``
  measures that path per activity).
- **index**: ``aggregation.member_document_pages`` streams every approved member's
  documents back from SQL a page at a time and ``HubIndex.start_rebuild`` loads each page
  into the on-disk Oxigraph store, as ``praxisnetz hub reindex`` and a hub's first start
  do; "read back" is the time spent waiting for pages, "index" the time spent loading them.
- **SPARQL**: the index maintains the examples' answers (``maintained_examples``, as the
  hub does); each of ``node.hub.sparql.example_queries()`` runs ``repeats`` times through
  ``HubIndex.query`` with the endpoint's options; p50 and p95. The "first run" builds the
  maintained rows (the example evaluated in full, unlimited, in this thread);
  "evaluated p50" runs the query ``evaluated_repeats`` times through the production
  ``ForkRunner`` (one fork per query) with kept and maintained answers bypassed.
- **after a write**: ``repeats`` rounds of: for each example, one member's e-file practice
  is written again (renamed; ``add_contribution``, which notes the partitions it reaches),
  then the example is asked (which evaluates the partitions noted since its last query
  again): "first query after a write" p50/p95, and the write's own time and CPU; then
  the same writes with no maintained answer built, for comparison.
- **edition**: 2,000 practices placed over the default handbook structure are frozen
  (manifest, JCS hash, Ed25519 proof) and rendered to all pages with the edition templates.
  The editorial decisions in SQL are bypassed: the placements are handed in directly.
- **peak RSS**: ``getrusage`` of this process (the forks for queries are not counted).
Targets: ingest and index within 2 minutes, SPARQL p50 < 100 ms, edition < 30 s, < 4 GiB.
Run: ``python -m bench hub_scale`` or ``python -m bench.hub_scale [--quick] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._support import peak_rss_mib, scratch_postgres_changes
from federation.keys import SigningKey, generate_ed25519_key
from federation.proofs import sign_document
from node.hub.aggregation import member_document_pages
from node.hub.editions import EditionDraft, freeze
from node.hub.index import HubIndex, RebuildReport, RebuildSeconds
from node.hub.render import EditionRenderer, MemberInfo, RenderContext
from node.hub.sparql import QUERY_OPTIONS, example_queries, maintained_examples
from node.hub.structure import default_structure
from node.hub.tables import HubMember, MemberState
from node.remote_objects import object_kind, reference, version_of
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import RemoteObject
from vocab import loader

AGS_PREFIX = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"
TOPIC_PREFIX = "https://w3id.org/praxisnetz/topics#"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
TOPICS = ("e-akte", "strategie", "prozessmanagement", "organisation-personal")
STATUSES = ("in-operation", "planned", "piloting")  # values the context defines
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BATCH = 2_000
EDITION_SIZE = 2_000


@dataclass(frozen=True)
class Row:
    measure: str
    value: float
    unit: str
    target: str


def member_actor(number: int) -> str:
    return f"https://m{number}.example/actor"


def practice(member: int, number: int) -> dict[str, Any]:
    base, ags = f"https://m{member}.example", f"{5_000_000 + member:08d}"
    text = f"Kommune {member} hat die Praxis {number} eingeführt. " * 6
    return {
        "@context": list(loader.DEFAULT_CONTEXT),
        "id": f"{base}/practices/p{number}",
        "type": ["Article", "Practice"],
        "attributedTo": f"{base}/actor",
        "name": f"Praxis {number} der Kommune {member}",
        "summary": "Wie wir es gemacht haben.",
        "content": text,
        "contentMap": {"de": text},
        "status": STATUSES[(member + number) % len(STATUSES)],
        "topic": [TOPIC_PREFIX + TOPICS[(member + number) % len(TOPICS)]],
        "step": [
            {"type": "HowToStep", "position": 1, "text": "Ist-Prozesse aufnehmen"},
            {"type": "HowToStep", "position": 2, "text": "Pilot starten"},
        ],
        "municipalityKey": AGS_PREFIX + ags,
        "published": "2026-11-01T10:00:00Z",
        "url": f"{base}/practices/p{number}",
        "to": [PUBLIC],
        "cc": [f"{base}/actor/followers"],
    }


def stance(member: int, about: str) -> dict[str, Any]:
    base = f"https://m{member}.example"
    return {
        "@context": list(loader.DEFAULT_CONTEXT),
        "id": f"{base}/stances/s1",
        "type": ["Note", "Stance"],
        "attributedTo": f"{base}/actor",
        "about": about,
        "position": "disagree",
        "reason": "Bei uns anders.",
        "content": "Bei uns anders.",
        "published": "2026-11-02T10:00:00Z",
        "to": [PUBLIC],
    }


def documents(members: int, practices: int) -> Iterator[dict[str, Any]]:
    for member in range(members):
        for number in range(practices):
            yield practice(member, number)
        yield stance(member, practice((member + 1) % members, 0)["id"])


def _row(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "uri": document["id"],
        "kind": object_kind(document),
        "attributed_to": reference(document["attributedTo"]),
        "in_reply_to": None,
        "about": reference(document.get("about")),
        "document": document,
        "published": NOW,
        "updated": version_of(document),
        "deleted": False,
        "received_at": NOW,
    }


async def ingest(database_url: str, members: int, practices: int) -> float:
    # Core inserts on the tables (executemany): the same rows as ``insert(RemoteObject)``
    # through a session, without the ORM's bulk path, which cost ~40% more CPU per row.
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        started = time.perf_counter()
        async with engine.begin() as connection:
            await connection.execute(
                HubMember.__table__.insert(),
                [
                    {
                        "actor_uri": member_actor(n),
                        "name": f"Kommune {n}",
                        "kind": "municipality",
                        "ags": f"{5_000_000 + n:08d}",
                        "state": MemberState.APPROVED.value,
                        "applied_at": NOW,
                        "decided_at": NOW,
                    }
                    for n in range(members)
                ],
            )
        batch: list[dict[str, Any]] = []
        for document in documents(members, practices):
            batch.append(_row(document))
            if len(batch) == BATCH:
                async with engine.begin() as connection:
                    await connection.execute(RemoteObject.__table__.insert(), batch)
                batch = []
        if batch:
            async with engine.begin() as connection:
                await connection.execute(RemoteObject.__table__.insert(), batch)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def read_and_index(
    database_url: str, index: HubIndex
) -> tuple[float, float, RebuildReport, RebuildSeconds]:
    """Stream the documents back from SQL into a rebuild; (read s, index s, report, split)."""
    engine = create_engine(database_url)
    read_s = index_s = 0.0
    try:
        rebuild = index.start_rebuild()
        try:
            async with session_maker(engine)() as session:
                pages = member_document_pages(session)
                while True:
                    started = time.perf_counter()
                    page = await anext(pages, None)
                    read_s += time.perf_counter() - started
                    if page is None:
                        break
                    started = time.perf_counter()
                    rebuild.add(page)
                    index_s += time.perf_counter() - started
        finally:
            started = time.perf_counter()
            report = rebuild.finish()
            index_s += time.perf_counter() - started
    finally:
        await engine.dispose()
    return read_s, index_s, report, rebuild.seconds


def _timed_ms(index: HubIndex, sparql: str, *, reuse: bool) -> float:
    started = time.perf_counter()
    index.query(sparql, timeout=60.0, max_rows=10_000, reuse=reuse, options=QUERY_OPTIONS)
    return (time.perf_counter() - started) * 1000


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _e_file_practice(member: int, round_: int) -> dict[str, Any]:
    """A practice of ``member`` on the e-file and in operation, renamed each round."""
    number = -member % 12  # topic e-akte ((m + n) % 4 == 0) and in operation ((m + n) % 3 == 0)
    document = practice(member, number)
    document["name"] = f"{document['name']} (Runde {round_})"
    return document


def write_rows(index: HubIndex, members: int, repeats: int) -> list[Row]:
    """A member's contribution written, then each example asked: the first query after a
    write (answered from the maintained rows), and what the write itself cost."""
    rng = random.Random(9)
    writes: list[float] = []
    write_cpu: list[float] = []
    after: dict[str, list[float]] = {example.slug: [] for example in example_queries()}
    updates = index.maintained.updates
    for round_ in range(repeats):
        for example in example_queries():
            member = rng.randrange(members)
            document = _e_file_practice(member, round_)
            started, cpu = time.perf_counter(), time.thread_time()
            index.add_contribution(member_actor(member), document)
            write_cpu.append((time.thread_time() - cpu) * 1000)
            writes.append((time.perf_counter() - started) * 1000)
            after[example.slug].append(_timed_ms(index, example.sparql, reuse=True))
    rows = [
        Row("index write (one practice; the partitions it reaches noted) p50",
            statistics.median(writes), "ms", "-"),
        Row("— p95", _percentile(writes, 0.95), "ms", "-"),
        Row("— CPU of the writing thread p50", statistics.median(write_cpu), "ms", "-"),
        Row("— partition queries per write (run by the next query of each example)",
            (index.maintained.updates - updates) / len(writes), "queries", "-"),
    ]
    for slug, times in after.items():
        p50 = statistics.median(times)
        rows.append(Row(f"SPARQL {slug} first query after a write p50", p50, "ms",
                        f"< 100 ms: {'met' if p50 < 100 else 'NOT met'}"))
        rows.append(Row(f"SPARQL {slug} first query after a write p95",
                        _percentile(times, 0.95), "ms", "-"))
    return rows


def unmaintained_write_rows(index: HubIndex, members: int, repeats: int) -> list[Row]:
    """The same writes with no maintained answer built (they are skipped): the A side."""
    index.maintained.invalidate()
    rng = random.Random(9)
    cpu_times = []
    for round_ in range(repeats):
        member = rng.randrange(members)
        cpu = time.thread_time()
        index.add_contribution(member_actor(member), _e_file_practice(member, repeats + round_))
        cpu_times.append((time.thread_time() - cpu) * 1000)
    return [Row("index write without maintained answers, CPU of the writing thread p50",
                statistics.median(cpu_times), "ms", "-")]


def _percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# The least a query evaluated through the ForkRunner costs: fork, read the store, pipe back.
FLOOR_QUERY = "ASK { ?s ?p ?o }"


def sparql_rows(index: HubIndex, repeats: int, evaluated_repeats: int) -> list[Row]:
    floor = [_timed_ms(index, FLOOR_QUERY, reuse=False) for _ in range(max(3, evaluated_repeats))]
    rows = [
        Row(
            "SPARQL floor: ASK evaluated p50 (fork + one read + pipe)",
            statistics.median(floor),
            "ms",
            "-",
        )
    ]
    index.maintain(maintained_examples())
    rss_before = _rss_mib()
    for example in example_queries():
        times = [_timed_ms(index, example.sparql, reuse=True) for _ in range(repeats)]
        evaluated = [
            _timed_ms(index, example.sparql, reuse=False) for _ in range(evaluated_repeats)
        ]
        p50, evaluated_p50 = statistics.median(times), statistics.median(evaluated)
        met = "NOT met" if p50 >= 100 else "met" if evaluated_p50 < 100 else "met by maintained answers"
        rows.append(Row(f"SPARQL {example.slug} p50", p50, "ms", f"< 100 ms: {met}"))
        rows.append(Row(f"SPARQL {example.slug} p95", _percentile(times, 0.95), "ms", "-"))
        rows.append(Row(f"SPARQL {example.slug} first run", times[0], "ms", "-"))
        rows.append(
            Row(
                f"SPARQL {example.slug} evaluated p50",
                evaluated_p50,
                "ms",
                f"< 100 ms: {'met' if evaluated_p50 < 100 else 'NOT met'}",
            )
        )
    held = index.maintained.rows_held()
    rows.append(Row("maintained rows held (all examples; the first run above built them)",
                    float(sum(held.values())), "rows", "-"))
    rows.append(Row("— RSS growth while building them and running the examples",
                    _rss_mib() - rss_before, "MiB", "-"))
    return rows


def edition_rows(members: int, practices: int, size: int) -> list[Row]:
    structure = default_structure()
    slugs = [section.slug for section in structure.reading_order()]
    placements: dict[str, list[dict[str, Any]]] = {slug: [] for slug in slugs}
    per_member = max(1, min(practices, -(-size // members)))
    member_key = generate_ed25519_key()  # the members sign (one key here), not timed
    chosen = [
        sign_document(
            practice(m, n), SigningKey(f"{member_actor(m)}#ed25519-key", member_key), created=NOW
        )
        for m in range(members)
        for n in range(per_member)
    ][:size]
    for position, document in enumerate(chosen):
        placements[slugs[position % len(slugs)]].append(document)
    key = SigningKey("https://hub.example/actor#ed25519-key", generate_ed25519_key())
    started = time.perf_counter()
    draft = EditionDraft.from_structure(
        "https://hub.example/actor", "https://hub.example/handbook/editions/", structure, placements
    )
    frozen = freeze(draft, None, clock=lambda: NOW, key=key)
    frozen_at = time.perf_counter()
    context = RenderContext(
        members={
            member_actor(m): MemberInfo(member_actor(m), f"Kommune {m}") for m in range(members)
        },
        manifest_hash=frozen.manifest_hash,
    )
    pages = EditionRenderer().pages(frozen.manifest, context)
    rendered_at = time.perf_counter()
    total = rendered_at - started
    return [
        Row(f"edition freeze ({len(chosen):,} contributions)", frozen_at - started, "s", "-"),
        Row(
            f"edition render ({len(pages)} pages, {sum(map(len, pages.values())) / 2**20:.0f} MiB)",
            rendered_at - frozen_at,
            "s",
            "-",
        ),
        Row("edition freeze + render", total, "s", f"< 30 s: {'met' if total < 30 else 'NOT met'}"),
    ]


def _contexts() -> dict[str, Any]:
    return {url: loader.load_bundled_document(url) for url in loader.bundled_context_urls()}


def ingest_and_index_rows(tmp: Path, members: int, practices: int,
                          database_url: str | None = None) -> tuple[HubIndex, list[Row]]:
    """Ingest into SQL (SQLite in ``tmp`` unless ``database_url`` names another
    database), then read back and rebuild the index: the index and the rows."""
    database_url = database_url or f"sqlite+aiosqlite:///{tmp / 'hub.db'}"
    cpu_started = time.process_time()  # all threads of this process (RocksDB's too)
    ingest_s = asyncio.run(ingest(database_url, members, practices))
    cpu_ingested, thread_started = time.process_time(), time.thread_time()
    index = HubIndex(tmp / "index", contexts=_contexts())
    read_s, index_s, report, split = asyncio.run(read_and_index(database_url, index))
    cpu_s, thread_s = time.process_time() - cpu_started, time.thread_time() - thread_started
    quads, total = len(index.store), ingest_s + read_s + index_s
    return index, [
        Row(f"ingest to SQL ({members:,} x {practices} + stances)", ingest_s, "s", "-"),
        Row("read back from SQL", read_s, "s", "-"),
        Row(f"index rebuild ({report.indexed:,} docs, {quads:,} quads)", index_s, "s", "-"),
        Row("ingest + read + index", total, "s", f"< 120 s: {'met' if total < 120 else 'NOT met'}"),
        Row("documents not indexed", float(len(report.skipped)), "docs", "0"),
        Row("index: convert (checks, fast path, general path)", split.convert, "s", "-"),
        Row("index: bulk load of N-Quads (loader thread)", split.bulk_load, "s", "-"),
        Row("index: waiting for the loader (not overlapped)", split.waiting, "s", "-"),
        Row("index: optimize (compaction)", split.optimize, "s", "-"),
        Row("ingest + read + index, CPU time of this process", cpu_s, "s", "-"),
        Row("— of it ingest", cpu_ingested - cpu_started, "s", "-"),
        Row("— of it read + index in the calling thread (SQL rows, JSON, convert)", thread_s, "s", "-"),
        Row("— of it read + index in other threads (bulk loads, RocksDB, SQLite)",
            cpu_s - (cpu_ingested - cpu_started) - thread_s, "s", "-"),
    ]


def run(
    members: int = 11_000,
    practices: int = 20,
    repeats: int = 20,
    edition_size: int = EDITION_SIZE,
    evaluated_repeats: int = 3,
    postgres: str | None = None,
) -> list[Row]:
    with (tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp,
          scratch_postgres_changes(postgres) as database):
        index, rows = ingest_and_index_rows(Path(tmp), members, practices,
                                            database.get("database_url"))
        rows += sparql_rows(index, repeats, evaluated_repeats)
        rows += write_rows(index, members, repeats)
        rows += unmaintained_write_rows(index, members, repeats)
        rows += edition_rows(members, practices, edition_size)
        peak = peak_rss_mib()
        rows.append(
            Row(
                "peak RSS (this process)",
                peak,
                "MiB",
                f"< 4096 MiB: {'met' if peak < 4096 else 'NOT met'}",
            )
        )
        del index
    return rows


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.hub_scale")
    parser.add_argument("--quick", action="store_true", help="200 members x 20 practices")
    parser.add_argument("--members", type=int, default=11_000)
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL",
                        help="ingest into a scratch database on this PostgreSQL server "
                             "(postgresql+asyncpg://…) instead of SQLite")
    args = parser.parse_args()
    members = 200 if args.quick else args.members
    print(
        format_table(
            run(members, args.practices, repeats=5 if args.quick else 20, evaluated_repeats=3,
                postgres=args.postgres)
        )
    )


if __name__ == "__main__":
    main()
