"""Reading a received activity: what the inbox and the inbox worker both parse.

The parser (``federation.activities``) never fetches a JSON-LD context and refuses
documents that name one it does not bundle. Widely deployed servers name a few such
contexts whose terms the node does not read:

- ``https://w3id.org/identity/v1`` (Mastodon, Fedify) defines the terms of Linked Data
  Signatures (``signature``: ``RsaSignature2017``). The node does not verify those
  (HTTP signatures authenticate the sender, FEP-8b32 proofs the author), so the
  ``signature`` member and that context are set aside.
- ``https://www.w3.org/ns/did/v1`` and ``https://gotosocial.org/ns`` (Fedify,
  GoToSocial) define key and interaction-policy terms of actors, not of activities.
- Fedify writes proofs with the data-integrity **v1** context, whose terms are the
  same IRIs as v2's (bundled); v2 stands in for reading.

Only these named contexts are treated so; any other unknown context is still refused.
Only the parsed view changes: ``Activity.raw`` stays the document exactly as received,
so proofs are checked against what the author signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from federation.activities import Activity, parse_activity

ACTIVITYSTREAMS = "https://www.w3.org/ns/activitystreams"
IGNORED_CONTEXTS = frozenset({
    "https://w3id.org/identity/v1",
    "https://www.w3.org/ns/did/v1",
    "https://gotosocial.org/ns",
})
READ_AS = {
    "https://w3id.org/security/data-integrity/v1": "https://w3id.org/security/data-integrity/v2",
}


MAX_DEPTH = 64  # deeper documents are returned untouched; the parser refuses them


def readable_context(context: object) -> object:
    """The context to read with: AS first, the named extras dropped or mapped."""
    if isinstance(context, str):
        return READ_AS.get(context, context)
    if not isinstance(context, list) or not all(isinstance(e, str) for e in context):
        return context  # inline definitions: leave the decision to the parser
    kept = [READ_AS.get(entry, entry) for entry in context if entry not in IGNORED_CONTEXTS]
    if ACTIVITYSTREAMS in kept:
        kept.remove(ACTIVITYSTREAMS)
        kept.insert(0, ACTIVITYSTREAMS)
    return list(dict.fromkeys(kept))


def readable(value: Any, depth: int = 0) -> Any:
    """A copy of the document as the parser should see it, embedded objects included."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, list):
        return [readable(item, depth + 1) for item in value]
    if not isinstance(value, Mapping):
        return value
    cleaned = {key: readable(item, depth + 1) for key, item in value.items()
               if key != "signature"}
    if "@context" in value:
        cleaned["@context"] = readable_context(value["@context"])
    return cleaned


def read_activity(document: Mapping[str, Any]) -> Activity:
    """Parse a received activity (raises ``ActivityError`` naming the field)."""
    return replace(parse_activity(readable(document)), raw=document)
