"""Closed rdflib namespaces for the Praxisnetz vocabulary and its topic scheme.

A test keeps `PN` in step with `ontology.ttl` and `TOPICS` with `topics.ttl`, so a typo such
as `PN.Pratice` fails loudly instead of minting a new IRI.
"""

from __future__ import annotations

from types import MappingProxyType

from rdflib import Namespace, URIRef
from rdflib.namespace import DefinedNamespace

from vocab.topic_slugs import TOPIC_SLUGS

PN_NAMESPACE = "https://w3id.org/praxisnetz#"
TOPICS_NAMESPACE = "https://w3id.org/praxisnetz/topics#"
TOPIC_SCHEME = "https://w3id.org/praxisnetz/topics"
ONTOLOGY_IRI = "https://w3id.org/praxisnetz"

# Reused vocabularies, spelled once.
AS = Namespace("https://www.w3.org/ns/activitystreams#")
SEC = Namespace("https://w3id.org/security#")
SCHEMA = Namespace("https://schema.org/")
ADMS = Namespace("http://www.w3.org/ns/adms#")
CPSV = Namespace("http://purl.org/vocab/cpsv#")
CV = Namespace("http://data.europa.eu/m8g/")
DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
LDP = Namespace("http://www.w3.org/ns/ldp#")

MUNICIPALITY_KEY_BASE = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"
LEIKA_SERVICE_PREFIX = "urn:de:fim:leika:leistung:"


class PN(DefinedNamespace):
    """The pn terms of `vocab/ontology.ttl`."""

    _NS = Namespace(PN_NAMESPACE)
    _fail = True

    # classes
    Practice: URIRef
    Experience: URIRef
    Stance: URIRef
    Material: URIRef
    Comment: URIRef
    Handbook: URIRef
    Section: URIRef
    Edition: URIRef
    Municipality: URIRef
    PracticeStatus: URIRef
    StancePosition: URIRef

    # named values
    planned: URIRef
    piloting: URIRef
    inOperation: URIRef
    discontinued: URIRef
    agree: URIRef
    disagree: URIRef
    partly: URIRef

    # properties
    status: URIRef
    topic: URIRef
    handbookSection: URIRef
    municipalityKey: URIRef
    effort: URIRef
    implementationDuration: URIRef
    lessonsLearned: URIRef
    legalBasis: URIRef
    relatedService: URIRef
    about: URIRef
    position: URIRef
    reason: URIRef
    handbook: URIRef
    sectionNumber: URIRef
    editionNumber: URIRef
    previousEdition: URIRef
    manifestHash: URIRef
    # edition manifest
    previousManifestHash: URIRef
    sections: URIRef
    slug: URIRef
    parentSection: URIRef
    order: URIRef
    editorialText: URIRef
    includes: URIRef
    documentHash: URIRef
    includedContribution: URIRef
    signedManifest: URIRef
    signedDocument: URIRef
    verificationKeys: URIRef


class TOPICS(DefinedNamespace):
    """The concepts of `vocab/topics.ttl`; slugs contain hyphens, so use `TOPICS["e-akte"]`."""

    _NS = Namespace(TOPICS_NAMESPACE)
    _fail = True
    _extras = list(TOPIC_SLUGS)


# Compact status and position words as they appear in JSON (the context maps them).
PRACTICE_STATUS_WORDS = MappingProxyType(
    {
        "planned": PN.planned,
        "piloting": PN.piloting,
        "in-operation": PN.inOperation,
        "discontinued": PN.discontinued,
    }
)
STANCE_POSITION_WORDS = MappingProxyType(
    {"agree": PN.agree, "disagree": PN.disagree, "partly": PN.partly}
)


def topic_iri(slug: str) -> URIRef:
    """The IRI of a topic slug; raises KeyError naming the slug if it is not in the scheme."""
    if slug not in TOPIC_SLUGS:
        raise KeyError(f"unknown topic {slug!r}; known: {', '.join(TOPIC_SLUGS)}")
    return URIRef(TOPICS_NAMESPACE + slug)


def municipality_key_iri(ags: str) -> URIRef:
    """The DCAT-AP.de geocoding URI of an 8-digit Amtlicher Gemeindeschlüssel."""
    if not (isinstance(ags, str) and len(ags) == 8 and ags.isascii() and ags.isdigit()):
        raise ValueError(f"municipality key must be 8 digits, got {ags!r}")
    return URIRef(MUNICIPALITY_KEY_BASE + ags)


def leika_service_iri(key: str) -> URIRef:
    """The URN of a 14-digit LeiKa service key."""
    if not (isinstance(key, str) and len(key) == 14 and key.isascii() and key.isdigit()):
        raise ValueError(f"LeiKa key must be 14 digits, got {key!r}")
    return URIRef(LEIKA_SERVICE_PREFIX + key)
