"""Applying received activities: the inbox worker's rules, one handler per type.

Each handler gets a verified activity (the inbox checked the HTTP signature and that
the signer owns ``actor``) and returns a ``Verdict``: done, rejected (with the rule
that refused it) or retry (a remote server was unreachable). Handlers never trust
an id because it was sent to them: object ids must share the actor's origin, updates
and deletes must come from the stored author, relayed objects need their author's
proof or a fetch from their origin.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.activities import CONTEXT as ACTIVITY_CONTEXT
from federation.activities import Activity as ParsedActivity
from federation.activities import ActivityError, parse_activity
from federation.activity_builders import accept, reject
from federation.keys import KeyFormatError
from federation.origin import RelayTrust, relayed_object_trust, same_origin
from federation.proofs import ProofResult, proof_method, sign_document, verify_document
from node import incoming_follows
from node.appkeys import NodeKeys
from node.config import FollowApproval, NodeConfig
from node.outbox import record_local_activity
from node.remote import RemoteDirectory, RemoteError, SqliteWork, is_actor_document
from node.remote_objects import (
    ObjectChange,
    ObjectResult,
    ObjectVersion,
    create_object,
    delete_object,
    reference,
    update_object,
    with_context,
)
from node.storage.models import (
    Activity,
    BackfillState,
    Follower,
    FollowerState,
    Following,
    FollowingState,
    InboxState,
)

log = logging.getLogger("praxisnetz.inbox.worker")



@dataclass(frozen=True)
class Verdict:
    state: InboxState
    reason: str = ""


def done(reason: str = "") -> Verdict:
    return Verdict(InboxState.DONE, reason)


def rejected(reason: str) -> Verdict:
    return Verdict(InboxState.REJECTED, reason)


def retry(reason: str) -> Verdict:
    return Verdict(InboxState.RETRY, reason)


def carried_object(relayed: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What a relayed document stands for: FEP-1b12 groups announce the author's Create
    or Update, which carries the object; any other relayed document is the object itself."""
    if relayed.get("type") not in ("Create", "Update"):
        return relayed
    inner, actor = relayed.get("object"), reference(relayed.get("actor"))
    if isinstance(inner, Mapping) and actor and reference(inner.get("attributedTo")) == actor:
        return inner
    return None


def from_object_result(result: ObjectResult) -> Verdict:
    text = f"{result.verdict.value} {result.object_id or ''} {result.detail}".strip()
    return done(text) if result.accepted else rejected(text)


T = TypeVar("T")
Decision = Verdict | ObjectChange
# The activity types whose handlers may answer with an ObjectChange (an Update or Delete
# of the actor itself is no object change).
OBJECT_CHANGE_TYPES = frozenset({"Create", "Update", "Delete", "Announce"})


def failed(exc: RemoteError | SQLAlchemyError) -> Verdict:
    """The verdict when a remote server or the database failed the handler."""
    if isinstance(exc, RemoteError):
        if exc.permanent:
            return rejected(f"remote document unavailable: {exc}")
        return retry(f"remote server unreachable: {exc}")
    # Uncaught, the item would stay claimed and come back every lease, for ever.
    if refused_value(exc):
        return rejected(f"the database refused a value: {getattr(exc, 'orig', exc)}")
    return retry(f"database error: {type(exc).__name__}")


