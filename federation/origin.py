"""Origin rules (FEP-fe34) as pure functions.

An origin is (scheme, host, port). Who may speak for an object is decided by origin:
an actor may create, update or delete only objects on its own origin, a relayed copy
of an object is trusted only with a valid proof by its author, and a fetched document
is only what it claims to be if its ``id`` is the URL it was fetched from (Mastodon
CVE-2024-23832).

URLs are parsed strictly by :mod:`federation.urls` (re-exported here).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from federation.proofs import ProofResult, ProofVerdict, document_author
from federation.urls import OriginError, origin, same_origin, split_url

__all__ = [
    "OriginError",
    "OriginVerdict",
    "RelayTrust",
    "fetched_id_matches",
    "may_act_on",
    "origin",
    "relayed_object_trust",
    "same_origin",
]


class OriginVerdict(enum.Enum):
    ALLOWED = "allowed"
    FOREIGN_OBJECT = "foreign_object"  # object id is on another origin than the actor
    ACTOR_MISMATCH = "actor_mismatch"  # the object (or undone activity) belongs to another actor
    INVALID_URL = "invalid_url"  # an id is not a usable http(s) URL
    UNSUPPORTED_TYPE = "unsupported_type"  # no rule for this activity type


class RelayTrust(enum.Enum):
    TRUSTED_BY_PROOF = "trusted_by_proof"  # valid proof by the object's author
    TRUSTED_BY_ORIGIN = "trusted_by_origin"  # the authenticated relayer shares its origin
    MUST_FETCH_FROM_ORIGIN = "must_fetch_from_origin"
    UNTRUSTED = "untrusted"  # forged proof or unusable id: drop the relayed copy


# A proof that is present but wrong means someone altered the object or lies about its
# author; an unsupported or missing proof merely proves nothing.
_FORGED = frozenset({ProofVerdict.BAD_PROOF, ProofVerdict.AUTHOR_MISMATCH, ProofVerdict.MALFORMED})


_OWN_OBJECT_TYPES = frozenset({"Create", "Update", "Delete"})
_FOREIGN_OBJECT_TYPES = frozenset({"Follow", "Accept", "Reject", "Announce", "Like"})


def may_act_on(
    actor_id: str, activity_type: str, object_id: str, *, object_author: str | None = None
) -> OriginVerdict:
    """May ``actor_id`` perform ``activity_type`` on the object ``object_id``?

    Create/Update/Delete need the object on the actor's origin; if the object is already
    known, ``object_author`` is its stored author and must be the actor. Undo is limited
    to the actor's own activities (``object_author`` = the undone activity's actor).
    Follow, Accept, Reject, Announce and Like address other people's objects.
    """
    try:
        actor_origin, object_origin = origin(actor_id), origin(object_id)
    except OriginError:
        return OriginVerdict.INVALID_URL
    if activity_type in _FOREIGN_OBJECT_TYPES:
        return OriginVerdict.ALLOWED
    if activity_type not in _OWN_OBJECT_TYPES and activity_type != "Undo":
        return OriginVerdict.UNSUPPORTED_TYPE
    if actor_origin != object_origin:
        return OriginVerdict.FOREIGN_OBJECT
    if object_author is not None and object_author != actor_id:
        return OriginVerdict.ACTOR_MISMATCH
    return OriginVerdict.ALLOWED


def relayed_object_trust(
    announcer: str, obj: Mapping[str, object] | str, proof: ProofResult | None
) -> RelayTrust:
    """How far to trust an object that ``announcer`` relayed (e.g. inside an Announce).

    ``announcer`` must already be authenticated (HTTP signature or proof on the outer
    activity); ``proof`` is the result of verifying ``obj``'s own proof, if it has one.
    """
    object_id = obj if isinstance(obj, str) else obj.get("id")
    if not isinstance(object_id, str) or not _is_valid(object_id):
        return RelayTrust.UNTRUSTED
    if isinstance(obj, str):
        return RelayTrust.MUST_FETCH_FROM_ORIGIN  # only a reference: nothing to trust yet
    if proof is not None and proof.verdict in _FORGED:
        return RelayTrust.UNTRUSTED
    author = document_author(obj)
    if (
        proof is not None
        and proof.ok
        and author is not None
        and proof.owner == author
        and same_origin(author, object_id)
    ):
        return RelayTrust.TRUSTED_BY_PROOF
    if same_origin(announcer, object_id) and (author is None or same_origin(author, object_id)):
        return RelayTrust.TRUSTED_BY_ORIGIN
    return RelayTrust.MUST_FETCH_FROM_ORIGIN


def _is_valid(url: str) -> bool:
    try:
        origin(url)
    except OriginError:
        return False
    return True


def _comparable(url: str, *, drop_fragment: bool) -> tuple[tuple[str, str, int], str, str, str]:
    parts = split_url(url)
    fragment = "" if drop_fragment else parts.fragment
    # An empty path and "/" are the same resource for http(s); nothing else is normalised.
    return origin(url), parts.path or "/", parts.query, fragment


def fetched_id_matches(final_url: str, document: Mapping[str, object]) -> bool:
    """Is the fetched document's ``id`` the URL it was fetched from (after redirects)?

    Exact comparison; only scheme and host case, IDNA, a trailing dot on the host and the
    default port are normalised. The fragment of ``final_url`` is ignored (it is never
    sent), but a document ``id`` with a fragment does not match.
    """
    document_id = document.get("id") if isinstance(document, Mapping) else None
    if not isinstance(document_id, str):
        return False
    try:
        return _comparable(final_url, drop_fragment=True) == _comparable(
            document_id, drop_fragment=False
        )
    except OriginError:
        return False
