"""Search backends: the same German word forms, compounds and filters in memory (SQLite
hubs) and in PostgreSQL's ``german`` configuration (hub_search, migrations 0005, 0007)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from hub_support import practice, stance
from sqlalchemy import inspect

from node.hub.compounds import GOVERNMENT_PARTS
from node.hub.contribution import ContributionKind, view_of
from node.hub.search import SearchFilters
from node.hub.search_backends import (
    MAX_COMPOUND,
    MAX_PARTS_CHARS,
    MemorySearch,
    PostgresSearch,
    SearchBackend,
    compound_parts,
    parts_marker,
    search_backend_for,
)
from node.storage.db import migrate, session_maker
from tests.node_support import database_engine

GT, DN = "guetersloh.example", "dueren.example"
TOPIC = "https://w3id.org/praxisnetz/topics#"


def documents() -> list[dict]:
    return [
        practice(GT, "e-akte", name="E-Akte im Bauamt", summary="Elektronische Aktenführung",
                 ags="05754008"),
        practice(DN, "portal", name="Unser Bürgerportal",
                 content="<p>Anträge <em>online</em> stellen.</p>",
                 topics=("buergerportal-online-dienste",), ags="05358008", status="piloting"),
        practice(DN, "post", name="Posteingangsbearbeitung zentral",
                 topics=("prozessmanagement",), ags="05358008"),
        practice(GT, "kontakt", name="Kontaktformular", topics=("elektronische-kommunikation",)),
        stance(DN, "s1", about=f"https://{GT}/practices/e-akte", position="agree",
               reason="Die E-Akte spart Wege."),
    ]


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[SearchBackend]:
    async for engine in database_engine(request.param, tmp_path):
        await migrate(engine)
        chosen = search_backend_for(session_maker(engine))
        expected = PostgresSearch if request.param == "postgres" else MemorySearch
        assert isinstance(chosen, expected)  # chosen by the dialect
        await chosen.replace_all([view_of(document) for document in documents()])
        yield chosen


def slugs(hits) -> set[str]:
    return {hit.uri.rsplit("/", 1)[1] for hit in hits}


WORD_FORMS = [
    ("Akten", {"e-akte", "s1"}),
    ("Akte", {"e-akte", "s1"}),
    ("e-akte", {"e-akte", "s1"}),
    ("Bürgerportale", {"portal"}),
    ("Buergerportal", {"portal"}),
    ("BÜRGERPORTAL", {"portal"}),
    ("Antraege online", {"portal"}),
    ("Akten Bauamt", {"e-akte"}),
    ("Kontakte", {"kontakt"}),
    ("xyzzy", set()),
]


async def test_german_word_forms(backend: SearchBackend) -> None:
    # one database for all the cases: a PostgreSQL schema with migrations takes ~1 s
    found = {query: slugs(await backend.search(query)) for query, _ in WORD_FORMS}
    assert found == dict(WORD_FORMS)


async def test_short_stems_do_not_match_inside_other_words(backend: SearchBackend) -> None:
    assert "kontakt" not in slugs(await backend.search("Akten"))


async def test_title_matches_rank_above_body_matches(backend: SearchBackend) -> None:
    hits = await backend.search("Akte")
    assert hits[0].uri.endswith("/e-akte") and hits[0].score > hits[1].score


async def test_filters(backend: SearchBackend) -> None:
    async def found(query: str, **filters) -> set[str]:
        return slugs(await backend.search(query, SearchFilters(**filters)))

    assert await found("", municipality="05358008") == {"portal", "post"}
    full_key = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/05754008"
    assert await found("", municipality=full_key) == {"e-akte", "kontakt"}
    assert await found("", topic=f"{TOPIC}prozessmanagement") == {"post"}
    assert await found("", topic=f"{TOPIC}nichts") == set()
    assert await found("Akte", kind=ContributionKind.STANCE) == {"s1"}
    assert await found("Akte", kind=ContributionKind.PRACTICE) == {"e-akte"}
    assert await found("", status="piloting") == {"portal"}
    assert await found("Portal", status="in-operation") == set()
    assert await found("", municipality="05358008", topic=f"{TOPIC}prozessmanagement") == {"post"}


async def test_hits_carry_the_contribution_view(backend: SearchBackend) -> None:
    [hit] = await backend.search("Bürgerportal")
    # as a result lists it: its text was indexed, and stays in SQL
    assert hit.view == replace(view_of(documents()[1]), content_text="")
    assert view_of(documents()[1]).content_text  # there was one to leave out


async def test_update_remove_and_limit(backend: SearchBackend) -> None:
    updated = practice(DN, "portal", name="Online-Dienste", topics=("buergerportal-online-dienste",))
    await backend.add([view_of(updated)])
    assert await backend.search("Bürgerportal") == []
    assert slugs(await backend.search("Dienste")) == {"portal"}
    assert await backend.remove([updated["id"], "https://nowhere.example/x"]) == 1
    assert await backend.search("Dienste") == []
    assert len(await backend.search("", limit=2)) == 2
    assert len(await backend.search("")) == 4


async def test_only_postgresql_keeps_what_it_held_for_the_next_start(
        backend: SearchBackend) -> None:
    # a hub's search answers during the start's refill only from rows kept from before
    kept = isinstance(backend, PostgresSearch)
    assert await backend.kept_from_before() is kept
    await backend.replace_all([])
    assert await backend.kept_from_before() is False  # nothing kept: not yet filled
    await backend.add([view_of(documents()[0])])
    assert await backend.kept_from_before() is kept


async def test_replace_all_starts_afresh(backend: SearchBackend) -> None:
    await backend.replace_all([view_of(documents()[2])])
    assert slugs(await backend.search("")) == {"post"}


async def test_replace_all_rewrites_only_what_changed(backend: SearchBackend) -> None:
    async def row_versions() -> dict[str, str]:  # PostgreSQL's xmin changes with every write
        if not isinstance(backend, PostgresSearch):
            return {}
        async with backend._sessions() as session:
            rows = await session.execute(sa.text("SELECT uri, xmin::text FROM hub_search"))
            return {uri.rsplit("/", 1)[1]: xmin for uri, xmin in rows}

    before = await row_versions()
    changed = practice(DN, "post", name="Postausgangsbearbeitung", topics=("prozessmanagement",))
    await backend.replace_all([view_of(documents()[3]), view_of(changed)])
    assert slugs(await backend.search("")) == {"kontakt", "post"}
    assert slugs(await backend.search("Ausgang")) == {"post"}  # inside the new title
    assert slugs(await backend.search("Posteingang")) == set()
    [hit] = await backend.search("Kontakt")
    assert hit.view == view_of(documents()[3])
    after = await row_versions()
    if isinstance(backend, PostgresSearch):
        assert set(after) == {"kontakt", "post"}
        assert after["kontakt"] == before["kontakt"] and after["post"] != before["post"]


async def test_a_refill_takes_pages_and_keeps_exactly_what_they_held(
        backend: SearchBackend) -> None:
    """Pages of a refill: a URI in two pages is kept once (the later view), rows no page
    named are gone, and the search answers from the old contents until the refill ends."""
    views = [view_of(document) for document in documents()]
    renamed = view_of(practice(DN, "post", name="Postausgangsbearbeitung",
                               topics=("prozessmanagement",)))
    async with backend.refill() as refill:
        await refill.add([views[0], views[2]])
        assert slugs(await backend.search("")) == {"e-akte", "portal", "post", "kontakt", "s1"}
        await refill.add([views[1], renamed])
        await refill.add([])
    assert slugs(await backend.search("")) == {"e-akte", "portal", "post"}
    assert len(await backend.search("")) == 3
    assert slugs(await backend.search("Ausgang")) == {"post"}
    assert await backend.search("Kontakt") == []


async def test_a_failed_refill_changes_nothing(backend: SearchBackend) -> None:
    with pytest.raises(RuntimeError, match="SQL went away"):
        async with backend.refill() as refill:
            await refill.add([view_of(documents()[3])])
            raise RuntimeError("SQL went away")
    assert slugs(await backend.search("")) == {"e-akte", "portal", "post", "kontakt", "s1"}


async def test_refills_one_after_another_on_postgres(backend: SearchBackend) -> None:
    """The temporary table of URIs is dropped with each refill's transaction."""
    for kept in (documents()[:2], documents()[1:3]):
        async with backend.refill() as refill:
            await refill.add([view_of(document) for document in kept])
        assert slugs(await backend.search("")) == {d["id"].rsplit("/", 1)[1] for d in kept}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_migration_adds_the_search_table_only_on_postgres(kind: str, tmp_path) -> None:
    async for engine in database_engine(kind, tmp_path):
        await migrate(engine)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            indexes = await connection.run_sync(
                lambda sync: inspect(sync).get_indexes("hub_search") if kind == "postgres" else [])
        assert ("hub_search" in tables) is (kind == "postgres")
        if kind == "postgres":
            assert {index["name"] for index in indexes} >= {"ix_hub_search_search"}


