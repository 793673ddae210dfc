"""Double-knocking policy: first scheme, second knock on refusal, memory per host."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from federation.httpsig import SignatureScheme
from federation.knock import KnockAction, KnockMemory, KnockPolicy, wants_rfc9421

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RFC, CAVAGE = SignatureScheme.RFC9421, SignatureScheme.CAVAGE
POLICY = KnockPolicy()
ACCEPT_ED25519 = 'sig1=("@method" "@target-uri" "@authority" "content-digest");alg="ed25519"'
ACCEPT_ECDSA_ONLY = 'sig1=("@method" "@target-uri");alg="ecdsa-p256-sha256"'


def test_unknown_host_gets_rfc9421_first():
    assert POLICY.first_scheme(None, now=NOW) is RFC
    assert POLICY.first_scheme(KnockMemory("b.example"), now=NOW) is RFC


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refusal_leads_to_exactly_one_second_knock(status):
    memory = KnockMemory("b.example")
    first = POLICY.after_response(memory, RFC, status, now=NOW)
    assert (first.action, first.scheme) == (KnockAction.RETRY_OTHER, CAVAGE)
    second = POLICY.after_response(first.memory, CAVAGE, status, now=NOW, retried=True)
    assert second.action is KnockAction.STOP
    assert second.memory.scheme is None


@pytest.mark.parametrize("status", [404, 410, 429, 500, 503])
def test_other_failures_are_not_a_signature_problem(status):
    step = POLICY.after_response(KnockMemory("b.example"), RFC, status, now=NOW)
    assert step.action is KnockAction.STOP
    assert step.memory == KnockMemory("b.example")


def test_what_worked_is_remembered_and_used_first():
    refused = POLICY.after_response(KnockMemory("b.example"), RFC, 401, now=NOW)
    accepted = POLICY.after_response(refused.memory, refused.scheme, 202, now=NOW, retried=True)
    assert accepted.action is KnockAction.ACCEPTED
    assert (accepted.memory.scheme, accepted.memory.learned_at) == (CAVAGE, NOW)
    assert POLICY.first_scheme(accepted.memory, now=NOW + timedelta(days=400)) is CAVAGE


def test_remembered_cavage_that_gets_refused_knocks_with_rfc9421():
    memory = KnockMemory("b.example", CAVAGE, NOW)
    step = POLICY.after_response(memory, CAVAGE, 401, now=NOW)
    assert (step.action, step.scheme) == (KnockAction.RETRY_OTHER, RFC)
    accepted = POLICY.after_response(step.memory, RFC, 200, now=NOW, retried=True)
    assert POLICY.first_scheme(accepted.memory, now=NOW) is RFC


def test_relearning_is_opt_in():
    memory = KnockMemory("b.example", CAVAGE, NOW)
    relearning = KnockPolicy(relearn_after=timedelta(days=30))
    assert relearning.first_scheme(memory, now=NOW + timedelta(days=29)) is CAVAGE
    assert relearning.first_scheme(memory, now=NOW + timedelta(days=31)) is RFC


def test_accept_signature_overrides_remembered_cavage():
    memory = KnockMemory("b.example", CAVAGE, NOW)
    step = POLICY.after_response(memory, CAVAGE, 500, now=NOW, accept_signature=ACCEPT_ED25519)
    assert step.memory.wants_rfc9421 is True
    assert POLICY.first_scheme(step.memory, now=NOW) is RFC


def test_accept_signature_for_algorithms_we_lack_means_cavage():
    step = POLICY.after_response(KnockMemory("b.example"), RFC, 401, now=NOW,
                                 accept_signature=ACCEPT_ECDSA_ONLY)
    assert step.memory.wants_rfc9421 is False
    assert POLICY.first_scheme(step.memory, now=NOW) is CAVAGE


def test_a_success_forgets_older_accept_signature():
    memory = KnockMemory("b.example", wants_rfc9421=True)
    accepted = POLICY.after_response(memory, CAVAGE, 202, now=NOW, retried=True)
    assert accepted.memory.wants_rfc9421 is None
    assert POLICY.first_scheme(accepted.memory, now=NOW) is CAVAGE
    advertised = POLICY.after_response(memory, CAVAGE, 202, now=NOW,
                                       accept_signature=ACCEPT_ED25519)
    assert POLICY.first_scheme(advertised.memory, now=NOW) is RFC


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("not a dictionary(", None),
        ('sig1=("@method")', True),
        (ACCEPT_ED25519, True),
        (ACCEPT_ECDSA_ONLY, False),
        (f"{ACCEPT_ECDSA_ONLY}, sig2=();alg=\"rsa-v1_5-sha256\"", True),
    ],
)
def test_reading_accept_signature(value, expected):
    assert wants_rfc9421(value) is expected


def test_memory_survives_a_json_round_trip():
    memory = KnockMemory("b.example", CAVAGE, NOW, wants_rfc9421=False)
    assert KnockMemory.from_dict(json.loads(json.dumps(memory.to_dict()))) == memory
    empty = KnockMemory("c.example")
    assert KnockMemory.from_dict(empty.to_dict()) == empty


@pytest.mark.parametrize(
    "data, field",
    [
        ({"scheme": "rfc9421"}, "host"),
        ({"host": "b.example", "scheme": "rfc1234"}, "scheme"),
        ({"host": "b.example", "learned_at": "last tuesday"}, "learned_at"),
        ({"host": "b.example", "learned_at": 5}, "learned_at"),
        ({"host": "b.example", "wants_rfc9421": "yes"}, "wants_rfc9421"),
    ],
)
def test_bad_memory_names_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        KnockMemory.from_dict(data)


def deliver(memory: KnockMemory, answer) -> tuple[KnockMemory, list[SignatureScheme]]:
    """The loop from the knock module's docstring, against a fake host ``answer``."""
    tried = []
    scheme = POLICY.first_scheme(memory, now=NOW)
    for retried in (False, True):
        tried.append(scheme)
        status, accept_signature = answer(scheme)
        step = POLICY.after_response(memory, scheme, status, now=NOW,
                                     accept_signature=accept_signature, retried=retried)
        memory = step.memory
        if step.action is not KnockAction.RETRY_OTHER:
            break
        scheme = step.scheme
    return memory, tried


def test_simulated_deliveries_to_a_cavage_only_host():
    def cavage_only(scheme):
        return (202, None) if scheme is CAVAGE else (401, None)

    memory, tried = deliver(KnockMemory("old.example"), cavage_only)
    assert tried == [RFC, CAVAGE]
    memory, tried = deliver(memory, cavage_only)
    assert tried == [CAVAGE]  # remembered: one request, not two


def test_simulated_deliveries_to_a_host_that_upgrades():
    memory = KnockMemory("upgraded.example", CAVAGE, NOW)

    def now_wants_rfc9421(scheme):
        return 202, ACCEPT_ED25519  # accepts both, and advertises RFC 9421

    memory, tried = deliver(memory, now_wants_rfc9421)
    assert tried == [CAVAGE]
    memory, tried = deliver(memory, now_wants_rfc9421)
    assert tried == [RFC]
    assert memory.scheme is RFC
