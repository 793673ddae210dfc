"""The server-rendered web interface: public pages and the staff area (German first).

``add_routes(app)`` is the one call ``node.app.create_app`` makes: it sets up the
templates (read when the first page is rendered, ``node.web.render``), the session/CSRF
middleware, the stylesheet and every web route.
"""

from __future__ import annotations

from aiohttp import web

from node import appkeys
from node.web import editor, public, social, staff, uploads
from node.web.render import STATIC_DIR, setup_templates
from node.web.session import web_middleware

STYLESHEET = "praxisnetz.css"


async def stylesheet(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / STYLESHEET,
        headers={"Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=3600"},
    )


def add_routes(app: web.Application) -> None:
    setup_templates(app)
    app.middlewares.append(web_middleware)
    app.router.add_get(f"/static/{STYLESHEET}", stylesheet)
    public.add_routes(app)
    staff.add_routes(app)
    editor.add_routes(app)
    uploads.add_routes(app)
    social.add_routes(app)
    if app[appkeys.CONFIG].is_hub:
        # why lazy: the hub's pages import the hub (index, RDF store); a node never needs them
        from node.web import hub_editor, hub_public

        hub_public.add_routes(app)
        hub_editor.add_routes(app)