async def test_compound_prefixes(backend: SearchBackend) -> None:
    assert slugs(await backend.search("Posteingang")) == {"post"}
    assert slugs(await backend.search("Kontakt")) == {"kontakt"}


async def test_websearch_syntax_and_stray_quotes_are_not_errors(backend: SearchBackend) -> None:
    assert "kontakt" not in slugs(await backend.search("Akte -Bauamt"))
    assert await backend.search("'\"); drop table hub_search; --") == []
    assert slugs(await backend.search("Bürgerportal")) == {"portal"}  # the table is still there


async def test_search_route_on_a_postgresql_hub(tmp_path) -> None:
    """The route's JSON from the PostgreSQL backend, filled by the aggregator from SQL."""
    import aiohttp

    from node.hub.runtime import HUB
    from node.hub.tables import HubMember
    from node.storage.models import RemoteObject
    from tests.hub_node_support import start_hub
    from tests.node_support import START, fresh_postgres_database

    async with fresh_postgres_database() as url:
        hub = await start_hub(tmp_path, database_url=url)
        try:
            aggregator = hub.app[HUB].aggregator
            assert isinstance(aggregator.search, PostgresSearch)
            async with hub.sessions()() as session, session.begin():
                for host, ags in ((GT, "05754008"), (DN, "05358008")):
                    session.add(HubMember(actor_uri=f"https://{host}/actor", name=host,
                                          ags=ags, state="approved", applied_at=START))
                for document in documents():
                    session.add(RemoteObject(
                        uri=document["id"], kind=document["type"][1],
                        attributed_to=document["attributedTo"], document=document,
                        deleted=False, received_at=START, updated=START))
            await aggregator.sync()
            async with aiohttp.ClientSession() as http:
                async def search(**params: str) -> dict:
                    async with http.get(f"{hub.url}/search", params=params) as response:
                        assert response.status == 200
                        return await response.json()

                found = await search(q="Bürgerportale")
                assert set(found) == {"query", "total", "items"} and found["total"] == 1
                [item] = found["items"]
                assert set(item) == {"uri", "title", "kind", "author", "ags", "topics",
                                     "status", "score"}
                assert (item["title"], item["ags"], item["status"]) == (
                    "Unser Bürgerportal", "05358008", "piloting")
                assert {i["uri"].rsplit("/", 1)[1] for i in (await search(q="Akten"))["items"]} \
                    == {"e-akte", "s1"}
                assert (await search(q="Akten", kind="stance"))["total"] == 1
                assert (await search(q="", municipality="05358008"))["total"] == 2
                assert (await search(q="", topic="prozessmanagement"))["total"] == 1
                assert (await search(q="", status="piloting"))["total"] == 1
        finally:
            await hub.stop()


