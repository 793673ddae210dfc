"""Web sign-in: Argon2 accounts, session cookies, lock-out, CSRF on every POST, staff-only
pages, safe redirects after sign-in, and the ``praxisnetz user`` command."""

from __future__ import annotations

import io
import re
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from sqlalchemy import func, select
from yarl import URL

from node import appkeys
from node.cli import main as cli_main
from node.config import ServerTuning
from node.storage.models import Contribution, User, WebSession
from node.storage.users import LOCK_DURATION, MAX_FAILED_ATTEMPTS, SESSION_LIFETIME
from node.web.session import safe_next
from node.web.staff import client_address
from tests.node_support import make_node
from tests.web_support import (
    PASSWORD,
    USERNAME,
    add_staff,
    csrf_of,
    form_token,
    practice_form,
    sign_in,
    web_app,
)

STAFF_PAGES = (
    "/dashboard",
    "/dashboard/new",
    "/dashboard/new?kind=practice",
    "/dashboard/upload",
    "/dashboard/following",
    "/dashboard/timeline",
    "/dashboard/contributions/x/edit",
    "/dashboard/contributions/x/delete",
    "/dashboard/contributions/x/deliveries",
)


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    app = web_app(tmp_path)
    client = await aiohttp_client(app)
    await add_staff(app)
    return client


