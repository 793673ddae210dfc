"""German compounds split into known parts, so that "Akte" finds "Personalakte".

A compound is split when its last part, the head, is a word of a lexicon (perhaps
inflected: "Personalakten"; perhaps an umlaut plural: "Bauämter" -> "amt") and what
comes before is made of lexicon words joined by the German linking elements (-s-, -es-,
-n-, -en-, -er-, -e-): "Ratsinformationssystem" -> "rat", "information", "system". Every
part must be a lexicon word of at least ``MIN_PART`` letters, so "Kontakte" stays whole:
neither "kon" nor "kont" is a word. Of several splits the one with the fewest parts
wins, so a lexicon word is never split itself.

Where the modifier (what comes before the known parts) is no lexicon word, the compound
is still split when that modifier is a plausible word of its own ("Schülerakte" ->
"schueler", "akte"; ``plausible_modifier``): ``MIN_MODIFIER`` letters or more, a vowel
among them, ending as first parts do (a linking -s- after a consonant: "Ermittlungs-";
or -er, -en, -el: "Schüler-", "Patienten-"), but not in a verb particle ("Widerstand",
"Gegenstand", "vermieten"); and the known part after it is the longest known ending of
the word, of ``MIN_OPEN_HEAD`` letters or more. So "Steckkontakte" is "Kontakte" with a
short modifier, never "Akte" with "steckkont", "Journalisten" holds no "Liste"
("journa" ends in no modifier ending), and the ``LOOKALIKES`` (words that end like a
lexicon word without being compounds of it: "Kontrakt", "Extrakt", "Auftakt", "Verlag")
stop the split the same way. Checked against the 356,010 words of Debian's ``ngerman``
list: 5,659 of them split only this way, by a sample nearly all true compounds.

``GOVERNMENT_PARTS`` is the lexicon the hub uses: a curated list of the heads and
modifiers of municipal E-Government compounds, shipped here as data. It is curated
rather than learnt from the indexed texts because the PostgreSQL backend stores each
contribution's parts when it is written: parts that depended on the other contributions
would go stale with every write. A word belongs in the list when it is a noun (or a
compound-forming stem such as "wohn", "melde") that readers search for on its own;
function words and prefixes ("ab", "vor", "ver") never are, since they would split
"Abbau" or "Vorrat".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MIN_PART = 3
# An unknown modifier: at least this many letters (linking element included).
MIN_MODIFIER = 6
# A known part after an unknown modifier: at least this many letters ("insgesamt",
# "Endgerät" end in three-letter words that no modifier of their own makes compounds).
MIN_OPEN_HEAD = 4
# Longer "words" are hashes or encoded data (the same limit as the search's compounds).
MAX_WORD = 64
LINKS = ("", "s", "es", "n", "en", "er", "e")
# How the last part may end beyond its lexicon form ("Akten", "Dienste", "Kindern").
ENDINGS = ("", "e", "n", "en", "s", "es", "er", "ern")
_VOWELS = frozenset("aeiouy")
# How an unknown modifier may end: a linking -s- after a consonant ("Ermittlungs-",
# "Gesundheits-"), or -er, -en, -el ("Schüler-", "Patienten-", "Artikel-").
_MODIFIER_ENDINGS = ("er", "en", "el")
# Particles that end such modifiers in verbs and their nouns ("Widerstand",
# "Gegenstand", "hinterstellen"), not in compounds.
_PARTICLES = ("wider", "gegen", "unter", "hinter", "ueber", "ausser", "nieder", "ander",
              "ober", "immer", "wieder", "vorher", "zusammen", "ver")
# Heads that take known modifiers only: "-tieren" ends verbs ("kommentieren").
_KNOWN_MODIFIERS_ONLY = frozenset({"tier"})
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

_GOVERNMENT_WORDS = """
    abfall abgabe abwasser agentur akt akte amt anfrage angebot anlage anmeldung
    anschluss antrag anwendung anzeige arbeit archiv arzt aufgabe auftrag
    ausbildung ausgabe ausgang ausländer ausschreibung ausschuss ausweis auskunft auto
    bad bahn bank bau beamte bearbeitung bedarf behörde beitrag beratung bereich
    bericht bescheid bescheinigung beschaffung beschluss beschwerde beteiligung betrieb
    betreuung bewerbung bezirk bibliothek bildung bord brand brief buch bund bürger büro
    chat cloud daten datei dienst digitalisierung dokument dorf ehe ehren eingang einkauf
    einwohner eltern energie entwicklung erlaubnis fach fahrzeug fall familie feuer
    feuerwehr finanz fläche formular förderung fortbildung fraktion frist friedhof führung
    führerschein garten gebäude gebühr geburt geld gemeinde genehmigung gericht gesetz
    gesundheit gewerbe grund gruppe grün hafen halle handbuch handel haus haushalt heim
    hilfe hof hund information integration jahr jobcenter jugend kammer kanzlei karte
    kasse kataster kind kirche kita klima kommune kontakt konto kosten kreis kultur kunde
    land lage leistung leitung liste lösung mahnung management markt meister
    melde meldung miete mitarbeiter mittel modell muster nachweis natur netz netzwerk
    nummer nutzer nutzung ordnung organisation ort papier park partei pass personal
    pflege plan planung plattform platz politik polizei portal post praxis programm
    projekt protokoll prozess prüfung quartier rat raum recht rechnung referat
    region register reise rente rettung satzung schaden schnittstelle schul schule
    schulung schutz server service sicherheit signatur sitzung software sozial speicher
    spiel sport stadt staat stand stelle steuer strategie straße strom system
    tag team technik telefon termin tier umwelt unterlage urkunde verband verein
    vereinbarung verfahren vergabe verkehr vermessung versammlung versicherung vertrag
    vertretung verwaltung verzeichnis vorgang vorlage wahl wald wasser weg welt wirtschaft
    wissen wohn wohnung zahlung zeit zentrale zentrum zugang zulassung zuschuss