async def test_inside_compounds(backend: SearchBackend) -> None:
    await backend.add([view_of(practice(GT, "bau", name="Digitales Bauantragsverfahren",
                                        summary="Personalakte und Posteingang"))])
    assert slugs(await backend.search("Bearbeitung")) == {"post"}
    assert slugs(await backend.search("Bearbeitungen")) == {"post"}
    assert slugs(await backend.search("Antrag")) == {"bau", "portal"}  # "Anträge" too
    assert slugs(await backend.search("Verfahren digital")) == {"bau"}  # inside + prefix
    assert slugs(await backend.search("Bearbeitung zentral")) == {"post"}  # inside + exact
    assert slugs(await backend.search("Bearbeitung Bauamt")) == set()  # every word counts
    assert slugs(await backend.search("Eingangsbearbeitung")) == {"post"}
    # stems under MIN_INFIX letters match lexicon parts only: "Personalakte" splits
    assert slugs(await backend.search("Akte")) == {"e-akte", "s1", "bau"}
    assert slugs(await backend.search("Akte Personal")) == {"bau"}


async def test_stem_matches_rank_above_inside_compound_matches(backend: SearchBackend) -> None:
    await backend.add([view_of(practice(GT, "text", name="Hinweise",
                                        content="<p>Zur Bearbeitung bitte melden.</p>"))])
    hits = await backend.search("Bearbeitung")
    # the text match (weight of the body) ranks above the title's inside-compound match
    assert [hit.uri.rsplit("/", 1)[1] for hit in hits] == ["text", "post"]
    assert hits[0].score > hits[1].score


