"""The read-only SPARQL 1.1 endpoint function and the example queries.

``execute_sparql`` is what the web layer calls (in an executor: it blocks for up to
the time limit). It never writes: queries go through ``Store.query`` only, updates
are refused with ``QueryErrorKind.UPDATE_REFUSED``, ``SERVICE`` with
``SERVICE_REFUSED``.

Limits (``DEFAULT_LIMITS``): a query may run for 10 seconds and return 10,000
solutions (or triples); past either it is stopped and answered with a
``QueryError`` of kind ``TIMEOUT`` or ``TOO_MANY_ROWS`` whose message tells the
person what to change. The default graph is the union of all member graphs;
``GRAPH ?member { … }`` reaches each member's graph, named by its actor IRI.
The prefixes in ``PREFIXES`` (pn, as, topics, schema, dcterms, xsd) are predeclared.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import pyoxigraph as ox

from node.hub.index import HubIndex
from node.hub.maintained_answers import MaintainedQuery, Upkeep
from node.hub.query_runner import (
    AskOutcome,
    GraphOutcome,
    QueryError,
    QueryErrorKind,
    QueryLimits,
    QueryOptions,
    QueryOutcome,
    SelectOutcome,
    TermJson,
)

DEFAULT_LIMITS = QueryLimits(timeout_s=10.0, max_rows=10_000)
MAX_QUERY_CHARS = 100_000

PREFIXES = {
    "pn": "https://w3id.org/praxisnetz#",
    "as": "https://www.w3.org/ns/activitystreams#",
    "topics": "https://w3id.org/praxisnetz/topics#",
    "schema": "https://schema.org/",
    "dcterms": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
# What execute_sparql passes: a kept answer is found only under the same options.
QUERY_OPTIONS = QueryOptions(prefixes=PREFIXES)


class ResultFormat(enum.Enum):
    """Result serialisations; SELECT/ASK use the first four, CONSTRUCT/DESCRIBE the last two."""

    JSON = "application/sparql-results+json"
    XML = "application/sparql-results+xml"
    CSV = "text/csv"
    TSV = "text/tab-separated-values"
    NTRIPLES = "application/n-triples"
    TURTLE = "text/turtle"


_TABLE_FORMATS = (ResultFormat.JSON, ResultFormat.XML, ResultFormat.CSV, ResultFormat.TSV)
_GRAPH_FORMATS = (ResultFormat.NTRIPLES, ResultFormat.TURTLE)


@dataclass(frozen=True)
class SparqlResponse:
    media_type: str
    body: bytes


def execute_sparql(
    index: HubIndex,
    query: str,
    *,
    limits: QueryLimits = DEFAULT_LIMITS,
    result_format: ResultFormat = ResultFormat.JSON,
) -> SparqlResponse:
    """Run ``query`` on the index and serialise the result; raises ``QueryError``."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError(QueryErrorKind.SYNTAX, "the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(
            QueryErrorKind.SYNTAX, f"the query is longer than {MAX_QUERY_CHARS} characters"
        )
    outcome = index.query(
        query,
        timeout=limits.timeout_s,
        max_rows=limits.max_rows,
        options=QUERY_OPTIONS,
    )
    return serialise(outcome, result_format)


def serialise(outcome: QueryOutcome, result_format: ResultFormat) -> SparqlResponse:
    """Serialise an outcome; a table format for a graph result (or the reverse) falls back
    to the kind's default (JSON, N-Triples), as content negotiation would."""
    if isinstance(outcome, GraphOutcome):
        chosen = result_format if result_format in _GRAPH_FORMATS else ResultFormat.NTRIPLES
        return SparqlResponse(chosen.value, _graph_body(outcome, chosen))
    chosen = result_format if result_format in _TABLE_FORMATS else ResultFormat.JSON
    writers = {
        ResultFormat.JSON: lambda: json.dumps(results_json(outcome), ensure_ascii=False),
        ResultFormat.XML: lambda: results_xml(outcome),
        ResultFormat.CSV: lambda: results_delimited(outcome, tsv=False),
        ResultFormat.TSV: lambda: results_delimited(outcome, tsv=True),
    }
    return SparqlResponse(chosen.value, writers[chosen]().encode("utf-8"))


def results_json(outcome: SelectOutcome | AskOutcome) -> dict[str, object]:
    """SPARQL 1.1 Query Results JSON Format."""
    if isinstance(outcome, AskOutcome):
        return {"head": {}, "boolean": outcome.value}
    return {
        "head": {"vars": list(outcome.variables)},
        "results": {"bindings": [dict(row) for row in outcome.rows]},
    }


