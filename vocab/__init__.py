"""The Praxisnetz vocabulary: ontology, JSON-LD context, SHACL shapes, SKOS topics,
bundled third-party contexts, the offline document loader, and validation."""

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
    PN,
    PN_NAMESPACE,
    TOPIC_SCHEME,
    TOPIC_SLUGS,
    TOPICS,
    TOPICS_NAMESPACE,
    topic_iri,
)

__all__ = [
    "ACTIVITYSTREAMS_CONTEXT_URL",
    "DATA_INTEGRITY_V2_CONTEXT_URL",
    "DEFAULT_CONTEXT",
    "MULTIKEY_V1_CONTEXT_URL",
    "PN",
    "PN_NAMESPACE",
    "PRAXISNETZ_CONTEXT_URL",
    "SECURITY_V1_CONTEXT_URL",
    "TOPICS",
    "TOPICS_NAMESPACE",
    "TOPIC_SCHEME",
    "TOPIC_SLUGS",
    "UnknownContextError",
    "offline_document_loader",
    "pyld_options",
    "topic_iri",
]
