"""Material files a node offers for download, from ``DATA_DIR/files/``.

Only plain file names are served (no folders, no dot files), so a request can never
reach outside that folder; the media type comes from a short allow-list, and every
file is sent as an attachment so a browser never renders it as a page of this node.
"""

from __future__ import annotations

import re

from aiohttp import web

from node import appkeys

FILES_FOLDER = "files"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
MEDIA_TYPES = {
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".pdf": "application/pdf",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".csv": "text/csv; charset=utf-8",
}


async def download(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if not SAFE_NAME.match(name) or ".." in name or suffix not in MEDIA_TYPES:
        raise web.HTTPNotFound(text="no such file\n")
    folder = (request.app[appkeys.CONFIG].data_dir / FILES_FOLDER).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise web.HTTPNotFound(text="no such file\n")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": MEDIA_TYPES[suffix],
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/files/{name}", download)
