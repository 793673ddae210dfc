"""Staff forms: validation shown at the field, preview, publish, edit, delete, stances on
others' contributions, material upload, follow/unfollow, and escaping of every user text."""

from __future__ import annotations

import hashlib
import re

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from node import appkeys
from node.storage.models import (
    Activity,
    Contribution,
    Delivery,
    RemoteActor,
    RemoteObject,
)
from node.web import uploads
from tests.node_support import START
from tests.web_support import add_staff, form_token, practice_form, sign_in, web_app

BASE = "http://guetersloh.example"
REMOTE_PRACTICE = "https://dueren.example/practices/buergerkonto"
REMOTE_ACTOR = "https://dueren.example/actor"
XSS = '<script>alert("x")</script>'


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    app = web_app(tmp_path)
    client = await aiohttp_client(app)
    await add_staff(app)
    status, _ = await sign_in(client)
    assert status == 200
    return client


async def _count(client: TestClient, model) -> int:
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def _post_new(client: TestClient, **changes: str):
    token = await form_token(client, "/dashboard/new?kind=practice")
    return await client.post("/dashboard/new", data=practice_form(token, **changes))


def _field_error(page: str, name: str, *, summary: bool = True) -> str:
    """The error text shown at a field, after checking it is linked to the field."""
    control = re.search(rf'<(?:input|textarea|select|fieldset)[^>]*id="f-{name}"[^>]*>', page)
    assert control is not None, f"no control f-{name}"
    assert f"f-{name}-error" in control.group(0) and 'aria-invalid="true"' in control.group(0)
    message = re.search(rf'<p class="error" id="f-{name}-error">([^<]*)</p>', page)
    assert message is not None
    if summary:
        assert f'href="#f-{name}"' in page  # the summary at the top links to the field
    return message.group(1)


async def _add_remote_practice(client: TestClient, **document_changes: object) -> None:
    document = {
        "id": REMOTE_PRACTICE, "type": ["Article", "Practice"], "attributedTo": REMOTE_ACTOR,
        "name": "Bürgerkonto in Düren", "summary": "Ein Konto für alles.",
        "content": "<p>Wir haben das Bürgerkonto eingeführt.</p>",
    }  # fmt: skip
    document.update(document_changes)
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        session.add(
            RemoteActor(
                uri=REMOTE_ACTOR, inbox="https://dueren.example/actor/inbox",
                shared_inbox="https://dueren.example/inbox", name="Stadt Düren",
                preferred_username="dueren", kind="Organization", document={}, fetched_at=START,
            )
        )  # fmt: skip
        session.add(
            RemoteObject(
                uri=REMOTE_PRACTICE, kind="Practice", attributed_to=REMOTE_ACTOR,
                document=document, published=START, received_at=START,
            )
        )  # fmt: skip


async def test_missing_and_wrong_fields_are_shown_at_the_field(client: TestClient) -> None:
    response = await _post_new(
        client, title="", duration="sechs Monate", slug="Nicht Gut", related_service="123"
    )
    assert response.status == 422
    page = await response.text()
    assert _field_error(page, "title") == "Bitte ausfüllen."
    assert "ISO 8601" in _field_error(page, "duration")
    assert "Kleinbuchstaben" in _field_error(page, "slug")
    assert "14 Ziffern" in _field_error(page, "related_service")
    assert 'role="alert"' in page and "Bitte prüfen Sie 4 Angabe(n)" in page
    assert 'value="sechs Monate"' in page  # what was typed stays in the form
    assert await _count(client, Contribution) == 0


async def test_a_used_slug_is_refused_at_the_slug_field(client: TestClient) -> None:
    await _post_new(client)
    again = await _post_new(client, title="Noch einmal")
    assert again.status == 422
    assert "schon vergeben" in _field_error(await again.text(), "slug")
    assert await _count(client, Contribution) == 1