def refused_value(exc: SQLAlchemyError) -> bool:
    """A value the database will never take (longer than its column, a NUL character):
    SQLSTATE class 22, data exception; asking again cannot help."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DataError) or str(sqlstate or "").startswith("22")


@dataclass(frozen=True)
class Incoming:
    """The parts of a received activity the handlers work with."""

    id: str
    type: str
    actor: str
    object_id: str | None
    object: Mapping[str, Any] | None  # the embedded object, read in our context
    raw_object: Mapping[str, Any] | None  # the embedded object as received (for proofs)
    raw: Mapping[str, Any]
    object_context: object = None  # the @context ``object`` is to be read in

    @classmethod
    def from_activity(cls, activity: ParsedActivity) -> Incoming:
        raw_object = activity.raw.get("object")
        return cls(
            id=activity.id,
            type=activity.type.value,
            actor=activity.actor,
            object_id=activity.object_id,
            object=activity.object,
            raw_object=raw_object if isinstance(raw_object, Mapping) else None,
            raw=activity.raw,
            object_context=_context_of_object(activity),
        )

    def standalone_object(self) -> Mapping[str, Any] | None:
        """The embedded object with its @context, as it is checked and stored."""
        return with_context(self.object, self.object_context) if self.object else None


def _context_of_object(activity: ParsedActivity) -> object:
    """The object's own @context, else the activity's when it was read as received, else
    ours (``parse_activity`` compacted the activity into our context)."""
    embedded, raw_object = activity.object, activity.raw.get("object")
    if embedded is None:
        return None
    if isinstance(raw_object, list) and raw_object:
        raw_object = raw_object[0]
    if raw_object is embedded:
        return embedded.get("@context", activity.raw.get("@context"))
    return list(ACTIVITY_CONTEXT)


Handler = Callable[["Incoming"], Awaitable[Verdict | ObjectChange]]


class InboxHook(Protocol):
    """A role's part in the inbox (the hub): handlers for its own actors, and a look at
    every processed activity (``app[appkeys.INBOX_HOOK]``)."""

    def handler_for(self, activity: Incoming, directory: RemoteDirectory) -> Handler | None: ...

    async def processed(self, activity: Incoming, verdict: Verdict) -> None: ...


class InboxProcessor:
    """Applies received activities to the node's tables.

    ``decide`` runs an activity's handler: follows, answers and likes are applied there,
    each in a transaction of its own; a change to ``remote_objects`` (Create, Update,
    Delete, Announce) comes back as an ``ObjectChange``, which ``apply_changes`` applies
    with the others of the worker's batch in one transaction (on SQLite on the inbox
    writer's thread, ``in_transaction``); ``observed`` then shows it to the hook.
    ``process`` does all three for one activity.
    """

    def __init__(
        self,
        *,
        config: NodeConfig,
        session_maker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        keys: NodeKeys,
        directory: RemoteDirectory,
        key_resolver: Any,  # federation.keycache.KeyCache
        on_follow_accepted: Callable[[], None] | None = None,
        hook: InboxHook | None = None,
        sqlite: SqliteWork | None = None,
    ) -> None:
        self._config = config
        self._sessions = session_maker
        self._clock = clock
        self._keys = keys
        self._directory = directory
        self._keys_of = key_resolver
        self._on_follow_accepted = on_follow_accepted
        self._hook = hook
        self._sqlite = sqlite
        self._handlers: dict[str, Handler] = {
            "Follow": self.on_follow,
            "Undo": self.on_undo,
            "Accept": self.on_accept,
            "Reject": self.on_reject,
            "Create": self.on_create,
            "Update": self.on_update,
            "Delete": self.on_delete,
            "Announce": self.on_announce,
            "Like": self.on_like,
        }

    async def process(self, document: Mapping[str, Any]) -> Verdict:
        """Apply one activity, its object change in a transaction of its own."""
        activity, decision = await self.decide(document)
        if not isinstance(decision, ObjectChange):
            return decision
        [verdict] = await self.apply_batch([decision])
        return await self.observed(activity, verdict)

    async def decide(self, document: Mapping[str, Any]) -> tuple[Incoming | None, Decision]:
        """The activity as read, and its verdict or the object change it asks for (a
        verdict was shown to the hook already; a change is shown by ``observed``)."""
        try:
            activity = Incoming.from_activity(parse_activity(document))
        except ActivityError as exc:
            return None, rejected(f"malformed activity: {exc}")
        handler = self._handlers.get(activity.type)
        if self._hook is not None:
            handler = self._hook.handler_for(activity, self._directory) or handler
        if handler is None:
            return activity, done(f"{activity.type} is not handled; stored only")
        try:
            if activity.type == "Follow" and await self._deleted_for_good(activity.actor):
                gone = f"Follow from {activity.actor}, an actor deleted and gone"
                return activity, rejected(gone)
            decision = await handler(activity)
            if isinstance(decision, ObjectChange):
                return activity, decision
            return activity, await self.observed(activity, decision)
        except (RemoteError, SQLAlchemyError) as exc:
            return activity, failed(exc)

    async def apply_batch(self, changes: list[ObjectChange],
                          then: Callable[[Connection, list[Verdict]], None] | None = None
                          ) -> list[Verdict]:
        """Apply the changes in order in one transaction; their verdicts. ``then`` runs
        in the same transaction after them, with their verdicts (the worker records the
        results there when no hook is to see them first).

        First all together; if the database (or a rule) fails one of them, that
        transaction is rolled back and the changes applied again, each under a savepoint
        of its own: the failed one is undone alone and gets its verdict (rejected, or
        retry), the others stand. (A savepoint for every change cost ~10% of a Create.)
        """
        def work(apply: Callable[[list[ObjectChange], Connection], list[Verdict]],
                 connection: Connection) -> list[Verdict]:
            verdicts = apply(changes, connection)
            if then is not None:
                then(connection, verdicts)
            return verdicts

        try:
            return await self.in_transaction(partial(work, self.apply_changes))
        except Exception:  # noqa: BLE001 - the failure is the savepoint pass's to judge
            return await self.in_transaction(partial(work, self.apply_changes_apart))

    @property
    def observes(self) -> bool:
        """Whether a hook sees each verdict (after its changes committed, before the
        results are recorded)."""
        return self._hook is not None

    def apply_changes(self, changes: list[ObjectChange], connection: Connection) -> list[Verdict]:
        """All the changes in the caller's transaction; raises if any fails."""
        now = self._clock()
        return [from_object_result(change.apply(connection, now)) for change in changes]

    def apply_changes_apart(self, changes: list[ObjectChange],
                            connection: Connection) -> list[Verdict]:
        """The changes in the caller's transaction, each under a savepoint of its own."""
        now, verdicts = self._clock(), []
        for change in changes:
            try:
                with connection.begin_nested():
                    verdicts.append(from_object_result(change.apply(connection, now)))
            except SQLAlchemyError as exc:
                verdicts.append(failed(exc))
            except Exception as exc:  # noqa: BLE001 - logged; one bad item must not spoil the batch
                log.exception("applying an object change failed actor=%s", change.actor)
                verdicts.append(retry(f"processing failed: {type(exc).__name__}"))
        return verdicts

    async def in_transaction(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a transaction of its own: on SQLite in one hand-off to the inbox
        writer's thread and its stdlib driver while that runs (``node.remote.SqliteWork``),
        else through an async session (``run_sync``: PostgreSQL, or no writer)."""
        runner = self._sqlite.runner if self._sqlite is not None else None
        if runner is not None:
            return await runner(work)
        async with self._sessions() as session, session.begin():
            return await session.run_sync(lambda sync: work(sync.connection()))

    async def observed(self, activity: Incoming | None, verdict: Verdict) -> Verdict:
        """Show the hook an activity's verdict (after its changes were committed); a
        failure of the hook's own work is the item's verdict, as a handler's is."""
        if self._hook is None or activity is None:
            return verdict
        try:
            await self._hook.processed(activity, verdict)
        except (RemoteError, SQLAlchemyError) as exc:
            return failed(exc)
        return verdict

    # --- local activities we send in answer ------------------------------------------------

    async def _answer_follow(self, session: AsyncSession, activity: Incoming,
                             accepted: bool, inbox: str) -> None:
        build = accept if accepted else reject
        follow_document = {"id": activity.id, "type": "Follow", "actor": activity.actor,
                           "object": self._config.actor_url}
        document = build(self._config.actor_url, follow_document,
                         activity_id=f"{self._config.base_url}/activities/{uuid.uuid4()}",
                         published=self._clock())
        signed = sign_document(document, self._keys.ed25519, created=self._clock())
        await record_local_activity(session, signed, [inbox], now=self._clock())

    # --- follows -----------------------------------------------------------------------

    def _approval_for(self, actor: str) -> FollowerState:
        allowed = self._config.follow_allow_hosts
        host = (urlsplit(actor).hostname or "").lower()
        if allowed and host not in {h.lower() for h in allowed}:
            return FollowerState.REJECTED
        if self._config.follow_approval is FollowApproval.MANUAL:
            return FollowerState.PENDING
        return FollowerState.ACCEPTED

    async def on_follow(self, activity: Incoming) -> Verdict:
        if activity.object_id != self._config.actor_url:
            return rejected(f"Follow of {activity.object_id}, which is not this node's actor")
        remote = await self._directory.actor(activity.actor)
        state = self._approval_for(activity.actor)
        async with self._sessions() as session, session.begin():
            if not await incoming_follows.record_follow(session, activity.actor, activity.id,
                                                        self._config.actor_url, now=self._clock()):
                return done(f"Follow {activity.id} was undone before it arrived; ignored")
            if state is FollowerState.REJECTED:
                # refused: the follower undoes none of its Follows, so they end here (else
                # one would stand after its next Follow and Undo: node.incoming_follows)
                await incoming_follows.end_follows(session, activity.actor,
                                                   self._config.actor_url, now=self._clock())
            row = (await session.execute(
                select(Follower).where(Follower.actor_uri == activity.actor))).scalar_one_or_none()
            if row is None:
                row = Follower(actor_uri=activity.actor, created_at=self._clock())
                session.add(row)
            row.inbox, row.shared_inbox = remote.inbox, remote.shared_inbox
            row.state, row.follow_activity_uri = state.value, activity.id
            if state is not FollowerState.PENDING:
                await self._answer_follow(session, activity, state is FollowerState.ACCEPTED,
                                          remote.inbox)
        return done(f"follower {activity.actor} {state.value}")

    async def _undo_follow(self, activity: Incoming, follow_id: str) -> Verdict:
        """Remove the follower unless another of its Follows stands (``node.incoming_follows``)."""
        async with self._sessions() as session, session.begin():
            await incoming_follows.record_undo(session, activity.actor, activity.id, follow_id,
                                               now=self._clock())
            row = (await session.execute(
                select(Follower).where(Follower.actor_uri == activity.actor))).scalar_one_or_none()
            if row is None:
                return done("not a follower; the Undo is remembered")
            standing = await incoming_follows.standing_follow(
                session, activity.actor, self._config.actor_url, row.follow_activity_uri)
            if standing is not None:
                row.follow_activity_uri = standing
                return done(f"undo of {follow_id}; the follow {standing} stands")
            await session.delete(row)
        return done(f"follower {activity.actor} removed")

    async def on_undo(self, activity: Incoming) -> Verdict:
        inner = activity.object
        if activity.object_id is None:
            return rejected("Undo without an object id")
        if not same_origin(activity.object_id, activity.actor):
            return rejected(f"{activity.actor} may not undo {activity.object_id}: foreign origin")
        inner_actor = reference(inner.get("actor")) if inner is not None else None
        if inner_actor is not None and inner_actor != activity.actor:
            return rejected(f"the undone activity belongs to {inner_actor}")
        inner_type = inner.get("type") if inner is not None else None
        if inner_type == "Follow":
            return await self._undo_follow(activity, activity.object_id)
        async with self._sessions() as session, session.begin():
            # Receipts of Follows and Undos stay: they decide who follows.
            result = await session.execute(
                delete(Activity).where(Activity.uri == activity.object_id,
                                       Activity.actor == activity.actor,
                                       Activity.type.not_in(incoming_follows.RECEIPT_TYPES),
                                       Activity.is_local.is_(False)))
            if result.rowcount:
                return done(f"undid {activity.object_id}")
        # A bare id that names nothing else may be a Follow, received or still on its way.
        return await self._undo_follow(activity, activity.object_id)

    async def _answer_to_our_follow(self, activity: Incoming) -> Following | None:
        """Our follow of the answering actor, if the answer is about it.

        Only the followed actor may answer (``target_uri``). An embedded Follow must be
        ours; a bare id must be our Follow's id. (Some servers embed a copy of the
        Follow under an id of their own; the actor check is what matters then.)
        """
        async with self._sessions() as session:
            query = select(Following).where(Following.target_uri == activity.actor)
            row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        if activity.object is not None:
            follower = reference(activity.object.get("actor"))
            return row if follower in (None, self._config.actor_url) else None
        return row if activity.object_id == row.follow_activity_uri else None

    async def on_accept(self, activity: Incoming) -> Verdict:
        row = await self._answer_to_our_follow(activity)
        if row is None:
            return rejected(f"Accept from {activity.actor} answers no Follow of ours")
        async with self._sessions() as session, session.begin():
            following = await session.get(Following, row.id)
            if following is None:
                return done("follow withdrawn meanwhile")
            following.state = FollowingState.ACCEPTED.value
            following.accepted_at = self._clock()
            if following.backfill_state in (BackfillState.NONE.value, BackfillState.FAILED.value):
                following.backfill_state = BackfillState.PENDING.value
        if self._on_follow_accepted is not None:
            self._on_follow_accepted()
        return done(f"following {activity.actor} accepted")

    async def on_reject(self, activity: Incoming) -> Verdict:
        row = await self._answer_to_our_follow(activity)
        if row is None:
            return rejected(f"Reject from {activity.actor} answers no Follow of ours")
        async with self._sessions() as session, session.begin():
            following = await session.get(Following, row.id)
            if following is not None:
                following.state = FollowingState.REJECTED.value
        return done(f"following {activity.actor} rejected")

    # --- objects -----------------------------------------------------------------------

    async def _object_of(self, activity: Incoming) -> Mapping[str, Any] | None:
        """The embedded object, or the object fetched from its own origin."""
        if activity.object is not None:
            return activity.standalone_object()
        if activity.object_id is None:
            return None
        if not same_origin(activity.object_id, activity.actor):
            return None  # never fetch what the actor may not speak for anyway
        return await self._directory.fetch(activity.object_id)

    async def on_create(self, activity: Incoming) -> Decision:
        obj = await self._object_of(activity)
        if obj is None:
            return rejected(f"Create of {activity.object_id}: no usable object")
        return ObjectVersion.of(create_object, activity.actor, obj)

    async def on_update(self, activity: Incoming) -> Decision:
        obj = activity.standalone_object()
        if obj is None:
            return rejected("Update without an embedded object")
        if activity.object_id == activity.actor and is_actor_document(obj):
            return await self._actor_updated(activity)
        return ObjectVersion.of(update_object, activity.actor, obj)

    async def _actor_updated(self, activity: Incoming) -> Verdict:
        # Take the actor (and its keys) from its origin, not from the message.
        document = await self._directory.key_document(activity.actor, refresh=True)
        if not is_actor_document(document):
            return rejected(f"{activity.actor} did not serve an actor document")
        try:
            key_ids = self._keys_of.put_actor(document)
        except KeyFormatError as exc:
            return rejected(f"actor {activity.actor} publishes unusable keys: {exc}")
        return done(f"actor {activity.actor} refreshed; keys {', '.join(key_ids)}")

    async def on_delete(self, activity: Incoming) -> Decision:
        if activity.object_id is None:
            return rejected("Delete without an object id")
        if activity.object_id == activity.actor:
            return await self._actor_deleted(activity)
        return ObjectChange(delete_object, activity.actor, activity.object_id)

    async def _actor_deleted(self, activity: Incoming) -> Verdict:
        async with self._sessions() as session, session.begin():
            # its Follows are never undone now; they end with it (node.incoming_follows)
            await incoming_follows.end_follows(session, activity.actor, None, now=self._clock())
            await incoming_follows.record_actor_deleted(session, activity.actor,
                                                        now=self._clock())
            await session.execute(delete(Follower).where(Follower.actor_uri == activity.actor))
            await session.execute(delete(Following).where(Following.target_uri == activity.actor))
        return done(f"actor {activity.actor} deleted; follow relations removed")

    async def _deleted_for_good(self, actor: str) -> bool:
        """Whether ``actor`` deleted itself and is still gone (its document answers 404 or
        410). A Follow it sent before its Delete may come after it, signed with the key
        we still hold (node.incoming_follows). An actor that answers again was re-created
        at its address: its mark goes and its Follow counts."""
        async with self._sessions() as session:
            if not await incoming_follows.actor_deleted(session, actor):
                return False
        try:
            await self._directory.actor(actor, refresh=True)
        except RemoteError as exc:
            if exc.permanent:
                return True
            raise  # unreachable for now: the item is retried
        async with self._sessions() as session, session.begin():
            await incoming_follows.forget_actor_deleted(session, actor)
        return False

    async def verify_proof(self, document: Mapping[str, Any]) -> ProofResult | None:
        """The result of checking the document's own proof; None if it carries none."""
        method = proof_method(document)
        if method is None:
            return None
        lookup = await self._keys_of(method)
        if lookup.key is None:
            return None
        return verify_document(document, lookup.key, now=self._clock())

    async def trusted_relayed_object(self, announcer: str,
                                     obj: Mapping[str, Any] | str) -> Mapping[str, Any] | None:
        """A relayed object we may store: proven by its author, or fetched from its origin."""
        proof = await self.verify_proof(obj) if isinstance(obj, Mapping) else None
        trust = relayed_object_trust(announcer, obj, proof)
        if trust is RelayTrust.UNTRUSTED:
            return None
        if trust in (RelayTrust.TRUSTED_BY_PROOF, RelayTrust.TRUSTED_BY_ORIGIN):
            return obj if isinstance(obj, Mapping) else None
        object_id = obj if isinstance(obj, str) else reference(obj)
        return await self._directory.fetch(object_id) if object_id else None

    async def on_announce(self, activity: Incoming) -> Decision:
        relayed = activity.raw_object if activity.raw_object is not None else activity.object_id
        if relayed is None:
            return rejected("Announce without an object")
        obj = await self.trusted_relayed_object(activity.actor, relayed)
        if obj is None:
            return rejected(f"relayed object {activity.object_id} is not trustworthy")
        carried = carried_object(obj)
        if carried is None:
            return rejected(f"relayed {activity.object_id} carries no object by its actor")
        # a carried object without its own @context is read in its carrier's
        obj = with_context(carried, obj.get("@context", activity.raw.get("@context")))
        author = reference(obj.get("attributedTo"))
        if author is None:
            return rejected(f"relayed object {activity.object_id} names no author")
        return ObjectVersion.of(create_object, author, obj)

    async def on_like(self, activity: Incoming) -> Verdict:
        if activity.object_id is None:
            return rejected("Like without an object")
        async with self._sessions() as session, session.begin():
            exists = await session.execute(select(Activity.id).where(Activity.uri == activity.id))
            if exists.first() is None:
                session.add(Activity(
                    uri=activity.id, type="Like", actor=activity.actor,
                    object_uri=activity.object_id,
                    document={"id": activity.id, "type": "Like", "actor": activity.actor,
                              "object": activity.object_id},
                    is_local=False, created_at=self._clock()))
        return done(f"like of {activity.object_id} recorded")
