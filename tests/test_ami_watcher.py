"""AmiWatcher against the fake AMI (real TCP, recorded Asterisk bytes)."""

import asyncio

import pytest
from structlog.testing import capture_logs

from tests import fake_ami
from agi_server.ami import AmiTimings, AmiWatcher, Backoff
from agi_server.config.model import AmiServer, Trunk
from agi_server.health import DOWN, UNKNOWN, UP, HealthBoard
from tests.fake_ami import FakeAmi, until

TRUNKS = {
    "trunk-a": Trunk(name="trunk-a", dial="PJSIP/{number}@trunk-a"),
    "trunk-b": Trunk(name="trunk-b", dial="PJSIP/{number}@trunk-b"),
}
FAST = AmiTimings(connect_timeout=1.0, action_timeout=1.0, ping_interval=0.2,
                  ping_timeout=0.2, backoff_base=0.02, backoff_cap=0.1,
                  stable_after=60.0, tick_interval=0.01)


class Rig:
    def __init__(self, fake: FakeAmi, secret: str = "test-secret") -> None:
        self.fake = fake
        self.changes: list[tuple] = []
        self.board = HealthBoard(fail_after=0.1, recover_after=0.1,
                                 on_change=[lambda *a: self.changes.append(a)])
        server = AmiServer(name="pbx1", port=fake.port, username="dialer", secret=secret)
        self.watcher = AmiWatcher(server, TRUNKS, self.board, timings=FAST)

    def state(self, trunk: str) -> str:
        return self.board.peek("pbx1", trunk, self.watcher.clock())

    def history(self, trunk: str) -> list[str]:
        return [c[3] for c in self.changes if c[1] == trunk]

    async def seeded(self, n: int = 1) -> None:
        await until(lambda: self.watcher.seeds >= n, what=f"{n} seed(s)")


@pytest.fixture
async def rig(fake):
    r = Rig(fake)
    yield r
    await r.watcher.stop()


def split_at(messages, predicate):
    i = next(i for i, m in enumerate(messages) if predicate(m))
    return messages[: i + 1], messages[i + 1:]


async def test_seed_after_login_sets_both_trunks_up(rig):
    await rig.watcher.start()
    await rig.seeded()
    assert rig.state("trunk-a") == UP and rig.state("trunk-b") == UP
    assert rig.watcher.map.registration_by_uri == {
        ("sip:acct-a@127.0.0.1:5070", "sip:127.0.0.1:5070"): "trunk-a"}
    assert rig.watcher.map.qualified_endpoints == {"trunk-b"}
    sent = [a["action"] for a in rig.fake.actions]
    assert sent[:4] == ["Login", "PJSIPShowRegistrationsOutbound", "PJSIPShowAors",
                        "PJSIPShowEndpoints"]


async def test_seed_during_outage_reports_down_at_once(rig):
    rig.fake.registration_status = "Rejected"
    rig.fake.unavailable = {"trunk-b"}
    await rig.watcher.start()
    await rig.seeded()
    assert rig.state("trunk-a") == DOWN and rig.state("trunk-b") == DOWN


async def test_registration_down_and_up_ami08(rig):
    await rig.watcher.start()
    await rig.seeded()
    events = fake_ami.events("ami-08")
    down, rest = split_at(events, lambda m: m.header("Status") == "Rejected")
    rig.fake.registration_status = "Rejected"      # keep any (re-)seed consistent
    await rig.fake.replay(down)
    await until(lambda: rig.state("trunk-a") == DOWN, what="trunk-a down")
    assert rig.state("trunk-b") == UP
    rig.fake.registration_status = "Registered"
    await rig.fake.replay(rest)
    await until(lambda: rig.state("trunk-a") == UP, what="trunk-a up")
    assert rig.history("trunk-a") == [UP, DOWN, UP]
    causes = [c[4] for c in rig.changes if c[1] == "trunk-a"]
    assert causes[1] == "registration: Registry Rejected"


async def test_qualify_and_registration_down_and_up_ami10(rig):
    await rig.watcher.start()
    await rig.seeded()
    events = fake_ami.events("ami-10")
    outage, recovery = split_at(events, lambda m: m.header("Status") == "Rejected")
    rig.fake.registration_status, rig.fake.unavailable = "Rejected", {"trunk-b"}
    await rig.fake.replay(outage)
    await until(lambda: rig.state("trunk-b") == DOWN and rig.state("trunk-a") == DOWN,
                what="both trunks down")
    rig.fake.registration_status, rig.fake.unavailable = "Registered", set()
    await rig.fake.replay(recovery)
    await until(lambda: rig.state("trunk-b") == UP and rig.state("trunk-a") == UP,
                what="both trunks up")
    assert rig.history("trunk-b") == [UP, DOWN, UP]
    assert rig.history("trunk-a") == [UP, DOWN, UP]


async def test_unregistered_alone_does_not_fail_the_trunk(rig):
    await rig.watcher.start()
    await rig.seeded()
    ami01 = fake_ami.events("ami-01")          # Registered, Unregistered, Registered
    await rig.fake.replay(ami01, scale=0.005)  # 7 s gap -> 35 ms < fail_after 100 ms
    await asyncio.sleep(0.15)
    assert rig.history("trunk-a") == [UP]