async def test_field_errors_in_english(client: TestClient) -> None:
    token = await form_token(client, "/dashboard/new?kind=practice&lang=en")
    response = await client.post("/dashboard/new", data=practice_form(token, title=""))
    page = await response.text()
    assert '<html lang="en">' in page and _field_error(page, "title") == "is required"


async def test_preview_stores_nothing_then_publish_stores_and_shows_it(client: TestClient) -> None:
    response = await _post_new(client, action="preview", slug="")
    assert response.status == 200
    page = await response.text()
    assert "Vorschau – noch nicht veröffentlicht" in page
    assert "<strong>Bauakten</strong>" in page and "Ist-Prozesse aufnehmen" in page
    assert 'name="slug" type="text" value="e-akte-im-bauamt"' in page  # derived from the title
    assert await _count(client, Contribution) == 0 and await _count(client, Activity) == 0
    published = await _post_new(client, slug="")
    assert published.status == 200 and str(published.url).endswith("/dashboard?done=saved")
    assert "Gespeichert und veröffentlicht." in await published.text()
    public = await client.get("/practices/e-akte-im-bauamt", headers={"Accept": "text/html"})
    text = await public.text()
    assert public.status == 200 and "E-Akte im Bauamt" in text and "im Betrieb" in text
    assert "E-Akte und Dokumentenmanagement" in text  # the topic's German label


async def test_edit_keeps_the_slug_and_publishes_an_update(client: TestClient) -> None:
    await _post_new(client)
    page = await (await client.get("/dashboard/contributions/e-akte-bauamt/edit")).text()
    assert 'value="E-Akte im Bauamt"' in page and "Pilot starten" in page and "readonly" in page
    token = await form_token(client, "/dashboard/contributions/e-akte-bauamt/edit")
    client.server.app[appkeys.CLOCK].advance(60)
    response = await client.post(
        "/dashboard/contributions/e-akte-bauamt/edit",
        data=practice_form(token, title="E-Akte im Bauamt (2. Fassung)", slug="anderer-slug"),
    )
    assert str(response.url).endswith("/dashboard?done=saved")
    unchanged = await client.post(
        "/dashboard/contributions/e-akte-bauamt/edit",
        data=practice_form(token, title="E-Akte im Bauamt (2. Fassung)"),
    )
    assert str(unchanged.url).endswith("/dashboard?done=unchanged")
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        row = await session.scalar(select(Contribution))
        types = list(await session.scalars(select(Activity.type).order_by(Activity.id)))
    assert row.slug == "e-akte-bauamt" and row.title == "E-Akte im Bauamt (2. Fassung)"
    assert types == ["Create", "Update"]


async def test_delete_asks_first_then_leaves_a_tombstone(client: TestClient) -> None:
    await _post_new(client)
    confirm = await client.get("/dashboard/contributions/e-akte-bauamt/delete")
    assert "Endgültig löschen" in await confirm.text()
    assert await _count(client, Activity) == 1  # asking changes nothing
    token = await form_token(client, "/dashboard/contributions/e-akte-bauamt/delete")
    response = await client.post(
        "/dashboard/contributions/e-akte-bauamt/delete", data={"csrf_token": token}
    )
    assert str(response.url).endswith("/dashboard?done=deleted")
    gone = await client.get("/practices/e-akte-bauamt", headers={"Accept": "text/html"})
    assert gone.status == 410
    assert (await client.get("/dashboard/contributions/e-akte-bauamt/edit")).status == 404