async def test_websearch_syntax_beside_compound_words(backend: SearchBackend) -> None:
    assert slugs(await backend.search("Bearbeitung -zentral")) == set()
    assert slugs(await backend.search("Bearbeitung -Bauamt")) == {"post"}
    assert slugs(await backend.search('Bearbeitung "Posteingangsbearbeitung zentral"')) \
        == {"post"}
    found = slugs(await backend.search("Bearbeitung or Kontakt"))
    if isinstance(backend, PostgresSearch):
        # "or" leaves the query to websearch_to_tsquery: stems and prefixes only
        assert found == {"kontakt"}
    else:  # the memory index matches inside compounds in every alternative
        assert found == {"kontakt", "post"}


PARTS = {"'post'", "'bau'", "'buerg'", f"'{parts_marker(GOVERNMENT_PARTS)}'"}


def test_compound_parts_are_the_word_endings_of_infix_length_and_lexicon_parts() -> None:
    parts = compound_parts("Posteingangsbearbeitung", "Bauantrag", "Bürgerportale x" * 3)
    lexemes = dict(item.split(":") for item in parts.split(" "))
    assert lexemes["'bearbeitung'"] == "1A" and lexemes["'ingangsbearbeitung'"] == "1A"
    assert lexemes["'ergerportal'"] == lexemes["'portal'"] == "1D"
    assert "'posteingangsbearbeitung'" not in lexemes  # the whole word is in ``search``
    endings = [lexeme for lexeme in lexemes if lexeme not in PARTS]
    assert min(len(lexeme) - 2 for lexeme in endings) == 6
    assert "'bauantrag'" not in lexemes and "'uantrag'" in lexemes
    # the lexicon parts of compounds, with their best field's weight
    assert lexemes["'post'"] == "1A" and lexemes["'bau'"] == "1B"
    assert "'eingang'" not in lexemes  # parts of six letters or more: endings do it
    assert lexemes["'buerg'"] == "1D"  # "bürger", stemmed as the query will be
    assert lexemes[f"'{parts_marker(GOVERNMENT_PARTS)}'"] == "1D"
    assert compound_parts("x" * (MAX_COMPOUND + 1), "", "") == \
        f"'{parts_marker(GOVERNMENT_PARTS)}':1D"
    assert parts_marker(GOVERNMENT_PARTS) != parts_marker(GOVERNMENT_PARTS - {"akte"})
    many = " ".join(f"wort{n:06d}abcdefgh" for n in range(40_000))
    assert MAX_PARTS_CHARS < len(compound_parts("", "", many)) < MAX_PARTS_CHARS + 1_000


async def test_migration_0007_fills_compound_parts_of_existing_rows(tmp_path) -> None:
    from node.storage.db import create_engine
    from tests.node_support import fresh_postgres_database

    async with fresh_postgres_database() as url:
        engine = create_engine(url)
        try:
            await migrate(engine, "0006")
            async with engine.begin() as connection:
                await connection.execute(sa.text(
                    "INSERT INTO hub_search (uri, kind, title, summary, content_text, author, "
                    "topics) VALUES ('https://a.example/p', 'practice', 'Posteingangsbearbeitung', "
                    "'', 'Bauantragsverfahren', 'https://a.example/actor', '{}')"))
            await migrate(engine)
            search = PostgresSearch(session_maker(engine))
            assert slugs(await search.search("Bearbeitung")) == {"p"}
            assert slugs(await search.search("Antrag")) == {"p"}
            async with engine.connect() as connection:
                stored = (await connection.execute(sa.text(
                    "SELECT compound_parts = CAST(:parts AS tsvector) FROM hub_search"),
                    {"parts": compound_parts("Posteingangsbearbeitung", "",
                                             "Bauantragsverfahren")})).scalar_one()
                indexes = await connection.run_sync(
                    lambda sync: inspect(sync).get_indexes("hub_search"))
            assert stored is True
            assert "ix_hub_search_compound_parts" in {index["name"] for index in indexes}
        finally:
            await engine.dispose()


