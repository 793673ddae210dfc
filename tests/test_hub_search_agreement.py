"""The two search backends agree: the same queries over the same contributions find the
same contributions in memory (SQLite hubs) and in PostgreSQL, including German compounds
with an unknown modifier, umlaut plurals, short hyphen pieces and stop words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hub_support import practice

from node.hub.contribution import view_of
from node.hub.search_backends import MemorySearch, PostgresSearch, SearchBackend
from node.storage.db import migrate, session_maker
from tests.node_support import database_engine

GT, DN = "guetersloh.example", "dueren.example"


def documents() -> list[dict]:
    return [
        practice(GT, "schueler", name="Die Schülerakte digital",
                 summary="Patientenakten und Ermittlungsakten bleiben beim Kreis"),
        practice(GT, "kontakte", name="Kontakte pflegen", summary="Steckkontakte und Artefakte"),
        practice(DN, "aemter", name="Unsere Bauämter", summary="Zwei Stadträte berichten"),
        practice(DN, "personal", name="Personalakten scannen"),
        practice(GT, "eakte", name="E-Akte im Bauamt", summary="Elektronische Aktenführung"),
        practice(DN, "it", name="IT-Sicherheit im Rathaus",
                 content="<p>Das Informationssicherheitskonzept gilt für alle.</p>"),
        practice(GT, "mail", name="E-Mail an die Akte hängen"),
        practice(DN, "antraege", name="Bauanträge online",
                 content="<p>Anträge und ein Antrag des Verfahrens wegen.</p>"),
        practice(GT, "betrag", name="Der Betrag der Gebühr", summary="insgesamt im Endgerät"),
        practice(DN, "verfahren", name="Bauverfahren beschleunigen"),
        practice(GT, "amt", name="Das Amt für Ordnung", summary="Ämter im Vergleich"),
    ]


# query -> what both backends find (slugs)
EXPECTED = {
    "Akte": {"schueler", "personal", "eakte", "mail"},  # never "Kontakte"
    "Akten": {"schueler", "personal", "eakte", "mail"},
    "Schülerakte": {"schueler"},
    "Patientenakte": {"schueler"},
    "Amt": {"aemter", "eakte", "amt"},  # "Bauämter", "Bauamt", "Amt", "Ämter"
    "Ämter": {"aemter", "eakte", "amt"},
    "Bauamt": {"aemter", "eakte"},
    "Bauämter": {"aemter", "eakte"},
    "Rat": {"aemter", "it"},  # "Stadträte", "Rathaus"
    "Antrag": {"antraege"},  # never "Betrag"
    "Anträge": {"antraege"},
    "Betrag": {"betrag"},
    "Verfahren": {"antraege", "verfahren"},
    "Verfahrens": {"antraege", "verfahren"},
    "Kontakte": {"kontakte"},
    "E-Akte": {"eakte", "mail"},  # its pieces, anywhere: "E-Mail an die Akte"
    "IT-Sicherheit": {"it"},
    "IT Sicherheit": {"it"},
    "Akte im Bauamt": {"eakte"},  # "im" is a stop word on both
    "Bauämter und Stadträte": {"aemter"},  # though that text has no "und"
    "die": set(),  # stop words alone find nothing
    "im und die": set(),
    "Samt": set(),  # "insgesamt" is no compound
    "xyzzy": set(),
}


async def _filled(kind: str, tmp_path) -> AsyncIterator[SearchBackend]:
    async for engine in database_engine(kind, tmp_path):
        await migrate(engine)
        backend: SearchBackend = (PostgresSearch(session_maker(engine)) if kind == "postgres"
                                  else MemorySearch())
        await backend.replace_all([view_of(document) for document in documents()])
        yield backend


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[SearchBackend]:
    async for filled in _filled(request.param, tmp_path):
        yield filled


async def _found(backend: SearchBackend, query: str) -> set[str]:
    return {hit.uri.rsplit("/", 1)[1] for hit in await backend.search(query)}


async def test_compounds_plurals_hyphens_and_stop_words(backend: SearchBackend) -> None:
    found = {query: await _found(backend, query) for query in EXPECTED}
    assert found == EXPECTED


# Queries whose answers both backends must share, beyond the expected ones above.
MORE_QUERIES = (
    "Sicherheit", "Informationssicherheit", "Kontakt", "Stelle", "Ermittlung", "Personal",
    "Bau", "Online", "Gebühr", "Kreis", "Stadt", "Schüler", "digital", "E", "IT", "Mail",
    "Akte -Bauamt", "Bauanträge online", "Ordnung", "Vergleich", "Artefakt", "Rathaus",
)


async def test_both_backends_find_the_same(tmp_path) -> None:
    (tmp_path / "memory").mkdir()
    async for memory in _filled("sqlite", tmp_path / "memory"):
        async for postgres in _filled("postgres", tmp_path):
            differ = {}
            for query in (*EXPECTED, *MORE_QUERIES):
                in_memory = await _found(memory, query)
                in_postgres = await _found(postgres, query)
                if in_memory != in_postgres:
                    differ[query] = (in_memory, in_postgres)
            assert differ == {}