async def test_stance_on_another_municipality_reaches_its_author(client: TestClient) -> None:
    await _add_remote_practice(client)
    form = await client.get(f"/dashboard/new?kind=stance&about={REMOTE_PRACTICE}")
    page = await form.text()
    assert f'value="{REMOTE_PRACTICE}"' in page and 'type="radio"' in page
    token = await form_token(client, "/dashboard/new?kind=stance")
    missing = await client.post(
        "/dashboard/new",
        data={"csrf_token": token, "kind": "stance", "title": "Widerspruch", "about": REMOTE_PRACTICE,
              "action": "publish"},
    )  # fmt: skip
    assert missing.status == 422
    assert "Widerspruch" in _field_error(await missing.text(), "position")
    response = await client.post(
        "/dashboard/new",
        data={"csrf_token": token, "kind": "stance", "title": "Bei uns anders",
              "about": REMOTE_PRACTICE, "position": "disagree",
              "reason": "Das Bürgerkonto passt nicht zu unserem Portal.", "body": "",
              "language": "de", "action": "publish"},
    )  # fmt: skip
    assert str(response.url).endswith("/dashboard?done=saved"), await response.text()
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        stance = await session.scalar(select(Contribution).where(Contribution.kind == "stance"))
        inboxes = set(await session.scalars(select(Delivery.inbox_url)))
    assert stance.document["inReplyTo"] == REMOTE_PRACTICE
    assert stance.document["position"] == "disagree"
    assert "https://dueren.example/inbox" in inboxes  # the remote author is told


async def test_responses_are_shown_under_the_contribution(client: TestClient) -> None:
    await _post_new(client)
    practice = f"{BASE}/practices/e-akte-bauamt"
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        session.add(
            RemoteActor(
                uri=REMOTE_ACTOR, inbox="https://dueren.example/actor/inbox", name="Stadt Düren",
                document={}, fetched_at=START,
            )
        )  # fmt: skip
        for number, position, reason in (
            (1, "agree", "Bei uns genauso."), (2, "disagree", "Zu teuer für uns."),
        ):  # fmt: skip
            uri = f"https://dueren.example/stances/{number}"
            session.add(
                RemoteObject(
                    uri=uri, kind="Stance", attributed_to=REMOTE_ACTOR, in_reply_to=practice,
                    about=practice, received_at=START,
                    document={"id": uri, "type": ["Note", "Stance"], "attributedTo": REMOTE_ACTOR,
                              "name": f"Stellungnahme {number}", "position": position,
                              "reason": reason, "about": practice},
                )
            )  # fmt: skip
    page = await (await client.get("/practices/e-akte-bauamt")).text()
    assert "Zustimmung (1)" in page and "Widerspruch (1)" in page
    assert "Zu teuer für uns." in page and "Stadt Düren" in page


async def test_user_text_never_becomes_markup(client: TestClient) -> None:
    fields = {
        name: f"{name} {XSS}" for name in ("title", "summary", "body", "steps", "effort", "lessons")
    }
    response = await _post_new(client, slug="xss", **fields)
    assert str(response.url).endswith("/dashboard?done=saved"), await response.text()
    await _add_remote_practice(
        client,
        name=f"Remote {XSS}",
        summary=f"Remote {XSS}",
        content=f'<p onclick="x()">Remote</p>{XSS}<img src=x onerror=alert(1)>'
        '<a href="javascript:alert(1)">Link</a>',
    )
    pages = [
        await (await client.get(path)).text()
        for path in ("/practices/xss", "/", "/dashboard", "/dashboard/timeline",
                     "/dashboard/contributions/xss/edit")
    ]  # fmt: skip
    for page in pages:
        assert "<script>alert" not in page
        assert "onerror" not in page and "onclick" not in page and "javascript:" not in page
    contribution, home = pages[0], pages[1]
    assert "title &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in contribution
    assert "title &lt;script&gt;" in home
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", contribution, re.S)
    assert len(scripts) == 1 and "<" not in scripts[0]  # JSON-LD: no way out of the element
    assert 'alert(\\"x\\")' in scripts[0]


