"""Helpers for the web interface tests: a node with a staff account, signing in, form tokens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from node import appkeys
from node.app import create_app
from node.storage.users import add_user
from tests.node_support import MovableClock, make_node

USERNAME = "anna.schmidt"
PASSWORD = "korrekt-pferd-batterie"
CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_app(tmp_path: Path, *, base_url: str = "http://guetersloh.example", **changes: Any):
    config = make_node(tmp_path, base_url=base_url, **changes)
    return create_app(config, clock=MovableClock(), start_workers=False)


async def add_staff(app: web.Application, username: str = USERNAME, password: str = PASSWORD):
    async with app[appkeys.SESSION_MAKER].begin() as session:
        await add_user(session, username, password, now=app[appkeys.CLOCK]())


def csrf_of(page: str) -> str:
    match = CSRF_PATTERN.search(page)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


async def form_token(client: TestClient, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


async def sign_in(
    client: TestClient, username: str = USERNAME, password: str = PASSWORD,
    *, headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Post the sign-in form; returns (status, page text after redirects)."""
    token = await form_token(client, "/signin")
    response = await client.post(
        "/signin",
        data={"csrf_token": token, "username": username, "password": password, "next": ""},
        headers=headers,
    )
    return response.status, await response.text()


def practice_form(token: str, **changes: str) -> dict[str, str]:
    values = {
        "csrf_token": token,
        "kind": "practice",
        "title": "E-Akte im Bauamt",
        "slug": "e-akte-bauamt",
        "summary": "Wie wir die E-Akte eingeführt haben.",
        "body": "Wir haben die **Bauakten** umgestellt.",
        "topics": "e-akte",
        "status": "in-operation",
        "steps": "Ist-Prozesse aufnehmen\nPilot starten",
        "effort": "zwei Personen, ein Jahr",
        "duration": "P1Y",
        "language": "de",
        "action": "publish",
    }
    values.update(changes)
    return values