async def _count(client: TestClient, model) -> int:
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_sign_in_sets_an_http_only_lax_session_cookie(client: TestClient) -> None:
    token = await form_token(client, "/signin")
    response = await client.post(
        "/signin",
        data={"csrf_token": token, "username": USERNAME, "password": PASSWORD, "next": ""},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/dashboard"
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("pn_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over http in this test
    dashboard = await client.get("/dashboard")
    assert dashboard.status == 200 and USERNAME in await dashboard.text()
    assert dashboard.headers["Cache-Control"] == "no-store"


async def test_session_cookie_is_secure_when_the_base_url_is_https(
    aiohttp_client, tmp_path
) -> None:
    app = web_app(tmp_path, base_url="https://guetersloh.example")
    client = await aiohttp_client(app)
    await add_staff(app)
    form = await client.get("/signin")
    assert "Secure" in form.headers["Set-Cookie"]  # the anonymous CSRF cookie too
    response = await client.post(
        "/signin",
        data={"csrf_token": csrf_of(await form.text()), "username": USERNAME, "password": PASSWORD},
        cookies={"pn_csrf": form.cookies["pn_csrf"].value},
        allow_redirects=False,
    )
    assert response.status == 303
    assert "Secure" in response.cookies["pn_session"].output()
    assert (
        response.cookies["pn_session"]["httponly"]
        and response.cookies["pn_session"]["samesite"] == "Lax"
    )


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    wrong_status, wrong_page = await sign_in(client, password="falsches-passwort-1")
    unknown_status, unknown_page = await sign_in(client, username="niemand")
    assert wrong_status == unknown_status == 401
    assert "Benutzername oder Passwort ist falsch." in wrong_page
    assert "Benutzername oder Passwort ist falsch." in unknown_page
    assert 'aria-describedby="signin-error"' in wrong_page
    assert await _count(client, WebSession) == 0
    assert (await client.get("/dashboard", allow_redirects=False)).status == 303


async def test_lock_out_after_repeated_failures_even_for_the_right_password(
    client: TestClient,
) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS - 1):
        assert (await sign_in(client, password="falsches-passwort-1"))[0] == 401
    status, page = await sign_in(client, password="falsches-passwort-1")
    assert status == 401 and "gesperrt" in page
    status, page = await sign_in(client)  # right password, still locked
    assert status == 401 and "gesperrt" in page
    assert await _count(client, WebSession) == 0
    client.server.app[appkeys.CLOCK].advance(LOCK_DURATION.total_seconds() + 1)
    status, page = await sign_in(client)
    assert status == 200 and "Übersicht" in page
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        user = await session.scalar(select(User))
    assert user.failed_attempts == 0 and user.locked_until is None


async def test_signed_out_requests_to_staff_pages_redirect_to_sign_in(client: TestClient) -> None:
    for path in STAFF_PAGES:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        location = URL(response.headers["Location"])
        assert location.path == "/signin" and location.query["next"] == path, path
    response = await client.post("/dashboard/new", data={"kind": "practice"}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/signin")
    assert await _count(client, Contribution) == 0


async def test_sign_in_returns_to_the_requested_page_but_never_off_site(
    client: TestClient,
) -> None:
    assert safe_next("/dashboard/timeline?before=3") == "/dashboard/timeline?before=3"
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/dashboard"
    page = await (await client.get("/signin?next=%2Fdashboard%2Ftimeline")).text()
    assert 'name="next" value="/dashboard/timeline"' in page
    token = csrf_of(page)
    response = await client.post(
        "/signin",
        data={"csrf_token": token, "username": USERNAME, "password": PASSWORD,
              "next": "https://evil.example/"},
        allow_redirects=False,
    )  # fmt: skip
    assert response.headers["Location"] == "/dashboard"


async def test_every_web_post_refuses_a_missing_or_wrong_csrf_token(client: TestClient) -> None:
    await sign_in(client)
    posts = sorted(
        {
            route.resource.canonical
            for route in client.server.app.router.routes()
            if route.method == "POST" and (route.name or "").startswith("web.")
        }
    )
    assert "/dashboard/new" in posts and "/signin" in posts and len(posts) >= 8
    for path in posts:
        url = path.replace("{slug}", "e-akte-bauamt")
        for token in (None, "", "falsch"):
            data = practice_form(token or "")
            if token is None:
                del data["csrf_token"]
            response = await client.post(url, data=data, allow_redirects=False)
            assert response.status == 403, (path, token)
            assert "Formular" in await response.text()
    assert await _count(client, Contribution) == 0


async def test_multipart_posts_need_the_token_as_the_first_part(client: TestClient) -> None:
    await sign_in(client)
    token = await form_token(client, "/dashboard/upload")
    from aiohttp import FormData

    late = FormData()
    late.add_field("title", "Vorlage")
    late.add_field("csrf_token", token)  # right token, but not first
    late.add_field("file", b"%PDF-1.4 x", filename="v.pdf", content_type="application/pdf")
    assert (await client.post("/dashboard/upload", data=late)).status == 403
    assert await _count(client, Contribution) == 0


async def test_the_sign_in_form_needs_its_cookie_token(aiohttp_client, tmp_path) -> None:
    app = web_app(tmp_path)
    client = await aiohttp_client(app)
    await add_staff(app)
    token = await form_token(client, "/signin")
    client.session.cookie_jar.clear()  # a cross-site form cannot send our cookie
    response = await client.post(
        "/signin", data={"csrf_token": token, "username": USERNAME, "password": PASSWORD}
    )
    assert response.status == 403
    assert await _count(client, WebSession) == 0


async def test_a_session_token_of_another_session_is_refused(
    aiohttp_client, aiohttp_server, tmp_path
) -> None:
    app = web_app(tmp_path)
    server = await aiohttp_server(app)
    first, second = await aiohttp_client(server), await aiohttp_client(server)
    await add_staff(app)
    await sign_in(first)
    await sign_in(second)
    foreign = await form_token(second, "/dashboard/new?kind=practice")
    response = await first.post("/dashboard/new", data=practice_form(foreign))
    assert response.status == 403


async def test_sign_out_ends_the_session_on_the_server(client: TestClient) -> None:
    await sign_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pn_session"].value
    token = await form_token(client, "/dashboard")
    response = await client.post("/signout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    assert await _count(client, WebSession) == 0
    replay = await client.get("/dashboard", cookies={"pn_session": cookie}, allow_redirects=False)
    assert replay.status == 303


async def test_sessions_expire(client: TestClient) -> None:
    await sign_in(client)
    assert (await client.get("/dashboard", allow_redirects=False)).status == 200
    client.server.app[appkeys.CLOCK].advance(SESSION_LIFETIME.total_seconds() + 1)
    assert (await client.get("/dashboard", allow_redirects=False)).status == 303


async def test_only_hashes_are_stored(client: TestClient) -> None:
    await sign_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["pn_session"].value
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        user = await session.scalar(select(User))
        stored = await session.scalar(select(WebSession))
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert stored.token_hash != cookie and re.fullmatch(r"[0-9a-f]{64}", stored.token_hash)


def test_user_command_adds_changes_and_removes_accounts(tmp_path, monkeypatch, capsys) -> None:
    config = make_node(tmp_path)
    data_dir = str(config.data_dir)

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return cli_main(["user", *argv, "--data-dir", data_dir])

    assert run("add", "Anna.Schmidt", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert run("add", "anna.schmidt", "--password-stdin", stdin=PASSWORD + "\n") == 2
    assert "exists already" in capsys.readouterr().err
    assert run("add", "bob", "--password-stdin", stdin="kurz\n") == 2
    assert "password: at least 12 characters" in capsys.readouterr().err
    assert run("add", "x", "--password-stdin", stdin=PASSWORD + "\n") == 2
    assert "username:" in capsys.readouterr().err
    assert run("passwd", "anna.schmidt", "--password-stdin", stdin="ein-neues-passwort\n") == 0
    assert run("list") == 0 and "anna.schmidt" in capsys.readouterr().out
    assert run("remove", "anna.schmidt") == 0
    assert run("remove", "anna.schmidt") == 2
    assert "no user" in capsys.readouterr().err


async def test_the_typed_user_name_is_shown_again_escaped(client: TestClient) -> None:
    status, page = await sign_in(client, username='<script>alert("x")</script>')
    assert status == 401 and "<script>alert" not in page
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page


async def test_public_pages_set_no_cookie_unless_asked_for_a_language(client: TestClient) -> None:
    assert "Set-Cookie" not in (await client.get("/")).headers
    assert "pn_lang=en" in (await client.get("/?lang=en")).headers["Set-Cookie"]
    assert "pn_csrf=" in (await client.get("/signin")).headers["Set-Cookie"]


async def test_a_stranger_cannot_lock_a_staff_member_out(client: TestClient) -> None:
    """Behind the reverse proxy on this host (loopback peer), the address is the last
    X-Forwarded-For entry: the proxy's own, which the client cannot forge."""
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(MAX_FAILED_ATTEMPTS):
        status, page = await sign_in(client, password="falsches-passwort-1", headers=stranger)
    assert status == 401 and "gesperrt" in page
    assert (await sign_in(client, headers=stranger))[0] == 401  # the right password, too
    # a forged entry before the proxy's changes nothing
    forged = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    status, page = await sign_in(client, headers=forged)
    assert status == 401 and "gesperrt" in page
    assert await _count(client, WebSession) == 0
    # the staff member, from her own address, is not locked out
    status, page = await sign_in(client, headers={"X-Forwarded-For": "198.51.100.7"})
    assert status == 200 and "Übersicht" in page


async def test_rotating_ipv6_addresses_inside_one_64_does_not_dodge_the_lock(
        client: TestClient) -> None:
    """One /64 is one holder's (privacy extensions rotate inside it by themselves): a
    guesser with a fresh address per attempt is locked after MAX_FAILED_ATTEMPTS all
    the same, and stays locked whichever address of the /64 it tries next."""
    for attempt in range(MAX_FAILED_ATTEMPTS):
        rotated = {"X-Forwarded-For": f"2001:db8:1:2:{attempt + 1:x}::{attempt + 7:x}"}
        status, page = await sign_in(client, password="falsches-passwort-1", headers=rotated)
    assert status == 401 and "gesperrt" in page
    fresh = {"X-Forwarded-For": "2001:db8:1:2:ffff:ffff:ffff:fffe"}
    status, page = await sign_in(client, headers=fresh)  # the right password, too
    assert status == 401 and "gesperrt" in page
    # written in its IPv4-mapped form, an IPv4 address is the same address
    for _ in range(MAX_FAILED_ATTEMPTS):
        await sign_in(client, password="falsches-passwort-1",
                      headers={"X-Forwarded-For": "::ffff:203.0.113.9"})
    status, page = await sign_in(client, headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 401 and "gesperrt" in page
    assert await _count(client, WebSession) == 0


async def test_two_ipv6_64s_are_locked_independently(client: TestClient) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS):
        await sign_in(client, password="falsches-passwort-1",
                      headers={"X-Forwarded-For": "2001:db8:1:2::1"})
    assert (await sign_in(client, headers={"X-Forwarded-For": "2001:db8:1:2::99"}))[0] == 401
    # the neighbouring /64 (another subscriber) signs in
    status, page = await sign_in(client, headers={"X-Forwarded-For": "2001:db8:1:3::1"})
    assert status == 200 and "Übersicht" in page


async def test_a_spoofed_header_from_an_untrusted_peer_cannot_dodge_the_lock(
        aiohttp_client, tmp_path) -> None:
    """A node whose proxy is elsewhere (the test client's 127.0.0.1 is not trusted): every
    attempt counts for the peer, whatever X-Forwarded-For each one claims."""
    app = web_app(tmp_path, server=ServerTuning(trusted_proxies=("172.30.0.2/32",)))
    client = await aiohttp_client(app)
    await add_staff(app)
    for attempt in range(MAX_FAILED_ATTEMPTS):
        spoofed = {"X-Forwarded-For": f"198.51.100.{attempt}"}
        status, page = await sign_in(client, password="falsch-passwort-1", headers=spoofed)
    assert status == 401 and "gesperrt" in page
    status, page = await sign_in(client, headers={"X-Forwarded-For": "198.51.100.200"})
    assert status == 401 and "gesperrt" in page


def _request_from(peer: str, forwarded: str, app: web.Application):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return make_mocked_request("POST", "/signin", headers=headers, transport=transport, app=app)


@pytest.mark.parametrize(("peer", "forwarded", "address"), [
    ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
    ("::1", "10.0.0.1, 2001:db8::7", "2001:db8::7"),
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "kein-ip", "127.0.0.1"),
    ("192.0.2.44", "203.0.113.9", "192.0.2.44"),  # not our proxy: its header is not believed
    ("172.30.0.2", "203.0.113.9", "172.30.0.2"),  # the compose proxy, not trusted by default
])
def test_client_address_by_default_trusts_loopback(peer, forwarded, address, tmp_path) -> None:
    app = web.Application()
    app[appkeys.CONFIG] = make_node(tmp_path)
    assert client_address(_request_from(peer, forwarded, app)) == address


@pytest.mark.parametrize(("peer", "forwarded", "address"), [
    ("172.30.0.2", "203.0.113.9", "203.0.113.9"),
    ("172.30.0.2", "127.0.0.1, 203.0.113.9", "203.0.113.9"),  # spoofed left part
    ("172.30.0.9", "203.0.113.9", "172.30.0.9"),  # another container of the network
    ("127.0.0.1", "203.0.113.9", "127.0.0.1"),  # loopback no longer listed
])
def test_client_address_behind_a_configured_proxy(peer, forwarded, address, tmp_path) -> None:
    app = web.Application()
    app[appkeys.CONFIG] = make_node(
        tmp_path, server=ServerTuning(trusted_proxies=("172.30.0.2/32",)))
    assert client_address(_request_from(peer, forwarded, app)) == address
