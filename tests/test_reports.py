"""Report views, report queries, A/B verdicts and `didrouter report`, on real PostgreSQL.

The seed below is small enough to check by hand; every expected figure is a literal
with its arithmetic in a comment. Days are UTC days of decided_at.
"""

import argparse
import csv
import datetime as dt
import io
import json

import asyncpg
import pytest

from agi_server import cli_report, reports
from agi_server.errors import DidrouterError

A, B, C = "+15550000001", "+15550000002", "+15550000003"
D10, D11 = dt.date(2025, 3, 10), dt.date(2025, 3, 11)
UTC = dt.timezone.utc


def at(day: int, hour: int = 12, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, 0, tzinfo=tz)


# (campaign, did, trunk, role, status, decided_at, dialstatus, cause, answered_s, fault)
SEED = [
    # sales / A / trunk-a, 2025-03-10: 8 attempts
    ("sales", A, "trunk-a", "primary", "OK", at(10), "ANSWER", 16, 30, "answered"),
    ("sales", A, "trunk-a", "primary", "OK", at(10), "ANSWER", 16, 50, "answered"),
    ("sales", A, "trunk-a", "primary", "OK", at(10), "BUSY", 17, 0, "callee"),
    ("sales", A, "trunk-a", "fallback", "OK", at(10), "CONGESTION", 34, 0, "carrier"),
    ("sales", A, "trunk-a", "primary", "OK", at(10), "CONGESTION", 21, 0, "reputation"),
    ("sales", A, "trunk-a", "primary", "OK", at(10), None, None, None, None),   # no outcome yet
    ("sales", A, "trunk-a", "primary", "OK", at(10), "CANCEL", 16, 0, "aborted"),
    ("sales", A, "trunk-a", "fallback", "OK", at(10), "NOANSWER", 19, 0, "callee"),
    # sales / A, 2025-03-11: 2 attempts
    ("sales", A, "trunk-a", "primary", "OK", at(11), "ANSWER", 16, 60, "answered"),
    ("sales", A, "trunk-a", "primary", "OK", at(11), "BUSY", 17, 0, "callee"),
    # sales / B / trunk-b, 2025-03-10: 3 attempts, one answered without a known duration
    ("sales", B, "trunk-b", "dynamic", "OK", at(10), "ANSWER", 16, 10, "answered"),
    ("sales", B, "trunk-b", "dynamic", "OK", at(10), "NOANSWER", 0, 0, "carrier"),
    ("sales", B, "trunk-b", "dynamic", "OK", at(10), "ANSWER", 16, None, "answered"),
    # 2025-03-10 23:30 at UTC-5 is 2025-03-11 04:30 UTC: counts on the 11th
    ("sales", B, "trunk-b", "dynamic", "OK",
     dt.datetime(2025, 3, 10, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
     "ANSWER", 16, 20, "answered"),
    # not attempts: no DID chosen / a status other than OK
    ("sales", None, None, None, "NO_DID", at(10), None, None, None, None),
    ("sales", A, "trunk-a", "primary", "ERROR", at(10), "ANSWER", 16, 99, "answered"),
    # collect / C: one carrier failure on the 10th, one answer on the 9th (outside the range)
    ("collect", C, "trunk-a", "primary", "OK", at(10), "CHANUNAVAIL", 3, 0, "carrier"),
    ("collect", C, "trunk-a", "primary", "OK", at(9), "ANSWER", 16, 45, "answered"),
]

INSERT = """
INSERT INTO cdr_attempt (server, uniqueid, attempt, campaign, destination, did, trunk, role,
                         status, decided_at, dialstatus, hangupcause, answered_seconds,
                         outcome_fault, outcome_source)
VALUES ('ast1', $1, 1, $2, '+15559990000', $3, $4, $5, $6, $7, $8, $9, $10, $11,
        CASE WHEN $11::text IS NULL THEN NULL ELSE 'agi' END)
"""


async def insert(conn, rows, prefix="seed"):
    await conn.executemany(INSERT, [(f"{prefix}.{i}", *row) for i, row in enumerate(rows)])


@pytest.fixture
async def seeded(clean_db):
    conn = await asyncpg.connect(clean_db, timeout=10)
    try:
        await insert(conn, SEED)
        yield conn
    finally:
        await conn.close()


def by_key(rows, *keys):
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


COUNTS = ("attempts", "answered", "network_completed", "carrier_failures", "reputation_rejects",
          "fallback_attempts", "no_outcome")
RATIOS = ("asr", "ner", "acd", "fallback_share", "carrier_share", "reputation_share")


def figures(row):
    return {k: row[k] for k in COUNTS + RATIOS}


# -- views ----------------------------------------------------------------------------

async def test_did_daily_view(seeded):
    rows = by_key(await seeded.fetch("SELECT * FROM report_did_daily"), "day", "did")
    assert sorted(rows) == [(dt.date(2025, 3, 9), C), (D10, A), (D10, B), (D10, C), (D11, A), (D11, B)]
    # A on the 10th: 8 attempts (the ERROR row is not one); answered 2 (30 s, 50 s);
    # network-completed = 2 answered + 2 callee (BUSY 17, NOANSWER 19) = 4 (the 21 and
    # the CANCEL are not); carrier 1 (34); reputation 1 (21); fallback 2; no outcome 1.
    # ASR 2/8, NER 4/8, ACD 80/2, fallback 2/8, carrier 1/8, reputation 1/8.
    assert figures(rows[D10, A]) == dict(
        attempts=8, answered=2, network_completed=4, carrier_failures=1, reputation_rejects=1,
        fallback_attempts=2, no_outcome=1,
        asr=0.25, ner=0.5, acd=40.0, fallback_share=0.25, carrier_share=0.125, reputation_share=0.125)
    assert (rows[D10, A]["campaign"], rows[D10, A]["trunk"]) == ("sales", "trunk-a")
    # B on the 10th: 3 attempts, 2 answered, one of them with no duration: ACD 10/1;
    # NOANSWER with cause 0 is a carrier failure. ASR = NER = 2/3, carrier 1/3.
    b10 = rows[D10, B]
    assert (b10["attempts"], b10["answered"], b10["answered_timed"], b10["acd"]) == (3, 2, 1, 10.0)
    assert (b10["asr"], b10["ner"], b10["carrier_share"]) == (
        pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(1 / 3))
    # B on the 11th: only the 23:30 UTC-5 call (04:30 UTC on the 11th), answered 20 s
    assert (rows[D11, B]["attempts"], rows[D11, B]["answered"], rows[D11, B]["acd"]) == (1, 1, 20.0)
    # C on the 10th: one carrier failure; no answered call, so ACD is NULL
    assert (rows[D10, C]["asr"], rows[D10, C]["ner"], rows[D10, C]["acd"], rows[D10, C]["carrier_share"]) == (
        0.0, 0.0, None, 1.0)


async def test_campaign_daily_view(seeded):
    rows = by_key(await seeded.fetch("SELECT * FROM report_campaign_daily"), "day", "campaign")
    # sales on the 10th = A(8) + B(3) = 11 attempts; answered 2 + 2 = 4; network-completed
    # 4 + 2 = 6; carrier 1 + 1 = 2; reputation 1; fallback 2; no outcome 1;
    # ACD = (30 + 50 + 10) / 3 timed = 30.
    s10 = rows[D10, "sales"]
    assert (s10["dids"], s10["attempts"], s10["answered"], s10["network_completed"],
            s10["carrier_failures"], s10["reputation_rejects"], s10["fallback_attempts"],
            s10["no_outcome"]) == (2, 11, 4, 6, 2, 1, 2, 1)
    assert (s10["asr"], s10["ner"], s10["acd"], s10["fallback_share"], s10["carrier_share"]) == (
        pytest.approx(4 / 11), pytest.approx(6 / 11), 30.0, pytest.approx(2 / 11), pytest.approx(2 / 11))
    # sales on the 11th = A(2) + B(1) = 3; answered 1 + 1 = 2; network-completed 2 + 1 = 3;
    # ACD = (60 + 20) / 2 = 40
    s11 = rows[D11, "sales"]
    assert (s11["attempts"], s11["answered"], s11["asr"], s11["ner"], s11["acd"]) == (
        3, 2, pytest.approx(2 / 3), 1.0, 40.0)


# -- range reports --------------------------------------------------------------------

async def test_did_report_sums_the_range_and_rederives_ratios(seeded):
    rows = by_key(await reports.did_report(seeded, D10, D11), "did")
    assert sorted(rows) == [A, B, C]          # C's answer on the 9th is outside the range
    # A, 10th + 11th: attempts 8 + 2 = 10; answered 2 + 1 = 3; network-completed 4 + 2 = 6;
    # ACD = (30 + 50 + 60) / 3 = 46.667 (not the mean of the daily ACDs 40 and 60)
    assert figures(rows[A]) == dict(
        attempts=10, answered=3, network_completed=6, carrier_failures=1, reputation_rejects=1,
        fallback_attempts=2, no_outcome=1, asr=0.3, ner=0.6, acd=pytest.approx(140 / 3),
        fallback_share=0.2, carrier_share=0.1, reputation_share=0.1)
    # B: 3 + 1 = 4 attempts, 3 answered, ACD (10 + 20) / 2 timed = 15
    assert (rows[B]["attempts"], rows[B]["answered"], rows[B]["asr"], rows[B]["acd"]) == (4, 3, 0.75, 15.0)


async def test_campaign_report_and_filter(seeded):
    [sales] = await reports.campaign_report(seeded, D10, D11, "sales")
    # 10 (A) + 4 (B) = 14 attempts; answered 3 + 3 = 6; network-completed 6 + 3 = 9;
    # ACD = (140 + 30) / (3 + 2) = 34; fallback 2/14; carrier (1 + 1)/14; reputation 1/14
    assert (sales["dids"], sales["attempts"], sales["answered"], sales["network_completed"]) == (2, 14, 6, 9)
    assert (sales["asr"], sales["ner"], sales["acd"], sales["fallback_share"],
            sales["carrier_share"], sales["reputation_share"]) == (
        pytest.approx(6 / 14), pytest.approx(9 / 14), 34.0, pytest.approx(2 / 14),
        pytest.approx(2 / 14), pytest.approx(1 / 14))
    wide = by_key(await reports.campaign_report(seeded, dt.date(2025, 3, 9), D11), "campaign")
    # collect over the 9th..11th: 2 attempts, 1 answered (45 s)
    assert (wide["collect"]["attempts"], wide["collect"]["asr"], wide["collect"]["acd"]) == (2, 0.5, 45.0)


async def test_daily_rows_and_empty_range(seeded):
    rows = await reports.did_report(seeded, D11, D11, "sales", daily=True)
    assert [(r["day"], r["did"], r["attempts"]) for r in rows] == [(D11, A, 2), (D11, B, 1)]
    assert await reports.campaign_report(seeded, dt.date(2024, 1, 1), dt.date(2024, 1, 2)) == []
    with pytest.raises(ValueError):
        await reports.did_report(seeded, D11, D10)


# -- A/B ------------------------------------------------------------------------------

X, Y, Z, W = "+15550000010", "+15550000011", "+15550000012", "+15550000013"


def ab_rows(did, answered, unanswered, no_outcome=0):
    ok = ("ab", did, "trunk-a", "dynamic", "OK", at(10))
    return ([ok + ("ANSWER", 16, 30, "answered")] * answered
            + [ok + ("BUSY", 17, 0, "callee")] * unanswered
            + [ok + (None, None, None, None)] * no_outcome)


@pytest.fixture
async def ab_seeded(clean_db):
    conn = await asyncpg.connect(clean_db, timeout=10)
    try:
        await insert(conn, ab_rows(X, 30, 30, no_outcome=5) + ab_rows(Y, 12, 48)
                     + ab_rows(Z, 5, 5) + ab_rows(W, 27, 33), prefix="ab")
        yield conn
    finally:
        await conn.close()


async def test_ab_compare_verdicts(ab_seeded):
    rows = await reports.ab_compare(ab_seeded, "ab", D10, D10)
    assert [r["did"] for r in rows] == [X, Y, Z, W][:1] + sorted([Y, Z, W])
    got = by_key(rows, "did")
    # Wilson 95% lower bounds: X 30/60 -> 0.3774, W 27/60 -> 0.3309, Z 5/10 -> 0.2366,
    # Y 12/60 -> 0.1183: X is the reference. X's 5 attempts with no outcome are left out.
    assert (got[X]["reference"], got[X]["decided"], got[X]["no_outcome"]) == (True, 60, 5)
    assert (got[X]["ci_low"], got[X]["ci_high"]) == (pytest.approx(0.37735, abs=1e-5),
                                                     pytest.approx(0.62265, abs=1e-5))
    # 3 comparisons -> Bonferroni alpha 0.05 / 3
    assert got[Y]["alpha"] == pytest.approx(0.05 / 3)
    # Y 12/60 vs X 30/60: Fisher p = 0.0010182 (exact sums) < 0.0167
    assert got[Y]["p_value"] == pytest.approx(0.0010182, rel=1e-4)
    assert got[Y]["verdict"] == f"{Y} worse than {X} (p=0.001)"
    # W 27/60 vs 30/60: p = 0.7148, pooled 57/120, min expected 60·0.475 = 28.5 >= 5
    assert got[W]["verdict"] == "no significant difference (p=0.715)"
    # Z has 10 decided attempts < 30
    assert got[Z]["verdict"] == "sample too small to call: need ≥ 30 attempts with an outcome per DID"
    assert got[X]["verdict"] == "reference (highest Wilson lower bound)"


async def test_ab_compare_single_and_unknown_campaign(seeded):
    [only] = await reports.ab_compare(seeded, "collect", D10, D10)
    assert (only["did"], only["verdict"]) == (C, "only DID of the campaign: nothing to compare")
    assert await reports.ab_compare(seeded, "nope", D10, D10) == []


# -- CLI ------------------------------------------------------------------------------

def parse(*argv):
    parser = argparse.ArgumentParser(prog="didrouter")
    handlers = cli_report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return handlers[args.command], args


def run(capsys, dsn, *argv):
    handler, args = parse("--dsn", dsn, "--since", "2025-03-10", "--until", "2025-03-11", *argv)
    assert handler(args) == 0
    return capsys.readouterr().out


async def test_cli_table(seeded, capsys, pg_dsn):
    out = await _in_thread(run, capsys, pg_dsn, "--campaign", "sales")
    lines = out.splitlines()
    assert lines[0].split() == ["CAMPAIGN", "DID", "TRUNK", "ATTEMPTS", "ANSWERED", "ASR", "NER",
                                "ACD", "FALLBACK", "CARRIER", "REPUTATION", "NO_OUTCOME"]
    assert lines[1].split() == ["sales", A, "trunk-a", "10", "3", "30.0%", "60.0%", "46.7s",
                                "20.0%", "10.0%", "10.0%", "1"]
    assert lines[2].split() == ["sales", B, "trunk-b", "4", "3", "75.0%", "75.0%", "15.0s",
                                "0.0%", "25.0%", "0.0%", "0"]
    # aligned: every column starts at the same offset on every line
    assert len({len(line) for line in lines}) == 1
    assert lines[0].index("ATTEMPTS") + len("ATTEMPTS") == lines[1].index(" 10") + len(" 10")


async def test_cli_csv_by_campaign(seeded, capsys, pg_dsn):
    out = await _in_thread(run, capsys, pg_dsn, "--by", "campaign", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["campaign"] for r in rows] == ["collect", "sales"]
    # collect: 1 attempt, nothing answered, so ACD is empty
    assert (rows[0]["attempts"], rows[0]["asr"], rows[0]["acd"], rows[0]["carrier_share"]) == ("1", "0.0", "", "1.0")
    assert (rows[1]["attempts"], rows[1]["answered"], rows[1]["acd"]) == ("14", "6", "34.0")


async def test_cli_json_daily(seeded, capsys, pg_dsn):
    out = await _in_thread(run, capsys, pg_dsn, "--format", "json", "--daily", "--campaign", "sales")
    data = json.loads(out)
    assert [(r["day"], r["did"], r["attempts"]) for r in data] == [
        ("2025-03-10", A, 8), ("2025-03-10", B, 3), ("2025-03-11", A, 2), ("2025-03-11", B, 1)]
    assert (data[0]["asr"], data[0]["ner"], data[0]["acd"]) == (0.25, 0.5, 40.0)


async def test_cli_ab_json_and_table(ab_seeded, capsys, pg_dsn):
    out = await _in_thread(run, capsys, pg_dsn, "--ab", "--campaign", "ab", "--format", "json")
    verdicts = {r["did"]: r["verdict"] for r in json.loads(out)}
    assert verdicts[Z] == "sample too small to call: need ≥ 30 attempts with an outcome per DID"
    out = await _in_thread(run, capsys, pg_dsn, "--ab", "--campaign", "ab")
    assert f"{Y} worse than {X} (p=0.001)" in out
    assert out.splitlines()[0].split()[:4] == ["DID", "DECIDED", "ANSWERED", "RATE"]


def test_cli_user_errors(monkeypatch):
    monkeypatch.delenv("DIDROUTER_DSN", raising=False)
    handler, args = parse()
    with pytest.raises(DidrouterError, match="--dsn"):
        handler(args)
    handler, args = parse("--dsn", "postgresql://x@127.0.0.1:1/x", "--ab")
    with pytest.raises(DidrouterError, match="--campaign"):
        handler(args)
    handler, args = parse("--dsn", "postgresql://x@127.0.0.1:1/x", "--since", "2025-03-12", "--until", "2025-03-11")
    with pytest.raises(DidrouterError, match="after"):
        handler(args)
    with pytest.raises(SystemExit):
        parse("--since", "yesterday")


def test_cli_unreachable_database_is_a_store_error(dead_dsn):
    handler, args = parse("--dsn", dead_dsn)
    with pytest.raises(DidrouterError, match="cannot connect"):
        handler(args)


def test_cli_help_names_the_env_twin(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    assert "[env: DIDROUTER_DSN]" in " ".join(capsys.readouterr().out.split())


def test_default_range_is_last_seven_days():
    assert cli_report.resolve_range(None, None, today=D11) == (dt.date(2025, 3, 5), D11)


async def _in_thread(fn, *args):
    """The handler runs asyncio.run itself: call it off the test's event loop."""
    import asyncio
    return await asyncio.to_thread(fn, *args)