async def test_login_failure_is_reported_and_retried_with_backoff(fake):
    rig = Rig(fake, secret="wrong-secret")
    with capture_logs() as logs:
        await rig.watcher.start()
        await until(lambda: fake.failed_logins >= 3, what="three refused logins")
        await asyncio.sleep(0.3)
        # cap 0.1 s, jitter >= cap/2: no more than ~0.3/0.05 further attempts
        assert fake.failed_logins <= 3 + 8
        assert rig.watcher.sessions == 0 and rig.state("trunk-a") == UNKNOWN
        fake.secret = "wrong-secret"            # the admin fixes the password
        await rig.seeded()
        assert rig.state("trunk-a") == UP
        await rig.watcher.stop()
    refused = [e for e in logs if e["event"] == "ami_login_refused"]
    assert refused and refused[0]["message"] == "Authentication failed"


async def test_socket_dropped_mid_message_then_reconnect_and_reseed(rig):
    await rig.watcher.start()
    await rig.seeded()
    rejected = next(m for m in fake_ami.events("ami-08") if m.header("Status") == "Rejected")
    await rig.fake.drop(partial=rejected.data[: len(rejected.data) // 2])
    await until(lambda: rig.fake.logins >= 2 and rig.watcher.seeds >= 2, what="re-seed")
    await until(lambda: rig.state("trunk-a") == UP, what="trunk-a up again")
    assert rig.history("trunk-a") == [UP, UNKNOWN, UP]      # the half event never applied


async def test_events_split_across_reads(rig):
    rig.fake.byte_by_byte = True
    await rig.watcher.start()
    await rig.seeded()
    rejected = next(m for m in fake_ami.events("ami-08") if m.header("Status") == "Rejected")
    rig.fake.registration_status = "Rejected"      # a seed racing the event agrees with it
    await rig.fake.replay([rejected])
    await until(lambda: rig.state("trunk-a") == DOWN, what="trunk-a down")
    assert rig.watcher._manager.protocol.reads > 1000     # it really came in pieces


async def test_asterisk_restart_reseeds(rig):
    await rig.watcher.start()
    await rig.seeded()
    rig.fake.registration_status = "Unregistered"   # a fresh boot, before the first REGISTER
    with capture_logs() as logs:
        await rig.fake.restart()
        await until(lambda: rig.fake.logins >= 2 and rig.watcher.seeds >= 2, what="re-seed")
        await asyncio.sleep(0.15)                   # > fail_after: a soft down still waits?
    assert any(e["event"] == "ami_fully_booted" and e["uptime"] == "0" for e in logs)
    registered = next(m for m in fake_ami.events("ami-01") if m.header("Status") == "Registered")
    await rig.fake.replay([registered])
    await until(lambda: rig.state("trunk-a") == UP, what="trunk-a up after boot")
    assert UNKNOWN in rig.history("trunk-a")


async def test_fully_booted_mid_session_triggers_a_reseed(rig):
    await rig.watcher.start()
    await rig.seeded()
    seeds = rig.watcher.seeds
    booted = next(m for m in fake_ami.load("ami-01") if m.header("Event") == "FullyBooted")
    await rig.fake.send(booted.data)
    await rig.seeded(seeds + 1)
    assert rig.fake.logins == 1          # re-seeded on the same session, no reconnect


async def test_raising_handler_does_not_stop_the_listener(rig):
    def boom(_manager, _event):
        raise RuntimeError("handler bug")

    rig.watcher.add_listener("Registry", boom)
    with capture_logs() as logs:
        await rig.watcher.start()
        await rig.seeded()
        rejected = [m for m in fake_ami.events("ami-08") if m.header("Status") == "Rejected"]
        rig.fake.registration_status = "Rejected"
        await rig.fake.replay(rejected)
        await until(lambda: rig.state("trunk-a") == DOWN, what="events still applied")
    assert any(e["event"] == "ami_handler_failed" for e in logs)
    assert rig.fake.logins == 1                      # the connection survived


async def test_unanswered_ping_reconnects(rig):
    rig.fake.stalled = {"Ping"}
    await rig.watcher.start()
    await rig.seeded()
    await until(lambda: rig.fake.logins >= 2, what="reconnect after a silent ping")
    rig.fake.stalled = set()
    assert rig.fake.logins >= 2


async def test_stop_closes_the_socket_and_marks_unknown(rig):
    await rig.watcher.start()
    await rig.seeded()
    await rig.watcher.stop()
    assert rig.state("trunk-a") == UNKNOWN
    await until(lambda: rig.fake.clients == 0, what="socket closed")
    assert not rig.watcher._tasks


async def test_connection_refused_is_retried(fake):
    port = fake.port
    await fake.close()
    rig = Rig(fake)
    with capture_logs() as logs:
        await rig.watcher.start()
        await until(lambda: sum(e["event"] == "ami_session_ended" for e in logs) >= 2,
                    what="retries")
        await rig.watcher.stop()
    assert port


def test_backoff_is_capped_and_jittered():
    import random
    b = Backoff(0.5, 30.0, random.Random(1))
    delays = [b.next() for _ in range(12)]
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert delays[-1] >= 15.0 and len(set(delays)) == len(delays)
    b.reset()
    assert b.next() <= 0.5


async def test_config_reload_reseeds_with_the_new_trunks(rig):
    await rig.watcher.start()
    await rig.seeded()
    rig.watcher.set_trunks({"trunk-b": TRUNKS["trunk-b"]})
    await rig.seeded(2)
    assert rig.watcher.map.trunks.keys() == {"trunk-b"}
