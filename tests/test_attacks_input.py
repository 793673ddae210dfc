"""Hostile input: sizes, nesting, non-JSON, remote contexts, markup, SQL, file names.

Inbox cases post correctly signed requests, so nothing but the defence under attack
stands in the way; API cases use a valid token.
"""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import select

from node import appkeys
from node.storage.models import Contribution, InboxItem
from tests import attack_support
from tests.attack_support import AttackBed, BedFactory
from tests.node_support import issue_token, practice_input

actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed

MIB = 1024 * 1024
AS_NAME = "https://www.w3.org/ns/activitystreams#name"
ATOM = "{http://www.w3.org/2005/Atom}"


async def refused_before_any_fetch(bed: AttackBed, body: bytes, field: str,
                                   status: int = 400) -> dict:
    answer = await bed.post(body, bed.alice.rsa)
    assert answer.status == status, answer.text
    assert await bed.rows(InboxItem) == []
    assert bed.net.started == []  # decided before the signature's key was even looked up
    if field:
        assert answer.problem["field"] == field, answer.problem
    return answer.problem


# --- the inbox -------------------------------------------------------------------------


async def test_oversized_body_is_refused(bed: AttackBed) -> None:
    note = bed.alice.note(content="x" * MIB)
    body = json.dumps(bed.alice.activity("Create", note)).encode()
    await refused_before_any_fetch(bed, body, "", status=413)


async def test_oversized_body_without_content_length_is_cut_off(bed: AttackBed) -> None:
    headers = bed.signed_headers(b"{}", bed.alice.rsa)

    async def endless_chunks():  # noqa: ANN202 - an async generator of bytes
        for _ in range(40):
            yield b" " * (64 * 1024)

    async with bed.client.post("/actor/inbox", data=endless_chunks(), headers=headers) as response:
        assert response.status == 413
    assert await bed.rows(InboxItem) == [] and bed.net.started == []


async def test_deeply_nested_json_is_a_400_not_a_crash(bed: AttackBed) -> None:
    """Was a 500: ``json.loads`` ran out of stack on ~200,000 open brackets (fixed)."""
    depth = 200_000
    await refused_before_any_fetch(bed, b"[" * depth + b"]" * depth, "body")


async def test_nesting_inside_an_activity_is_bounded(bed: AttackBed) -> None:
    nested: object = "tief"
    for _ in range(300):
        nested = {"x": nested}
    body = json.dumps(bed.alice.activity("Create", bed.alice.note(summary=nested))).encode()
    problem = await refused_before_any_fetch(bed, body, "body")
    assert "nested deeper" in problem["detail"]


async def test_nan_is_not_json(bed: AttackBed) -> None:
    """Was accepted (202); PostgreSQL's json type would then refuse to store it (fixed)."""
    text = json.dumps(bed.alice.activity("Create", bed.alice.note()))
    body = (text[:-1] + ', "score": NaN}').encode()
    await refused_before_any_fetch(bed, body, "body")


