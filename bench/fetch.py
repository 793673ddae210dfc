"""Safe fetcher overhead: GETs and POSTs per second through ``SafeFetcher`` next to a bare
``aiohttp`` session, against a loopback server in the same process; key cache hits.

The fetcher adds name resolution (an in-process table here, so DNS time is left out),
the address check, header building, media type and id checks and JSON parsing.
Run: ``python -m bench fetch`` (or ``python -m bench.fetch``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

from aiohttp import web

from federation.fetch import AP_MEDIA_TYPE, AddressPolicy, SafeFetcher, make_client_session
from federation.keycache import KeyCache
from federation.keys import generate_ed25519_key, public_key_pem

HOST = "bench.test"
CONCURRENCY = 16
ROUNDS = 5


@dataclass(frozen=True)
class Row:
    operation: str
    how: str
    per_second: float
    overhead_percent: float


def _app() -> web.Application:
    async def actor(request: web.Request) -> web.Response:
        body = {"id": f"http://{request.host}/actor", "type": "Organization", "name": "x" * 800}
        return web.Response(body=json.dumps(body).encode(), content_type=AP_MEDIA_TYPE)

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_get("/actor", actor)
    app.router.add_post("/inbox", inbox)
    return app


async def _rate(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Calls per second with CONCURRENCY calls in flight."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _resolve(host: str, port: int) -> list[IPv4Address | IPv6Address]:
    return [ip_address("127.0.0.1")]


async def _measure(seconds: float) -> list[Row]:
    runner = web.AppRunner(_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 -- the port we were given
    raw_url, url = f"http://127.0.0.1:{port}", f"http://{HOST}:{port}"
    body = b'{"type": "Create"}' * 50
    try:
        async with make_client_session(limit_per_host=CONCURRENCY) as session:
            fetcher = SafeFetcher(
                session, AddressPolicy(allowed_hosts=frozenset({HOST})), resolve=_resolve
            )

            async def raw_get() -> object:
                async with session.get(f"{raw_url}/actor") as response:
                    return await response.json(content_type=None)

            async def raw_post() -> object:
                async with session.post(f"{raw_url}/inbox", data=body) as response:
                    return await response.read()

            rows = []
            for operation, raw, ours in (
                ("GET actor", raw_get, lambda: fetcher.get_document(f"{url}/actor")),
                ("POST inbox", raw_post, lambda: fetcher.post(f"{url}/inbox", body, {})),
            ):
                bare, safe = 0.0, 0.0
                for _ in range(ROUNDS):  # interleaved, best of each: the machine is shared
                    bare = max(bare, await _rate(raw, seconds / ROUNDS))
                    safe = max(safe, await _rate(ours, seconds / ROUNDS))
                rows.append(Row(operation, "aiohttp session", bare, 0.0))
                rows.append(Row(operation, "SafeFetcher", safe, (bare / safe - 1) * 100))
            rows.append(await _key_cache_row(seconds))
            return rows
    finally:
        await runner.cleanup()


async def _key_cache_row(seconds: float) -> Row:
    actor = "https://a.example/actor"
    document = {
        "id": actor,
        "publicKey": {
            "id": f"{actor}#k",
            "owner": actor,
            "publicKeyPem": public_key_pem(generate_ed25519_key().public_key()),
        },
    }

    async def source(url: str) -> dict[str, object]:
        return document

    cache = KeyCache(source, clock=lambda: datetime.now(UTC))
    await cache(f"{actor}#k")
    return Row("key cache hit", "KeyCache", await _rate(lambda: cache(f"{actor}#k"), seconds), 0.0)


def run(seconds: float = 2.0) -> list[Row]:
    return asyncio.run(_measure(seconds))


if __name__ == "__main__":
    from bench import format_table

    print(format_table(run()))
