"""HealthBoard: hysteresis, sources per trunk, link loss, breaker integration."""

import pytest

from agi_server.health import DOWN, UNKNOWN, UP, HealthBoard

S = "pbx1"


def board(**kw):
    changes = []
    kw.setdefault("fail_after", 15.0)
    kw.setdefault("recover_after", 30.0)
    b = HealthBoard(on_change=[lambda *a: changes.append(a)], **kw)
    return b, changes


def test_unknown_until_first_signal_then_adopted_at_once():
    b, changes = board()
    assert b.state(S, "trunk-a", 0.0) == UNKNOWN
    b.observe(S, "trunk-a", "registration", True, "Registered", 1.0)
    assert b.state(S, "trunk-a", 1.0) == UP
    assert changes == [(S, "trunk-a", UNKNOWN, UP, "registration: Registered", 1.0)]


def test_down_needs_fail_after_and_is_stamped_when_it_matured():
    b, changes = board()
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    b.observe(S, "t", "registration", False, "Registry Rejected", 100.0)
    assert b.state(S, "t", 114.9) == UP
    assert b.state(S, "t", 200.0) == DOWN
    assert changes[-1][2:] == (UP, DOWN, "registration: Registry Rejected", 115.0)


def test_up_needs_recover_after():
    b, _ = board()
    b.observe(S, "t", "qualify", False, "Unreachable", 0.0)      # from unknown: at once
    assert b.state(S, "t", 0.0) == DOWN
    b.observe(S, "t", "qualify", True, "Reachable", 10.0)
    assert b.state(S, "t", 39.9) == DOWN
    b.tick(40.0)
    assert b.peek(S, "t", 40.0) == UP


def test_admin_reregister_unregistered_then_registered_does_not_fail():
    b, changes = board()
    b.observe(S, "t", "registration", True, "Registry Registered", 10.0)
    b.observe(S, "t", "registration", False, "Registry Unregistered", 12.0, soft=True)
    b.tick(18.0)
    b.observe(S, "t", "registration", True, "Registry Registered", 19.0)   # ami-01: +7 s
    b.tick(100.0)
    assert b.state(S, "t", 100.0) == UP
    assert [c[3] for c in changes] == [UP]


def test_soft_down_from_unknown_still_waits():
    b, _ = board()
    b.observe(S, "t", "registration", False, "seed Unregistered", 0.0, soft=True)
    assert b.state(S, "t", 14.0) == UNKNOWN
    assert b.state(S, "t", 15.0) == DOWN


def test_flapping_qualify_does_not_flap_the_state():
    b, changes = board()
    b.observe(S, "t", "qualify", True, "Reachable", 0.0)
    now = 0.0
    for _ in range(10):               # Unreachable 10 s, Reachable 10 s, ...
        now += 10
        b.observe(S, "t", "qualify", False, "Unreachable", now)
        b.tick(now + 5)
        now += 10
        b.observe(S, "t", "qualify", True, "Reachable", now)
        b.tick(now + 5)
    assert [c[3] for c in changes] == [UP]


def test_flapping_while_down_stays_down():
    b, changes = board()
    b.observe(S, "t", "qualify", False, "Unreachable", 0.0)
    for now in range(10, 200, 20):
        b.observe(S, "t", "qualify", True, "Reachable", float(now))
        b.tick(now + 9.0)
        b.observe(S, "t", "qualify", False, "Unreachable", now + 10.0)
    assert [c[3] for c in changes] == [DOWN]


def test_repeated_registered_does_not_restart_the_hold():
    b, _ = board()
    b.observe(S, "t", "registration", False, "Rejected", 0.0)
    b.observe(S, "t", "registration", True, "Registered", 10.0)
    b.observe(S, "t", "registration", True, "Registered", 35.0)    # refresh
    assert b.state(S, "t", 40.0) == UP


def test_link_lost_marks_that_servers_trunks_unknown_only():
    b, changes = board()
    b.observe(S, "a", "registration", True, "Registered", 0.0)
    b.observe("pbx2", "a", "registration", True, "Registered", 0.0)
    b.link_lost(S, 5.0)
    assert b.state(S, "a", 5.0) == UNKNOWN
    assert b.state("pbx2", "a", 5.0) == UP
    assert changes[-1] == (S, "a", UP, UNKNOWN, "registration: AMI link lost", 5.0)


