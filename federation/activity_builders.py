"""Typed builders of the activities Praxisnetz sends: plain JSON-ready dicts in our
context (``federation.activities.CONTEXT``), each refusing what it could not send
(:class:`~federation.activities.ActivityError` naming the field). The strict parser of
what we accept is ``federation.activities``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from federation.activities import CONTEXT, PUBLIC, ActivityError, ActivityType
from federation.timestamps import TimestampError, format_timestamp


def _envelope(
    kind: ActivityType,
    actor: str,
    obj: object,
    *,
    activity_id: str,
    published: datetime,
    to: Sequence[str],
    cc: Sequence[str],
) -> dict[str, object]:
    try:
        published_text = format_timestamp(published)
    except TimestampError as exc:
        raise ActivityError("published", str(exc)) from exc
    return {
        "@context": list(CONTEXT),
        "id": activity_id,
        "type": kind.value,
        "actor": actor,
        "object": obj,
        "to": list(to),
        "cc": list(cc),
        "published": published_text,
    }


def _reference_copy(activity: Mapping[str, object]) -> dict[str, object]:
    """The short form of an activity embedded in Accept/Reject/Undo (as Mastodon sends it)."""
    for field in ("id", "type", "actor", "object"):
        if field not in activity:
            raise ActivityError("object", f"embedded activity has no {field}")
    inner_object = activity["object"]
    if isinstance(inner_object, Mapping):
        inner_object = inner_object.get("id")
    return {
        "id": activity["id"],
        "type": activity["type"],
        "actor": activity["actor"],
        "object": inner_object,
    }


def _audience_of(document: Mapping[str, object], field: str) -> list[str]:
    value = document.get(field)
    if isinstance(value, str):
        return [value]
    return [entry for entry in value if isinstance(entry, str)] if isinstance(value, list) else []


def follow(actor: str, target: str, *, activity_id: str, published: datetime) -> dict[str, object]:
    return _envelope(
        ActivityType.FOLLOW,
        actor,
        target,
        activity_id=activity_id,
        published=published,
        to=[target],
        cc=[],
    )


def accept(
    actor: str, follow_activity: Mapping[str, object], *, activity_id: str, published: datetime
) -> dict[str, object]:
    return _answer(ActivityType.ACCEPT, actor, follow_activity, activity_id, published)


def reject(
    actor: str, follow_activity: Mapping[str, object], *, activity_id: str, published: datetime
) -> dict[str, object]:
    return _answer(ActivityType.REJECT, actor, follow_activity, activity_id, published)


def _answer(
    kind: ActivityType,
    actor: str,
    follow_activity: Mapping[str, object],
    activity_id: str,
    published: datetime,
) -> dict[str, object]:
    inner = _reference_copy(follow_activity)
    if inner["type"] != ActivityType.FOLLOW or inner["object"] != actor:
        raise ActivityError("object", f"{kind.value} answers a Follow of {actor}")
    follower = str(inner["actor"])
    return _envelope(
        kind, actor, inner, activity_id=activity_id, published=published, to=[follower], cc=[]
    )


def undo(
    actor: str, inner: Mapping[str, object], *, activity_id: str, published: datetime
) -> dict[str, object]:
    if inner.get("actor") != actor:
        raise ActivityError("object", "an actor can only undo its own activities")
    return _envelope(
        ActivityType.UNDO,
        actor,
        _reference_copy(inner),
        activity_id=activity_id,
        published=published,
        to=_audience_of(inner, "to"),
        cc=_audience_of(inner, "cc"),
    )


def create(
    actor: str, obj: Mapping[str, object], *, activity_id: str, published: datetime
) -> dict[str, object]:
    return _authoring(ActivityType.CREATE, actor, obj, activity_id, published)


def update(
    actor: str, obj: Mapping[str, object], *, activity_id: str, published: datetime
) -> dict[str, object]:
    return _authoring(ActivityType.UPDATE, actor, obj, activity_id, published)


def _authoring(
    kind: ActivityType,
    actor: str,
    obj: Mapping[str, object],
    activity_id: str,
    published: datetime,
) -> dict[str, object]:
    if not isinstance(obj.get("id"), str):
        raise ActivityError("object", "the object needs an id")
    # an actor document is its own author; everything else names attributedTo
    if obj.get("id") != actor and obj.get("attributedTo") != actor:
        raise ActivityError("object", f"attributedTo must be {actor}")
    # the object is embedded unchanged, so its own proof stays verifiable
    return _envelope(
        kind,
        actor,
        dict(obj),
        activity_id=activity_id,
        published=published,
        to=_audience_of(obj, "to"),
        cc=_audience_of(obj, "cc"),
    )


def delete(
    actor: str,
    object_id: str,
    *,
    activity_id: str,
    published: datetime,
    to: Sequence[str] = (PUBLIC,),
    cc: Sequence[str] = (),
) -> dict[str, object]:
    envelope = _envelope(
        ActivityType.DELETE,
        actor,
        None,
        activity_id=activity_id,
        published=published,
        to=to,
        cc=cc,
    )
    envelope["object"] = {"id": object_id, "type": "Tombstone", "deleted": envelope["published"]}
    return envelope


def announce(
    actor: str,
    obj_or_activity: Mapping[str, object] | str,
    *,
    activity_id: str,
    published: datetime,
    to: Sequence[str] = (PUBLIC,),
    cc: Sequence[str] = (),
) -> dict[str, object]:
    # embedded unchanged (FEP-1b12): followers can check the author's own proof
    obj = obj_or_activity if isinstance(obj_or_activity, str) else dict(obj_or_activity)
    return _envelope(
        ActivityType.ANNOUNCE,
        actor,
        obj,
        activity_id=activity_id,
        published=published,
        to=to,
        cc=cc,
    )


def like(
    actor: str,
    object_id: str,
    *,
    activity_id: str,
    published: datetime,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
) -> dict[str, object]:
    return _envelope(
        ActivityType.LIKE,
        actor,
        object_id,
        activity_id=activity_id,
        published=published,
        to=to,
        cc=cc,
    )
