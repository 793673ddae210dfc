"""The delivery state machine: declared states, events and the transitions between them.

A delivery row only ever moves along a transition declared here; the worker asks
``next_state`` before it writes a new state, so an undeclared move (say, a delivered row
going back to pending) is a programming error that raises instead of corrupting the queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    IN_FLIGHT = "in_flight"  # claimed by a worker under a lease
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # permanent failure (404/410, refused address, …)
    GAVE_UP = "gave_up"  # retried until the retry policy gave up


class DeliveryEvent(enum.StrEnum):
    CLAIM = "claim"  # a worker takes a due row
    RECLAIM = "reclaim"  # a worker takes a row whose lease expired (its worker died)
    SUCCEEDED = "succeeded"
    RETRY_LATER = "retry_later"  # temporary failure, try again at next_attempt_at
    DEFER = "defer"  # not attempted (circuit open, shutting down): back to the queue
    FAILED_PERMANENTLY = "failed_permanently"
    GAVE_UP = "gave_up"
    REQUEUE = "requeue"  # an operator asks for another round


TERMINAL_STATES = frozenset(
    {DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.GAVE_UP}
)

TRANSITIONS: dict[tuple[DeliveryState, DeliveryEvent], DeliveryState] = {
    (DeliveryState.PENDING, DeliveryEvent.CLAIM): DeliveryState.IN_FLIGHT,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.RECLAIM): DeliveryState.IN_FLIGHT,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.SUCCEEDED): DeliveryState.DELIVERED,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.RETRY_LATER): DeliveryState.PENDING,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.DEFER): DeliveryState.PENDING,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.FAILED_PERMANENTLY): DeliveryState.FAILED,
    (DeliveryState.IN_FLIGHT, DeliveryEvent.GAVE_UP): DeliveryState.GAVE_UP,
    (DeliveryState.FAILED, DeliveryEvent.REQUEUE): DeliveryState.PENDING,
    (DeliveryState.GAVE_UP, DeliveryEvent.REQUEUE): DeliveryState.PENDING,
}


@dataclass(frozen=True)
class IllegalTransition(ValueError):
    """An event that is not declared for the current state."""

    state: DeliveryState
    event: DeliveryEvent

    def __str__(self) -> str:
        return f"delivery cannot go from {self.state.value!r} on {self.event.value!r}"


def next_state(state: DeliveryState | str, event: DeliveryEvent | str) -> DeliveryState:
    """The state after ``event`` in ``state``; raises IllegalTransition if undeclared."""
    current = DeliveryState(state)
    happened = DeliveryEvent(event)
    try:
        return TRANSITIONS[(current, happened)]
    except KeyError:
        raise IllegalTransition(current, happened) from None


def allowed_events(state: DeliveryState | str) -> frozenset[DeliveryEvent]:
    current = DeliveryState(state)
    return frozenset(event for (origin, event) in TRANSITIONS if origin is current)