async def test_the_search_benchmark_measures_writing_and_every_query(capsys) -> None:
    import os

    from bench.hub_search import QUERIES, URL_ENV, compare

    url = os.environ.get(URL_ENV)
    if not url:
        pytest.skip(f"{URL_ENV} is not set")
    await compare(url, 60, None, pairs=1, repeats=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 + 2 * len(QUERIES)
    assert all(line.startswith("1\tafter\t") and "\tload " in line for line in lines)


def compound_documents() -> list[dict]:
    return [
        practice(GT, "personal", name="Die Personalakte digital"),
        practice(GT, "bauakte", name="Bauakte", summary="Jede Akte im Archiv"),
        practice(DN, "kontakte", name="Kontakte pflegen", summary="Kontakte zur Kommune"),
        practice(DN, "eingang", name="Unsere Posteingangsstelle"),
        practice(DN, "buero", name="Das Bürgerbüro", summary="Ratsinformationssystem"),
        practice(DN, "archiv", name="Bauaktenarchiv"),
    ]


async def test_lexicon_parts_of_compounds_are_found(backend: SearchBackend) -> None:
    await backend.add([view_of(document) for document in compound_documents()])
    akte = {"e-akte", "s1", "personal", "bauakte", "archiv"}
    assert slugs(await backend.search("Akte")) == akte  # never "Kontakte"
    assert slugs(await backend.search("Akten")) == akte
    assert "kontakte" not in slugs(await backend.search("Akten -Bauamt"))
    assert slugs(await backend.search("Kontakte")) == {"kontakte", "kontakt"}
    assert slugs(await backend.search("Eingang")) == {"eingang", "post"}
    assert slugs(await backend.search("Stelle")) == {"eingang", "portal"}  # "stellen"
    assert slugs(await backend.search("Amt")) == {"e-akte"}  # "Bauamt"
    assert slugs(await backend.search("Rat System")) == {"buero"}
    for query in ("Büro", "Buero", "BÜRO", "Bueros"):  # umlauts folded on both sides
        assert slugs(await backend.search(query)) == {"buero"}, query
    assert slugs(await backend.search("Bürger")) == {"buero", "portal"}
    # a whole compound is one word of the query: not its parts anywhere
    assert slugs(await backend.search("Personalakte")) == {"personal"}


async def test_the_exact_word_ranks_above_compounds_holding_it(backend: SearchBackend) -> None:
    await backend.add([view_of(document) for document in compound_documents()])
    hits = {hit.uri.rsplit("/", 1)[1]: hit.score for hit in await backend.search("Akte")}
    # "E-Akte" and "Jede Akte" hold the stem itself; the rest only as a part of a compound
    assert min(hits["e-akte"], hits["bauakte"]) > max(hits["personal"], hits["archiv"])
    hits_in_order = [hit.uri.rsplit("/", 1)[1] for hit in await backend.search("Bauakte")]
    assert hits_in_order == ["bauakte", "archiv"]  # the word itself, then the longer one


async def test_a_refill_rewrites_rows_whose_parts_were_computed_otherwise(
        backend: SearchBackend) -> None:
    """A hub upgraded to another lexicon: its rows get the new parts at the next refill,
    and rows already current stay untouched (the memory index is built afresh anyway)."""
    views = [view_of(document) for document in compound_documents()[:3]]
    await backend.add(views)
    before = await _stale_personal_row(backend)
    if isinstance(backend, PostgresSearch):
        assert "personal" not in slugs(await backend.search("Akte"))
    async with backend.refill() as refill:
        await refill.add([view_of(document) for document in documents()] + views)
    assert "personal" in slugs(await backend.search("Akte"))
    if isinstance(backend, PostgresSearch):
        after = await _row_versions(backend)
        assert [slug for slug in after if after[slug] != before[slug]] == ["personal"]


async def _row_versions(backend: PostgresSearch) -> dict[str, str]:
    async with backend._sessions() as session:
        rows = await session.execute(sa.text("SELECT uri, xmin::text FROM hub_search"))
        return {uri.rsplit("/", 1)[1]: xmin for uri, xmin in rows}


async def _stale_personal_row(backend: SearchBackend) -> dict[str, str]:
    """On PostgreSQL, the "personal" row's parts as written before there were lexicon
    parts; the row versions after that."""
    if not isinstance(backend, PostgresSearch):
        return {}
    async with backend._sessions() as session, session.begin():
        await session.execute(sa.text(
            "UPDATE hub_search SET compound_parts = ''::tsvector WHERE uri LIKE '%personal'"))
    return await _row_versions(backend)
