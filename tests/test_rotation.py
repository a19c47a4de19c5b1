"""Selection policy and rotation fairness (design invariant 6)."""

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from agi_server.routing import policy
from agi_server.routing.policy import pick_slot
from agi_server.routing.router import Router, SelectRequest
from tests.agi_harness import ListSink, example_config, running_server
from tests.asterisk import env_block, play, with_env

SPRING_MAIN = ["+15557654321", "+15557654322", "+15557654323"]
SPRING_FALLBACK = ["+15558880001", "+15558880002"]


def request(uniqueid: str, campaign: str = "spring", attempt: int | None = None) -> SelectRequest:
    return SelectRequest("pbx1", "127.0.0.1", uniqueid, "Local/x", campaign, "15551230001", attempt)


class Health:
    def __init__(self, **states: str) -> None:
        self.states = {k.replace("_", "-"): v for k, v in states.items()}

    def for_decision(self, server: str):
        return lambda trunk: self.states.get(trunk, "up")


@pytest.mark.parametrize("calls", [1, 2, 3, 7, 100, 1001])
def test_first_attempts_round_robin_strictly(calls):
    router = Router(example_config(), ListSink())
    dids = [router.select(request(f"u{i}"))[0].did for i in range(calls)]
    assert dids == [SPRING_MAIN[i % 3] for i in range(calls)]
    counts = Counter(dids)
    assert max(counts.values()) - min(counts.get(d, 0) for d in SPRING_MAIN) <= 1


def test_retries_do_not_disturb_first_attempt_fairness():
    router = Router(example_config(), ListSink())
    firsts = []
    for i in range(300):
        firsts.append(router.select(request(f"u{i}"))[0].did)
        if i % 4 == 0:   # some calls retry once or twice
            router.select(request(f"u{i}"))
            router.select(request(f"u{i}"))
    counts = Counter(firsts)
    assert sorted(counts) == SPRING_MAIN
    assert max(counts.values()) - min(counts.values()) <= 1


def test_retry_takes_next_untried_did_and_wraps():
    router = Router(example_config(), ListSink())
    router.select(request("a"))                      # slot 1 goes to call a
    first_b = router.select(request("b"))[0].did     # call b starts on slot 2
    retries = [router.select(request("b"))[0].did for _ in range(2)]
    assert first_b == SPRING_MAIN[1]
    assert retries == [SPRING_MAIN[2], SPRING_MAIN[0]]
    assert router.select(request("b"))[0].status == policy.NO_DID


def test_dynamic_off_globally_or_per_campaign_means_primary_only():
    config = example_config(dynamic_did_enabled=False)
    router = Router(config, ListSink())
    assert {router.select(request(f"u{i}"))[0].did for i in range(5)} == {"+15557654321"}
    winter = Router(example_config(), ListSink())   # winter opts out in the example
    assert {winter.select(request(f"w{i}", "winter"))[0].did for i in range(5)} == {"+15557654322"}


def test_campaign_cannot_opt_in_when_the_admin_toggle_is_off():
    config = example_config(dynamic_did_enabled=False)
    spring = replace(config.campaigns["spring"], dynamic_did_enabled=True)
    config = replace(config, campaigns={**config.campaigns, "spring": spring})
    router = Router(config, ListSink())
    assert {router.select(request(f"u{i}"))[0].did for i in range(4)} == {"+15557654321"}


def test_admin_down_primary_trunk_rotates_fallback_dids_on_their_own_counter():
    config = example_config()
    down = replace(config.trunks["trunk-a"], admin_state="down")
    router = Router(replace(config, trunks={**config.trunks, "trunk-a": down}), ListSink())
    decisions = [router.select(request(f"u{i}"))[0] for i in range(4)]
    assert [d.did for d in decisions] == SPRING_FALLBACK * 2
    assert {d.role for d in decisions} == {"fallback"}
    assert {d.trunk for d in decisions} == {"trunk-b"}
    assert decisions[0].dial == "PJSIP/15551230001@trunk-b"
    assert "trunk-a is down by admin state" in decisions[0].reason


def test_both_trunks_down_is_no_trunk_with_the_reason():
    router = Router(example_config(), ListSink(), Health(trunk_a="down", trunk_b="down"))
    decision, _ = router.select(request("x"))
    assert decision.status == policy.NO_TRUNK
    assert "trunk-a is down" in decision.reason and "trunk-b is down" in decision.reason


def test_unknown_health_follows_the_setting():
    up = Router(example_config(), ListSink(), Health(trunk_a="unknown"))
    assert up.select(request("x"))[0].role == "primary"
    down = Router(example_config(unknown_health="down"), ListSink(), Health(trunk_a="unknown"))
    assert down.select(request("x"))[0].role == "fallback"


def test_a_failed_decision_records_a_row_without_a_did():
    sink = ListSink()
    Router(example_config(), sink).select(request("x", "nosuch"))
    [row] = sink.records
    assert (row.status, row.did, row.trunk, row.attempt) == ("UNKNOWN_CAMPAIGN", None, None, 1)


def test_reload_with_unchanged_pool_keeps_the_rotation_position():
    config = example_config()
    router = Router(config, ListSink())
    router.select(request("a"))
    router.swap_config(replace(config, source="reloaded"))
    assert router.select(request("b"))[0].did == SPRING_MAIN[1]


def test_pick_slot_contract():
    assert pick_slot(["a", "b", "c"], 4, []) == (1, True)
    assert pick_slot(["a", "b", "c"], 4, ["b"]) == (2, False)
    assert pick_slot(["a", "b", "c"], 0, ["x", "c"]) == (0, False)
    assert pick_slot(["a"], 0, ["a"]) == (None, False)
    assert pick_slot([], 0, []) == (None, False)


async def test_concurrent_calls_over_real_sockets_never_share_a_slot():
    calls = 90
    env = env_block("agi-01-normal-select")
    async with running_server() as (port, router, sink):
        results = await asyncio.gather(*(play(port, with_env(env, uniqueid=f"17963.{i}")) for i in range(calls)))
    callerids = [r.commands[0] for r in results]
    counts = Counter(callerids)
    assert len(counts) == 3
    assert set(counts.values()) == {calls // 3}
    assert Counter(r.did for r in sink.records) == {d: calls // 3 for d in SPRING_MAIN}
