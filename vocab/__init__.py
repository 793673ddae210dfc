"""The Praxisnetz vocabulary: ontology, JSON-LD context, SHACL shapes, SKOS topics,
bundled third-party contexts, the offline document loader, and validation.

    from vocab import PN, PRAXISNETZ_CONTEXT_URL
    from vocab.validate import validate
    report = validate(document)

(``vocab.validate`` is the submodule, never the function: the package exports its
names lazily, and a lazily exported ``validate`` would be the function or the submodule
depending on what had been imported before.)

Command line: `python -m vocab FILE...` validates JSON-LD files and prints the result.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vocab.loader import (
    ACTIVITYSTREAMS_CONTEXT_URL,
    DATA_INTEGRITY_V2_CONTEXT_URL,
    DEFAULT_CONTEXT,
    MULTIKEY_V1_CONTEXT_URL,
    PRAXISNETZ_CONTEXT_URL,
    SECURITY_V1_CONTEXT_URL,
    UnknownContextError,
    offline_document_loader,
    pyld_options,
)

if TYPE_CHECKING:
    from vocab.namespace import (
        ONTOLOGY_IRI,
        PN,
        PN_NAMESPACE,
        TOPIC_SCHEME,
        TOPIC_SLUGS,
        TOPICS,
        TOPICS_NAMESPACE,
        topic_iri,
    )
    from vocab.validate import Problem, Severity, ValidationReport, validate_files

# Why lazy: the namespace constants need rdflib, and validation reads its compiled shapes
# and term table on first use (pyld and rdflib only for documents outside our contexts);
# a node that only reads activities in the known contexts needs none of it. The names
# are imported on first use (PEP 562).
_LAZY_EXPORTS = {
    **dict.fromkeys(
        ("ONTOLOGY_IRI", "PN", "PN_NAMESPACE", "TOPIC_SCHEME", "TOPICS", "TOPICS_NAMESPACE",
         "topic_iri"),
        "vocab.namespace",
    ),
    "TOPIC_SLUGS": "vocab.topic_slugs",
    **dict.fromkeys(
        ("Problem", "Severity", "ValidationReport", "validate_files"),
        "vocab.validate",
    ),
}  # fmt: skip


def __getattr__(name: str) -> object:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vocab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVITYSTREAMS_CONTEXT_URL",
    "DATA_INTEGRITY_V2_CONTEXT_URL",
    "DEFAULT_CONTEXT",
    "MULTIKEY_V1_CONTEXT_URL",
    "ONTOLOGY_IRI",
    "PN",
    "PN_NAMESPACE",
    "PRAXISNETZ_CONTEXT_URL",
    "Problem",
    "SECURITY_V1_CONTEXT_URL",
    "Severity",
    "TOPICS",
    "TOPICS_NAMESPACE",
    "TOPIC_SCHEME",
    "TOPIC_SLUGS",
    "UnknownContextError",
    "ValidationReport",
    "offline_document_loader",
    "pyld_options",
    "topic_iri",
    "validate_files",
]