def results_xml(outcome: SelectOutcome | AskOutcome) -> str:
    out = ['<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#">']
    if isinstance(outcome, AskOutcome):
        out.append(f"<head/><boolean>{'true' if outcome.value else 'false'}</boolean></sparql>")
        return "".join(out)
    out.append("<head>")
    out.extend(f"<variable name={quoteattr(name)}/>" for name in outcome.variables)
    out.append("</head><results>")
    for row in outcome.rows:
        out.append("<result>")
        for name, term in row.items():
            out.append(f"<binding name={quoteattr(name)}>{_xml_term(term)}</binding>")
        out.append("</result>")
    out.append("</results></sparql>")
    return "".join(out)


def _xml_term(term: TermJson) -> str:
    value = escape(term["value"])
    if term["type"] == "uri":
        return f"<uri>{value}</uri>"
    if term["type"] == "bnode":
        return f"<bnode>{value}</bnode>"
    if "xml:lang" in term:
        return f"<literal xml:lang={quoteattr(term['xml:lang'])}>{value}</literal>"
    if "datatype" in term:
        return f"<literal datatype={quoteattr(term['datatype'])}>{value}</literal>"
    return f"<literal>{value}</literal>"


def results_delimited(outcome: SelectOutcome | AskOutcome, *, tsv: bool) -> str:
    """CSV (plain values) or TSV (terms in SPARQL syntax), SPARQL 1.1 CSV/TSV Results."""
    if isinstance(outcome, AskOutcome):
        return ("?_askResult\n" if tsv else "_askResult\r\n") + (
            "true" if outcome.value else "false"
        )
    if tsv:
        lines = ["\t".join(f"?{name}" for name in outcome.variables)]
        for row in outcome.rows:
            lines.append("\t".join(_tsv_term(row.get(name)) for name in outcome.variables))
        return "\n".join(lines) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(outcome.variables)
    for row in outcome.rows:
        writer.writerow([_csv_value(row.get(name)) for name in outcome.variables])
    return buffer.getvalue()


def _csv_value(term: TermJson | None) -> str:
    if term is None:
        return ""
    return f"_:{term['value']}" if term["type"] == "bnode" else term["value"]


def _tsv_term(term: TermJson | None) -> str:
    if term is None:
        return ""
    if term["type"] == "uri":
        return f"<{term['value']}>"
    if term["type"] == "bnode":
        return f"_:{term['value']}"
    literal = str(ox.Literal(term["value"]))  # quoted and escaped by Oxigraph
    if "xml:lang" in term:
        return f"{literal}@{term['xml:lang']}"
    if "datatype" in term:
        return f"{literal}^^<{term['datatype']}>"
    return literal


def _graph_body(outcome: GraphOutcome, result_format: ResultFormat) -> bytes:
    if result_format is ResultFormat.NTRIPLES:
        return outcome.ntriples.encode("utf-8")
    triples = ox.parse(outcome.ntriples, format=ox.RdfFormat.N_TRIPLES)
    return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=PREFIXES) or b""


def negotiate(accept: str | None, *, default: ResultFormat = ResultFormat.JSON) -> ResultFormat:
    """Pick a result format from an Accept header (first listed match wins; q ignored)."""
    aliases = {"application/json": ResultFormat.JSON, "application/xml": ResultFormat.XML}
    for part in (accept or "").split(","):
        media_type = part.split(";", 1)[0].strip().lower()
        for candidate in ResultFormat:
            if candidate.value == media_type:
                return candidate
        if media_type in aliases:
            return aliases[media_type]
    return default


@dataclass(frozen=True)
class ExampleQuery:
    """An example for the SPARQL page: a title and description in German and English."""

    slug: str
    title_de: str
    title_en: str
    description_de: str
    sparql: str
    # How a write reaches the answer, so that it is kept up to date (maintained_answers).
    upkeep: Upkeep | None = None


_PROLOGUE = "\n".join(f"PREFIX {name}: <{iri}>" for name, iri in PREFIXES.items()) + "\n"


def _example(
    slug: str, title_de: str, title_en: str, description_de: str, body: str, upkeep: Upkeep
) -> ExampleQuery:
    return ExampleQuery(
        slug, title_de, title_en, description_de, _PROLOGUE + body.strip() + "\n", upkeep
    )


