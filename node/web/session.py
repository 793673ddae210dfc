"""Sessions, CSRF and sign-in enforcement for the web interface, as one middleware.

It acts only on routes named ``web.*`` (so the inbox and the API are untouched):
- finds the signed-in staff member from the ``pn_session`` cookie;
- routes named ``web.staff.*`` redirect a signed-out browser to the sign-in page;
- every POST must carry the CSRF token in the form field ``csrf_token``: the
  session's token when signed in, else the ``pn_csrf`` cookie's (double submit,
  set and accepted only by the sign-in routes); multipart forms must send it as
  their first part;
- picks the interface language and remembers ``?lang=`` in a cookie.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import BodyPartReader, MultipartReader, web
from multidict import MultiDictProxy

from node import appkeys
from node.storage.users import IssuedSession, SessionInfo, find_session
from node.web.i18n import LANGUAGE_COOKIE, Language, Translator, choose_language

SESSION_COOKIE = "pn_session"
ANON_CSRF_COOKIE = "pn_csrf"
CSRF_FIELD = "csrf_token"
WEB_ROUTE_PREFIX = "web."
STAFF_ROUTE_PREFIX = "web.staff."
SIGN_IN_ROUTE_PREFIX = "web.signin"
MAX_FORM_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION = web.RequestKey("web_session", SessionInfo)
CSRF_TOKEN = web.RequestKey("web_csrf_token", str)
LANGUAGE = web.RequestKey("web_language", Language)
FORM = web.RequestKey("web_form", MultiDictProxy)  # type: ignore[arg-type]
MULTIPART = web.RequestKey("web_multipart", MultipartReader)


def is_https(request: web.Request) -> bool:
    return request.app[appkeys.CONFIG].base_url.startswith("https://")


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Lax",
        secure=is_https(request),
    )  # fmt: skip


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, issued: IssuedSession
) -> None:
    now = request.app[appkeys.CLOCK]()
    lifetime = int((issued.expires_at - now).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, issued.cookie_value, lifetime)


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def translator(request: web.Request) -> Translator:
    return Translator(request.get(LANGUAGE, Language.DE))


def safe_next(target: str | None) -> str:
    """Only a local path may be the page after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/dashboard"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/dashboard"
    return target


async def _current_session(request: web.Request) -> SessionInfo | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    async with request.app[appkeys.SESSION_MAKER]() as session:
        return await find_session(session, cookie, now=request.app[appkeys.CLOCK]())


async def attach_session(request: web.Request) -> None:
    """For pages served outside ``web.*`` routes: know the signed-in user there too."""
    if SESSION in request:
        return
    info = await _current_session(request)
    if info is not None:
        request[SESSION] = info
        request[CSRF_TOKEN] = info.csrf_token


async def _submitted_token(request: web.Request) -> str | None:
    """The form's CSRF field; a multipart reader is kept for the handler to go on reading."""
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        request[MULTIPART] = reader
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD:
            return None
        return (await part.read(decode=True))[:200].decode("utf-8", "replace")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    form = await request.post()
    request[FORM] = form
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def csrf_matches(expected: str, submitted: str | None) -> bool:
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8"))


def _csrf_refused(request: web.Request) -> web.Response:
    t = translator(request)
    return web.Response(
        status=403, text=t("csrf.refused") + "\n", content_type="text/plain", charset="utf-8"
    )


def _sign_in_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.path_qs if request.method == "GET" else "/dashboard"
    return web.HTTPSeeOther(f"/signin?next={quote(target, safe='')}")


async def _guarded(request: web.Request, handler: Handler, route_name: str) -> web.StreamResponse:
    info = await _current_session(request)
    if info is not None:
        request[SESSION] = info
        request[CSRF_TOKEN] = info.csrf_token
    elif route_name.startswith(SIGN_IN_ROUTE_PREFIX):
        # Only the sign-in form needs a token before there is a session (no cookie elsewhere).
        request[CSRF_TOKEN] = request.cookies.get(ANON_CSRF_COOKIE) or secrets.token_urlsafe(32)
    if route_name.startswith(STAFF_ROUTE_PREFIX) and info is None:
        raise _sign_in_redirect(request)
    if request.method == "POST" and not csrf_matches(
        request.get(CSRF_TOKEN, ""), await _submitted_token(request)
    ):
        return _csrf_refused(request)
    return await handler(request)


def _remember(request: web.Request, response: web.StreamResponse) -> None:
    """Cookies every web response may need: anonymous CSRF and the chosen language."""
    if SESSION not in request and CSRF_TOKEN in request:
        if request.cookies.get(ANON_CSRF_COOKIE) != request[CSRF_TOKEN]:
            set_cookie(request, response, ANON_CSRF_COOKIE, request[CSRF_TOKEN], 12 * 3600)
    if "lang" in request.query and LANGUAGE in request:
        set_cookie(request, response, LANGUAGE_COOKIE, request[LANGUAGE].value, 365 * 86400)


@web.middleware
async def web_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_name = request.match_info.route.name or ""
    if not route_name.startswith(WEB_ROUTE_PREFIX):
        return await handler(request)
    request[LANGUAGE] = choose_language(
        request.query.get("lang"),
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("Accept-Language"),
    )
    try:
        response = await _guarded(request, handler, route_name)
    except web.HTTPException as exc:
        _remember(request, exc)
        raise
    _remember(request, response)
    response.headers.setdefault("Cache-Control", "no-store" if SESSION in request else "no-cache")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
