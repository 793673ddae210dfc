"""The slugs of the topic scheme, without rdflib: checking a contribution's topics needs
only these strings (`vocab.namespace` builds the topic IRIs from them; a test keeps them
in step with `topics.ttl`)."""

from __future__ import annotations

# Slugs of the topic scheme; the same strings end the topic IRIs (topics#e-akte).
TOPIC_SLUGS: tuple[str, ...] = (
    "strategie",
    "organisation-personal",
    "prozessmanagement",
    "e-akte",
    "elektronische-kommunikation",
    "buergerportal-online-dienste",
    "e-payment",
    "recht",
    "it-infrastruktur-sicherheit",
    "interkommunale-zusammenarbeit",
    "foerderung",
    "breitband-laendlicher-raum",
    "open-data",
    "evaluation",
    "barrierefreiheit",
    "geodaten",
    "e-partizipation",
)
