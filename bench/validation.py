"""Validation and object proofs: per-document ``vocab.validate`` time; FEP-8b32 proof
sign/verify rates next to the raw Ed25519 primitive.

Validation runs the bundled example documents (``examples/documents/valid``) through
``vocab.validate`` (JSON-LD to RDF with the offline loader, then the SHACL shapes); the
median of repeated runs is reported per document, the validator built once beforehand
(its one-off build time is its own row). Proofs: ``sign_document`` / ``verify_document``
(``eddsa-jcs-2022``: JCS canonicalisation, two SHA-256, base58) on ``practice.json``, next
to a bare ``cryptography`` Ed25519 sign/verify of the same 64-byte hash data.
Run: ``python -m bench validation`` or ``python -m bench.validation [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from federation.keys import PublicKeyInfo, SigningKey, generate_ed25519_key
from federation.proofs import ProofVerdict, sign_document, verify_document
from vocab.validate import Validator, default_validator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "documents" / "valid"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    measure: str
    document: str
    us_per_op: float
    per_s: float
    raw_per_s: float | str  # "-" where there is no primitive to compare with
    overhead_x: float | str  # ours takes this many times as long as the primitive


def _median_seconds(operation: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rate(operation: Callable[[], object], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while done < 5 or time.perf_counter() - started < seconds:
        operation()
        done += 1
    return done / (time.perf_counter() - started)


def validation_rows(repeats: int) -> list[Row]:
    started = time.perf_counter()
    default_validator.cache_clear()
    validator: Validator = default_validator()
    build = time.perf_counter() - started
    rows = [Row("build validator (once)", "bundled shapes", build * 1e6, 1 / build, "-", "-")]
    for path in sorted(EXAMPLES.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        report = validator.validate(document)
        if not report.valid:
            raise RuntimeError(f"{path.name} should be valid: {report.describe('en')}")
        seconds = _median_seconds(lambda d=document: validator.validate(d), repeats)
        rows.append(Row("vocab.validate", path.name, seconds * 1e6, 1 / seconds, "-", "-"))
    return rows


def proof_rows(seconds: float) -> list[Row]:
    private = generate_ed25519_key()
    actor = "https://guetersloh.example/actor"
    key = SigningKey(f"{actor}#ed25519-key", private)
    info = PublicKeyInfo(key.key_id, actor, private.public_key())
    document = json.loads((EXAMPLES / "practice.json").read_text(encoding="utf-8"))
    document.pop("proof", None)  # the example carries one; sign the unsecured document
    document["attributedTo"] = actor
    signed = sign_document(document, key, created=NOW)
    if verify_document(signed, info).verdict is not ProofVerdict.OK:
        raise RuntimeError("the benchmark's own proof does not verify")
    hash_data = b"h" * 64
    raw_signature = private.sign(hash_data)
    public = private.public_key()
    sign_ours = _rate(lambda: sign_document(document, key, created=NOW), seconds)
    sign_raw = _rate(lambda: private.sign(hash_data), seconds)
    verify_ours = _rate(lambda: verify_document(signed, info), seconds)
    verify_raw = _rate(lambda: public.verify(raw_signature, hash_data), seconds)
    return [
        Row("proof sign", "practice.json", 1e6 / sign_ours, sign_ours, sign_raw, sign_raw / sign_ours),
        Row("proof verify", "practice.json", 1e6 / verify_ours, verify_ours, verify_raw,
            verify_raw / verify_ours),
    ]


def run(repeats: int = 30, seconds: float = 1.0) -> list[Row]:
    return validation_rows(repeats) + proof_rows(seconds)


def main() -> None:
    from bench import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.validation")
    parser.add_argument("--quick", action="store_true", help="5 repeats, 0.2 s per rate")
    args = parser.parse_args()
    print(format_table(run(5, 0.2) if args.quick else run()))


if __name__ == "__main__":
    main()
