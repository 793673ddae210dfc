"""The hub's web screens: public pages in German and English, hostile member text stays
inert, every editor form refuses without sign-in and without the CSRF token, freezing
needs the confirmation step, approving an applicant works."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from federation.keys import SigningKey, generate_ed25519_key
from federation.proofs import sign_document
from node import appkeys
from node.hub.tables import HubDecision, HubEdition, HubMember, HubPlacement, MemberState
from node.storage.models import RemoteActor, RemoteObject
from tests.hub_support import practice, stance
from tests.web_support import add_staff, csrf_of, sign_in, web_app

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MEMBER = "https://dueren.example/actor"
APPLICANT = "https://aachen.example/actor"
HOSTILE = "Bauakten <script>alert(1)</script>"
PRACTICE_URI = "https://dueren.example/practices/e-akte"
PUBLIC_PAGES = ("/handbook", "/handbook/editions", "/handbook/draft", "/members", "/topics",
                "/search?q=Akten", "/sparql")
EDITOR_PAGES = ("/hub/editor", f"/hub/editor/place?contribution={PRACTICE_URI}",
                "/hub/editor/sections", "/hub/editor/sections/e-akte", "/hub/editor/preview",
                "/hub/editor/freeze", "/hub/editor/members")


def _actor_row(uri: str, name: str) -> RemoteActor:
    document = {"id": uri, "type": "Organization", "name": name, "inbox": f"{uri}/inbox",
                "preferredUsername": "stadt"}
    return RemoteActor(uri=uri, inbox=f"{uri}/inbox", name=name, kind="Organization",
                       preferred_username="stadt", document=document, fetched_at=NOW)


async def seed_hub(app: Any) -> None:
    """An approved member with a hostile-titled practice and a stance; one applicant."""
    key = SigningKey(f"{MEMBER}#ed25519-key", generate_ed25519_key())
    documents = [practice("dueren.example", "e-akte", name=HOSTILE),
                 stance("dueren.example", "zu-e-akte", about=PRACTICE_URI, position="disagree",
                        reason="Zu teuer")]
    async with app[appkeys.SESSION_MAKER].begin() as session:
        session.add(HubMember(actor_uri=MEMBER, name="Stadt Düren <b>", kind="Organization",
                              ags="05358008", state="approved", applied_at=NOW))
        session.add(HubMember(actor_uri=APPLICANT, name="Stadt Aachen", kind="Organization",
                              ags="05334002", state="pending", applied_at=NOW,
                              follow_activity_uri=f"{APPLICANT}/follows/1"))
        session.add(_actor_row(APPLICANT, "Stadt Aachen"))
        for document in documents:
            kind = "Stance" if "Stance" in document["type"] else "Practice"
            session.add(RemoteObject(uri=document["id"], kind=kind, attributed_to=MEMBER,
                                     about=document.get("about"),
                                     document=sign_document(document, key, created=NOW),
                                     deleted=False, received_at=NOW, updated=NOW))


@pytest.fixture
async def hub(tmp_path, aiohttp_client):
    app = web_app(tmp_path, base_url="http://kochbuch.example", is_hub=True, slug="kochbuch")
    client = await aiohttp_client(app)
    await add_staff(app)
    await seed_hub(app)
    return client


async def _editor(client) -> str:
    status, _ = await sign_in(client)
    assert status == 200
    response = await client.get("/hub/editor")
    return csrf_of(await response.text())


def _no_live_script(text: str) -> None:
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize("language", ["de", "en"])
async def test_public_pages_render_in_both_languages(hub, language) -> None:
    expected = {"de": ("Mitglieder", "Themen", "Entwurf der nächsten Ausgabe"),
                "en": ("Members", "Topics", "Draft of the next edition")}[language]
    for path in PUBLIC_PAGES:
        separator = "&" if "?" in path else "?"
        response = await hub.get(f"{path}{separator}lang={language}",
                                 headers={"Accept": "text/html"})
        text = await response.text()
        assert response.status == 200, (path, text[:300])
        assert f'<html lang="{language}">' in text, path
        for word in expected:
            assert word in text, (path, word)


async def test_members_topics_and_sparql_pages_show_their_content(hub) -> None:
    html = {"Accept": "text/html"}
    members = await (await hub.get("/members", headers=html)).text()
    assert "Stadt Düren &lt;b&gt;" in members and "05358008" in members
    assert "aufgenommen" in members and "Organization" in members
    topics = await (await hub.get("/topics", headers=html)).text()
    assert "<code>@e-akte@kochbuch.example</code>" in topics
    assert "<code>acct:e-akte@kochbuch.example</code>" in topics
    sparql = await (await hub.get("/sparql", headers=html)).text()
    assert 'action="/sparql"' in sparql and "SELECT" in sparql
    signed_out = await hub.get("/members", headers={"Accept": "text/html"})
    assert signed_out.headers["Cache-Control"] == "no-cache"
    data = await hub.get("/members", headers={"Accept": "application/json"})
    assert data.content_type == "application/json"  # the JSON branches are unchanged
    assert (await hub.get("/search?q=Akten")).content_type == "application/json"


async def test_search_page_finds_and_escapes_hostile_titles(hub) -> None:
    app = hub.server.app
    from node.hub.runtime import HUB

    await app[HUB].aggregator.rebuild()
    response = await hub.get("/search?q=Bauakten&topic=e-akte&kind=practice",
                             headers={"Accept": "text/html"})
    text = await response.text()
    assert response.status == 200
    assert f'href="{PRACTICE_URI}"' in text  # a link to the original
    _no_live_script(text)
    bad = await hub.get("/search?q=x&kind=<script>", headers={"Accept": "text/html"})
    assert bad.status == 400
    assert 'aria-invalid="true"' in await bad.text()


async def test_triage_shows_stance_counts_and_escapes_titles(hub) -> None:
    await _editor(hub)
    text = await (await hub.get("/hub/editor")).text()
    assert "0 Zustimmung, 1 Widerspruch, 0 teilweise" in text
    _no_live_script(text)
    english = await (await hub.get("/hub/editor?lang=en")).text()
    assert "0 agree, 1 disagree, 0 partly" in english


async def test_every_editor_page_renders_for_a_signed_in_editor(hub) -> None:
    await _editor(hub)
    for language in ("de", "en"):
        for path in EDITOR_PAGES:
            separator = "&" if "?" in path else "?"
            response = await hub.get(f"{path}{separator}lang={language}")
            text = await response.text()
            assert response.status == 200, (path, text[:300])
            assert 'name="csrf_token"' in text, path


async def test_editor_pages_send_signed_out_browsers_to_sign_in(hub) -> None:
    for path in EDITOR_PAGES:
        response = await hub.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/signin?next="), path
    posts = ("/hub/editor/place", "/hub/editor/sections/e-akte", "/hub/editor/freeze",
             "/hub/editor/members/2/approve")
    for path in posts:
        response = await hub.post(path, data={"csrf_token": "x", "confirm": "freeze"},
                                  allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/signin"), path


async def test_editor_forms_refuse_without_the_csrf_token(hub) -> None:
    await _editor(hub)
    forms = {
        "/hub/editor/place": {"contribution": PRACTICE_URI, "decision": "accept",
                              "sections": "e-akte-einfuehrung"},
        "/hub/editor/sections/e-akte": {"title_de": "Gekapert", "order": "1"},
        "/hub/editor/freeze": {"confirm": "freeze"},
        "/hub/editor/members/2/approve": {},
    }
    for path, data in forms.items():
        for token in (None, "wrong"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            response = await hub.post(path, data=body, allow_redirects=False)
            assert response.status == 403, path
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        assert await session.get(HubDecision, PRACTICE_URI) is None
        assert (await session.get(HubMember, 2)).state == MemberState.PENDING.value
        assert await session.scalar(select(HubEdition.number)) is None


async def _place(hub, token: str, **changes: str):
    data = {"csrf_token": token, "contribution": PRACTICE_URI, "decision": "accept",
            "sections": "e-akte-einfuehrung", "note": "gut", "order": "5", **changes}
    return await hub.post("/hub/editor/place", data=data, allow_redirects=False)


async def test_placing_names_the_faulty_field_and_then_places(hub) -> None:
    token = await _editor(hub)
    missing = await _place(hub, token, sections="")
    assert missing.status == 422
    assert "sections" in await missing.text()
    bad_order = await _place(hub, token, order="zehn")
    assert bad_order.status == 422 and "order" in await bad_order.text()
    placed = await _place(hub, token)
    assert placed.status == 303 and placed.headers["Location"] == "/hub/editor?done=placed"
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        decision = await session.get(HubDecision, PRACTICE_URI)
        assert decision.decision == "accept" and decision.decided_by == "web:anna.schmidt"
    draft = await (await hub.get("/handbook/draft", headers={"Accept": "text/html"})).text()
    assert f'href="{PRACTICE_URI}"' in draft
    _no_live_script(draft)
    section = await (await hub.get("/hub/editor/sections/e-akte-einfuehrung")).text()
    assert f'<a href="{PRACTICE_URI}">' in section and "Reihenfolge 5" in section
    _no_live_script(section)
    two = [("csrf_token", token), ("contribution", PRACTICE_URI), ("decision", "accept"),
           ("sections", "e-akte-einfuehrung"), ("sections", "e-akte-scannen")]
    assert (await hub.post("/hub/editor/place", data=two, allow_redirects=False)).status == 303
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        slugs = await session.scalars(select(HubPlacement.section_slug).where(
            HubPlacement.contribution_uri == PRACTICE_URI))
        assert sorted(slugs) == ["e-akte-einfuehrung", "e-akte-scannen"]


async def test_section_editor_saves_title_order_and_text(hub) -> None:
    token = await _editor(hub)
    response = await hub.post("/hub/editor/sections/e-akte", data={
        "csrf_token": token, "title_de": "E-Akte <neu>", "title_en": "E-files", "order": "7",
        "text": "Einleitung *kurz* <script>alert(1)</script>"}, allow_redirects=False)
    assert response.status == 303
    draft = await (await hub.get("/handbook/draft", headers={"Accept": "text/html"})).text()
    assert "E-Akte &lt;neu&gt;" in draft and "<em>kurz</em>" in draft
    _no_live_script(draft)  # Markdown without raw HTML: the editor's text is escaped too
    form = await (await hub.get("/hub/editor/sections/e-akte")).text()
    assert 'value="E-Akte &lt;neu&gt;"' in form and 'value="7"' in form
    refused = await hub.post("/hub/editor/sections/e-akte", data={
        "csrf_token": token, "title_de": " ", "order": "1"})
    assert refused.status == 422 and "title_de" in await refused.text()


async def test_freeze_needs_the_confirmation_step(hub) -> None:
    token = await _editor(hub)
    empty = await hub.post("/hub/editor/freeze", data={"csrf_token": token, "confirm": "freeze"})
    assert empty.status == 422  # nothing placed yet: said on the confirmation page
    assert (await _place(hub, token)).status == 303
    confirmation = await (await hub.get("/hub/editor/freeze")).text()
    assert "Ausgabe 1" in confirmation and "1 Beiträge" in confirmation
    assert 'name="confirm" value="freeze"' in confirmation
    _no_live_script(confirmation)
    unconfirmed = await hub.post("/hub/editor/freeze", data={"csrf_token": token},
                                 allow_redirects=False)
    assert unconfirmed.status == 400
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        assert await session.scalar(select(HubEdition.number)) is None
    frozen = await hub.post("/hub/editor/freeze", data={
        "csrf_token": token, "confirm": "freeze", "publish": "yes"}, allow_redirects=False)
    assert frozen.status == 303
    assert frozen.headers["Location"] == "/handbook/editions?done=frozen"
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        row = await session.get(HubEdition, 1)
        assert row.frozen_by == "web:anna.schmidt" and row.published_at is not None
    editions = await (await hub.get("/handbook/editions", headers={"Accept": "text/html"})).text()
    assert 'href="http://kochbuch.example/handbook/editions/1/"' in editions
    handbook = await (await hub.get("/handbook")).text()
    assert f'href="{PRACTICE_URI}"' in handbook
    _no_live_script(handbook)
    changes = await hub.get("/handbook/editions/1/changelog", headers={"Accept": "text/html"})
    text = await changes.text()
    assert changes.status == 200 and "Änderungen in Ausgabe 1" in text
    _no_live_script(text)


async def test_approving_and_rejecting_applicants(hub) -> None:
    token = await _editor(hub)
    page = await (await hub.get("/hub/editor/members")).text()
    assert "Stadt Aachen" in page and 'action="/hub/editor/members/2/approve"' in page
    approved = await hub.post("/hub/editor/members/2/approve", data={"csrf_token": token},
                              allow_redirects=False)
    assert approved.status == 303
    async with hub.server.app[appkeys.SESSION_MAKER]() as session:
        assert (await session.get(HubMember, 2)).state == MemberState.APPROVED.value
    unknown = await hub.post("/hub/editor/members/99/reject", data={"csrf_token": token})
    assert unknown.status == 404
    response = await hub.get("/members", headers={"Accept": "text/html"})
    assert "Stadt Aachen" in await response.text()
    assert response.headers["Cache-Control"] == "no-store"  # it carries the sign-out token


async def _add_stance(app: Any, document: dict[str, Any], author: str) -> None:
    key = SigningKey(f"{author}#ed25519-key", generate_ed25519_key())
    async with app[appkeys.SESSION_MAKER].begin() as session:
        session.add(RemoteObject(uri=document["id"], kind="Stance", attributed_to=author,
                                 about=document["about"],
                                 document=sign_document(document, key, created=NOW),
                                 deleted=False, received_at=NOW, updated=NOW))


async def test_reasons_stand_beside_the_practice_and_the_section(hub) -> None:
    """Who disagrees and why: on the editor's preview, the draft, the handbook and the
    rendered edition, each reason with its member's name and a link to the stance."""
    section_url = "http://kochbuch.example/handbook/sections/e-akte-einfuehrung"
    agree = stance("dueren.example", "dafuer", about=PRACTICE_URI, position="agree",
                   reason="Spart Wege <script>alert(1)</script>")
    agree["url"] = "javascript:alert(2)"  # never a link: the stance's id is linked instead
    await _add_stance(hub.server.app, agree, MEMBER)
    await _add_stance(hub.server.app, stance("cochem.example", "kapitel", about=section_url,
                                             position="partly", reason="Erst die Schulung"),
                      "https://cochem.example/actor")
    token = await _editor(hub)
    assert (await _place(hub, token)).status == 303

    async def html(path: str) -> str:
        return await (await hub.get(path, headers={"Accept": "text/html"})).text()

    pages = {path: await html(path) for path in ("/hub/editor/preview", "/handbook/draft")}
    frozen = await hub.post("/hub/editor/freeze", data={
        "csrf_token": token, "confirm": "freeze", "publish": "yes"}, allow_redirects=False)
    assert frozen.status == 303
    for path in ("/handbook", "/handbook/editions/1/all.html"):
        pages[path] = await html(path)
    for path, text in pages.items():
        _no_live_script(text)
        assert "javascript:" not in text, path
        # the objection first, named by the member directory (escaped), linked to the stance
        objection = text.index('href="https://dueren.example/stances/zu-e-akte">Widerspruch</a>')
        assert text.index('href="https://dueren.example/stances/dafuer">Zustimmung</a>') > objection
        assert "Stadt Düren &lt;b&gt;</a>: Zu teuer" in text, path
        # a stance about the section itself, by a stranger named by its host
        assert 'href="https://cochem.example/stances/kapitel">Teilweise</a>' in text, path
        assert "cochem.example</a>: Erst die Schulung" in text, path
    english = await html("/handbook?lang=en")
    assert ">Disagree</a>" in english and ">Partly</a>" in english