async def test_embedded_json_ld_is_the_stored_document(client: TestClient) -> None:
    import json

    await _post_new(client, title="Ende </script><script>alert(1)</script>")
    page = await (await client.get("/practices/e-akte-bauamt")).text()
    embedded = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    stored = await (
        await client.get("/practices/e-akte-bauamt", headers={"Accept": "application/ld+json"})
    ).json(content_type=None)
    assert json.loads(embedded.group(1)) == stored
    for media_type in ("application/activity+json", "application/ld+json", "text/turtle"):
        assert (
            f'<link rel="alternate" type="{media_type}" href="{BASE}/practices/e-akte-bauamt">'
            in page
        )


async def _upload(client: TestClient, content: bytes, filename: str, **fields: str):
    token = await form_token(client, "/dashboard/upload")
    data = FormData()
    data.add_field("csrf_token", token)
    for name, value in {"title": "Mustervorlage", "language": "de", **fields}.items():
        data.add_field(name, value)
    data.add_field("file", content, filename=filename, content_type="application/octet-stream")
    return await client.post("/dashboard/upload", data=data)


async def test_upload_stores_the_file_under_its_hash_and_publishes_a_material(
    client: TestClient,
) -> None:
    content = b"%PDF-1.4\n% Mustervorlage\n"
    response = await _upload(client, content, "vorlage.pdf", topics="e-akte")
    assert str(response.url).endswith("/dashboard?done=saved"), await response.text()
    name = hashlib.sha256(content).hexdigest() + ".pdf"
    stored = client.server.app[appkeys.CONFIG].data_dir / "files" / name
    assert stored.read_bytes() == content
    assert [p.name for p in stored.parent.iterdir()] == [name]  # no temporary file left
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        material = await session.scalar(select(Contribution))
    assert material.kind == "material" and material.document["url"] == f"{BASE}/files/{name}"
    assert material.document["mediaType"] == "application/pdf"
    page = await (await client.get("/materials/mustervorlage")).text()
    assert f'href="{BASE}/files/{name}" download' in page
    download = await client.get(f"/files/{name}")
    assert download.status == 200 and await download.read() == content


async def test_upload_refuses_wrong_type_fake_content_and_too_large_files(
    client: TestClient, monkeypatch
) -> None:
    refused = {
        "skript.html": b"<script>alert(1)</script>",
        "fake.pdf": b"<html>not a pdf</html>",
        "latin1.txt": "Gr\u00fc\u00dfe".encode("latin-1"),
        "leer.pdf": b"",
    }
    for filename, content in refused.items():
        response = await _upload(client, content, filename)
        assert response.status == 422, filename
        assert _field_error(await response.text(), "file"), filename
    no_title = await _upload(client, b"%PDF-1.4 gut", "gut.pdf", title="")
    assert no_title.status == 422 and _field_error(await no_title.text(), "title")
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    response = await _upload(client, b"%PDF-" + b"x" * 5000, "gross.pdf")
    assert response.status == 422 and "MB" in _field_error(await response.text(), "file")
    assert await _count(client, Contribution) == 0
    folder = client.server.app[appkeys.CONFIG].data_dir / "files"
    assert not folder.exists() or list(folder.iterdir()) == []


async def test_follow_form_shows_problems_at_the_field(client: TestClient) -> None:
    token = await form_token(client, "/dashboard/following")
    empty = await client.post("/dashboard/following", data={"csrf_token": token, "target": " "})
    assert empty.status == 422 and _field_error(await empty.text(), "target", summary=False)
    bad = await client.post(
        "/dashboard/following", data={"csrf_token": token, "target": "kein handle"}
    )
    assert bad.status == 422 and "acct:" in _field_error(await bad.text(), "target", summary=False)
    private = await client.post(
        "/dashboard/following", data={"csrf_token": token, "target": "http://10.0.0.1/actor"}
    )
    assert private.status == 422  # refused by the SSRF guard before connecting
    unknown = await client.post(
        "/dashboard/unfollow", data={"csrf_token": token, "target": REMOTE_ACTOR}
    )
    assert unknown.status == 422 and "not followed" in await unknown.text()


