"""The example queries' fast forms (hash joins, in-memory sort keys) give the answers of
their plain forms: the same rows in the same order, on generated data with tied names,
names that are prefixes of others, code points below the space and beyond the BMP,
language-tagged names, IRI names, practices without a municipality key, tied counts."""

from __future__ import annotations

import pytest
from hub_support import actor, make_index, practice, stance

from node.hub.query_runner import QueryOptions, SelectOutcome, ThreadRunner
from node.hub.sparql import PREFIXES, example_by_slug

_PLAIN_BODIES = {
    "practices-by-topic": """
SELECT ?practice ?name ?member WHERE {
  GRAPH ?member { ?practice a pn:Practice ; pn:topic topics:e-akte ; as:name ?name . }
} ORDER BY ?name ?practice LIMIT 200""",
    "e-file-in-operation": """
SELECT DISTINCT ?practice ?name ?municipalityKey WHERE {
  ?practice a pn:Practice ; pn:topic topics:e-akte ; pn:status pn:inOperation ; as:name ?name .
  OPTIONAL { ?practice pn:municipalityKey ?municipalityKey }
} ORDER BY ?name ?practice LIMIT 200""",
    "e-file-by-districts-in-operation": """
SELECT ?practice ?name ?districtKey ?member WHERE {
  GRAPH ?member {
    ?practice a pn:Practice ; pn:topic topics:e-akte ; pn:status pn:inOperation ;
              as:name ?name ; pn:municipalityKey ?districtKey .
  }
  FILTER(STRSTARTS(STR(?districtKey), "http://dcat-ap.de/def/politicalGeocoding/districtKey/"))
} ORDER BY ?name ?practice LIMIT 200""",
    "disagreements-by-practice": """
SELECT ?practice ?name (COUNT(DISTINCT ?stance) AS ?disagreements) WHERE {
  ?practice a pn:Practice ; as:name ?name .
  ?stance a pn:Stance ; pn:position pn:disagree ; pn:about ?practice .
} GROUP BY ?practice ?name ORDER BY DESC(?disagreements) ?practice LIMIT 200""",
    "contributions-by-municipality": """
SELECT ?municipalityKey (COUNT(DISTINCT ?contribution) AS ?contributions) WHERE {
  GRAPH ?member { ?contribution as:attributedTo ?member ; pn:municipalityKey ?municipalityKey . }
} GROUP BY ?municipalityKey ORDER BY DESC(?contributions) ?municipalityKey LIMIT 500""",
}
OPTIONS = QueryOptions(prefixes=PREFIXES)
DISTRICT_KEY = "http://dcat-ap.de/def/politicalGeocoding/districtKey/"
# Ties, prefixes, a tab and U+0001 (below the space), umlauts, an astral character, empty.
NAMES = (
    "E-Akte",
    "E-Akte Pilot",
    "E-Akte\tBauamt",
    "E-Akte\u0001",
    "Ärger",
    "Zebra",
    "E-Akte",
    "\U0001f4c1 Akte",
    "",
    "Bürgerportal",
    "e-akte",
    "E-Akte Pilot",
)
STATUSES = ("in-operation", "planned", "piloting")
TOPICS = ("e-akte", "strategie")


def _practice(member: int, number: int, *, language: str | None) -> dict:
    host = f"m{member}.example"
    name = NAMES[(member * 5 + number) % len(NAMES)]
    document = practice(
        host,
        f"p{number}",
        name=name,
        status=STATUSES[(member + number) % 3],
        topics=(TOPICS[number % 2],),
        ags=f"{5_000_000 + member % 4:08d}",
    )
    if number == 4:
        del document["municipalityKey"]  # the OPTIONAL leaves it unbound
    elif number % 4 == 2:
        document["municipalityKey"] = DISTRICT_KEY + f"{5_754 + member % 3:05d}"
    if language is not None:
        del document["name"]
        document["nameMap"] = {language: name}
    return document


def _index(*, language: str | None = None, iri_names: bool = False):
    hub = make_index(ThreadRunner(max_concurrent=2))
    for member in range(9):
        host = f"m{member}.example"
        for number in range(8):
            document = _practice(member, number, language=language)
            if iri_names and number == 2:
                document["name"] = {"id": f"https://names.example/{member % 3}"}
            hub.add_contribution(actor(host), document)
        for target in range(member % 4):  # 0-3 disagreements: tied counts
            about = f"https://m{(member + target + 1) % 9}.example/practices/p{target}"
            hub.add_contribution(
                actor(host), stance(host, f"s{target}", about=about, position="disagree")
            )
    return hub


