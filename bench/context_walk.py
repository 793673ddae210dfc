"""Known-context fast paths: CPU per document of the hub's N-Quads and the validator's triples.

Both paths walk a document through the shared term table (``vocab.context_walk``): the
hub's ``KnownContextConverter.nquads`` (a hot path: every document of an index rebuild)
and the validator's ``KnownContextTriples.data_graph``. Measured with
``time.process_time`` (CPU of this process, so other load on the machine counts less than
in wall time), median of ``repeats`` runs, per document:

- **nquads**: ``practices`` practices of ``bench.hub_scale``'s generator, a fresh converter
  per run (its IRI-check cache starts empty, as in a rebuild; the table is built first);
- **data_graph**: the valid examples (``examples/documents/valid``), signed ones with
  their proofs, each converted ``rounds`` times per run.

Run: ``python -m bench context_walk``, or ``python -m bench.context_walk --against DIR``
to alternate with another checkout of the tree (``git archive REV | tar -x -C DIR``, and
this file copied into ``DIR/bench/``), back to back, ``--pairs`` times, with the 1-minute load average beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "documents" / "valid"


@dataclass(frozen=True)
class Row:
    measure: str
    us_per_document: float
    documents: int
    load_1min: float


def _median_us(run_once: Callable[[], tuple[int, float]], repeats: int) -> tuple[float, int]:
    """Median CPU microseconds per document over ``repeats`` runs (each returns its
    document count and CPU seconds); documents per run."""
    per_document, count = [], 0
    for _ in range(repeats):
        count, seconds = run_once()
        per_document.append(seconds / count * 1e6)
    return statistics.median(per_document), count


def nquads_row(practices: int, repeats: int) -> Row:
    from bench.hub_scale import member_actor, practice
    from node.hub.known_context import KnownContextConverter
    from vocab import loader

    contexts = {url: loader.load_bundled_document(url) for url in loader.bundled_context_urls()}
    documents = [practice(number % 97, number) for number in range(practices)]

    def run_once() -> tuple[int, float]:
        converter = KnownContextConverter(lambda url: contexts[url])
        assert converter.nquads(practice(999, 0), member_actor(999)) is not None  # builds the table
        started = time.process_time()
        for document in documents:
            converter.nquads(document, member_actor(0))
        return len(documents), time.process_time() - started

    value, count = _median_us(run_once, repeats)
    return Row("nquads (hub_scale practices)", round(value, 1), count, os.getloadavg()[0])


def data_graph_row(rounds: int, repeats: int) -> Row:
    from vocab.compiled import known_context_triples

    documents = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(EXAMPLES.glob("*.json"))
    ]
    known = known_context_triples()
    on_fast_path = [document for document in documents if known.data_graph(document) is not None]

    def run_once() -> tuple[int, float]:
        started = time.process_time()
        for _ in range(rounds):
            for document in on_fast_path:
                known.data_graph(document)
        return rounds * len(on_fast_path), time.process_time() - started

    value, count = _median_us(run_once, repeats)
    return Row(f"data_graph ({len(on_fast_path)} valid examples on the fast path)",
               round(value, 1), count, os.getloadavg()[0])  # fmt: skip


def run(practices: int = 2_000, rounds: int = 100, repeats: int = 5) -> list[Row]:
    return [nquads_row(practices, repeats), data_graph_row(rounds, repeats)]


def _rows_of(tree: Path, practices: int, rounds: int, repeats: int) -> list[dict[str, Any]]:
    """Run this benchmark with ``tree``'s code in a child process (its own imports)."""
    command = [sys.executable, "-m", "bench.context_walk", "--practices", str(practices),
               "--rounds", str(rounds), "--repeats", str(repeats)]  # fmt: skip
    done = subprocess.run(
        command, cwd=tree, capture_output=True, text=True, check=True, timeout=600
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def compare(other: Path, pairs: int, practices: int, rounds: int, repeats: int) -> None:
    for pair in range(pairs):
        for label, tree in (("other", other), ("this", ROOT)):
            for row in _rows_of(tree, practices, rounds, repeats):
                print(f"pair {pair + 1} {label:5} {row['measure']:55} "
                      f"{row['us_per_document']:8.1f} us/doc  load {row['load_1min']:.2f}", flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to alternate with")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--practices", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.against is not None:
        compare(args.against.resolve(), args.pairs, args.practices, args.rounds, args.repeats)
        return
    for row in run(args.practices, args.rounds, args.repeats):
        print(json.dumps(asdict(row)))


if __name__ == "__main__":
    main()