async def test_timeline_lists_what_others_published_with_a_way_to_respond(
    client: TestClient,
) -> None:
    await _add_remote_practice(client)
    page = await (await client.get("/dashboard/timeline")).text()
    assert "Bürgerkonto in Düren" in page and "Stadt Düren" in page
    assert (
        "/dashboard/new?kind=stance&amp;about=https%3A//dueren.example/practices/buergerkonto"
        in page
    )


async def test_delivery_status_per_host(client: TestClient) -> None:
    await _post_new(client)
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        activity = await session.scalar(select(Activity))
        for host, state, error in (
            ("a.example", "delivered", None), ("b.example", "pending", None),
            ("c.example", "gave_up", "HTTP 500"),
        ):  # fmt: skip
            session.add(
                Delivery(
                    activity_id=activity.id, inbox_url=f"https://{host}/inbox", host=host,
                    state=state, next_attempt_at=START, created_at=START, last_error=error,
                )
            )  # fmt: skip
    dashboard = await (await client.get("/dashboard")).text()
    assert "1 zugestellt, 1 ausstehend, 1 fehlgeschlagen" in dashboard
    page = await (await client.get("/dashboard/contributions/e-akte-bauamt/deliveries")).text()
    rows = re.findall(r"<tr[^>]*><th scope=\"row\">([^<]+)</th>", page)
    assert rows == ["c.example", "b.example", "a.example"]  # failing first
    assert "HTTP 500" in page


async def test_stances_comments_and_echoed_input_are_escaped(client: TestClient) -> None:
    await _post_new(client)
    practice = f"{BASE}/practices/e-akte-bauamt"
    token = await form_token(client, "/dashboard/new?kind=stance")
    for kind, extra in (
        ("stance", {"position": "partly", "reason": f"Grund {XSS}"}),
        ("comment", {}),
    ):
        response = await client.post(
            "/dashboard/new",
            data={"csrf_token": token, "kind": kind, "title": f"{kind} {XSS}", "about": practice,
                  "body": f"Text {XSS}", "language": "de", "action": "publish", **extra},
        )  # fmt: skip
        assert str(response.url).endswith("/dashboard?done=saved"), await response.text()
    page = await (await client.get("/practices/e-akte-bauamt")).text()
    assert "Teilweise Zustimmung (1)" in page and "Grund &lt;script&gt;" in page
    assert "comment &lt;script&gt;" in page
    echoed = await client.post(
        "/dashboard/following", data={"csrf_token": token, "target": f"acct:{XSS}@x"}
    )
    assert echoed.status == 422
    for text in (page, await echoed.text()):
        assert "<script>alert" not in text


async def test_language_switch_keeps_the_page(client: TestClient) -> None:
    page = await (await client.get("/dashboard/new?kind=stance&about=https://a.example/x")).text()
    switch = re.search(r'<a href="([^"]+)" lang="en"', page)
    assert switch is not None and "kind=stance" in switch.group(1) and "lang=en" in switch.group(1)


async def test_vocabulary_shape_problems_are_shown_at_the_field_in_german(
    client: TestClient,
) -> None:
    token = await form_token(client, "/dashboard/new?kind=practice")
    form = practice_form(token, status="")
    del form["topics"]
    response = await client.post("/dashboard/new", data=form)
    assert response.status == 422
    page = await response.text()
    topics, status = _field_error(page, "topics"), _field_error(page, "status")
    assert "Thema" in topics and "topic is missing" not in topics
    assert status and "must be" not in status
    assert await _count(client, Contribution) == 0


async def test_signed_in_staff_are_recognised_on_object_pages(client: TestClient) -> None:
    await _post_new(client)
    page = await (await client.get("/practices/e-akte-bauamt")).text()
    assert "Angemeldet als anna.schmidt" in page and 'action="/signout"' in page
    token = re.search(
        r'action="/signout">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page
    )
    assert token is not None and token.group(1)
