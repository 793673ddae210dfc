"""The inbox door's own CPU per request, part by part, in one process (no sockets).

The parts the inbox runs for a signed Create besides aiohttp's or the kernel's work, each
timed on its own over the same prepared requests (draft-cavage and RFC 9421 alternately,
RSA-2048, as ``bench.load_client`` signs them): the door's framing of the head
(``node.inbox_http.parse_head``), then what ``node.inbox.receive`` runs before it hands the
row to the writer: the rate check,
``signed_parts``, the scheme check, ``parse_body``, ``check_signature`` (``verify_request``
as the inbox calls it, the key from memory: no fetch) with the RSA verification itself
shown apart, the origin check, the access log line (to a discarded stream, as
``configure_logging`` sets the handler up), and the 202's bytes. The collector's full passes are kept off the
prepared requests (frozen, as the node freezes what start-up made). "ours" is the sum without RSA: what our code
costs per request on top of aiohttp's machinery and the cryptography primitive.
Run: ``python -m bench inbox_door`` (or ``python -m bench.inbox_door [--requests N]``).
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bench.load_client import ACTIVITY_JSON, prepare_posts
from federation import httpsig_cavage, httpsig_rfc9421
from federation.httpsig import (
    KeyLookup,
    KeyResolver,
    RequestParts,
    SignatureScheme,
    detect_scheme,
)
from federation.httpsig_common import SignatureAlgorithm, signature_matches
from federation.keys import PublicKeyInfo, SigningKey, generate_rsa_key
from node import appkeys
from node.client_address import trusted_proxies
from node.config import InboxTuning, NodeConfig
from node.inbox import (
    INBOX_RATE_LIMITER,
    InboxRateLimiter,
    check_rate,
    check_signature,
    origin_problem,
    parse_body,
    signed_parts,
)
from node.inbox_http import encode_response, parse_head
from node.logs import AccessLogger, KeyValueFormatter, StructuredStreamHandler

NODE_BASE = "http://127.0.0.1:8080"
SENDERS = "http://127.0.0.1:9999"
ROUNDS = 5  # each part is timed this many times over all requests; the fastest counts


@dataclass(frozen=True)
class Row:
    part: str
    us_per_request: float
    share_of_ours_pct: float


def _config() -> NodeConfig:
    # Budgets no benchmark reaches: every request passes the buckets.
    return NodeConfig(data_dir=Path("/nonexistent"), base_url=NODE_BASE, name="Bench",
                      slug="bench", inbox=InboxTuning(requests_per_host_per_minute=10**9,
                                                      requests_per_ip_per_minute=10**9))


def _requests(count: int, keys: list[SigningKey], resolve: KeyResolver | None = None
              ) -> list[tuple[web.Request, bytes]]:
    """Mocked requests on an app with what the door reads from it (``resolve`` as the
    key cache; the clock is the signing time's)."""
    posts = prepare_posts(keys, count, f"{NODE_BASE}/actor/inbox")
    app = web.Application()
    app[INBOX_RATE_LIMITER] = InboxRateLimiter(_config().inbox)
    app[appkeys.CONFIG] = _config()
    now = datetime.now(UTC)
    app[appkeys.CLOCK] = lambda: now
    if resolve is not None:
        app[appkeys.KEY_CACHE] = resolve  # type: ignore[assignment]  # a resolver is enough
    transport = mock.Mock()
    transport.get_extra_info.return_value = ("127.0.0.1", 40000)  # as bench.inbox_ingest
    made = []
    for post in posts:
        headers = {**post.headers, "Host": "127.0.0.1:8080",
                   "Content-Length": str(len(post.body)), "Content-Type": ACTIVITY_JSON}
        made.append((make_mocked_request("POST", "/actor/inbox", headers=headers,
                                         app=app, transport=transport), post.body))
    return made


def _cpu_us(step: Callable[[int], object], count: int) -> float:
    """The fastest of ROUNDS passes over all requests, in CPU µs per request."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.thread_time()
        for index in range(count):
            step(index)
        best = min(best, time.thread_time() - started)
    return best * 1e6 / count


def _access_logger() -> Callable[[web.Request], None]:
    logger = logging.getLogger("praxisnetz.bench.inbox_door")
    logger.propagate = False
    handler = StructuredStreamHandler(io.StringIO())  # as configure_logging sets it up
    handler.setFormatter(KeyValueFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    access = AccessLogger(logger, "")
    response = web.Response(status=202)

    def write(request: web.Request) -> None:
        access.log(request, response, 0.0012)
        handler.stream.seek(0)  # keep the discarded stream small
        handler.stream.truncate()

    return write


def run(requests: int = 2000, keys: int = 20) -> list[Row]:
    pool = [generate_rsa_key() for _ in range(keys)]
    signing = [SigningKey(f"{SENDERS}/users/{n}#main-key", pool[n % keys]) for n in range(100)]
    lookups = {key.key_id: KeyLookup(PublicKeyInfo(key.key_id, key.key_id.split("#")[0],
                                                    key.private_key.public_key()))
               for key in signing}

    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return lookups[key_id]

    config = _config()
    trusted = trusted_proxies(config.server.trusted_proxies)
    made = _requests(requests, signing, resolve)
    bodies = [body for _, body in made]
    parts = [signed_parts(request, config, body) for request, body in made]
    activities = [parse_body(body).activity for body in bodies]

    def verify(index: int) -> None:
        # as receive() checks it; InboxRejected (a refusal) would end the benchmark
        coroutine = check_signature(made[index][0], parts[index], activities[index].actor)
        try:
            coroutine.send(None)  # resolve() never suspends: the coroutine ends here
        except StopIteration:
            pass

    key_of = [lookups[activities[i].actor + "#main-key"] for i in range(requests)]
    signatures = [_rsa_inputs(part) for part in parts]

    def rsa(index: int) -> None:
        signature, base = signatures[index]
        signature_matches(key_of[index].key.public_key,  # type: ignore[union-attr]
                          SignatureAlgorithm.RSA_V1_5_SHA256, signature, base)

    log_line = _access_logger()
    heads = [_raw_head(request) for request, _ in made]
    accepted = web.Response(status=202)
    steps: dict[str, Callable[[int], object]] = {
        "parse_head (the door's framing)": lambda i: parse_head(heads[i], config.inbox.max_body_bytes),
        "check_rate": lambda i: check_rate(made[i][0], trusted),
        "signed_parts": lambda i: signed_parts(made[i][0], config, bodies[i]),
        "detect_scheme": lambda i: detect_scheme(parts[i]),
        "parse_body": lambda i: parse_body(bodies[i]),
        "check_signature (with RSA)": verify,
        "origin_problem": lambda i: origin_problem(activities[i]),
        "access log line": lambda i: log_line(made[i][0]),
        "encode_response (the 202)": lambda i: encode_response(accepted, close=False),
    }
    timed, rsa_us = _timed(steps, rsa, requests)
    timed["check_signature (with RSA)"] -= rsa_us
    timed = {name.replace(" (with RSA)", " without RSA"): us for name, us in timed.items()}
    ours = sum(timed.values())
    rows = [Row(name, round(us, 2), round(100 * us / ours, 1)) for name, us in timed.items()]
    rows.append(Row("ours (sum of the above)", round(ours, 2), 100.0))
    rows.append(Row("RSA-2048 verify (cryptography, apart)", round(rsa_us, 2), 0.0))
    return rows


def _timed(steps: dict[str, Callable[[int], object]], rsa: Callable[[int], object],
           requests: int) -> tuple[dict[str, float], float]:
    """CPU µs per request of each step, and of the RSA verification alone."""
    # What was made so far stays (as the node freezes what start-up made): the collector's
    # full passes over the prepared requests would be charged to whichever part runs.
    gc.collect()
    gc.freeze()
    try:
        return ({name: _cpu_us(step, requests) for name, step in steps.items()},
                _cpu_us(rsa, requests))
    finally:
        gc.unfreeze()


def _raw_head(request: web.Request) -> bytes:
    """The head as it arrives, up to the CRLF of its last field (what ``parse_head`` reads)."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    return f"POST {request.path} HTTP/1.1\r\n{fields}".encode("ascii")


def _rsa_inputs(part: RequestParts) -> tuple[bytes, bytes]:
    """The signature and the bytes it signs, as the verification hands them to RSA."""
    if detect_scheme(part) is SignatureScheme.CAVAGE:
        parsed = httpsig_cavage.parse_request(part)
    else:
        parsed = httpsig_rfc9421.parse_request(part)
    return parsed.signature, parsed.signature_base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox_door")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    from bench import format_table

    print(format_table(run(requests=args.requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
