"""RFC 9457 problem details: every API error is ``application/problem+json`` naming the field."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from node.contribution_input import FieldProblem

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:praxisnetz:problem:"


@dataclass(frozen=True)
class Problem:
    status: int
    kind: str  # last part of the problem type URI
    title: str
    detail: str
    errors: tuple[FieldProblem, ...] = ()


class ProblemError(Exception):
    """Raised by API handlers; the middleware turns it into a problem+json response."""

    def __init__(self, problem: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.headers = headers or {}


def invalid_fields(problems: Sequence[FieldProblem], status: int = 422) -> ProblemError:
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
    return ProblemError(Problem(status, "invalid-input", "Invalid input", detail, tuple(problems)))


def field_error(field: str, message: str, status: int = 422) -> ProblemError:
    kind = {404: "not-found", 409: "conflict", 410: "gone"}.get(status, "invalid-input")
    title = {404: "Not found", 409: "Conflict", 410: "Gone"}.get(status, "Invalid input")
    return ProblemError(
        Problem(status, kind, title, f"{field}: {message}", (FieldProblem(field, message),))
    )


def problem_response(
    problem: Problem, instance: str, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    }
    if problem.errors:
        body["field"] = problem.errors[0].field
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    return web.Response(
        status=problem.status,
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": PROBLEM_CONTENT_TYPE, **(headers or {})},
    )
