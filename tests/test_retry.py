"""Retry on the next DID: after a carrier failure on the fallback trunk, after the callee's not."""

from dataclasses import replace

import pytest

from agi_server.routing import policy
from agi_server.routing.router import ReportRequest, Router
from tests.agi_harness import ListSink, example_config
from tests.test_rotation import SPRING_FALLBACK, SPRING_MAIN, request


def report(router: Router, uniqueid: str, dialstatus: str, cause: int | None, attempt=None):
    return router.report(ReportRequest("pbx1", uniqueid, dialstatus, cause, attempt=attempt))


@pytest.mark.parametrize("dialstatus, cause", [("CONGESTION", 34), ("CHANUNAVAIL", 3), ("NOANSWER", 0),
                                               ("CHANUNAVAIL", 38), ("CONGESTION", 102)])
def test_carrier_failure_moves_the_retry_to_the_fallback_trunk(dialstatus, cause):
    router = Router(example_config(), ListSink())
    first, _ = router.select(request("c1"))
    outcome = report(router, "c1", dialstatus, cause)
    second, attempt = router.select(request("c1"))
    assert (first.did, first.trunk) == (SPRING_MAIN[0], "trunk-a")
    assert outcome.fault == "carrier" and outcome.attempt == 1 and outcome.trunk == "trunk-a"
    assert (second.did, second.trunk, second.role, attempt) == (SPRING_FALLBACK[0], "trunk-b", "fallback", 2)
    assert "failed in the carrier" in second.reason


@pytest.mark.parametrize("dialstatus, cause", [("BUSY", 17), ("NOANSWER", 19), ("CONGESTION", 17), ("CHANUNAVAIL", 1)])
def test_callee_failure_retries_on_the_next_did_of_the_same_trunk(dialstatus, cause):
    router = Router(example_config(), ListSink())
    router.select(request("c1"))
    outcome = report(router, "c1", dialstatus, cause)
    second, _ = router.select(request("c1"))
    assert outcome.fault == "callee"
    assert (second.did, second.trunk, second.role) == (SPRING_MAIN[1], "trunk-a", "dynamic")


def test_fallback_retry_uses_the_fallback_counter_and_then_the_next_fallback_did():
    router = Router(example_config(), ListSink())
    router.select(request("c1"))
    report(router, "c1", "CONGESTION", 34)
    second = router.select(request("c1"))[0].did
    report(router, "c1", "CHANUNAVAIL", 3)
    third = router.select(request("c1"))[0].did
    report(router, "c1", "CHANUNAVAIL", 3)
    fourth = router.select(request("c1"))[0]
    assert (second, third) == (SPRING_FALLBACK[0], SPRING_FALLBACK[1])
    assert fourth.status == policy.NO_DID
    # another call's first fallback use continues the fallback rotation, not slot 1 again
    router.select(request("c2"))
    report(router, "c2", "CONGESTION", 34)
    assert router.select(request("c2"))[0].did == SPRING_FALLBACK[1]


def test_carrier_failure_without_fallback_takes_the_next_main_did():
    config = example_config()
    spring = replace(config.campaigns["spring"], fallback=())
    router = Router(replace(config, campaigns={**config.campaigns, "spring": spring}), ListSink())
    router.select(request("c1"))
    report(router, "c1", "CONGESTION", 34)
    retry, _ = router.select(request("c1"))
    assert (retry.did, retry.trunk) == (SPRING_MAIN[1], "trunk-a")
    assert "campaign has no fallback DIDs" in retry.reason


def test_summer_exhausts_its_primary_and_single_fallback():
    router = Router(example_config(), ListSink())
    router.select(request("s1", "summer"))
    report(router, "s1", "CONGESTION", 34)
    assert router.select(request("s1", "summer"))[0].role == "fallback"
    report(router, "s1", "CONGESTION", 34)
    assert router.select(request("s1", "summer"))[0].status == policy.NO_DID


def test_orphan_report_is_kept_with_no_attempt():
    sink = ListSink()
    outcome = report(Router(example_config(), sink), "never-selected", "ANSWER", 16)
    assert outcome.attempt is None and sink.records == [outcome]


def test_report_names_its_attempt_explicitly():
    router = Router(example_config(), ListSink())
    router.select(request("c1"))
    router.select(request("c1"))
    outcome = report(router, "c1", "BUSY", 17, attempt=1)
    assert outcome.attempt == 1 and outcome.trunk == "trunk-a"


def test_outcomes_feed_the_trunk_breaker_through_the_health_source():
    class Recorder:
        def __init__(self):
            self.outcomes = []

        def for_decision(self, server):
            return lambda trunk: "up"

        def report_outcome(self, server, trunk, dialstatus, cause):
            self.outcomes.append((server, trunk, dialstatus, cause))

    health = Recorder()
    router = Router(example_config(), ListSink(), health)
    router.select(request("c1"))
    report(router, "c1", "CONGESTION", 34)
    assert health.outcomes == [("pbx1", "trunk-a", "CONGESTION", 34)]


def test_a_server_that_never_saw_the_call_serves_its_retry_from_the_dialplan_hints():
    """Another worker (or server of a farm) gets attempt 2: tried= and prev= carry the state."""
    first_server = Router(example_config(), ListSink())
    first, _ = first_server.select(request("f1"))
    other = Router(example_config(), ListSink())
    hinted = replace(request("f1", attempt=2), tried_callerids=(first.callerid,), previous=("CONGESTION", 34))
    retry, attempt = other.select(hinted)
    assert (retry.did, retry.role, attempt) == (SPRING_FALLBACK[0], "fallback", 2)
    callee = replace(request("f2", attempt=2), tried_callerids=(first.callerid,), previous=("BUSY", 17))
    assert other.select(callee)[0].did == SPRING_MAIN[1]


async def test_select_parses_tried_and_previous_outcome_from_the_query():
    from tests.agi_harness import running_server
    from tests.asterisk import env_block, play, with_env

    script = "select?campaign=spring&attempt=2&tried=15557654321-15557654322&prev=CHANUNAVAIL&prevcause=3"
    bad = "select?campaign=spring&prev=MAYBE"
    async with running_server() as (port, router, sink):
        result = await play(port, with_env(env_block("agi-01-normal-select"), network_script=script))
        refused = await play(port, with_env(env_block("agi-01-normal-select"), uniqueid="x.1", network_script=bad))
    assert result.commands[0] == 'SET VARIABLE CALLERID(num) "15558880001"'
    assert result.commands[4] == 'SET VARIABLE DIDR_ROLE "fallback"'
    assert refused.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"']


def test_a_repeated_select_for_the_same_attempt_gets_the_same_decision_and_no_second_row():
    sink = ListSink()
    router = Router(example_config(), sink)
    first, _ = router.select(request("r1", attempt=1))
    again, attempt = router.select(request("r1", attempt=1))
    other, _ = router.select(request("r2"))
    assert (again.did, again.trunk, again.role, again.dial, attempt) == (first.did, first.trunk, first.role, first.dial, 1)
    assert "repeat of attempt 1" in again.reason
    assert other.did == SPRING_MAIN[1]            # the repeat used no rotation slot
    assert [r.uniqueid for r in sink.records] == ["r1", "r2"]