async def test_triage_shows_the_objections_reasons_escaped_and_long_ones_collapsed(hub) -> None:
    """Beside each contribution the editor reads why members disagree or agree only partly
    (not the agreements' reasons), in both languages; member HTML stays text, a long
    reason is collapsed to its beginning and past three the rest is behind "n more"."""
    app = hub.server.app
    long_reason = "Die Schulung fehlt noch. " * 20
    extra = [("dafuer", "agree", "Spart Wege"),
             ("bild", "partly", '<img src=x onerror="alert(3)"> erst später'),
             ("lang", "partly", long_reason), ("vierte", "disagree", "Kein Personal")]
    for slug, position, reason in extra:
        await _add_stance(app, stance("dueren.example", slug, about=PRACTICE_URI,
                                      position=position, reason=reason), MEMBER)
    await _add_stance(app, stance("cochem.example", "fremd", about=PRACTICE_URI,
                                  position="disagree", reason="Nicht bei uns"),
                      "https://cochem.example/actor")
    await _editor(hub)
    text = await (await hub.get("/hub/editor")).text()
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt; erst später" in text
    assert "<img src=x" not in text and "Spart Wege" not in text  # agreement: counted only
    objections = text.index('aria-label="Begründungen von Widerspruch')
    for shown in ('href="https://dueren.example/stances/zu-e-akte">Widerspruch</a> – '
                  "Stadt Düren &lt;b&gt;: Zu teuer",
                  'href="https://cochem.example/stances/fremd">Widerspruch</a> – cochem.example',
                  'href="https://dueren.example/stances/vierte">Widerspruch</a>'):
        assert text.index(shown) > objections, shown
    more = text.index("<summary>2 weitere Begründungen</summary>")
    assert text.index("stances/bild") > more and text.index("stances/lang") > more
    collapsed = text[text.index('<details class="reason-long">'):]
    assert collapsed.index("<summary>Die Schulung fehlt noch.") < collapsed.index(
        "(ganze Begründung anzeigen)") < collapsed.index(f"<p>{long_reason.strip()}</p>")
    english = await (await hub.get("/hub/editor?lang=en")).text()
    assert "<summary>2 more reasons</summary>" in english and ">Partly</a>" in english
    assert "(show the whole reason)" in english
    placing = await (await hub.get(f"/hub/editor/place?contribution={PRACTICE_URI}")).text()
    assert "cochem.example: Nicht bei uns" in placing  # where the decision is taken, too
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;" in placing and "<img" not in placing


def test_every_text_the_hub_templates_name_exists_in_both_languages() -> None:
    """A mistyped key would show itself ("hub.objectons") instead of a text."""
    import re
    from pathlib import Path

    from node.web.i18n import TEXTS

    templates = Path(__file__).parents[1] / "node" / "templates" / "web"
    keys = {key for path in templates.glob("hub_*.j2")
            for key in re.findall(r"\bt\('([a-z_.]+)'", path.read_text(encoding="utf-8"))
            if not key.endswith(".")}  # a prefix: 'hub.decision.' ~ decision
    assert {"hub.objections", "hub.reason_full", "hub.more_reasons"} <= keys
    assert sorted(key for key in keys if key not in TEXTS) == []
    assert all(all(TEXTS[key]) for key in keys)
