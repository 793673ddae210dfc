"""Helpers shared by the API handlers: reading JSON bodies, the author, waking workers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from federation.strict_json import finite_float, not_a_json_constant
from node import appkeys
from node.api.problems import field_error
from node.authoring import Author
from node.validation import document_problems, known_topic_slugs

MAX_JSON_BODY = 512 * 1024


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a problem naming ``body``."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise field_error("body", f"at most {MAX_JSON_BODY} bytes", status=413)
    raw = await request.read()
    if len(raw) > MAX_JSON_BODY:
        raise field_error("body", f"at most {MAX_JSON_BODY} bytes", status=413)
    try:
        # NaN, Infinity and numbers beyond a double are refused, as in remote JSON: they
        # would be published as ``Infinity``, which is not JSON (federation.strict_json)
        value = json.loads(raw, parse_constant=not_a_json_constant, parse_float=finite_float)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the two hooks
        raise field_error("body", f"not valid JSON: {exc}", status=400) from exc
    except RecursionError:
        # deep "[[[[…" within the size limit exhausts the parser's stack: bad input, not a 500
        raise field_error("body", "nested too deeply", status=400) from None
    if not isinstance(value, dict):
        raise field_error("body", "must be a JSON object", status=400)
    return value


def author_for(app: web.Application) -> Author:
    return Author(
        config=app[appkeys.CONFIG],
        keys=app[appkeys.NODE_KEYS],
        clock=app[appkeys.CLOCK],
        validate=document_problems,
        known_topics=known_topic_slugs(),
    )


def wake_delivery(app: web.Application) -> None:
    """Nudge the delivery worker after a commit that enqueued deliveries."""
    if appkeys.WORKERS in app:
        from node import workers

        workers.wake_delivery(app)
