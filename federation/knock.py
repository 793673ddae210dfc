"""Double-knocking: which HTTP signature scheme to use for a host, as a pure policy.

Try RFC 9421 first; if the host answers 400, 401 or 403, knock once more with
draft-cavage-12 (or the other way round), and remember per host what worked. An
``Accept-Signature`` header (RFC 9421 section 5.1) in any response from the host is
the host telling us it wants RFC 9421; it wins over the scheme that last worked (a
success forgets older Accept-Signature headers), unless it asks only for algorithms we
cannot produce, which means draft-cavage. Some servers answer 2xx and silently drop
what they could not verify, so a remembered scheme is kept rather than re-probed,
unless ``relearn_after`` is set.

The node persists one ``KnockMemory`` per host (``to_dict``/``from_dict``). A delivery
uses it like this::

    scheme = policy.first_scheme(memory, now=now)
    for retried in (False, True):
        response = await post(sign_request(parts, key, scheme, now=now))
        step = policy.after_response(memory, scheme, response.status, now=now,
                                     accept_signature=response.headers.get("Accept-Signature"),
                                     retried=retried)
        memory = step.memory  # persist
        if step.action is not KnockAction.RETRY_OTHER:
            break
        scheme = step.scheme
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import http_sfv

from federation.httpsig_common import SignatureAlgorithm, SignatureScheme

REFUSAL_STATUSES = frozenset({400, 401, 403})
_OUR_ALGORITHMS = frozenset(alg.value for alg in SignatureAlgorithm)


class KnockAction(enum.Enum):
    ACCEPTED = "accepted"  # 2xx: the scheme worked, remember it
    RETRY_OTHER = "retry_other"  # refused: sign again with ``scheme`` and resend once
    STOP = "stop"  # nothing more to do here; the retry policy decides about the delivery


@dataclass(frozen=True)
class KnockMemory:
    """What we know about one host's signature preferences."""

    host: str
    scheme: SignatureScheme | None = None  # the scheme that last got a 2xx
    learned_at: datetime | None = None
    wants_rfc9421: bool | None = None  # from Accept-Signature; None when never seen

    def to_dict(self) -> dict[str, str | bool | None]:
        return {
            "host": self.host,
            "scheme": self.scheme.value if self.scheme else None,
            "learned_at": self.learned_at.isoformat() if self.learned_at else None,
            "wants_rfc9421": self.wants_rfc9421,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> KnockMemory:
        host, scheme = data.get("host"), data.get("scheme")
        learned_at, wants = data.get("learned_at"), data.get("wants_rfc9421")
        if not isinstance(host, str) or not host:
            raise ValueError("knock memory: host must be a non-empty string")
        if scheme is not None and scheme not in {s.value for s in SignatureScheme}:
            raise ValueError(f"knock memory: unknown scheme {scheme!r}")
        if wants is not None and not isinstance(wants, bool):
            raise ValueError("knock memory: wants_rfc9421 must be true, false or null")
        if learned_at is not None and not isinstance(learned_at, str):
            raise ValueError("knock memory: learned_at must be an ISO 8601 string")
        try:
            learned = datetime.fromisoformat(learned_at) if learned_at else None
        except ValueError as exc:
            raise ValueError(f"knock memory: learned_at {learned_at!r} is not ISO 8601") from exc
        return cls(host, SignatureScheme(scheme) if scheme else None, learned, wants)


@dataclass(frozen=True)
class KnockStep:
    action: KnockAction
    memory: KnockMemory  # persist this (it may be unchanged)
    scheme: SignatureScheme | None = None  # the scheme to knock with next, for RETRY_OTHER


def other_scheme(scheme: SignatureScheme) -> SignatureScheme:
    if scheme is SignatureScheme.RFC9421:
        return SignatureScheme.CAVAGE
    return SignatureScheme.RFC9421


def wants_rfc9421(accept_signature: str | None, algorithms: Iterable[str] = _OUR_ALGORITHMS
                  ) -> bool | None:
    """Read ``Accept-Signature``: True if it asks for an RFC 9421 signature we can make,
    False if it only names algorithms we cannot, None when absent or unreadable."""
    if not accept_signature:
        return None
    parsed = http_sfv.Dictionary()
    try:
        parsed.parse(accept_signature.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    if not parsed:
        return None
    usable = set(algorithms)
    # A request without "alg" leaves the algorithm to us.
    return any(member.params.get("alg") in usable or "alg" not in member.params
               for member in parsed.values())


@dataclass(frozen=True)
class KnockPolicy:
    preferred: SignatureScheme = SignatureScheme.RFC9421
    relearn_after: timedelta | None = None  # re-probe the preferred scheme this long after

    def first_scheme(self, memory: KnockMemory | None, *, now: datetime) -> SignatureScheme:
        if memory is None:
            return self.preferred
        if memory.wants_rfc9421 is not None:
            return SignatureScheme.RFC9421 if memory.wants_rfc9421 else SignatureScheme.CAVAGE
        if memory.scheme is None:
            return self.preferred
        stale = (
            self.relearn_after is not None
            and memory.learned_at is not None
            and now - memory.learned_at > self.relearn_after
        )
        return self.preferred if stale else memory.scheme

    def after_response(
        self,
        memory: KnockMemory,
        tried: SignatureScheme,
        status: int,
        *,
        now: datetime,
        accept_signature: str | None = None,
        retried: bool = False,
    ) -> KnockStep:
        """What to do after the host answered ``status`` to a request signed with ``tried``.
        ``retried`` says whether this was already the second knock."""
        advertised = wants_rfc9421(accept_signature)
        if 200 <= status < 300:
            # A success resets what older Accept-Signature headers told us.
            learned = replace(memory, scheme=tried, learned_at=now, wants_rfc9421=advertised)
            return KnockStep(KnockAction.ACCEPTED, learned)
        if advertised is not None:
            memory = replace(memory, wants_rfc9421=advertised)
        if status in REFUSAL_STATUSES and not retried:
            return KnockStep(KnockAction.RETRY_OTHER, memory, other_scheme(tried))
        return KnockStep(KnockAction.STOP, memory)
