"""The Praxisnetz vocabulary: ontology, JSON-LD context, SHACL shapes, SKOS topics,
bundled third-party contexts, the offline document loader, and validation.

    from vocab import validate, PN, PRAXISNETZ_CONTEXT_URL
    report = validate(document)

Command line: `python -m vocab FILE...` validates JSON-LD files and prints the result.
"""

from __future__ import annotations

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
from vocab.validate import Problem, Severity, ValidationReport, validate, validate_files

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
    "validate",
    "validate_files",
]