def _answer(hub, text: str) -> SelectOutcome:
    outcome = hub.query(text, timeout=30, max_rows=10_000, options=OPTIONS, reuse=False)
    assert isinstance(outcome, SelectOutcome)
    return outcome


def _both(hub, slug: str, limit: str | None = None) -> tuple[SelectOutcome, SelectOutcome]:
    fast = example_by_slug(slug).sparql
    plain = _PLAIN_BODIES[slug]
    if limit is not None:  # cut inside the sorted rows, to compare the top rows only
        fast = fast.rsplit("LIMIT", 1)[0] + f"LIMIT {limit}"
        plain = plain.rsplit("LIMIT", 1)[0] + f"LIMIT {limit}"
    return _answer(hub, fast), _answer(hub, plain)


@pytest.fixture(scope="module")
def strings_index():
    return _index()


@pytest.mark.parametrize("slug", sorted(_PLAIN_BODIES))
@pytest.mark.parametrize("limit", [None, "5"])
def test_fast_forms_answer_as_the_plain_forms(strings_index, slug, limit):
    fast, plain = _both(strings_index, slug, limit)
    assert fast.variables == plain.variables
    assert fast.rows == plain.rows
    assert len(plain.rows) >= 3  # the comparison is not of empty answers


def test_tied_names_and_counts_are_in_the_data(strings_index):
    fast, _ = _both(strings_index, "practices-by-topic")
    names = [row["name"]["value"] for row in fast.rows]
    assert len(names) > len(set(names))  # ties, decided by ?practice
    assert names.index("E-Akte") < names.index("E-Akte\u0001") < names.index("E-Akte\tBauamt")
    counts = [
        row["disagreements"]["value"]
        for row in _both(strings_index, "disagreements-by-practice")[0].rows
    ]
    assert len(counts) > len(set(counts))
    keys = _both(strings_index, "e-file-in-operation")[0].rows
    assert any("municipalityKey" not in row for row in keys)


@pytest.mark.parametrize(
    "slug", ["practices-by-topic", "e-file-in-operation", "e-file-by-districts-in-operation"]
)
def test_fast_forms_with_language_tagged_names(slug):
    hub = _index(language="de")
    fast, plain = _both(hub, slug)
    assert fast.rows == plain.rows
    assert all(row["name"].get("xml:lang") == "de" for row in fast.rows) and fast.rows


def test_fast_forms_with_iri_names_among_strings():
    hub = _index(iri_names=True)
    for slug in ("practices-by-topic", "disagreements-by-practice"):
        fast, plain = _both(hub, slug)
        assert fast.rows == plain.rows
    rows = _both(hub, "practices-by-topic")[0].rows
    assert rows[0]["name"]["type"] == "uri"  # IRIs before literals, as Oxigraph orders terms


def test_a_practice_in_two_members_graphs():
    """A document attributed to two members sits in both graphs: the fast forms keep each
    graph's rows apart (no join across graphs) and give the plain forms' rows."""
    hub = _index()
    shared = practice("m1.example", "shared", name="E-Akte", status="in-operation")
    shared["attributedTo"] = [actor("m1.example"), actor("m2.example")]
    hub.add_contribution(actor("m1.example"), shared)
    hub.replace_member(actor("m2.example"), [shared])
    for slug in ("practices-by-topic", "contributions-by-municipality", "e-file-in-operation"):
        fast, plain = _both(hub, slug)
        # rows tied on every ORDER BY key of the plain form may come in either order
        assert sorted(map(repr, fast.rows)) == sorted(map(repr, plain.rows))
    fast, plain = _both(hub, "practices-by-topic")
    assert [row["name"] for row in fast.rows] == [row["name"] for row in plain.rows]
    members = {
        row["member"]["value"] for row in fast.rows if row["practice"]["value"] == shared["id"]
    }
    assert members == {actor("m1.example"), actor("m2.example")}
    # in the union of the graphs it is one practice: listed once, not once per join of
    # its five patterns' matches in each graph (2^5 rows before DISTINCT)
    fast, _ = _both(hub, "e-file-in-operation")
    assert [row["practice"]["value"] for row in fast.rows].count(shared["id"]) == 1
