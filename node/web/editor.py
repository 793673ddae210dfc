"""Create, preview, edit and delete the node's contributions through forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node import appkeys
from node.api.common import author_for, wake_delivery
from node.authoring import (
    DOCUMENT_TO_INPUT_FIELD,
    AuthoringError,
    AuthoringOutcome,
    AuthoringResult,
    build_document,
    create_contribution,
    delete_contribution,
    update_contribution,
)
from node.contribution_input import (
    POSITIONS,
    PRACTICE_STATUSES,
    ContributionInput,
    ContributionInputError,
    FieldProblem,
)
from node.storage.models import Contribution, ContributionKind
from node.web.forms import (
    FormState,
    attach_problems,
    check_form,
    form_values,
    parse_kind,
    values_from_source,
)
from node.web.i18n import Translator
from node.web.public import contribution_context
from node.web.render import language_of, page
from node.web.session import FORM, translator
from node.web.staff import own_contribution
from node.web.views import topic_labels

Operation = Callable[..., Awaitable[AuthoringResult]]
FORM_KINDS = (
    ContributionKind.PRACTICE, ContributionKind.EXPERIENCE, ContributionKind.STANCE,
    ContributionKind.COMMENT, ContributionKind.MATERIAL,
)  # fmt: skip


def form_options(request: web.Request, t: Translator) -> dict[str, Any]:
    language = language_of(request).value
    labels = topic_labels()
    return {
        "status_options": [("", t("form.none"))]
        + [(status, t(f"status.{status}")) for status in PRACTICE_STATUSES],
        "topic_options": sorted(
            ((slug, label.label(language)) for slug, label in labels.items()),
            key=lambda pair: pair[1].lower(),
        ),
        "position_options": [(position, t(f"position.{position}")) for position in POSITIONS],
    }


def _form_page(
    request: web.Request,
    state: FormState,
    *,
    editing: Contribution | None,
    preview: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    t = translator(request)
    if editing is not None:
        heading = t("form.edit", title=editing.title)
        action = f"/dashboard/contributions/{editing.slug}/edit"
    else:
        heading, action = t("form.new", kind=t(f"kind.{state.kind.value}")), "/dashboard/new"
    context = {
        "form": state, "heading": heading, "action": action, "editing": editing is not None,
        "preview": preview, **form_options(request, t),
    }  # fmt: skip
    return page(request, "edit.html.j2", context, status=status)


async def new_form(request: web.Request) -> web.Response:
    kind = parse_kind(request.query.get("kind"))
    if kind is None:
        return page(request, "choose.html.j2", {"kinds": [k.value for k in FORM_KINDS]})
    values: dict[str, str | list[str]] = {"language": language_of(request).value}
    about = request.query.get("about")
    if about and "about" in FormState(kind).fields:
        values["about"] = about[:2048]
    return _form_page(request, FormState(kind, values), editing=None)


def _submitted_state(request: web.Request, kind: ContributionKind) -> FormState:
    return FormState(kind, form_values(kind, request[FORM]))


def _document_problems(request: web.Request, document: dict[str, Any]) -> list[FieldProblem]:
    """The vocabulary's shape checks, in the interface language, named by form field."""
    from vocab.validate import Severity, validate  # why lazy: rdflib + pyld, ~0.3 s at start-up

    language = language_of(request).value
    report = validate(document, document.get("id"))
    return [
        FieldProblem(DOCUMENT_TO_INPUT_FIELD.get(p.field, p.field), p.message(language))
        for p in report.problems
        if p.severity is Severity.VIOLATION
    ]


def _document(
    request: web.Request, inp: ContributionInput, row: Contribution | None
) -> dict[str, Any]:
    """The unsigned document the input would publish (nothing stored, nothing signed)."""
    now = request.app[appkeys.CLOCK]()
    published = row.published if row else now
    return build_document(
        request.app[appkeys.CONFIG], inp, published=published, updated=now if row else None
    )


