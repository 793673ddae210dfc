"""RDF dumps of a frozen edition from which every proof verifies offline.

Proofs are ``eddsa-jcs-2022``: they sign the JSON form, which RDF triples do not
preserve. So a dump carries both views of each signed thing:

- the edition graph (named by the edition URL): the manifest as RDF (sections,
  titles, the included contributions and their document hashes) and
  ``pn:signedManifest``, the signed manifest itself as an ``rdf:JSON`` literal;
- one graph per included contribution (named by its id): its content as RDF and
  ``pn:signedDocument``, the exact signed document as an ``rdf:JSON`` literal.

``verify_dump`` reads a dump back and checks everything with nothing but the dump,
the bundled contexts and the keys the caller looks up.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import pyoxigraph as ox
import rfc8785

from node.hub.editions import (
    EditionProblem,
    EditionProblemKind,
    EditionVerification,
    FrozenEdition,
    KeyLookup,
    manifest_document,
    verify_edition,
)
from node.hub.index import JsonLdToQuads
from vocab.namespace import PN

SIGNED_MANIFEST = ox.NamedNode(str(PN.signedManifest))
SIGNED_DOCUMENT = ox.NamedNode(str(PN.signedDocument))
RDF_JSON = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON")


class DumpFormat(enum.Enum):
    NQUADS = "application/n-quads"
    TRIG = "application/trig"
    JSONLD = "application/ld+json"  # the signed manifest document itself


def json_literal(document: Mapping[str, Any]) -> ox.Literal:
    """The JCS form as an rdf:JSON literal: canonical, so it round-trips byte for byte."""
    return ox.Literal(rfc8785.dumps(document).decode("utf-8"), datatype=RDF_JSON)


def edition_quads(edition: FrozenEdition, converter: JsonLdToQuads) -> list[ox.Quad]:
    url = edition.manifest.url
    edition_graph = ox.NamedNode(url)
    manifest = manifest_document(edition.manifest)
    del manifest["includedContributions"]  # carried per contribution graph below
    quads = converter.quads(manifest, edition_graph)
    quads.append(ox.Quad(edition_graph, SIGNED_MANIFEST, json_literal(edition.document), edition_graph))
    for included in edition.manifest.contributions():
        graph = ox.NamedNode(included.uri)
        quads.extend(converter.quads(included.document, graph))
        quads.append(ox.Quad(graph, SIGNED_DOCUMENT, json_literal(included.document), graph))
    return quads


def dump(edition: FrozenEdition, converter: JsonLdToQuads, dump_format: DumpFormat) -> bytes:
    if dump_format is DumpFormat.JSONLD:
        return json.dumps(edition.document, ensure_ascii=False, indent=1).encode("utf-8")
    rdf_format = ox.RdfFormat.N_QUADS if dump_format is DumpFormat.NQUADS else ox.RdfFormat.TRIG
    quads = edition_quads(edition, converter)
    return ox.serialize(quads, format=rdf_format) or b""


def verify_dump(
    data: bytes, dump_format: DumpFormat, key_lookup: KeyLookup
) -> EditionVerification:
    """Verify an edition dump offline: the signed manifest and every contribution in it,
    and that each contribution graph carries exactly the version the manifest names."""
    if dump_format is DumpFormat.JSONLD:
        return _verify_json(data, key_lookup)
    rdf_format = ox.RdfFormat.N_QUADS if dump_format is DumpFormat.NQUADS else ox.RdfFormat.TRIG
    try:
        quads = list(ox.parse(data, format=rdf_format))
    except SyntaxError as exc:
        return _malformed("dump", f"not parseable: {exc}")
    manifests = [q for q in quads if q.predicate == SIGNED_MANIFEST]
    if len(manifests) != 1:
        return _malformed("pn:signedManifest", "a dump carries exactly one signed manifest")
    try:
        signed = json.loads(manifests[0].object.value)
    except json.JSONDecodeError as exc:
        return _malformed("pn:signedManifest", f"not JSON: {exc}")
    verification = verify_edition(signed, key_lookup)
    carried = {
        q.subject.value: q.object.value for q in quads if q.predicate == SIGNED_DOCUMENT
    }
    problems = list(verification.problems)
    for included in signed.get("includedContributions", []) if isinstance(signed, Mapping) else []:
        uri = included.get("id") if isinstance(included, Mapping) else None
        document = included.get("document") if isinstance(included, Mapping) else None
        if not isinstance(uri, str) or not isinstance(document, Mapping):
            continue  # verify_edition has reported the malformed entry
        if carried.get(uri) != rfc8785.dumps(document).decode("utf-8"):
            problems.append(
                EditionProblem(
                    EditionProblemKind.CONTRIBUTION_ALTERED,
                    uri,
                    "the contribution graph does not carry the version the manifest names",
                )
            )
    return EditionVerification(verification.manifest_hash, tuple(problems))


def _verify_json(data: bytes, key_lookup: KeyLookup) -> EditionVerification:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _malformed("dump", f"not JSON: {exc}")
    if not isinstance(document, Mapping):
        return _malformed("dump", "must be a JSON object")
    return verify_edition(document, key_lookup)


def _malformed(subject: str, detail: str) -> EditionVerification:
    return EditionVerification(None, (EditionProblem(EditionProblemKind.MALFORMED, subject, detail),))
