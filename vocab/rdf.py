"""JSON-LD ⇄ RDF through pyld, offline, with an explicit base.

rdflib's own JSON-LD parser puts `proof` (an `@graph` container) into the default graph and
rewrites `"…Z"^^xsd:dateTime` as `+00:00`; a signed document must survive conversion
unchanged, so everything here goes through pyld with the bundled contexts, and literals are
built with `normalize=False` so their lexical form stays exactly as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyld import jsonld
from rdflib import BNode, Dataset, Graph, Literal, URIRef
from rdflib.term import Node

from vocab.loader import (
    DEFAULT_CONTEXT,
    UnknownContextError,
    offline_document_loader,
    pyld_options,
)

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"

# pyld's raw dataset: graph name ('@default' or an IRI / blank node) -> list of triples,
# each triple a dict of {'subject'|'predicate'|'object': {'type', 'value', ...}}.
RawDataset = dict[str, list[dict[str, dict[str, str]]]]


class JsonLdProcessingError(ValueError):
    """A document could not be processed as JSON-LD; `reason` says why in plain words."""

    def __init__(self, reason: str, *, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url


def _unknown_context_in(error: BaseException) -> UnknownContextError | None:
    """pyld wraps loader errors several levels deep; find ours if it is in the chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UnknownContextError):
            return current
        details = getattr(current, "details", None)
        nested = details.get("cause") if isinstance(details, Mapping) else None
        if not isinstance(nested, BaseException):
            nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return None


def _describe(error: jsonld.JsonLdError) -> JsonLdProcessingError:
    unknown = _unknown_context_in(error)
    if unknown is not None:
        return JsonLdProcessingError(str(unknown), url=unknown.url)
    messages: list[str] = []
    current: Any = error
    while isinstance(current, jsonld.JsonLdError) and len(messages) < 4:
        messages.append(str(current.args[0] if current.args else current))
        current = getattr(current, "cause", None)
    return JsonLdProcessingError("invalid JSON-LD: " + " / ".join(messages))


def _run(operation: Any, *args: Any) -> Any:
    try:
        return operation(*args)
    except jsonld.JsonLdError as error:
        raise _describe(error) from error
    except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as error:
        # pyld assumes well-formed input in places and fails with Python errors on
        # shapes like {"@context": 5}; report them as the document's fault.
        raise JsonLdProcessingError(f"invalid JSON-LD: {type(error).__name__}: {error}") from error


def _require_mapping(document: object) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise JsonLdProcessingError(
            f"a JSON-LD document must be a JSON object, got {type(document).__name__}"
        )
    return document


def expand(document: Mapping[str, Any], base: str) -> list[dict[str, Any]]:
    """Expanded JSON-LD (full IRIs, no context) of a document, offline."""
    return _run(jsonld.expand, dict(_require_mapping(document)), pyld_options(base))


def compact(
    document: Mapping[str, Any] | Sequence[Any],
    base: str,
    context: Sequence[str | Mapping[str, Any]] = DEFAULT_CONTEXT,
) -> dict[str, Any]:
    """Compact a document (or expanded JSON-LD) into the AS + data-integrity + pn context.

    IRIs stay absolute: relative IRIs in a federated document would resolve against
    whatever URL the receiver fetched it from.
    """
    source: Any = list(document) if isinstance(document, list) else dict(_require_mapping(document))
    expanded = _run(jsonld.expand, source, pyld_options(base))
    target = {"@context": list(context)}
    # An empty base during compaction is what keeps pyld from making IRIs relative.
    options = {"base": "", "documentLoader": offline_document_loader}
    return _run(jsonld.compact, expanded, target, options)


def raw_dataset(document: Mapping[str, Any], base: str, *, generalized: bool = False) -> RawDataset:
    """pyld's own dataset structure, for callers that want to avoid rdflib overhead.

    With `generalized`, terms the contexts do not define survive as blank-node predicates
    (instead of vanishing), so a validator can point at them.
    """
    options = pyld_options(base, produceGeneralizedRdf=generalized)
    return _run(jsonld.to_rdf, dict(_require_mapping(document)), options)


def to_nquads(document: Mapping[str, Any], base: str) -> str:
    options = pyld_options(base, format="application/n-quads")
    return _run(jsonld.to_rdf, dict(_require_mapping(document)), options)


class _TermFactory:
    """Turns pyld terms into rdflib terms, keeping blank nodes consistent per document."""

    def __init__(self) -> None:
        self._blank_nodes: dict[str, BNode] = {}

    def resource(self, term: Mapping[str, str]) -> URIRef | BNode:
        value = term["value"]
        if term["type"] == "blank node" or value.startswith("_:"):
            return self._blank_nodes.setdefault(value, BNode())
        return URIRef(value)

    def node(self, term: Mapping[str, str]) -> Node:
        if term["type"] != "literal":
            return self.resource(term)
        datatype = term.get("datatype")
        language = term.get("language")
        if language:
            return Literal(term["value"], lang=language, normalize=False)
        if datatype and datatype != XSD_STRING:
            return Literal(term["value"], datatype=URIRef(datatype), normalize=False)
        return Literal(term["value"], normalize=False)

    def triple(self, raw: Mapping[str, Mapping[str, str]]) -> tuple[Node, Node, Node]:
        return (
            self.resource(raw["subject"]),
            URIRef(raw["predicate"]["value"]),
            self.node(raw["object"]),
        )


def dataset_from_raw(raw: RawDataset) -> Dataset:
    """An rdflib Dataset from pyld's dataset: default graph plus one graph per `@graph`."""
    terms = _TermFactory()
    dataset = Dataset()
    for graph_name, triples in raw.items():
        if graph_name == "@default":
            graph: Graph = dataset.default_graph
        else:
            graph = dataset.graph(terms.resource({"type": "IRI", "value": graph_name}))
        for triple in triples:
            graph.add(terms.triple(triple))
    return dataset


def to_dataset(document: Mapping[str, Any], base: str) -> Dataset:
    """The document as an rdflib Dataset; a `proof` lands in its own (blank-node) graph."""
    return dataset_from_raw(raw_dataset(document, base))


def to_graph(document: Mapping[str, Any], base: str) -> Graph:
    """Only the default graph of the document (what the document says, without proofs)."""
    raw = raw_dataset(document, base)
    terms = _TermFactory()
    graph = Graph()
    for triple in raw.get("@default", []):
        graph.add(terms.triple(triple))
    return graph