@pytest.mark.parametrize("mode,reg,qual,expected", [
    ("registration", True, False, UP),
    ("qualify", True, False, DOWN),
    ("both", True, False, DOWN),
    ("both", True, True, UP),
    ("both", True, None, UNKNOWN),
    ("auto", True, None, UP),         # only registration was ever reported
    ("auto", False, None, DOWN),
    ("none", False, False, UP),
])
def test_health_source_per_trunk(mode, reg, qual, expected):
    b, _ = board(modes={"t": mode})
    if reg is not None:
        b.observe(S, "t", "registration", reg, "r", 0.0)
    if qual is not None:
        b.observe(S, "t", "qualify", qual, "q", 0.0)
    assert b.state(S, "t", 0.0) == expected


def test_auto_with_both_signals_is_down_if_either_is_down():
    b, _ = board()
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    b.observe(S, "t", "qualify", True, "Reachable", 0.0)
    b.observe(S, "t", "qualify", False, "Unreachable", 1.0)
    assert b.state(S, "t", 16.0) == DOWN


def test_bad_mode_and_signal_are_rejected():
    with pytest.raises(ValueError):
        HealthBoard(modes={"t": "sometimes"})
    with pytest.raises(ValueError):
        HealthBoard().observe(S, "t", "options", True, "", 0.0)


def test_a_raising_on_change_callback_is_logged_not_fatal():
    seen = []

    def broken(*_):
        raise RuntimeError("database down")

    b = HealthBoard(on_change=[broken, lambda *a: seen.append(a)])
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    assert b.state(S, "t", 0.0) == UP and len(seen) == 1


# ------------------------------------------------------------------- breaker
def test_three_carrier_failures_open_the_breaker_then_probe_closes_it():
    b, changes = board(breaker_threshold=3, breaker_cool_off=30.0)
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    for now in (1.0, 2.0, 3.0):
        b.report_outcome(S, "t", "NOANSWER", 0, now)      # provider dead, nothing back
    assert b.state(S, "t", 3.0) == DOWN
    assert "breaker" in changes[-1][4] and changes[-1][5] == 3.0
    assert b.state(S, "t", 32.9) == DOWN                   # cooling off
    assert b.state(S, "t", 33.0) == UP                     # the one probe
    assert b.state(S, "t", 33.1) == DOWN                   # nobody else
    b.report_outcome(S, "t", "ANSWER", 16, 40.0)
    assert b.state(S, "t", 40.0) == UP
    assert changes[-1][2:4] == (DOWN, UP)


def test_failed_probe_reopens_for_another_cool_off():
    b, _ = board(breaker_threshold=2, breaker_cool_off=10.0)
    b.observe(S, "t", "qualify", True, "Reachable", 0.0)
    b.report_outcome(S, "t", "CHANUNAVAIL", 3, 1.0)
    b.report_outcome(S, "t", "CONGESTION", 34, 2.0)
    assert b.state(S, "t", 12.0) == UP                     # probe
    b.report_outcome(S, "t", "CONGESTION", 34, 13.0)
    assert b.state(S, "t", 22.9) == DOWN
    assert b.state(S, "t", 23.0) == UP                     # next probe


def test_busy_and_ringing_noanswer_do_not_count():
    b, _ = board(breaker_threshold=2)
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    for status, cause in [("CONGESTION", 34), ("BUSY", 17), ("NOANSWER", 19),
                          ("NOANSWER", 18), ("ANSWER", 16), ("CONGESTION", 34)]:
        b.report_outcome(S, "t", status, cause, 1.0)
    assert b.state(S, "t", 1.0) == UP      # the ANSWER reset the first failure


def test_noanswer_cause_zero_counts():
    b, _ = board(breaker_threshold=2)
    b.observe(S, "t", "registration", True, "Registered", 0.0)
    assert b.report_outcome(S, "t", "NOANSWER", 0, 1.0) == "carrier"
    b.report_outcome(S, "t", "NOANSWER", 0, 2.0)
    assert b.state(S, "t", 2.0) == DOWN


def test_breaker_survives_link_loss_and_none_mode_ignores_it():
    b, _ = board(modes={"n": "none"}, breaker_threshold=1)
    b.report_outcome(S, "t", "CHANUNAVAIL", 3, 0.0)
    b.link_lost(S, 1.0)
    assert b.state(S, "t", 1.0) == DOWN
    b.report_outcome(S, "n", "CHANUNAVAIL", 3, 0.0)
    assert b.state(S, "n", 1.0) == UP
