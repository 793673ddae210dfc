"""German compounds split into known parts, so that "Akte" finds "Personalakte".

A compound is split only when it is made entirely of words of a lexicon, joined by the
German linking elements (-s-, -es-, -n-, -en-, -er-, -e-), its last part perhaps
inflected ("Personalakten" → "personal", "akte"; "Ratsinformationssystem" → "rat",
"information", "system"). Every part must be a lexicon word of at least ``MIN_PART``
letters, so "Kontakte" stays whole: neither "kon" nor "kont" is a word. Of several
splits the one with the fewest parts wins, so a lexicon word is never split itself.

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

from functools import lru_cache

MIN_PART = 3
# Longer "words" are hashes or encoded data (the same limit as the search's compounds).
MAX_WORD = 64
LINKS = ("", "s", "es", "n", "en", "er", "e")
# How the last part may end beyond its lexicon form ("Akten", "Dienste", "Kindern").
ENDINGS = ("", "e", "n", "en", "s", "es", "er", "ern")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

_GOVERNMENT_WORDS = """
    abfall abgabe abwasser agentur akt akte ämter amt anfrage angebot anlage anmeldung
    anschluss antrag anträge anwendung anzeige arbeit archiv arzt aufgabe auftrag
    ausbildung ausgabe ausgang ausländer ausschreibung ausschuss ausweis auskunft auto
    bad bahn bank bau bauten beamte bearbeitung bedarf behörde beitrag beratung bereich
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


def fold_word(word: str) -> str:
    """Lower-case and spell umlauts and ß with two letters (as the search does)."""
    return word.lower().translate(_UMLAUTS)


def lexicon_of(words: str) -> frozenset[str]:
    """A lexicon from whitespace-separated words, folded."""
    return frozenset(fold_word(word) for word in words.split())


GOVERNMENT_PARTS = lexicon_of(_GOVERNMENT_WORDS)


def split_compound(word: str, lexicon: frozenset[str]) -> tuple[str, ...]:
    """The lexicon words a folded ``word`` is made of, in order, or ``()`` when it is
    no compound of them (a single lexicon word is no compound either)."""
    if not 2 * MIN_PART <= len(word) <= MAX_WORD:
        return ()
    parts = _split_from(word, 0, lexicon, _longest(lexicon), {})
    return parts if parts is not None and len(parts) > 1 else ()


@lru_cache(maxsize=8)
def _longest(lexicon: frozenset[str]) -> int:
    return max(map(len, lexicon), default=0)


def _split_from(word: str, start: int, lexicon: frozenset[str], longest: int,
                known: dict[int, tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """The fewest parts ``word[start:]`` splits into (None: it does not); of equally
    few, the one with the longer first part. ``known`` holds the answers for later
    starts already asked, so no start is worked out twice."""
    if start in known:
        return known[start]
    chosen: tuple[str, ...] | None = None
    for end in range(min(len(word), start + longest), start + MIN_PART - 1, -1):
        part = word[start:end]
        if part not in lexicon:
            continue
        rest = word[end:]
        if rest in ENDINGS:
            chosen = (part,)  # one part: nothing splits into fewer
            break
        for link in LINKS:
            after = end + len(link)
            if not rest.startswith(link) or after > len(word) - MIN_PART:
                continue
            tail = _split_from(word, after, lexicon, longest, known)
            if tail is not None and (chosen is None or len(tail) + 1 < len(chosen)):
                chosen = (part, *tail)
    known[start] = chosen
    return chosen