"""
# Lexicon words and their umlaut plurals ("Ämter", "Ämtern"): a head in one of these
# forms is its lexicon word. Curated: umlauting by rule would make "Wähler" a "Wahl".
_UMLAUT_PLURALS = """
    abfall:abfälle amt:ämter antrag:anträge anschluss:anschlüsse arzt:ärzte
    auftrag:aufträge ausgang:ausgänge ausschuss:ausschüsse bad:bäder bank:bänke
    bau:bauten beitrag:beiträge beschluss:beschlüsse buch:bücher dorf:dörfer
    einkauf:einkäufe eingang:eingänge fach:fächer fall:fälle friedhof:friedhöfe
    garten:gärten grund:gründe hafen:häfen handbuch:handbücher haus:häuser hof:höfe
    land:länder markt:märkte plan:pläne platz:plätze rat:räte raum:räume stadt:städte
    stand:stände strom:ströme verband:verbände vertrag:verträge vorgang:vorgänge
    wald:wälder zugang:zugänge zuschuss:zuschüsse
"""
# Words that end in a lexicon word without being compounds of it (Kon-takt, Ex-trakt):
# known to the splitter so that it never takes their ending for a head.
_LOOKALIKES = """
    abstrakt artefakt auftakt extrakt fakt katarakt kontrakt pakt takt trakt vertrakt
    gesamt insgesamt samt automat demokrat bürokrat format inserat karat quadrat salat
    senat zierat apparat verstand verlag spass posten
