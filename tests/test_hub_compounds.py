"""Splitting German compounds into lexicon words (node.hub.compounds)."""

from __future__ import annotations

import pytest

from node.hub.compounds import (
    GOVERNMENT_PARTS,
    LOOKALIKES,
    MAX_WORD,
    PLURAL_BASES,
    fold_word,
    lexicon_form,
    lexicon_of,
    plausible_modifier,
    split_compound,
)
from node.hub.search import lemma_term, part_terms


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("Personalakte", ("personal", "akte")),
        ("Personalakten", ("personal", "akte")),  # the last part inflected
        ("Bauakte", ("bau", "akte")),
        ("Posteingangsstelle", ("post", "eingang", "stelle")),  # linking -s-
        ("Dokumentenmanagementsystem", ("dokument", "management", "system")),  # -en-
        ("Ratsinformationssystem", ("rat", "information", "system")),
        ("Kindergarten", ("kind", "garten")),  # -er-
        ("Landesamt", ("land", "amt")),  # -es-
        ("Bürgerbüro", ("buerger", "buero")),  # umlauts folded
        ("Bürgerservice", ("buerger", "service")),
        ("Bauantragsverfahren", ("bau", "antrag", "verfahren")),
    ],
)
def test_compounds_split_into_their_lexicon_words(word: str, parts: tuple[str, ...]) -> None:
    assert split_compound(fold_word(word), GOVERNMENT_PARTS) == parts


@pytest.mark.parametrize(
    "word",
    [
        "Kontakte",  # "kon"/"kont" are no words: "Akte" must not find it
        "Kontaktformularx",  # a tail that is no word, no ending
        "insgesamt", "Gesamtplan",  # "ges", "insges" are no words
        "Abbau", "Vorrat", "Beispiel", "Referat",  # prefixes are not in the lexicon
        "Akte", "Akten", "Verwaltung",  # a single lexicon word is no compound
        "Bauer",  # "bau" plus an ending is still one word
        "xyzakte",
    ],
)
def test_words_that_are_no_compounds_of_the_lexicon_stay_whole(word: str) -> None:
    assert split_compound(fold_word(word), GOVERNMENT_PARTS) == ()


def test_the_fewest_parts_win_and_the_lexicon_decides() -> None:
    lexicon = lexicon_of("post ein gang eingang stelle")
    assert split_compound("posteingangsstelle", lexicon) == ("post", "eingang", "stelle")
    # the same word against a lexicon that holds "kont" would split: the check is the lexicon
    assert split_compound("kontakte", lexicon_of("kont akte")) == ("kont", "akte")
    assert split_compound("kontakte", lexicon_of("ko akte")) == ()  # parts under MIN_PART
    assert split_compound("bauakte", frozenset()) == ()


def test_long_strings_are_not_split() -> None:
    word = "bau" * (MAX_WORD // 3) + "akte"
    assert len(word) > MAX_WORD and split_compound(word, GOVERNMENT_PARTS) == ()
    assert split_compound(("bau" * 20) + "akte", GOVERNMENT_PARTS)[-1] == "akte"


def test_the_lexicon_is_folded_and_holds_no_compounds_of_itself() -> None:
    assert all(word == fold_word(word) and len(word) >= 3 for word in GOVERNMENT_PARTS)
    # an entry made of other entries would hide its parts: "Kreis" must find "Landkreisamt"
    assert [word for word in GOVERNMENT_PARTS
            if split_compound(word, GOVERNMENT_PARTS - {word})] == []


def test_part_terms_are_the_stems_the_search_indexes() -> None:
    assert part_terms("personalakten") == ("akt",)  # "personal": as a prefix already
    assert part_terms("posteingangsstelle") == ("post", "stell")  # "eingang": inside
    assert part_terms("buergerbueros") == ("buerg", "buero")
    assert part_terms("kontakte") == ()


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        # an unknown modifier before a lexicon head
        ("Schülerakte", ("schueler", "akte")),
        ("Schülerakten", ("schueler", "akte")),
        ("Patientenakte", ("patienten", "akte")),
        ("Ermittlungsakten", ("ermittlungs", "akte")),  # linking -s-
        ("Schülerpersonalakte", ("schueler", "personal", "akte")),
        ("Wackelkontakte", ("wackel", "kontakt")),  # "Kontakt", not "Akte"
        # umlaut plurals and inflected heads in their lexicon form
        ("Bauämter", ("bau", "amt")),
        ("Bauämtern", ("bau", "amt")),
        ("Landesbauämter", ("land", "bau", "amt")),
        ("Bauanträge", ("bau", "antrag")),
        ("Stadträte", ("stadt", "rat")),
        ("Bauverfahrens", ("bau", "verfahren")),
    ],
)
def test_heads_after_unknown_modifiers_and_plural_heads(word: str, parts: tuple[str, ...]) -> None:
    assert split_compound(fold_word(word), GOVERNMENT_PARTS) == parts


@pytest.mark.parametrize(
    "word",
    [
        "Kontakte", "Kontakten",  # "kont" is no modifier: too short
        "Steckkontakte",  # the longest known ending is "kontakte", after a short modifier
        "Arbeitstakte", "Indexkontrakte", "Artefakte", "Extrakte",  # lookalikes of "akte"
        "Sachakte",  # a modifier under MIN_MODIFIER letters
        "insgesamt", "Endgerät",  # three-letter heads take known modifiers only
        "Journalisten", "Spezialisten",  # "-alisten": modifiers ending in "a"
        "Abrollwiderstand", "Streitgegenstand", "Missverstand",  # particles, not modifiers
        "Angebotspreise",  # "Preise", not "Reise": "angebotsp" is no modifier
        "Buchverlage",  # "Verlag", not "Lage"
        "kommentieren",  # "-tieren" verbs hold no "Tier"
        "Betrag",
    ],
)
def test_words_that_only_end_like_a_lexicon_word_stay_whole(word: str) -> None:
    assert split_compound(fold_word(word), GOVERNMENT_PARTS) == ()


def test_lexicon_forms() -> None:
    def form(word: str) -> str:
        return lexicon_form(fold_word(word), GOVERNMENT_PARTS)

    assert form("Bauämtern") == "bauamt" and form("Ämter") == "amt"
    assert form("Anträge") == "antrag" and form("Verfahrens") == "verfahren"
    assert form("Personalakten") == "personalakte" and form("Schülerakten") == "schuelerakte"
    assert form("Kontakte") == "kontakt" and form("xyzzy") == "xyzzy"
    # the lemma term is only there where it stems otherwise than the word itself
    assert lemma_term("bauaemter") == "bauamt" and lemma_term("verfahrens") == "verfahr"
    assert lemma_term("personalakten") is None and lemma_term("akte") is None
    assert part_terms("schuelerakten") == ("akt",)  # the unknown modifier is no part
    assert part_terms("bauaemtern") == ("bau", "amt")


def test_plausible_modifiers() -> None:
    assert all(map(plausible_modifier, ("schueler", "patienten", "ermittlungs", "artikel")))
    assert not any(map(plausible_modifier, (
        "journa", "steckkont", "abrollwider", "untervermi", "sachbe", "bcdfgs")))


def test_the_plural_table_and_lookalikes_fit_the_lexicon() -> None:
    assert set(PLURAL_BASES.values()) <= GOVERNMENT_PARTS
    assert not set(PLURAL_BASES) & GOVERNMENT_PARTS
    assert not LOOKALIKES & GOVERNMENT_PARTS
