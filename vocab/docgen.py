"""Generate `docs/vocabulary.md` from `ontology.ttl`, `context.jsonld` and `topics.ttl`.

    python -m vocab.docgen            # rewrite docs/vocabulary.md
    python -m vocab.docgen --check    # exit 1 if the committed page is out of date

A test runs the check, so the page cannot drift from the ontology.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from rdflib import OWL, RDF, RDFS, SKOS, Graph, Literal, URIRef
from rdflib.term import Node

from vocab.namespace import PN_NAMESPACE, TOPIC_SCHEME
from vocab.shacl import PropertyShape, ShapeSet
from vocab.validate import collect_context_terms, context_field_names

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "vocabulary.md"

_PREFIXES = {
    "https://www.w3.org/ns/activitystreams#": "as:",
    "http://purl.org/dc/terms/": "dcterms:",
    "http://www.w3.org/2004/02/skos/core#": "skos:",
    "http://www.w3.org/ns/prov#": "prov:",
    "https://schema.org/": "schema:",
    "http://www.w3.org/ns/adms#": "adms:",
    "http://purl.org/vocab/cpsv#": "cpsv:",
    "http://data.europa.eu/m8g/": "cv:",
    "http://www.w3.org/ns/dcat#": "dcat:",
    "http://dcat-ap.de/def/dcatde/": "dcatde:",
    "http://xmlns.com/foaf/0.1/": "foaf:",
    "http://www.w3.org/2001/XMLSchema#": "xsd:",
    "https://w3id.org/security#": "sec:",
    PN_NAMESPACE: "pn:",
}


def _load(name: str) -> Graph:
    text = resources.files("vocab").joinpath(name).read_text(encoding="utf-8")
    return Graph().parse(data=text, format="turtle")


def _short(node: Node) -> str:
    text = str(node)
    for namespace, prefix in _PREFIXES.items():
        if text.startswith(namespace) and text != namespace:
            return f"`{prefix}{text[len(namespace) :]}`"
    return f"<{text}>"


def _text(graph: Graph, subject: Node, predicate: URIRef, language: str) -> str:
    for value in graph.objects(subject, predicate):
        if isinstance(value, Literal) and value.language == language:
            return " ".join(str(value).split())
    return ""


def _links(graph: Graph, subject: Node, predicate: URIRef) -> str:
    return ", ".join(sorted(_short(o) for o in graph.objects(subject, predicate)))


def _pn_terms(graph: Graph, kinds: Iterable[URIRef]) -> list[URIRef]:
    found = {s for kind in kinds for s in graph.subjects(RDF.type, kind)}
    return sorted((s for s in found if str(s).startswith(PN_NAMESPACE)), key=str)


def _term_section(graph: Graph, term: URIRef, json_keys: dict[str, str]) -> list[str]:
    local = str(term)[len(PN_NAMESPACE) :]
    lines = [
        f"### {local}",
        "",
        f"- IRI: `{term}`",
        f"- JSON: `{json_keys.get(str(term), local)}`",
        f"- de: **{_text(graph, term, RDFS.label, 'de')}** – {_text(graph, term, RDFS.comment, 'de')}",
        f"- en: **{_text(graph, term, RDFS.label, 'en')}** – {_text(graph, term, RDFS.comment, 'en')}",
    ]
    value_of = [o for o in graph.objects(term, RDF.type) if str(o).startswith(PN_NAMESPACE)]
    if value_of:
        lines.append(f"- value of: {', '.join(sorted(_short(o) for o in value_of))}")
    for predicate, caption in (
        (RDFS.subClassOf, "subclass of"),
        (RDFS.subPropertyOf, "subproperty of"),
        (RDFS.domain, "domain"),
        (RDFS.range, "range"),
        (RDFS.seeAlso, "see also"),
    ):
        links = _links(graph, term, predicate)
        if links:
            lines.append(f"- {caption}: {links}")
    return [*lines, ""]


def _topics_table() -> list[str]:
    topics = _load("topics.ttl")
    scheme = URIRef(TOPIC_SCHEME)
    rows = ["| slug | Deutsch | English |", "|---|---|---|"]
    for concept in sorted(topics.subjects(SKOS.inScheme, scheme), key=str):
        slug = str(concept).split("#", 1)[1]
        de = _text(topics, concept, SKOS.prefLabel, "de")
        en = _text(topics, concept, SKOS.prefLabel, "en")
        rows.append(f"| `{slug}` | {de} | {en} |")
    return rows


def _cardinality(prop: PropertyShape) -> str:
    low = prop.min_count or 0
    high = "n" if prop.max_count is None else str(prop.max_count)
    return f"{low}..{high}"


def _shapes_section(keys: dict[str, str]) -> list[str]:
    shapes = ShapeSet.from_graph(_load("shapes.ttl"))
    out = [
        "## Formen / Shapes",
        "",
        "What `vocab.validate` checks (from `vocab/shapes.ttl`); `1..n` means required.",
        "",
    ]
    for shape in sorted(shapes.targeted, key=lambda s: s.label.en):
        classes = ", ".join(keys.get(c, c) for c in shape.target_classes)
        out += [f"### {shape.label.de} / {shape.label.en} (`{classes}`)", ""]
        out += ["| JSON | count | de | en |", "|---|---|---|---|"]
        for prop in shape.properties:
            out.append(
                f"| `{keys.get(prop.path, prop.path)}` | {_cardinality(prop)} "
                f"| {prop.message.de} | {prop.message.en} |"
            )
        out.append("")
    return out


def _reused_terms() -> list[str]:
    context = json.loads(resources.files("vocab").joinpath("context.jsonld").read_text("utf-8"))
    names: dict[str, str] = {}
    collect_context_terms(context["@context"], names)
    reused = sorted((term, iri) for iri, term in names.items() if not iri.startswith(PN_NAMESPACE))
    out = [
        "## Wiederverwendete Begriffe / Reused terms",
        "",
        "Our context also maps these keys to existing vocabularies (`position` and `text` "
        "only inside a `HowToStep`; elsewhere `position` is `pn:position`):",
        "",
        "| JSON | IRI |",
        "|---|---|",
    ]
    out += [f"| `{term}` | {_short(URIRef(iri))} |" for term, iri in reused]
    return [*out, ""]


def render() -> str:
    """The whole page as Markdown (deterministic: same ontology, same bytes)."""
    graph = _load("ontology.ttl")
    keys = context_field_names()  # includes the words of status and position
    out = [
        "# Praxisnetz-Vokabular / Praxisnetz vocabulary",
        "",
        "<!-- Generated by `python -m vocab.docgen` from vocab/ontology.ttl; do not edit. -->",
        "",
        f"Namespace `{PN_NAMESPACE}` (prefix `pn`). JSON-LD context: "
        "`https://w3id.org/praxisnetz/context.jsonld`, listed after the ActivityStreams and "
        "data-integrity contexts. Shapes: `vocab/shapes.ttl`. Topics: `vocab/topics.ttl`.",
        "",
        "Objects carry an ActivityStreams type and a pn type, e.g. "
        '`"type": ["Article", "Practice"]`, so Mastodon shows them and linked-data tools '
        "understand them.",
        "",
    ]
    groups = (
        ("Klassen / Classes", (OWL.Class, RDFS.Class)),
        ("Werte / Named values", (OWL.NamedIndividual,)),
        ("Eigenschaften / Properties", (OWL.ObjectProperty, OWL.DatatypeProperty, RDF.Property)),
    )
    for title, kinds in groups:
        out += [f"## {title}", ""]
        for term in _pn_terms(graph, kinds):
            out += _term_section(graph, term, keys)
    out += _reused_terms()
    out += _shapes_section(keys)
    out += [
        "## Themen / Topics",
        "",
        f"Scheme `{TOPIC_SCHEME}`, concept IRIs `{TOPIC_SCHEME}#<slug>`.",
        "",
    ]
    out += _topics_table()
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    page = render()
    if args[:1] == ["--check"]:
        current = DEFAULT_OUTPUT.read_text(encoding="utf-8") if DEFAULT_OUTPUT.exists() else ""
        if current != page:
            print(f"{DEFAULT_OUTPUT} is out of date; run python -m vocab.docgen", file=sys.stderr)
            return 1
        return 0
    DEFAULT_OUTPUT.write_text(page, encoding="utf-8")
    print(f"wrote {DEFAULT_OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
