"""Signing in and out, the dashboard, and the delivery status of own contributions."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import func, select

from node import appkeys
from node.client_address import of_request, trusted_proxies
from node.storage.models import Activity, Contribution, Delivery, DeliveryState
from node.storage.users import (
    SignInOutcome,
    authenticate,
    close_session,
    open_session,
)
from node.web.render import page
from node.web.session import (
    FORM,
    SESSION_COOKIE,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
    translator,
)

MAX_CREDENTIAL_LENGTH = 1024
DASHBOARD_LIMIT = 500
NOTICES = {"saved": "dash.saved", "deleted": "dash.deleted", "unchanged": "dash.unchanged"}
PENDING_STATES = frozenset({DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value})
FAILING_STATES = frozenset({DeliveryState.FAILED.value, DeliveryState.GAVE_UP.value})


@dataclass
class DeliveryCounts:
    delivered: int = 0
    pending: int = 0
    failing: int = 0

    def add(self, state: str, count: int) -> None:
        if state == DeliveryState.DELIVERED.value:
            self.delivered += count
        elif state in PENDING_STATES:
            self.pending += count
        elif state in FAILING_STATES:
            self.failing += count


@dataclass
class HostDelivery(DeliveryCounts):
    host: str = ""
    last_error: str | None = None


@dataclass(frozen=True)
class DashboardRow:
    slug: str
    uri: str
    title: str
    kind: str
    updated: object
    delivery: DeliveryCounts


def _form_text(request: web.Request, name: str) -> str:
    value = request[FORM].get(name, "")
    return value[:MAX_CREDENTIAL_LENGTH] if isinstance(value, str) else ""


async def signin_form(request: web.Request) -> web.Response:
    context = {"message": None, "username": "", "next": safe_next(request.query.get("next"))}
    return page(request, "signin.html.j2", context)


def client_address(request: web.Request) -> str:
    """The browser's address, for the sign-in lock-out: behind the proxies in
    ``[server] trusted_proxies`` the rightmost X-Forwarded-For entry that is none of them
    (which a client cannot forge), otherwise the peer (node.client_address)."""
    trusted = trusted_proxies(request.app[appkeys.CONFIG].server.trusted_proxies)
    return of_request(request, trusted).address


async def signin(request: web.Request) -> web.Response:
    t = translator(request)
    username, password = _form_text(request, "username"), _form_text(request, "password")
    now = request.app[appkeys.CLOCK]()
    async with request.app[appkeys.SESSION_MAKER].begin() as session:
        result = await authenticate(session, username, password,
                                    address=client_address(request), now=now)
        issued = None
        if result.outcome is SignInOutcome.OK and result.user_id is not None:
            await close_session(session, request.cookies.get(SESSION_COOKIE, ""))
            issued = await open_session(session, result.user_id, now=now)
    if issued is None:
        if result.outcome is SignInOutcome.LOCKED and result.locked_until is not None:
            message = t("signin.locked", until=result.locked_until.strftime("%H:%M"))
        else:
            message = t("signin.wrong")
        context = {"message": message, "username": username, "next": _form_text(request, "next")}
        return page(request, "signin.html.j2", context, status=401)
    response = web.HTTPSeeOther(safe_next(_form_text(request, "next")))
    set_session_cookie(request, response, issued)
    raise response


async def signout(request: web.Request) -> web.Response:
    cookie = request.cookies.get(SESSION_COOKIE, "")
    async with request.app[appkeys.SESSION_MAKER].begin() as session:
        await close_session(session, cookie)
    response = web.HTTPSeeOther("/")
    clear_session_cookie(response)
    raise response


async def dashboard(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = list(
            await session.scalars(
                select(Contribution)
                .where(Contribution.deleted_at.is_(None))
                .order_by(Contribution.updated.desc(), Contribution.id.desc())
                .limit(DASHBOARD_LIMIT)
            )
        )
        counts = await session.execute(
            select(Activity.object_uri, Delivery.state, func.count())
            .join(Activity, Activity.id == Delivery.activity_id)
            .where(Activity.is_local.is_(True))
            .group_by(Activity.object_uri, Delivery.state)
        )
        by_uri: dict[str, DeliveryCounts] = {}
        for uri, state, count in counts:
            by_uri.setdefault(uri or "", DeliveryCounts()).add(state, count)
    items = [
        DashboardRow(row.slug, row.uri, row.title, row.kind, row.updated,
                     by_uri.get(row.uri, DeliveryCounts()))
        for row in rows
    ]  # fmt: skip
    notice_key = NOTICES.get(request.query.get("done", ""))
    notice = translator(request)(notice_key) if notice_key else None
    return page(request, "dashboard.html.j2", {"rows": items, "notice": notice})


async def own_contribution(request: web.Request) -> Contribution:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        row = await session.scalar(
            select(Contribution).where(
                Contribution.slug == request.match_info["slug"], Contribution.deleted_at.is_(None)
            )
        )
    if row is None:
        raise web.HTTPNotFound(text="no such contribution\n")
    return row


async def deliveries(request: web.Request) -> web.Response:
    """Per host: how many deliveries about this contribution arrived, wait or fail."""
    row = await own_contribution(request)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        results = await session.execute(
            select(Delivery.host, Delivery.state, Delivery.last_error)
            .join(Activity, Activity.id == Delivery.activity_id)
            .where(Activity.object_uri == row.uri)
            .order_by(Delivery.id)
        )
        hosts: dict[str, HostDelivery] = {}
        for host, state, error in results:
            entry = hosts.setdefault(host, HostDelivery(host=host))
            entry.add(state, 1)
            if state in FAILING_STATES or (state in PENDING_STATES and error):
                entry.last_error = error or entry.last_error
    ordered = sorted(hosts.values(), key=lambda h: (-h.failing, -h.pending, h.host))
    return page(request, "deliveries.html.j2", {"row": row, "hosts": ordered})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/signin", signin_form, name="web.signin_form")
    app.router.add_post("/signin", signin, name="web.signin")
    app.router.add_post("/signout", signout, name="web.staff.signout")
    app.router.add_get("/dashboard", dashboard, name="web.staff.dashboard")
    app.router.add_get(
        "/dashboard/contributions/{slug}/deliveries", deliveries, name="web.staff.deliveries"
    )
