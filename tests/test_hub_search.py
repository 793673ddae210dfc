"""German search: word forms, umlauts, hyphens, compounds, filters, updates."""

from __future__ import annotations

import pytest
from hub_support import practice, stance

from node.hub.contribution import ContributionKind, view_of
from node.hub.search import (
    QueryAlternative,
    SearchFilters,
    SearchIndex,
    fold,
    parse_query,
    stem,
    terms,
)

GT, DN = "guetersloh.example", "dueren.example"


def build() -> SearchIndex:
    documents = [
        practice(GT, "e-akte", name="E-Akte im Bauamt", summary="Elektronische Aktenführung", ags="05754008"),
        practice(DN, "portal", name="Unser Bürgerportal", content="<p>Anträge <em>online</em> stellen.</p>",
                 topics=("buergerportal-online-dienste",), ags="05358008", status="piloting"),
        practice(DN, "post", name="Posteingangsbearbeitung zentral", topics=("prozessmanagement",), ags="05358008"),
        practice(GT, "kontakt", name="Kontaktformular", topics=("elektronische-kommunikation",)),
        stance(DN, "s1", about=f"https://{GT}/practices/e-akte", position="agree", reason="Die E-Akte spart Wege."),
    ]
    return SearchIndex(view_of(document) for document in documents)


def uris(hits) -> list[str]:
    return [hit.uri.rsplit("/", 1)[1] for hit in hits]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Akten", {"e-akte", "s1"}),
        ("Akte", {"e-akte", "s1"}),
        ("e-akte", {"e-akte", "s1"}),
        ("Bürgerportale", {"portal"}),
        ("Buergerportal", {"portal"}),
        ("BÜRGERPORTAL", {"portal"}),
        ("Bürger", {"portal"}),
        ("Posteingang", {"post"}),
        ("Bearbeitung", {"post"}),
        ("Antraege online", {"portal"}),
        ("Akten Bauamt", {"e-akte"}),
        ("Bauämter", {"e-akte"}),  # asked as its lexicon form "Bauamt" too
        ("Kontakte", {"kontakt"}),
        ("xyzzy", set()),
    ],
)
def test_german_word_forms(query, expected):
    assert set(uris(build().search(query))) == expected


def test_short_stems_do_not_match_inside_other_words():
    # "akt" must not find "Kontaktformular", although it contains the letters
    assert "kontakt" not in uris(build().search("Akten"))


def test_title_matches_rank_above_body_matches():
    hits = build().search("Akte")
    assert uris(hits)[0] == "e-akte"
    assert hits[0].score > hits[1].score


def test_filters():
    index = build()
    assert set(uris(index.search("", SearchFilters(municipality="05358008")))) == {"portal", "post"}
    full_key = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/05754008"
    assert set(uris(index.search("", SearchFilters(municipality=full_key)))) == {"e-akte", "kontakt"}
    assert set(uris(index.search("", SearchFilters(topic="https://w3id.org/praxisnetz/topics#prozessmanagement")))) == {"post"}
    assert set(uris(index.search("Akte", SearchFilters(kind=ContributionKind.STANCE)))) == {"s1"}
    assert set(uris(index.search("", SearchFilters(status="piloting")))) == {"portal"}
    assert index.search("Portal", SearchFilters(status="in-operation")) == []


def test_update_and_remove_keep_the_index_consistent():
    index = build()
    updated = practice(DN, "portal", name="Online-Dienste", topics=("buergerportal-online-dienste",))
    index.add(view_of(updated))
    assert index.search("Bürgerportal") == []
    assert uris(index.search("Dienste")) == ["portal"]
    assert index.remove(updated["id"]) is True
    assert index.search("Dienste") == [] and len(index) == 4
    assert index.remove(updated["id"]) is False


def test_normaliser_pieces():
    assert fold("Größe Übergabe") == "groesse uebergabe"
    assert terms("E-Akte, Bürgerportale!") == ["e", "akt", "buergerportal"]
    assert stem("akten") == stem("akte") == "akt"
    assert stem("ern") == "ern"  # too short to strip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Akten -Bauamt", {"s1"}),  # the practice names the Bauamt, the stance does not
        ("Akte -Wege", {"e-akte"}),
        ('"E-Akte im Bauamt"', {"e-akte"}),
        ("Kontakt or Posteingang", {"kontakt", "post"}),
        ("Kontakt OR Bürgerportal -online", {"kontakt"}),
        ("-Akte", {"portal", "post", "kontakt"}),
        ("Akte -", {"e-akte", "s1"}),  # a lone minus is no word
    ],
)
def test_web_search_syntax(query, expected):
    assert set(uris(build().search(query))) == expected


def test_the_query_syntax_is_read_into_alternatives():
    assert parse_query('Akten -"Bauamt" or Portal') == [
        QueryAlternative(("akt",), ("bauamt",)), QueryAlternative(("portal",), ())]
    assert parse_query("  ") == [QueryAlternative((), ())]
    assert parse_query("or or") == [QueryAlternative((), ())]


def test_compound_parts_follow_updates_and_removals():
    index = build()
    personal = practice(GT, "personal", name="Personalakte digital")
    index.add(view_of(personal))
    assert set(uris(index.search("Akte"))) == {"e-akte", "s1", "personal"}
    assert set(uris(index.search("Personal"))) == {"personal"}
    index.add(view_of(practice(GT, "personal", name="Personalausweis digital")))
    assert set(uris(index.search("Akte"))) == {"e-akte", "s1"}  # the old parts are gone
    assert set(uris(index.search("Ausweis"))) == {"personal"}
    assert index.remove(personal["id"]) is True
    assert index.search("Ausweis") == [] and index.search("Personal") == []


def test_a_custom_lexicon_is_used_for_the_parts():
    documents = [practice(GT, "kontakt", name="Kontakte pflegen")]
    default = SearchIndex(view_of(document) for document in documents)
    assert default.search("Akte") == []
    from node.hub.compounds import lexicon_of

    odd = SearchIndex((view_of(document) for document in documents),
                      lexicon=lexicon_of("kont akte"))
    assert uris(odd.search("Akte")) == ["kontakt"]
