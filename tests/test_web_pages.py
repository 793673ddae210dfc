"""Public pages: the municipality home page and the contribution page, German first and
English second, with landmarks, the Atom link, alternates and safe embedded JSON-LD."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from node import appkeys
from node.authoring import create_contribution
from node.config import NodeKind
from node.contribution_input import parse_contribution_input
from node.storage.models import Follower, Following
from node.web.i18n import Language, Translator, choose_language
from node.web.render import json_for_script
from node.web.views import load_topic_labels, state_of, view_of
from tests.node_support import START, author_for_app, practice_input
from tests.web_support import web_app

BASE = "http://guetersloh.example"


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    return await aiohttp_client(web_app(tmp_path, kind=NodeKind.CITY))


async def _publish(client: TestClient, **fields: object) -> None:
    app = client.server.app
    values = practice_input(**fields)
    inp = parse_contribution_input(values, known_topics=frozenset(load_topic_labels()))
    async with app[appkeys.SESSION_MAKER].begin() as session:
        await create_contribution(session, author_for_app(app), inp)


async def test_home_page_shows_profile_counts_and_contributions_by_kind_and_topic(
    client: TestClient,
) -> None:
    await _publish(client)
    await _publish(client, slug="open-data", title="Offene Daten", topics=["open-data"])
    await _publish(
        client, kind="material", slug="vorlage", title="Vorlage", url=f"{BASE}/files/a.pdf",
        topics=[], status=None, steps=[],
    )  # fmt: skip
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        session.add(Follower(actor_uri="https://a.example/actor", inbox="https://a.example/i",
                             state="accepted", created_at=START))  # fmt: skip
        session.add(Following(target_uri="https://b.example/actor", state="requested",
                              created_at=START))  # fmt: skip
    response = await client.get("/")
    page = await response.text()
    assert response.status == 200 and '<html lang="de">' in page
    for text in ("Stadt Guetersloh", "Stadt", "Nordrhein-Westfalen", "05754008",
                 "@guetersloh@guetersloh.example"):  # fmt: skip
        assert text in page
    assert "<dt>Folgende</dt><dd>1</dd>" in page
    assert "<dt>Folgt</dt><dd>0</dd>" in page  # a requested follow is not counted yet
    assert "Praxisbeispiele (2)" in page and "Materialien (1)" in page
    assert "E-Akte und Dokumentenmanagement (1)" in page and "Offene Daten (1)" not in page
    assert 'type="application/atom+xml" href="/feed.atom"' in page
    for landmark in ("<header", "<nav", "<main", "<footer", 'class="skip-link" href="#main"'):
        assert landmark in page


async def test_english_by_query_cookie_or_accept_language(client: TestClient) -> None:
    english = await client.get("/?lang=en")
    page = await english.text()
    assert '<html lang="en">' in page and "Profile" in page and "Followers" in page
    assert english.headers["Content-Language"] == "en"
    remembered = await client.get("/")  # ?lang= set a cookie
    assert '<html lang="en">' in await remembered.text()
    client.session.cookie_jar.clear()
    accepted = await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    assert '<html lang="en">' in await accepted.text()
    german = await client.get("/", headers={"Accept-Language": "fr, de;q=0.8, en;q=0.7"})
    assert '<html lang="de">' in await german.text()


def test_language_choice_order_and_fallback() -> None:
    assert choose_language("en", "de", "de") is Language.EN
    assert choose_language(None, "en", "de") is Language.EN
    assert choose_language("xx", None, "en;q=0.5, de;q=0.9") is Language.DE
    assert choose_language(None, None, "en;q=0, fr") is Language.DE
    assert choose_language(None, None, "garbage;;;q=abc, en") is Language.EN
    assert choose_language(None, None, None) is Language.DE
    assert Translator(Language.EN)("c.steps") == "Steps"
    assert Translator(Language.DE).problem("is required") == "Bitte ausfüllen."
    assert Translator(Language.DE).problem("something new") == "something new"
    assert Translator(Language.DE).problem("at most 300 characters") == "Höchstens 300 Zeichen."
    assert Translator(Language.EN).problem("at most 300 characters") == "at most 300 characters"


async def test_contribution_page_shows_every_part_of_a_practice(client: TestClient) -> None:
    await _publish(
        client, effort="2 Personen", duration="P6M", lessons="Früh die Personalräte einbinden.",
        legal_basis=["https://www.gesetze-im-internet.de/egovg/__6.html"],
        related_service="99050012104000",
    )  # fmt: skip
    response = await client.get("/practices/e-akte-bauamt", headers={"Accept": "text/html"})
    page = await response.text()
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for text in ("<h1 id=\"c-title\">E-Akte im Bauamt</h1>", "Wie wir die E-Akte eingeführt haben.",
                 "<strong>Bauakten</strong>", "<li>Ist-Prozesse aufnehmen</li>", "im Betrieb",
                 "2 Personen", "P6M", "Früh die Personalräte einbinden.", "egovg/__6.html",
                 "99050012104000", "Noch keine Stellungnahmen.", "Noch keine Kommentare."):  # fmt: skip
        assert text in page, text
    english = await (await client.get("/practices/e-akte-bauamt?lang=en")).text()
    assert "in operation" in english and "E-file and document management" in english


def test_json_for_script_cannot_close_the_element() -> None:
    text = str(json_for_script({"a": "</script><!-- & \u2028"}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}


def test_views_read_remote_shapes_tolerantly() -> None:
    view = view_of(
        {"id": "https://x.example/1", "type": "pn:Practice", "nameMap": {"en": "Title"},
         "topic": [{"id": "https://w3id.org/praxisnetz/topics#e-akte"}, 5],
         "step": [{"position": 2, "text": "B"}, {"position": 1, "text": "A"}, {"bad": 1}],
         "attributedTo": {"id": "https://x.example/actor"}, "summary": ["not", "text"]}
    )  # fmt: skip
    assert view.title == "Title" and view.topics == ["e-akte"] and view.steps == ["A", "B"]
    assert view.attributed_to == "https://x.example/actor" and view.summary is None
    assert state_of("09162000") == "Bayern" and state_of(None) is None
    labels = load_topic_labels()
    assert labels["open-data"].label("en") and labels["e-akte"].label("de").startswith("E-Akte")


async def test_stylesheet_is_served(client: TestClient) -> None:
    response = await client.get("/static/praxisnetz.css")
    assert response.status == 200 and response.content_type == "text/css"
    assert ":focus-visible" in await response.text()
