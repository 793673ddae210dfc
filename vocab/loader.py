"""Offline JSON-LD document loader: bundled contexts only, never the network.

JSON-LD contexts are code (a remote context can change what a signed document means), and
context hosts go down. So every context the project processes ships in this package, and
any other URL is refused with `UnknownContextError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

ACTIVITYSTREAMS_CONTEXT_URL = "https://www.w3.org/ns/activitystreams"
SECURITY_V1_CONTEXT_URL = "https://w3id.org/security/v1"
DATA_INTEGRITY_V2_CONTEXT_URL = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1_CONTEXT_URL = "https://w3id.org/security/multikey/v1"
PRAXISNETZ_CONTEXT_URL = "https://w3id.org/praxisnetz/context.jsonld"
# Named by Mastodon, Fedify and GoToSocial in what they send; bundled so that their
# documents are read offline (copied from Fedify's preloaded contexts, MIT).
IDENTITY_V1_CONTEXT_URL = "https://w3id.org/identity/v1"
DID_V1_CONTEXT_URL = "https://www.w3.org/ns/did/v1"
GOTOSOCIAL_CONTEXT_URL = "https://gotosocial.org/ns"
DATA_INTEGRITY_V1_CONTEXT_URL = "https://w3id.org/security/data-integrity/v1"

# The context list our documents carry, in this order: AS first (Mastodon reads it),
# data integrity for `proof`, ours last so that our terms are never shadowed.
DEFAULT_CONTEXT: tuple[str, ...] = (
    ACTIVITYSTREAMS_CONTEXT_URL,
    DATA_INTEGRITY_V2_CONTEXT_URL,
    PRAXISNETZ_CONTEXT_URL,
)

# canonical URL -> file inside the vocab package
_BUNDLED_FILES: Mapping[str, str] = {
    ACTIVITYSTREAMS_CONTEXT_URL: "contexts/activitystreams.jsonld",
    SECURITY_V1_CONTEXT_URL: "contexts/security-v1.jsonld",
    DATA_INTEGRITY_V2_CONTEXT_URL: "contexts/data-integrity-v2.jsonld",
    MULTIKEY_V1_CONTEXT_URL: "contexts/multikey-v1.jsonld",
    PRAXISNETZ_CONTEXT_URL: "context.jsonld",
    IDENTITY_V1_CONTEXT_URL: "contexts/identity-v1.jsonld",
    DID_V1_CONTEXT_URL: "contexts/did-v1.jsonld",
    GOTOSOCIAL_CONTEXT_URL: "contexts/gotosocial.jsonld",
    DATA_INTEGRITY_V1_CONTEXT_URL: "contexts/data-integrity-v1.jsonld",
}

JSONLD_MEDIA_TYPE = "application/ld+json"


class UnknownContextError(ValueError):
    """A JSON-LD processor asked for a document that is not bundled; nothing is fetched."""

    def __init__(self, url: object) -> None:
        self.url = str(url)
        super().__init__(
            f"JSON-LD context {self.url!r} is not bundled with Praxisnetz and is never "
            f"fetched over the network; bundled: {', '.join(sorted(_BUNDLED_FILES))}"
        )


@dataclass(frozen=True)
class BundledContext:
    url: str
    text: str


def canonical_context_url(url: str) -> str | None:
    """Map a spelling variant of a bundled context URL to its canonical form, or None.

    Accepted variants: http or https, with or without a trailing slash, with or without
    `.jsonld`, and with an empty fragment or query stripped.
    """
    if not isinstance(url, str):
        return None
    candidate = url.strip().split("#", 1)[0].split("?", 1)[0]
    if candidate.startswith("http://"):
        candidate = "https://" + candidate[len("http://") :]
    candidate = candidate.rstrip("/")
    for known in _BUNDLED_FILES:
        bare = known.removesuffix(".jsonld")
        if candidate in (known, bare, bare + ".jsonld"):
            return known
    return None


def bundled_context_urls() -> tuple[str, ...]:
    return tuple(_BUNDLED_FILES)


@cache
def bundled_context(url: str) -> BundledContext:
    """The bundled document for a canonical URL (read once per process, text kept)."""
    name = _BUNDLED_FILES.get(url)
    if name is None:
        raise UnknownContextError(url)
    text = resources.files("vocab").joinpath(name).read_text(encoding="utf-8")
    return BundledContext(url=url, text=text)


def load_bundled_document(url: str) -> dict[str, Any]:
    """A fresh parsed copy of a bundled context, so callers may not corrupt the bundle."""
    canonical = canonical_context_url(url)
    if canonical is None:
        raise UnknownContextError(url)
    return json.loads(bundled_context(canonical).text)


def offline_document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader that serves bundled contexts and refuses everything else."""
    canonical = canonical_context_url(url)
    if canonical is None:
        raise UnknownContextError(url)
    return {
        "contentType": JSONLD_MEDIA_TYPE,
        "contextUrl": None,
        "documentUrl": canonical,
        "document": load_bundled_document(canonical),
    }


def pyld_options(base: str, **extra: Any) -> dict[str, Any]:
    """Options for one pyld call: our offline loader and an explicit base IRI.

    pyld's global default loader fetches over HTTP; passing the loader per call keeps
    that global untouched and makes every call offline.
    """
    if not isinstance(base, str) or not base:
        raise ValueError("pyld needs an explicit, non-empty base IRI")
    options: dict[str, Any] = {"base": base, "documentLoader": offline_document_loader}
    options.update(extra)
    return options