async def _preview(
    request: web.Request, state: FormState, document: dict[str, Any], row: Contribution | None
) -> web.Response:
    """The page as it will look, above the same form."""
    preview = await contribution_context(request, document)
    return _form_page(request, state, editing=row, preview=preview)


async def _write(
    request: web.Request, state: FormState, operation: Operation, *args: Any
) -> AuthoringResult | None:
    """One authoring operation in its own transaction; problems go onto the form."""
    try:
        async with request.app[appkeys.SESSION_MAKER].begin() as session:
            result = await operation(session, author_for(request.app), *args)
    except ContributionInputError as exc:
        attach_problems(state, exc.problems)
        return None
    except AuthoringError as exc:
        attach_problems(state, [FieldProblem(exc.field, exc.message)])
        return None
    if result.deliveries:
        wake_delivery(request.app)
    return result


def _done(result: AuthoringResult) -> web.HTTPSeeOther:
    done = "unchanged" if result.outcome is AuthoringOutcome.UNCHANGED else "saved"
    return web.HTTPSeeOther(f"/dashboard?done={done}")


async def _submit(request: web.Request, state: FormState, row: Contribution | None) -> web.Response:
    topics = author_for(request.app).known_topics or frozenset()
    inp = check_form(state, topics, fixed_slug=row.slug if row else None)
    if inp is None:
        return _form_page(request, state, editing=row, status=422)
    document = _document(request, inp, row)
    problems = _document_problems(request, document)
    if problems:  # checked here too, so the messages come in the interface language
        attach_problems(state, problems)
        return _form_page(request, state, editing=row, status=422)
    if request[FORM].get("action") == "preview":
        return await _preview(request, state, document, row)
    if row is None:
        result = await _write(request, state, create_contribution, inp)
    else:
        result = await _write(request, state, update_contribution, row.slug, inp)
    if result is None:
        return _form_page(request, state, editing=row, status=422)
    raise _done(result)


async def new_submit(request: web.Request) -> web.Response:
    kind = parse_kind(request[FORM].get("kind"))
    if kind is None:
        raise web.HTTPBadRequest(text="kind: unknown kind of contribution\n")
    return await _submit(request, _submitted_state(request, kind), None)


def _kind_of_row(row: Contribution) -> ContributionKind:
    kind = parse_kind(row.kind)
    if kind is None:
        raise web.HTTPNotFound(text="no such contribution\n")
    return kind


async def edit_form(request: web.Request) -> web.Response:
    row = await own_contribution(request)
    state = FormState(_kind_of_row(row), values_from_source(row.source or {}))
    state.values["slug"] = row.slug
    return _form_page(request, state, editing=row)


async def edit_submit(request: web.Request) -> web.Response:
    row = await own_contribution(request)
    state = _submitted_state(request, _kind_of_row(row))
    state.values["slug"] = row.slug
    return await _submit(request, state, row)


async def delete_form(request: web.Request) -> web.Response:
    return page(request, "delete.html.j2", {"row": await own_contribution(request)})


async def delete_submit(request: web.Request) -> web.Response:
    row = await own_contribution(request)
    result = await _write(request, FormState(_kind_of_row(row)), delete_contribution, row.slug)
    if result is None:
        raise web.HTTPConflict(text="slug: the contribution could not be deleted\n")
    raise web.HTTPSeeOther("/dashboard?done=deleted")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/new", new_form, name="web.staff.new_form")
    app.router.add_post("/dashboard/new", new_submit, name="web.staff.new")
    base = "/dashboard/contributions/{slug}"
    app.router.add_get(f"{base}/edit", edit_form, name="web.staff.edit_form")
    app.router.add_post(f"{base}/edit", edit_submit, name="web.staff.edit")
    app.router.add_get(f"{base}/delete", delete_form, name="web.staff.delete_form")
    app.router.add_post(f"{base}/delete", delete_submit, name="web.staff.delete")
