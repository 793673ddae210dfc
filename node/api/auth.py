"""Bearer-token authentication for ``/api/`` (except the OpenAPI document)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from node import appkeys
from node.api.problems import Problem, ProblemError, problem_response
from node.storage.tokens import TokenCheck, TokenStatus, check_token

log = logging.getLogger("praxisnetz.api")
API_PREFIX = "/api/"
PUBLIC_API_PATHS = frozenset({"/api/openapi.json"})
TOKEN = web.RequestKey("api_token", TokenCheck)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _unauthorised(detail: str) -> ProblemError:
    return ProblemError(
        Problem(401, "unauthorised", "Unauthorized", detail),
        headers={"WWW-Authenticate": 'Bearer realm="praxisnetz"'},
    )


async def _authenticate(request: web.Request) -> TokenCheck:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised("Authorization: send 'Authorization: Bearer <token>'")
    if not token.isascii():
        # issued tokens are ASCII; undecodable header bytes arrive as surrogates
        raise _unauthorised("Authorization: unknown token")
    async with request.app[appkeys.SESSION_MAKER]() as session:
        check = await check_token(session, token.strip())
    if check.status is TokenStatus.REVOKED:
        raise ProblemError(
            Problem(403, "token-revoked", "Forbidden", "Authorization: the token was revoked")
        )
    if check.status is not TokenStatus.VALID:
        raise _unauthorised("Authorization: unknown token")
    return check


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate API calls and render every API error as problem+json."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        if request.path not in PUBLIC_API_PATHS:
            request[TOKEN] = await _authenticate(request)
        return await handler(request)
    except ProblemError as error:
        return problem_response(error.problem, request.path, error.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = exc.reason.lower().replace(" ", "-")
        return problem_response(
            Problem(exc.status, kind, exc.reason, exc.text or exc.reason), request.path
        )
    except Exception:  # noqa: BLE001 - logged with its traceback; the client gets a problem
        log.exception("api request failed", extra={"path": request.path})
        problem = Problem(
            500, "internal-error", "Internal Server Error", "the request failed; see the node's log"
        )
        return problem_response(problem, request.path)
