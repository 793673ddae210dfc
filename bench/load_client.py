"""The separate load process of the benchmarks (``python -m bench.load_client ROLE ...``).

Roles:

- ``sink``: a trivial aiohttp server on 127.0.0.1 that answers every POST with 202 and
  counts them (``GET /count``). It is the bare-aiohttp baseline of ``bench.inbox_ingest``
  and the followers' inboxes of ``bench.fanout`` (it does not verify signatures).
- ``ingest``: serves many actor documents on one loopback port, signs one Create per
  activity in advance (draft-cavage and RFC 9421 alternately, each actor its own key id),
  then posts them in rounds, each a baseline phase and then a node phase, and prints the
  rates of every round as JSON. Between rounds it waits for a line on stdin: the parent
  lets the node finish processing first, so no phase competes with the last one's work.

Everything binds to 127.0.0.1 only. The parent benchmark starts and stops this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from federation.httpsig import RequestParts, SignatureScheme, sign_request
from federation.keys import SigningKey, generate_rsa_key, public_key_pem

ACTIVITY_JSON = "application/activity+json"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
COUNT = web.AppKey("count", list)
# Lines on stdout before and after the posts to the node (the result is the last line).
PHASE_NODE = "phase: posting to the node"
PHASE_END = "phase: posted to the node"
# Printed after every round but the last; the next round starts when stdin gives a line.
PHASE_WAIT = "phase: round done, waiting for the next"
SINK_READY = "sink: listening"  # a sink sharing its port tells the first one


@dataclass(frozen=True)
class PreparedPost:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class IngestResult:
    activities: int  # per round, to each side
    actors: int
    baseline_rounds: list[float]  # posts/s of each round's phase, in order
    node_rounds: list[float]
    node_accepted: int
    node_refused: dict[str, int]
    # this process's CPU time per post in each phase: what the load itself costs
    client_cpu_ms_baseline: float = 0.0
    client_cpu_ms_node: float = 0.0


# --- sink ----------------------------------------------------------------------------


def sink_app() -> web.Application:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        request.app[COUNT][0] += 1
        return web.Response(status=202)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"posts": request.app[COUNT][0]})

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[COUNT] = [0]
    app.router.add_get("/count", count)
    app.router.add_post("/{tail:.*}", accept)
    return app


def run_sink(port: int, processes: int = 1) -> None:
    """Serve the sink; with ``processes`` > 1, that many processes on the one port
    (SO_REUSEPORT, the kernel spreads the connections), as a multi-process node's
    acceptors share theirs: this process and ``processes - 1`` children it starts and
    stops."""
    helpers = [subprocess.Popen([sys.executable, "-m", "bench.load_client", "sink",
                                 "--port", str(port), "--reuse-port"],
                                stdout=subprocess.PIPE, text=True)
               for _ in range(processes - 1)]
    try:
        # this process answers last, so an answer means every process listens (the load
        # client's keep-alive connections would otherwise all go to the first one)
        for helper in helpers:
            assert helper.stdout is not None
            helper.stdout.readline()
        web.run_app(sink_app(), host="127.0.0.1", port=port, access_log=None, print=None,
                    reuse_port=processes > 1 or None)
    finally:
        for helper in helpers:
            helper.terminate()
        for helper in helpers:
            helper.wait(timeout=10)


# --- ingest --------------------------------------------------------------------------


def _actor_document(base: str, number: int, key: SigningKey) -> dict[str, object]:
    actor = f"{base}/users/{number}"
    document: dict[str, object] = {
        "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
        "id": actor, "type": "Organization", "preferredUsername": f"u{number}",
        "inbox": f"{actor}/inbox", "outbox": f"{actor}/outbox",
    }
    document["publicKey"] = {"id": key.key_id, "owner": actor,
                             "publicKeyPem": public_key_pem(key.private_key.public_key())}
    return document


def _actor_app(documents: dict[str, bytes]) -> web.Application:
    async def actor(request: web.Request) -> web.Response:
        body = documents.get(request.match_info["number"])
        if body is None:
            raise web.HTTPNotFound
        return web.Response(body=body, content_type=ACTIVITY_JSON)

    app = web.Application()
    app.router.add_get("/users/{number}", actor)
    return app


def _create(actor: str, number: int, inbox_url: str) -> bytes:
    note = f"{actor}/practices/{number}"
    return json.dumps({
        "@context": AS_CONTEXT, "id": f"{note}/create", "type": "Create", "actor": actor,
        "to": [inbox_url.rsplit("/inbox", 1)[0]],
        "object": {"id": note, "type": "Article", "attributedTo": actor,
                   "name": f"Praxis {number}", "content": "Wir haben die Bauakten umgestellt. " * 8},
    }).encode()


def prepare_posts(keys: list[SigningKey], activities: int, inbox_url: str) -> list[PreparedPost]:
    """Signed Creates, cavage and RFC 9421 alternately, round robin over the actors."""
    posts = []
    now = datetime.now(UTC)
    for number in range(activities):
        key = keys[number % len(keys)]
        actor = key.key_id.split("#", 1)[0]
        body = _create(actor, number, inbox_url)
        scheme = SignatureScheme.CAVAGE if number % 2 == 0 else SignatureScheme.RFC9421
        request = RequestParts("POST", inbox_url, {"Content-Type": ACTIVITY_JSON}, body)
        headers = dict(sign_request(request, key, scheme, now=now))
        headers["Content-Type"] = ACTIVITY_JSON
        headers.pop("Host", None)  # aiohttp sets it from the URL (the same value)
        posts.append(PreparedPost(body, headers))
    return posts


async def post_all(url: str, posts: list[PreparedPost], concurrency: int
                   ) -> tuple[float, dict[int, int]]:
    """Posts every prepared request with ``concurrency`` in flight; rate and statuses."""
    statuses: dict[int, int] = {}
    queue = iter(posts)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            for post in queue:
                async with session.post(url, data=post.body, headers=post.headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(posts) / (time.perf_counter() - started), statuses


async def run_ingest(args: argparse.Namespace) -> IngestResult:
    base = f"http://127.0.0.1:{args.actor_port}"
    pool = [generate_rsa_key() for _ in range(min(args.keys, args.actors))]
    keys = [SigningKey(f"{base}/users/{n}#main-key", pool[n % len(pool)])
            for n in range(args.actors)]
    documents = {str(n): json.dumps(_actor_document(base, n, key)).encode()
                 for n, key in enumerate(keys)}
    runner = web.AppRunner(_actor_app(documents), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.actor_port).start()
    try:
        # the sink does not care about repeats; the node gets new activities every round
        baseline_posts = prepare_posts(keys, args.activities, args.baseline)
        node_posts = prepare_posts(keys, args.activities * args.rounds, args.target)
        return await _post_rounds(args, baseline_posts, node_posts)
    finally:
        await runner.cleanup()


async def _post_rounds(args: argparse.Namespace, baseline_posts: list[PreparedPost],
                       node_posts: list[PreparedPost]) -> IngestResult:
    loop = asyncio.get_running_loop()
    baseline_rates: list[float] = []
    node_rates: list[float] = []
    statuses: dict[int, int] = {}
    cpu_baseline = cpu_node = 0.0
    for number in range(args.rounds):
        if number:
            print(PHASE_WAIT, flush=True)
            # off the loop: the node may still fetch actor documents from this process
            await loop.run_in_executor(None, sys.stdin.readline)
        cpu_started = time.process_time()
        rate, _ = await post_all(args.baseline, baseline_posts, args.concurrency)
        baseline_rates.append(rate)
        cpu_between = time.process_time()
        print(PHASE_NODE, flush=True)  # the parent reads the node's CPU time now ...
        part = node_posts[number * args.activities:(number + 1) * args.activities]
        rate, round_statuses = await post_all(args.target, part, args.concurrency)
        print(PHASE_END, flush=True)  # ... and now
        node_rates.append(rate)
        cpu_baseline += cpu_between - cpu_started
        cpu_node += time.process_time() - cpu_between
        for status, count in round_statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    refused = {str(status): n for status, n in statuses.items() if status != 202}
    per_post_ms = 1000.0 / (args.activities * args.rounds)
    return IngestResult(args.activities, args.actors, baseline_rates, node_rates,
                        statuses.get(202, 0), refused, cpu_baseline * per_post_ms,
                        cpu_node * per_post_ms)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load_client")
    roles = parser.add_subparsers(dest="role", required=True)
    sink = roles.add_parser("sink", help="trivial POST server (202) on 127.0.0.1")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--processes", type=int, default=1,
                      help="processes serving the port (SO_REUSEPORT)")
    sink.add_argument("--reuse-port", action="store_true",
                      help="one of several processes on the port (started by --processes)")
    ingest = roles.add_parser("ingest", help="sign and post Creates from many actors")
    ingest.add_argument("--target", required=True, help="the node's inbox URL")
    ingest.add_argument("--baseline", required=True, help="a sink's URL")
    ingest.add_argument("--actor-port", type=int, required=True)
    ingest.add_argument("--actors", type=int, default=100)
    ingest.add_argument("--keys", type=int, default=20, help="distinct RSA keys among the actors")
    ingest.add_argument("--activities", type=int, default=2000)
    ingest.add_argument("--concurrency", type=int, default=32)
    ingest.add_argument("--rounds", type=int, default=1,
                        help="baseline and node phases, alternately, --activities each")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "sink":
        if args.reuse_port:
            web.run_app(sink_app(), host="127.0.0.1", port=args.port, access_log=None,
                        print=lambda _line: print(SINK_READY, flush=True), reuse_port=True)
        else:
            run_sink(args.port, args.processes)
        return 0
    result = asyncio.run(run_ingest(args))
    print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