# The examples are data: the SPARQL page lists them, the benchmark times them.
#
# They are written for Oxigraph's evaluator, which at hub scale (tens of thousands of
# matching rows, on disk) spends its time on two things that the plain forms of these
# questions trigger (docs/performance.md, section 3):
#
# - For a join of triple patterns it looks up each next pattern once per row (a RocksDB
#   read each); a pattern inside ``{ SELECT … WHERE { … } }`` is instead read once in
#   full and joined through a hash table. A subquery that projects all of its pattern's
#   variables has the same solutions as the pattern, so the answer is the same (in
#   the union of the graphs the pattern's solutions are a bag, one per graph holding a
#   triple: there the example is DISTINCT, see ``_alone``).
# - ``ORDER BY ?x`` reads the strings of both terms from the store for every comparison.
#   The examples sort first on a key bound once per row, which Oxigraph keeps in memory
#   because the store does not hold it: ``CONCAT(?name, "\u0000")`` for names, and for
#   IRIs (``sort_key_iri``) "1" + the IRI + U+0000, "" for blank nodes, "2" for literals
#   (bnode < IRI < literal, as Oxigraph orders terms). Appending the smallest code point
#   keeps the order of the strings (a prefix still sorts first). Where keys are equal
#   or unbound (a name that is not a string, a literal where an IRI was expected), the
#   original variable follows as the next key and decides as before. So the order is
#   the plain ``ORDER BY``'s wherever that one is a total order; it differs only among
#   names Oxigraph cannot compare (strings in different languages, a number and a
#   string), whose order it leaves undefined. tests/test_hub_sparql_forms.py compares
#   the answers with the plain forms'.
SORT_KEY_NAME = (
    "# ?nameKey sorts as ?name does, but Oxigraph compares it in memory\n"
    '  BIND(CONCAT(?name, "\\u0000") AS ?nameKey)'
)


def sort_key_iri(variable: str, key: str) -> str:
    """The BIND of an in-memory sort key for ``?variable`` (usually an IRI); see above."""
    return (
        f"# ?{key} sorts as ?{variable} does, but Oxigraph compares it in memory\n"
        f'  BIND(IF(isIRI(?{variable}), CONCAT("1", STR(?{variable}), "\\u0000"), '
        f'IF(isLITERAL(?{variable}), "2", "")) AS ?{key})'
    )


def _alone(variables: str, pattern: str, *, graph: bool = False) -> str:
    """``pattern`` as a subquery projecting all its variables: read once, hash-joined.
    With ``graph`` it matches in each member's graph and projects ``?member`` too;
    without, it matches in the union of the graphs, once per graph holding a triple (a
    bag), and the example must be DISTINCT: a practice in N graphs joined over five such
    patterns gives N^5 rows before it. DISTINCT here as well would spare those, but it
    hashes every solution of every pattern: 20-35 % more time for the example at 1,000
    members (none of them shares a practice), so the rare shared practice pays instead."""
    if graph:
        return f"{{ SELECT {variables} ?member WHERE {{ GRAPH ?member {{ {pattern} }} }} }}"
    return f"{{ SELECT {variables} WHERE {{ {pattern} }} }}"


_E_FILE = "?practice pn:topic topics:e-akte"
_PRACTICE = "?practice a pn:Practice"
_IN_OPERATION = "?practice pn:status pn:inOperation"
_NAME = "?practice as:name ?name"
_KEY_OF_CONTRIBUTION = "?contribution pn:municipalityKey ?municipalityKey"

EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    _example(
        "practices-by-topic",
        "Praktiken zum Thema E-Akte",
        "Practices on the e-file",
        "Alle Praktiken mit dem Thema E-Akte, mit Titel und Mitglied.",
        f"""
SELECT ?practice ?name ?member WHERE {{
  {_alone("?practice", _E_FILE, graph=True)}
  {_alone("?practice", _PRACTICE, graph=True)}
  {_alone("?practice ?name", _NAME, graph=True)}
  {SORT_KEY_NAME}
}} ORDER BY ?nameKey ?name ?practice ?member LIMIT 200""",
        Upkeep(  # the rows of the members whose graphs a write changed
            key="member",
            graphs=True,
            rows="""SELECT ?practice ?name ?member WHERE {
  GRAPH {key} { ?practice pn:topic topics:e-akte ; a pn:Practice ; as:name ?name . }
  BIND({key} AS ?member) }""",
            order=(("name", "name"), ("term", "practice"), ("term", "member")),
        ),
    ),
    _example(
        "e-file-in-operation",
        "E-Akte-Praktiken im Betrieb",
        "E-file practices in operation",
        "Praktiken zur E-Akte, die bereits im Betrieb sind, mit Gemeindeschlüssel "
        "(jede einmal je Name und Schlüssel, auch wenn mehrere Mitglieder sie führen).",
        f"""
SELECT DISTINCT ?practice ?name ?municipalityKey WHERE {{
  {_alone("?practice", _E_FILE)}
  {_alone("?practice", _IN_OPERATION)}
  {_alone("?practice", _PRACTICE)}
  {_alone("?practice ?name", _NAME)}
  OPTIONAL {{ ?practice pn:municipalityKey ?municipalityKey }}
  {SORT_KEY_NAME}
}} ORDER BY ?nameKey ?name ?practice LIMIT 200""",
        Upkeep(  # every pattern has ?practice as subject: the subjects a write changed
            key="practice",
            subjects=True,
            anchor=PREFIXES["pn"] + "Practice",
            rows="""SELECT DISTINCT ?practice ?name ?municipalityKey WHERE { {values}
  ?practice pn:topic topics:e-akte ; pn:status pn:inOperation ; a pn:Practice ; as:name ?name .
  OPTIONAL { ?practice pn:municipalityKey ?municipalityKey } }""",
            order=(("name", "name"), ("term", "practice")),
        ),
    ),
    _example(
        "e-file-by-districts-in-operation",
        "E-Akte-Praktiken von Kreisen im Betrieb",
        "Practices on e-files by districts that are in operation",
        "Praktiken zur E-Akte im Betrieb, die ein Kreis beigetragen hat. Die Mitgliedsart "
        "(Kreis) steht nur in den Mitgliedsdaten des Hubs, nicht im RDF; Kreise erkennt die "
        "Abfrage daher am Kreisschlüssel …/politicalGeocoding/districtKey/{5 Ziffern}, den "
        "die Formregeln (vocab/shapes.ttl) für Kreise vorsehen. Ein AGS auf 000 wäre "
        "mehrdeutig: kreisfreie Städte enden ebenso.",
        f"""
SELECT ?practice ?name ?districtKey ?member WHERE {{
  {_alone("?practice", _E_FILE, graph=True)}
  {_alone("?practice", _IN_OPERATION, graph=True)}
  {_alone("?practice", _PRACTICE, graph=True)}
  GRAPH ?member {{
    ?practice pn:municipalityKey ?districtKey .
    FILTER(STRSTARTS(STR(?districtKey), "http://dcat-ap.de/def/politicalGeocoding/districtKey/"))
    ?practice as:name ?name .
  }}
  {SORT_KEY_NAME}
}} ORDER BY ?nameKey ?name ?practice ?member LIMIT 200""",
        Upkeep(
            key="member",
            graphs=True,
            rows="""SELECT ?practice ?name ?districtKey ?member WHERE {
  GRAPH {key} {
    ?practice pn:topic topics:e-akte ; pn:status pn:inOperation ; a pn:Practice ;
              pn:municipalityKey ?districtKey ; as:name ?name .
    FILTER(STRSTARTS(STR(?districtKey), "http://dcat-ap.de/def/politicalGeocoding/districtKey/"))
  }
  BIND({key} AS ?member) }""",
            order=(("name", "name"), ("term", "practice"), ("term", "member")),
        ),
    ),
    _example(
        "experiences-disagreeing-with-section",
        "Erfahrungsberichte, die einem Abschnitt widersprechen",
        "Experiences that disagree with a section",
        "Erfahrungsberichte über einen Handbuchabschnitt, deren Kommune demselben Abschnitt "
        "mit einer ablehnenden Position (pn:disagree) widerspricht. Nur eine Position (pn:Stance) trägt "
        "eine Haltung; Abschnitte erkennt die Abfrage an ihrer Adresse …/handbook/sections/…. "
        "Mehrere solche Positionen mit derselben Begründung ergeben eine Zeile.",
        """
SELECT DISTINCT ?experience ?name ?section ?reason ?member WHERE {
  GRAPH ?member {
?experience a pn:Experience ; as:name ?name ; pn:about ?section .
?stance a pn:Stance ; pn:position pn:disagree ; pn:about ?section .
OPTIONAL { ?stance pn:reason ?reason }
  }
  FILTER(CONTAINS(STR(?section), "/handbook/sections/"))
} ORDER BY ?section ?experience LIMIT 200""",
        Upkeep(
            key="member",
            graphs=True,
            rows="""SELECT DISTINCT ?experience ?name ?section ?reason ?member WHERE {
  GRAPH {key} {
?experience a pn:Experience ; as:name ?name ; pn:about ?section .
?stance a pn:Stance ; pn:position pn:disagree ; pn:about ?section .
OPTIONAL { ?stance pn:reason ?reason }
  }
  FILTER(CONTAINS(STR(?section), "/handbook/sections/"))
  BIND({key} AS ?member) }""",
            order=(("term", "section"), ("term", "experience")),
        ),
    ),
    _example(
        "disagreements-by-practice",
        "Widerspruch je Praxis",
        "Disagreement by practice",
        "Praktiken, denen andere Kommunen widersprechen, mit der Zahl der Widersprüche.",
        f"""
SELECT ?practice ?name ?disagreements WHERE {{
  {{ SELECT ?practice ?name (COUNT(DISTINCT ?stance) AS ?disagreements) WHERE {{
      ?practice a pn:Practice ; as:name ?name .
      ?stance a pn:Stance ; pn:position pn:disagree ; pn:about ?practice .
    }} GROUP BY ?practice ?name }}
  {sort_key_iri("practice", "practiceKey")}
}} ORDER BY DESC(?disagreements) ?practiceKey ?practice LIMIT 200""",
        Upkeep(  # a practice's own statements, and those of the stances about it
            key="practice",
            subjects=True,
            via=PREFIXES["pn"] + "about",
            anchor=PREFIXES["pn"] + "Practice",
            rows="""SELECT ?practice ?name (COUNT(DISTINCT ?stance) AS ?disagreements) WHERE { {values}
  ?practice a pn:Practice ; as:name ?name .
  ?stance a pn:Stance ; pn:position pn:disagree ; pn:about ?practice .
} GROUP BY ?practice ?name""",
            order=(("desc-count", "disagreements"), ("iri-key", "practice")),
        ),
    ),
    _example(
        "contributions-by-municipality",
        "Beiträge je Gemeindeschlüssel",
        "Contributions by municipality key",
        "Wie viele Beiträge jede Kommune (nach Amtlichem Gemeindeschlüssel) beigetragen hat.",
        f"""
SELECT ?municipalityKey ?contributions WHERE {{
  {{ SELECT ?municipalityKey (COUNT(DISTINCT ?contribution) AS ?contributions) WHERE {{
      {_alone("?contribution", "?contribution as:attributedTo ?member", graph=True)}
      {_alone("?contribution ?municipalityKey", _KEY_OF_CONTRIBUTION, graph=True)}
    }} GROUP BY ?municipalityKey }}
  {sort_key_iri("municipalityKey", "municipalityOrder")}
}} ORDER BY DESC(?contributions) ?municipalityOrder ?municipalityKey LIMIT 500""",
        Upkeep(  # the keys a written document names, before and after the write
            key="municipalityKey",
            via=PREFIXES["pn"] + "municipalityKey",
            rows="""SELECT ?municipalityKey (COUNT(DISTINCT ?contribution) AS ?contributions) WHERE {
  {values}
  GRAPH ?member {
    ?contribution as:attributedTo ?member ; pn:municipalityKey ?municipalityKey .
  }
} GROUP BY ?municipalityKey""",
            order=(("desc-count", "contributions"), ("iri-key", "municipalityKey")),
        ),
    ),
)


def example_queries() -> tuple[ExampleQuery, ...]:
    return EXAMPLE_QUERIES


def maintained_examples() -> tuple[MaintainedQuery, ...]:
    """The examples as the index maintains them (``HubIndex.maintain``): with the
    endpoint's options, so that the endpoint's queries find them."""
    return tuple(
        MaintainedQuery(example.slug, example.sparql, QUERY_OPTIONS, example.upkeep)
        for example in example_queries()
        if example.upkeep is not None
    )


def example_by_slug(slug: str) -> ExampleQuery | None:
    return next((example for example in example_queries() if example.slug == slug), None)


def error_json(error: QueryError) -> Mapping[str, str]:
    """A small JSON body for a refused or stopped query (the web layer picks the status)."""
    return {"error": error.kind.value, "message": error.message}