@pytest.mark.parametrize("number", ["1e400", "-2.5E999"])
async def test_a_number_beyond_a_double_is_not_json(bed: AttackBed, number: str) -> None:
    """Was accepted and stored as ``Infinity``, which PostgreSQL refuses (fixed)."""
    text = json.dumps(bed.alice.activity("Create", bed.alice.note()))
    body = (text[:-1] + f', "score": {number}}}').encode()
    problem = await refused_before_any_fetch(bed, body, "body")
    assert "beyond the range of a double" in problem["detail"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400"])
async def test_the_api_refuses_what_is_not_json_either(bed: AttackBed, value: str) -> None:
    # A local contribution carrying one would be published as ``Infinity``/``NaN``.
    _, token = await issue_token(bed.app)
    text = json.dumps({"kind": "practice", "slug": "zahl", "title": "E-Akte",
                       "summary": "Kurz", "topics": ["e-akte"], "status": "piloting",
                       "body": "Text"})
    answer = await bed.client.post(
        "/api/contributions", data=(text[:-1] + f', "score": {value}}}').encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert answer.status == 400, await answer.text()
    assert (await answer.json())["field"] == "body"
    assert await bed.rows(Contribution) == []


@pytest.mark.parametrize("where", ["activity", "object"])
async def test_remote_context_is_never_fetched(bed: AttackBed, where: str) -> None:
    remote_context = bed.canary_url(path="/context.jsonld")
    note = bed.alice.note()
    activity = bed.alice.activity("Create", note)
    target = activity if where == "activity" else note
    target["@context"] = ["https://www.w3.org/ns/activitystreams", remote_context]
    problem = await refused_before_any_fetch(bed, json.dumps(activity).encode(), "@context")
    assert "never fetched" in problem["detail"]
    assert bed.canary.hits == []


@pytest.mark.parametrize("inline", ["import", "scoped", "nested"])
async def test_remote_context_hidden_in_an_inline_context(bed: AttackBed, inline: str) -> None:
    """JSON-LD 1.1 lets an inline context pull in remote ones; none is ever fetched."""
    remote = bed.canary_url(path="/context.jsonld")
    contexts = {
        "import": {"@import": remote},
        "scoped": {"@version": 1.1, "x": {"@id": "https://example.org/x", "@context": remote}},
        "nested": {"@context": remote},
    }
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity["@context"] = ["https://www.w3.org/ns/activitystreams", contexts[inline]]
    await refused_before_any_fetch(bed, json.dumps(activity).encode(), "@context")
    assert bed.canary.hits == []


async def test_context_that_renames_the_actor_cannot_smuggle_another_actor(
    bed: AttackBed,
) -> None:
    """An inline context maps "actor" elsewhere and "sender" onto as:actor: whoever the
    activity really names under our context must still be the signer."""
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity["@context"] = ["https://www.w3.org/ns/activitystreams",
                            {"actor": "https://example.org/ignored",
                             "sender": {"@id": "as:actor", "@type": "@id"}}]
    activity["sender"] = bed.mallory.id
    answer = await bed.post(activity, bed.alice.rsa)
    assert answer.status in (400, 401), answer.text
    assert await bed.rows(InboxItem) == []


# --- markup in the node's pages and feed -----------------------------------------------

SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'
HOSTILE = {
    "title": {"title": f"E-Akte {SCRIPT}"},
    "summary": {"summary": f"Kurz {IMG} {SCRIPT}"},
    "body": {"body": f"Text {SCRIPT}\n\n{IMG}\n\n<a href=\"javascript:alert(1)\">klick</a>\n\n"
                     "[Link](javascript:alert(1)) <svg onload=alert(1)></svg>\n\n"
                     "<iframe src=\"https://evil.example\"></iframe> "
                     "<a href=\"data:text/html,<script>alert(1)</script>\">d</a>"},
    "step names": {"steps": [SCRIPT, IMG]},
}


def assert_no_live_markup(text: str) -> None:
    """No executable script, no injected element; embedded JSON-LD cannot break out."""
    lowered = text.lower()
    for tag, data in re.findall(r"(<script[^>]*>)(.*?)</script>", lowered, flags=re.S):
        assert tag == '<script type="application/ld+json">', tag
        assert "<" not in data  # a "</script>" in a title would end the data block
    assert lowered.count("<script") == len(re.findall(r"<script[^>]*>.*?</script>", lowered,
                                                      flags=re.S))
    assert "<img src=x" not in lowered and 'href="javascript:' not in lowered
    assert "<svg" not in lowered and "<iframe" not in lowered and 'href="data:' not in lowered


@pytest.mark.parametrize("field", list(HOSTILE))
async def test_script_in_a_field_is_inert_in_page_home_and_feed(bed: AttackBed,
                                                                field: str) -> None:
    _, token = await issue_token(bed.app)
    practice = {"kind": "practice", "slug": "xss", "title": "E-Akte", "summary": "Kurz",
                "topics": ["e-akte"], "status": "piloting", "body": "Text", **HOSTILE[field]}
    created = await bed.client.post("/api/contributions", json=practice,
                                    headers={"Authorization": f"Bearer {token}"})
    assert created.status == 201, await created.text()
    for path in ("/practices/xss", "/"):
        page = await bed.client.get(path, headers={"Accept": "text/html"})
        assert page.status == 200 and page.content_type == "text/html"
        assert_no_live_markup(await page.text())
    feed = await bed.client.get("/feed.atom")
    raw = await feed.text()
    assert_no_live_markup(raw)
    entry = ET.fromstring(raw.encode()).find(f"{ATOM}entry")
    html_content = entry.find(f"{ATOM}content").text  # what a feed reader renders as HTML
    assert_no_live_markup(html_content)
    if field == "title":
        assert "&lt;script&gt;" in raw  # kept as text, escaped
    if field == "body":
        assert "Text" in html_content


async def test_script_in_the_node_name_is_escaped(make_bed: BedFactory) -> None:
    bed = await make_bed(name=f"Stadt {SCRIPT}")
    home = await (await bed.client.get("/", headers={"Accept": "text/html"})).text()
    assert_no_live_markup(home)
    assert "&lt;script&gt;" in home
    feed = await (await bed.client.get("/feed.atom")).text()
    assert_no_live_markup(feed)
    assert ET.fromstring(feed.encode()).find(f"{ATOM}title").text == f"Stadt {SCRIPT}"


async def test_script_in_a_remote_reply_and_its_authors_name_is_inert(bed: AttackBed) -> None:
    """Remote content is stored as received: the page that shows it must not run it."""
    _, token = await issue_token(bed.app)
    practice = {"kind": "practice", "slug": "ziel", "title": "E-Akte", "topics": ["e-akte"],
                "status": "piloting", "body": "Text"}
    created = await bed.client.post("/api/contributions", json=practice,
                                    headers={"Authorization": f"Bearer {token}"})
    target = (await created.json())["uri"]
    evil = bed.remote.add_actor("evil", bed.alice.keys, name=f"Böse {SCRIPT}")
    reply = evil.note(inReplyTo=target, name=f"Antwort {SCRIPT}",
                      content=f"<p>Hallo</p>{SCRIPT}{IMG}", summary=IMG)
    assert await bed.deliver(evil.activity("Create", reply), evil) == "done"
    page = await bed.client.get("/practices/ziel", headers={"Accept": "text/html"})
    text = await page.text()
    assert page.status == 200 and "Hallo" in text  # the reply is shown ...
    assert_no_live_markup(text)  # ... without its markup
    # our own stance about the remote reply shows its (hostile) title
    stance = {"kind": "stance", "slug": "dazu", "title": "Dazu", "about": reply["id"],
              "position": "agree", "reason": "Weil.", "body": "Ja."}
    created = await bed.client.post("/api/contributions", json=stance,
                                    headers={"Authorization": f"Bearer {token}"})
    assert created.status == 201, await created.text()
    ours = await (await bed.client.get("/stances/dazu", headers={"Accept": "text/html"})).text()
    assert "Antwort" in ours
    assert_no_live_markup(ours)


async def test_a_title_cannot_inject_triples_into_the_turtle(bed: AttackBed) -> None:
    import rdflib

    title = 'Titel" . <http://evil.example/s> <http://evil.example/p> "x" .\n@prefix e: <x:> .'
    _, token = await issue_token(bed.app)
    created = await bed.client.post("/api/contributions", json=practice_input(title=title),
                                    headers={"Authorization": f"Bearer {token}"})
    assert created.status == 201
    response = await bed.client.get("/practices/e-akte-bauamt", headers={"Accept": "text/turtle"})
    graph = rdflib.Graph().parse(data=await response.text(), format="turtle")
    names = list(graph.objects(None, rdflib.URIRef(AS_NAME)))
    assert names == [rdflib.Literal(title)]
    resources = {term for triple in graph for term in triple if isinstance(term, rdflib.URIRef)}
    assert not any("evil.example" in resource for resource in resources)


# --- SQL metacharacters in every text field of the authoring API -----------------------

SQL = "Robert'); DROP TABLE contributions;-- \" OR 1=1 /* % _ \\ ` $1 ?"
SQL_INPUTS = {
    "practice": {"kind": "practice", "slug": "sql-praxis", "title": SQL, "summary": SQL,
                 "topics": ["e-akte"], "status": "piloting", "body": SQL, "steps": [SQL, SQL],
                 "effort": SQL, "lessons": SQL,
                 "legal_basis": ["https://example.org/norm?q=' OR '1'='1"]},
    "stance": {"kind": "stance", "slug": "sql-stance", "title": SQL, "summary": SQL,
               "about": "https://example.org/practices/a?id=1;DROP%20TABLE%20x'--", "body": SQL,
               "position": "partly", "reason": SQL},
    "material": {"kind": "material", "slug": "sql-material", "title": SQL, "summary": SQL,
                 "body": SQL, "url": "https://example.org/doc.pdf?name=';--",
                 "media_type": "application/pdf",
                 "license": "https://example.org/licence?x=\"1\""},
}


@pytest.mark.parametrize("kind", list(SQL_INPUTS))
async def test_sql_metacharacters_are_stored_and_returned_verbatim(bed: AttackBed,
                                                                   kind: str) -> None:
    _, token = await issue_token(bed.app)
    auth = {"Authorization": f"Bearer {token}"}
    submitted = SQL_INPUTS[kind]
    created = await bed.client.post("/api/contributions", json=submitted, headers=auth)
    assert created.status == 201, await created.text()
    read = await (await bed.client.get(f"/api/contributions/{submitted['slug']}",
                                       headers=auth)).json()
    for name, value in submitted.items():
        assert read["source"][name] == value, name
    assert read["title"] == SQL and read["document"]["name"] == SQL
    listing = await (await bed.client.get("/api/contributions", headers=auth)).json()
    assert [item["slug"] for item in listing["items"]] == [submitted["slug"]]


async def test_sql_metacharacters_in_slug_query_and_path(bed: AttackBed) -> None:
    _, token = await issue_token(bed.app)
    auth = {"Authorization": f"Bearer {token}"}
    bad_slug = {"kind": "practice", "slug": "x' OR '1'='1", "title": "T", "status": "piloting"}
    answer = await bed.client.post("/api/contributions", json=bad_slug, headers=auth)
    assert answer.status == 422 and (await answer.json())["field"] == "slug"
    listing = await bed.client.get("/api/contributions", params={"kind": "' OR 1=1 --"},
                                   headers=auth)
    assert listing.status == 200 and (await listing.json())["items"] == []
    missing = await bed.client.get("/api/contributions/x'%20OR%20'1'='1", headers=auth)
    assert missing.status == 404
    assert await bed.rows(Contribution) == []


# --- path traversal in material file names ----------------------------------------------

TRAVERSALS = [
    "/files/..%2Fkeys%2Frsa.pem",
    "/files/..%2F..%2Fetc%2Fpasswd",
    "/files/%2e%2e%2fpraxisnetz.toml",
    "/files/%252e%252e%252fkeys%252frsa.pem",
    "/files/..%5Ckeys%5Crsa.pem",
    "/files/%2Fetc%2Fpasswd",
    "/files/rsa.pem%00.txt",
    "/files/..%2Fpraxisnetz.db",
    "/files/keys",
]


async def test_material_file_names_cannot_leave_the_files_folder(bed: AttackBed) -> None:
    files = bed.config.data_dir / "files"
    files.mkdir()
    (files / "checkliste.txt").write_text("Checkliste\n", encoding="utf-8")
    (files / "keys").symlink_to(bed.config.keys_dir)
    (files / "link.txt").symlink_to(bed.config.rsa_key_path)
    secret = bed.config.rsa_key_path.read_text(encoding="utf-8")
    assert (await bed.client.get("/files/checkliste.txt")).status == 200  # the route is live
    for path in [*TRAVERSALS, "/files/link.txt"]:
        response = await bed.client.get(path)
        body = await response.text()
        assert response.status in (400, 404), path
        assert "PRIVATE KEY" not in body and secret[:40] not in body


# --- the public endpoints --------------------------------------------------------------

HOSTILE_GETS = [
    "/actor/outbox?before=99999999999999999999999999",  # was a 500: integer overflow (fixed)
    "/actor/outbox?before=%C2%B2",  # was a 500: "²".isdigit() is true, int() refuses (fixed)
    "/actor/followers?before=99999999999999999999999",
    "/actor/following?before=-1",
    "/actor/outbox?before=1%20OR%201=1",
    "/.well-known/webfinger?resource=%00",
    "/.well-known/webfinger?resource=acct:%ff@x",
    "/.well-known/webfinger?resource=<script>",
    "/practices/%00",
    "/practices/" + "a" * 5000,
    "/practices/x'%20OR%20'1'='1",
    "/activities/%ff%fe",
    "/practices/x/replies",
]


async def test_hostile_requests_to_public_endpoints_get_a_4xx(bed: AttackBed) -> None:
    answers = {}
    for path in HOSTILE_GETS:
        response = await bed.client.get(path, headers={"Accept": "application/activity+json"})
        answers[path] = response.status
        assert "<script>" not in await response.text()
    assert {path: status for path, status in answers.items() if not 400 <= status < 500} == {}


UPLOAD_NAMES = ["../../keys/rsa.pem.txt", "..\\..\\praxisnetz.toml.txt", "/etc/passwd.txt",
                "%2e%2e%2fkeys%2frsa.pem.txt", ".hidden.txt", "files/../../x.txt"]


async def test_upload_names_cannot_choose_where_the_file_goes(aiohttp_client, tmp_path) -> None:
    """An uploaded file is stored under its content hash; the name only gives its type."""
    import hashlib

    from aiohttp import FormData

    from tests.web_support import add_staff, form_token, sign_in, web_app

    client = await aiohttp_client(web_app(tmp_path))
    await add_staff(client.server.app)
    await sign_in(client)
    config = client.server.app[appkeys.CONFIG]
    before = {path: path.stat().st_mtime_ns for path in config.data_dir.rglob("*")
              if path.is_file() and "praxisnetz.db" not in path.name}
    for number, filename in enumerate(UPLOAD_NAMES):
        data = FormData()
        data.add_field("csrf_token", await form_token(client, "/dashboard/upload"))
        data.add_field("title", f"Checkliste {number}")
        data.add_field("language", "de")
        data.add_field("file", b"Checkliste\n", filename=filename, content_type="text/plain")
        response = await client.post("/dashboard/upload", data=data)
        assert response.status == 200, (filename, await response.text())
    files = sorted(path.name for path in (config.data_dir / "files").iterdir())
    assert files == [hashlib.sha256(b"Checkliste\n").hexdigest() + ".txt"]
    after = {path: path.stat().st_mtime_ns for path in before}
    assert after == before  # keys, config and everything else untouched
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        materials = list(await session.scalars(select(Contribution)))
    assert len(materials) == len(UPLOAD_NAMES)  # every upload was taken, under the hash
