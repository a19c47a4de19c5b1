"""Outcome classification and the Breaker state machine on its own."""

import pytest

from agi_server.health.breaker import CALLEE, CARRIER, NEUTRAL, SUCCESS, Breaker, classify


@pytest.mark.parametrize("status,cause,kind", [
    ("ANSWER", 16, SUCCESS),
    ("BUSY", 17, CALLEE),
    ("NOANSWER", 19, CALLEE),
    ("NOANSWER", 18, CALLEE),
    ("NOANSWER", 0, CARRIER),            # ami-10: provider dead, INVITE unanswered
    ("CONGESTION", 34, CARRIER),         # 503
    ("CHANUNAVAIL", 3, CARRIER),         # qualify said Unreachable, no INVITE sent
    ("CHANUNAVAIL", None, CARRIER),
    ("FAILED", 38, CARRIER),
    ("FAILED", 102, CARRIER),
    ("FAILED", 1, CALLEE),
    ("FAILED", 21, NEUTRAL),             # reputation (603/608): the DID's problem, not the trunk's
    ("CANCEL", 16, NEUTRAL),
    ("NOANSWER", None, NEUTRAL),
    ("", None, NEUTRAL),
    ("answer", 16, SUCCESS),
])
def test_classify(status, cause, kind):
    assert classify(status, cause) == kind


def test_outcomes_while_open_without_probe_are_ignored():
    b = Breaker(threshold=1, cool_off=10)
    assert b.record(CARRIER, "CONGESTION/34", 0.0) == "opened"
    assert b.record(SUCCESS, "ANSWER/16", 1.0) is None      # a call placed before opening
    assert b.is_open()


def test_neutral_probe_outcome_frees_the_probe():
    b = Breaker(threshold=1, cool_off=10)
    b.record(CARRIER, "x", 0.0)
    assert b.claim_probe(10.0)
    assert not b.claim_probe(10.5)
    assert b.record(NEUTRAL, "CANCEL/16", 11.0) is None
    assert b.claim_probe(11.0)


def test_lost_probe_is_replaced_after_probe_timeout():
    b = Breaker(threshold=1, cool_off=10, probe_timeout=60)
    b.record(CARRIER, "x", 0.0)
    assert b.claim_probe(10.0)
    assert not b.claim_probe(69.0)
    assert b.claim_probe(70.0)


def test_callee_outcome_of_probe_closes():
    b = Breaker(threshold=1, cool_off=10)
    b.record(CARRIER, "x", 0.0)
    b.claim_probe(10.0)
    assert b.record(CALLEE, "BUSY/17", 12.0) == "closed"
    assert not b.is_open()