"""


def fold_word(word: str) -> str:
    """Lower-case and spell umlauts and ß with two letters (as the search does)."""
    return word.lower().translate(_UMLAUTS)


def lexicon_of(words: str) -> frozenset[str]:
    """A lexicon from whitespace-separated words, folded."""
    return frozenset(fold_word(word) for word in words.split())


def _plural_bases(pairs: str) -> dict[str, str]:
    bases = {}
    for pair in pairs.split():
        base, plural = map(fold_word, pair.split(":"))
        bases[plural] = bases[plural + "n"] = base  # "Ämtern", "Anträgen"
    return bases


GOVERNMENT_PARTS = lexicon_of(_GOVERNMENT_WORDS)
PLURAL_BASES = _plural_bases(_UMLAUT_PLURALS)
LOOKALIKES = lexicon_of(_LOOKALIKES)


@dataclass(frozen=True)
class Compound:
    """A word's parts in their lexicon forms (the first perhaps an unknown modifier,
    never a lexicon word then) and the word with its head in lexicon form."""

    parts: tuple[str, ...]
    base: str  # "bauaemter" -> "bauamt", "personalakten" -> "personalakte"


def split_compound(word: str, lexicon: frozenset[str]) -> tuple[str, ...]:
    """The parts a folded ``word`` is made of, in order, heads in lexicon form, or
    ``()`` when it is no compound of them (a single lexicon word is no compound either)."""
    if not 2 * MIN_PART <= len(word) <= MAX_WORD:
        return ()
    found = analyse(word, lexicon)
    return found.parts if found is not None and len(found.parts) > 1 else ()


def lexicon_form(word: str, lexicon: frozenset[str]) -> str:
    """A folded ``word`` with its head in lexicon form ("bauaemtern" -> "bauamt",
    "antraege" -> "antrag"); other words as they are."""
    found = analyse(word, lexicon) if MIN_PART <= len(word) <= MAX_WORD else None
    return found.base if found is not None else word


@lru_cache(maxsize=1 << 15)  # texts repeat their words
def analyse(word: str, lexicon: frozenset[str]) -> Compound | None:
    """A folded word as lexicon words (one or more), or None when it is none."""
    known: dict[int, _Split | None] = {}
    split = _split_from(word, 0, lexicon, _longest(lexicon), known)
    if split is None:
        split = _with_unknown_modifier(word, lexicon, known)
    if split is None:
        return None
    parts, head_at = split
    return Compound(parts, word[:head_at] + parts[-1])


_Split = tuple[tuple[str, ...], int]  # the parts, and where the head begins in the word


@lru_cache(maxsize=8)
def _longest(lexicon: frozenset[str]) -> int:
    return max(map(len, lexicon | LOOKALIKES), default=0)


def _split_from(word: str, start: int, lexicon: frozenset[str], longest: int,
                known: dict[int, _Split | None]) -> _Split | None:
    """The fewest parts ``word[start:]`` splits into (None: it does not); of equally
    few, the one with the longer first part. ``known`` holds the answers for later
    starts already asked, so no start is worked out twice."""
    if start in known:
        return known[start]
    plural_base = PLURAL_BASES.get(word[start:])
    if plural_base in lexicon:  # one part: nothing splits into fewer
        known[start] = ((plural_base,), start)
        return known[start]
    chosen: _Split | None = None
    for end in range(min(len(word), start + longest), start + MIN_PART - 1, -1):
        part = word[start:end]
        if part not in lexicon:
            continue
        rest = word[end:]
        if rest in ENDINGS:
            chosen = ((part,), start)
            break
        for link in LINKS:
            after = end + len(link)
            if not rest.startswith(link) or after > len(word) - MIN_PART:
                continue
            tail = _split_from(word, after, lexicon, longest, known)
            if tail is not None and (chosen is None or len(tail[0]) + 1 < len(chosen[0])):
                chosen = ((part, *tail[0]), tail[1])
    known[start] = chosen
    return chosen


def _with_unknown_modifier(word: str, lexicon: frozenset[str],
                           known: dict[int, _Split | None]) -> _Split | None:
    """An unknown modifier before the word's longest ending that splits into lexicon
    words ("schueler" + "akte"), when the modifier is a plausible word and that ending
    no lookalike's ("steckkontakte" ends in "kontakte", not in "akte")."""
    if not _ends_in_a_head(word, lexicon):
        return None  # most words: one set lookup per ending length
    longest, starts = _longest(lexicon), _first_letters(lexicon)
    for tail_at in range(1, len(word) - MIN_OPEN_HEAD + 1):
        if word[tail_at:tail_at + MIN_PART] not in starts:
            continue  # no lexicon word or lookalike begins here
        if _lookalike_at(word, tail_at):
            return None
        tail = _split_from(word, tail_at, lexicon, longest, known)
        if tail is None:
            continue
        modifier = word[:tail_at]
        if tail_at < MIN_MODIFIER or len(tail[0][0]) < MIN_OPEN_HEAD \
                or tail[0][0] in _KNOWN_MODIFIERS_ONLY or not plausible_modifier(modifier):
            return None
        return (modifier, *tail[0]), tail[1]
    return None


def plausible_modifier(modifier: str) -> bool:
    """Whether an unknown folded ``modifier`` ends as the first part of a compound does."""
    if _VOWELS.isdisjoint(modifier) or modifier.endswith(_PARTICLES):
        return False
    linked = modifier.endswith("s") and modifier[-2:-1] not in _VOWELS | {"s"}
    return linked or modifier.endswith(_MODIFIER_ENDINGS)


@lru_cache(maxsize=8)
def _first_letters(lexicon: frozenset[str]) -> frozenset[str]:
    return frozenset(word[:MIN_PART] for word in lexicon | LOOKALIKES | PLURAL_BASES.keys())


def _ends_in_a_head(word: str, lexicon: frozenset[str]) -> bool:
    forms, sizes_by_last_letters = _inflected_heads(lexicon)
    sizes = sizes_by_last_letters.get(word[-_LAST_LETTERS:], ())
    return any(word[-size:] in forms for size in sizes)


_LAST_LETTERS = 3  # under MIN_OPEN_HEAD: every form ends in that many letters


@lru_cache(maxsize=8)
def _inflected_heads(lexicon: frozenset[str]) -> tuple[frozenset[str], dict[str, tuple[int, ...]]]:
    """Every form a last part of ``MIN_OPEN_HEAD`` letters or more may take, and their
    lengths by their last letters (so a word is checked against a few lengths only)."""
    forms = {word + ending for word in lexicon for ending in ENDINGS}
    forms.update(plural for plural, base in PLURAL_BASES.items() if base in lexicon)
    forms = {form for form in forms if len(form) >= MIN_OPEN_HEAD}
    sizes: dict[str, set[int]] = {}
    for form in forms:
        sizes.setdefault(form[-_LAST_LETTERS:], set()).add(len(form))
    return frozenset(forms), {last: tuple(sorted(found)) for last, found in sizes.items()}


def _lookalike_at(word: str, start: int) -> bool:
    """Whether ``word[start:]`` is a lookalike, perhaps inflected."""
    rest = word[start:]
    return any(rest[:len(rest) - len(ending)] in LOOKALIKES
               for ending in ENDINGS if rest.endswith(ending))
