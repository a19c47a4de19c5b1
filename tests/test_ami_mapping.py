"""TrunkMap (sans-IO) on recorded Asterisk messages, and the fake's transcript parser."""

import pytest
from panoramisk.message import Message

from agi_server.ami.mapping import TrunkMap, Unmapped
from agi_server.config.model import Trunk
from tests import fake_ami


def msgs(recorded, start_seq=1):
    out = []
    for i, m in enumerate(recorded):
        msg = Message.from_line(m.data.decode().strip())
        msg.seq = start_seq + i
        out.append(msg)
    return out


def seeded(trunks=None, regs="regs-1", eps=("ami-02", "endpoints-1")):
    trunks = trunks or {n: Trunk(name=n, dial="PJSIP/{number}@" + n) for n in ("trunk-a", "trunk-b")}
    m = TrunkMap(trunks)
    m.seed_registrations(msgs(fake_ami.reply_to("ami-02", regs)))
    m.seed_endpoints(msgs(fake_ami.reply_to("ami-02", "aors-1")), msgs(fake_ami.reply_to(*eps)))
    return m


def event(name, **match):
    return next(e for e in msgs(fake_ami.events(name))
                if all(e.get(k) == v for k, v in match.items()))


def test_transcripts_parse_back_to_the_raw_bytes():
    for name in ("ami-01", "ami-02", "ami-08", "ami-10", "ami-12"):
        (raw,) = fake_ami.FIXTURES.glob(name + "*.raw.txt")
        received = b"".join(m.data for m in fake_ami.load(name) if m.direction == "recv")
        assert received == raw.read_bytes()


def test_seed_from_ami02():
    trunks = {n: Trunk(name=n, dial="x") for n in ("trunk-a", "trunk-b")}
    m = TrunkMap(trunks)
    obs = m.seed_registrations(msgs(fake_ami.reply_to("ami-02", "regs-1")))
    assert [(o.trunk, o.signal, o.ok) for o in obs] == [("trunk-a", "registration", True)]
    obs = m.seed_endpoints(msgs(fake_ami.reply_to("ami-02", "aors-1")),
                           msgs(fake_ami.reply_to("ami-10", "endpoints-both-down")))
    assert [(o.trunk, o.signal, o.ok) for o in obs] == [("trunk-b", "qualify", False)]


def test_registry_maps_uris_to_the_trunk():
    m = seeded()
    (obs,) = m.event(event("ami-08", Status="Rejected"))
    assert (obs.trunk, obs.signal, obs.ok, obs.soft) == ("trunk-a", "registration", False, False)
    (obs,) = m.event(event("ami-01", Status="Unregistered"))
    assert obs.ok is False and obs.soft


def test_unseeded_registry_is_unmapped():
    m = TrunkMap({"trunk-a": Trunk(name="trunk-a", dial="x")})
    with pytest.raises(Unmapped):
        m.event(event("ami-08", Status="Rejected"))


def test_peerstatus_counts_only_for_qualifying_endpoints():
    m = seeded()
    assert m.event(event("ami-01", Peer="PJSIP/trunk-a")) == []          # no qualify
    (obs,) = m.event(event("ami-10", Event="PeerStatus", PeerStatus="Unreachable"))
    assert (obs.trunk, obs.ok) == ("trunk-b", False)
    (obs,) = m.event(event("ami-10", Event="ContactStatus", ContactStatus="Reachable"))
    assert (obs.trunk, obs.signal, obs.ok) == ("trunk-b", "qualify", True)


def test_configured_names_and_modes():
    trunks = {"carrier": Trunk(name="carrier", dial="x", registration="trunk-a",
                               endpoint="trunk-a", health="registration"),
              "ip": Trunk(name="ip", dial="x", endpoint="trunk-b", health="none"),
              "ghost": Trunk(name="ghost", dial="x", health="registration")}
    m = TrunkMap(trunks)
    obs = m.seed_registrations(msgs(fake_ami.reply_to("ami-02", "regs-1")))
    assert {(o.trunk, o.ok, o.cause) for o in obs} == {
        ("carrier", True, "seed Registered"),
        ("ghost", None, "no such registration in Asterisk")}
    assert m.event(event("ami-10", Event="PeerStatus", PeerStatus="Unreachable")) == []


def test_held_event_is_newer_only_than_earlier_snapshot_lines():
    m = seeded()
    regs = msgs(fake_ami.reply_to("ami-02", "regs-1"), start_seq=10)
    pos = m.snapshot_positions(regs, [])
    rejected = event("ami-08", Status="Rejected")
    assert pos[m.object_of(rejected)] == 11        # the OutboundRegistrationDetail line
    peer = event("ami-10", Event="PeerStatus", PeerStatus="Unreachable")
    assert m.object_of(peer) == ("endpoint", "trunk-b")
