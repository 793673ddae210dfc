"""The vocabulary served at the node's namespace paths (``/ns`` mirrors w3id.org/praxisnetz).

``/ns/ontology.ttl``, ``/ns/topics.ttl``, ``/ns/shapes.ttl`` and ``/ns/context.jsonld``
are the files as shipped; ``/ns``, ``/ns/topics`` and ``/ns/shapes`` negotiate between
Turtle, JSON-LD (converted with rdflib from the Turtle: these are not signed documents)
and a short HTML page; ``/ns/context`` always gives the JSON-LD context.
"""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

from node.routes.negotiation import Representation, negotiate
from node.routes.responses import html_page, not_acceptable

TURTLE_FILES = {"ontology": "ontology.ttl", "topics": "topics.ttl", "shapes": "shapes.ttl"}
CONTEXT_FILE = "context.jsonld"
OFFERED = (Representation.TURTLE, Representation.JSONLD, Representation.HTML)


def _read(name: str) -> str:
    resource = resources.files("vocab").joinpath(name)
    if not resource.is_file():
        raise web.HTTPNotFound(text=f"{name} is not shipped with this node\n")
    return resource.read_text(encoding="utf-8")


def _turtle(text: str) -> web.Response:
    return web.Response(
        text=text, content_type="text/turtle", charset="utf-8", headers={"Vary": "Accept"}
    )


def _context() -> web.Response:
    return web.Response(
        text=_read(CONTEXT_FILE),
        content_type="application/ld+json",
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def vocabulary_file(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name == CONTEXT_FILE:
        return _context()
    if name not in TURTLE_FILES.values():
        raise web.HTTPNotFound(text="no such vocabulary file\n")
    return _turtle(_read(name))


async def vocabulary_document(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "ontology")
    if name == "context":
        return _context()
    if name not in TURTLE_FILES:
        raise web.HTTPNotFound(text="no such vocabulary document\n")
    wanted = negotiate(request.headers.get("Accept"), OFFERED)
    if wanted is None or wanted is Representation.ACTIVITY_JSON:
        return not_acceptable(OFFERED)
    text = _read(TURTLE_FILES[name])
    if wanted is Representation.TURTLE:
        return _turtle(text)
    if wanted is Representation.HTML:
        body = (
            f'<p>Praxisnetz vocabulary: <a href="/ns/{TURTLE_FILES[name]}">{TURTLE_FILES[name]}</a>'
            f' · <a href="/ns/context.jsonld">context.jsonld</a></p>\n<pre>{html.escape(text)}</pre>'
        )
        return html_page(f"Praxisnetz {name}", body, lang="en")
    import rdflib  # why lazy: ~0.1 s of imports, only for this JSON-LD conversion

    graph = rdflib.Graph().parse(data=text, format="turtle")
    return web.Response(
        text=graph.serialize(format="json-ld"),
        content_type="application/ld+json",
        headers={"Vary": "Accept"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ns", vocabulary_document)
    app.router.add_get("/ns/{file:[a-z]+\\.(?:ttl|jsonld)}", vocabulary_file)
    app.router.add_get("/ns/{name:[a-z]+}", vocabulary_document)
