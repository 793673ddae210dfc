"""Material upload: a file stored under its content hash in ``DATA_DIR/files``, published
as a material whose ``url`` is the node's download address for it.

The body is read as a stream (the CSRF middleware has read the first part), so the
size limit holds however large the request is. Only the types ``/files/`` serves are
accepted, and a PDF or ODT must start like one; text must be UTF-8.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from node import appkeys
from node.api.common import author_for, wake_delivery
from node.authoring import AuthoringError, create_contribution
from node.contribution_input import ContributionInputError, FieldProblem
from node.routes.files import FILES_FOLDER, MEDIA_TYPES
from node.storage.models import ContributionKind
from node.web.editor import form_options
from node.web.forms import FormState, attach_problems, check_form
from node.web.render import language_of, page
from node.web.session import MULTIPART, translator

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
CHUNK = 64 * 1024
UPLOAD_FIELDS = ("slug", "title", "summary", "about", "license", "language")
SIGNATURES = {".pdf": b"%PDF-", ".odt": b"PK\x03\x04"}
TEXT_SUFFIXES = frozenset({".txt", ".md", ".csv"})


class UploadError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(f"file: {message}")
        self.message = message


@dataclass(frozen=True)
class StoredFile:
    name: str  # sha256 hex + suffix
    media_type: str
    size: int
    path: Path
    is_new: bool  # False when the same content was stored before


def _suffix(filename: str | None) -> str:
    name = (filename or "").lower()
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in MEDIA_TYPES:
        raise UploadError(f"allowed types: {', '.join(sorted(MEDIA_TYPES))}")
    return suffix


async def _stream_to(part: BodyPartReader, target: Path, suffix: str) -> tuple[str, int]:
    """Write the part to ``target``, hashing and checking it; returns (sha256, size)."""
    digest, size, first = hashlib.sha256(), 0, b""
    decoder = codecs.getincrementaldecoder("utf-8")() if suffix in TEXT_SUFFIXES else None
    with target.open("wb") as out:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise UploadError(f"at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
            if len(first) < 8:
                first += chunk[:8]
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise UploadError("a text file must be UTF-8") from exc
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise UploadError("the file is empty")
    if suffix in SIGNATURES and not first.startswith(SIGNATURES[suffix]):
        raise UploadError(f"the content is not a {suffix} file")
    return digest.hexdigest(), size


async def store_upload(part: BodyPartReader, folder: Path) -> StoredFile:
    """Store one uploaded file under its content hash (the same file is stored once)."""
    suffix = _suffix(part.filename)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".upload-{secrets.token_hex(8)}"  # dot files are never served
    try:
        sha, size = await _stream_to(part, temporary, suffix)
        target = folder / f"{sha}{suffix}"
        is_new = not target.exists()
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return StoredFile(target.name, MEDIA_TYPES[suffix].split(";")[0], size, target, is_new)


def _upload_page(request: web.Request, state: FormState, status: int = 200) -> web.Response:
    t = translator(request)
    help_text = t(
        "form.file_help",
        types=", ".join(sorted(MEDIA_TYPES)), size=MAX_UPLOAD_BYTES // (1024 * 1024),
    )  # fmt: skip
    context = {"form": state, "file_help": help_text, **form_options(request, t)}
    return page(request, "upload.html.j2", context, status=status)


async def upload_form(request: web.Request) -> web.Response:
    state = FormState(ContributionKind.MATERIAL, {"language": language_of(request).value})
    return _upload_page(request, state)


async def _read_parts(request: web.Request, state: FormState) -> StoredFile | None:
    reader = request[MULTIPART]
    stored: StoredFile | None = None
    folder = request.app[appkeys.CONFIG].data_dir / FILES_FOLDER
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file" and part.filename:
            try:
                stored = await store_upload(part, folder)
            except UploadError as exc:
                state.errors["file"] = exc.message
                await part.release()
        elif part.name == "topics":
            topic = (await part.read(decode=True))[:200].decode("utf-8", "replace")
            state.values["topics"] = [*state.chosen("topics"), topic]
        elif part.name in UPLOAD_FIELDS:
            state.values[part.name] = (await part.read(decode=True))[:MAX_FIELD_BYTES].decode(
                "utf-8", "replace"
            )
        else:
            await part.release()
    return stored


async def upload_submit(request: web.Request) -> web.Response:
    if MULTIPART not in request:
        raise web.HTTPBadRequest(text="file: send the form as multipart/form-data\n")
    state = FormState(ContributionKind.MATERIAL)
    stored = await _read_parts(request, state)
    response = await _publish_upload(request, state, stored)
    if response.status >= 400 and stored is not None and stored.is_new:
        stored.path.unlink(missing_ok=True)  # nothing refers to a file of a refused upload
    return response


async def _publish_upload(
    request: web.Request, state: FormState, stored: StoredFile | None
) -> web.Response:
    if stored is None and "file" not in state.errors:
        state.errors["file"] = "is required"
    if stored is not None:
        config = request.app[appkeys.CONFIG]
        state.values["url"] = f"{config.base_url}/files/{stored.name}"
        state.values["media_type"] = stored.media_type
    inp = check_form(state, author_for(request.app).known_topics or frozenset())
    for name in ("url", "media_type"):  # derived from the file: show their problems there
        if name in state.errors:
            state.errors.setdefault("file", state.errors.pop(name))
    if inp is None or state.errors:
        return _upload_page(request, state, status=422)
    try:
        async with request.app[appkeys.SESSION_MAKER].begin() as session:
            result = await create_contribution(session, author_for(request.app), inp)
    except ContributionInputError as exc:
        attach_problems(state, exc.problems)
        return _upload_page(request, state, status=422)
    except AuthoringError as exc:
        attach_problems(state, [FieldProblem(exc.field, exc.message)])
        return _upload_page(request, state, status=422)
    if result.deliveries:
        wake_delivery(request.app)
    return web.Response(status=303, headers={"Location": "/dashboard?done=saved"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/upload", upload_form, name="web.staff.upload_form")
    app.router.add_post("/dashboard/upload", upload_submit, name="web.staff.upload")
