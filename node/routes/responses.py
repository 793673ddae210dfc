"""Small response helpers shared by the public routes."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from node.routes.negotiation import Representation

ACTIVITY_JSON = Representation.ACTIVITY_JSON.value


def json_document(
    document: Mapping[str, Any],
    content_type: str = ACTIVITY_JSON,
    *,
    status: int = 200,
    vary_accept: bool = True,
) -> web.Response:
    headers = {"Content-Type": content_type, "Access-Control-Allow-Origin": "*"}
    if vary_accept:
        headers["Vary"] = "Accept"
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return web.Response(body=body, status=status, headers=headers)


def not_acceptable(available: Sequence[Representation]) -> web.Response:
    offered = ", ".join(rep.value for rep in available)
    return web.Response(
        status=406,
        text=f"406 Not Acceptable. Available: {offered}\n",
        headers={"Vary": "Accept"},
    )


def html_page(title: str, body_html: str, *, status: int = 200, lang: str = "de") -> web.Response:
    """A plain, valid HTML page; the web UI replaces these with templates."""
    page = (
        f'<!DOCTYPE html>\n<html lang="{html.escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n{body_html}\n</main>\n</body>\n</html>\n"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Vary": "Accept"},
    )
