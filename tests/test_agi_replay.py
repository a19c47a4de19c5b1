"""Every recorded Asterisk FastAGI session, replayed over a real socket against the server."""

import asyncio

import pytest

from tests.agi_harness import running_server
from tests.asterisk import AGI_TRANSCRIPTS, env_block, play, with_env

def select_commands(callerid: str, number: str, trunk: str, role: str, attempt: int) -> list[str]:
    return [
        f'SET VARIABLE CALLERID(num) "{callerid}"',
        'SET VARIABLE DIDR_STATUS "OK"',
        f'SET VARIABLE DIDR_DIAL "PJSIP/{number}@{trunk}"',
        f'SET VARIABLE DIDR_TRUNK "{trunk}"',
        f'SET VARIABLE DIDR_ROLE "{role}"',
        f'SET VARIABLE DIDR_ATTEMPT "{attempt}"',
    ]


UNSUPPORTED = ['SET VARIABLE DIDR_STATUS "UNSUPPORTED_ROUTE"']
REPORTED = ['SET VARIABLE DIDR_STATUS "OK"']

# What the server must send for each recorded session, first time it sees it.
EXPECTED = {
    "agi-01-normal-select": select_commands("15557654321", "15551230001", "trunk-a", "primary", 1),
    "agi-02-normal-report-answer": REPORTED,
    "agi-03-normal-h-extension": UNSUPPORTED,
    # autumn, destination from ?number=; lang, empty, sp are ignored parameters
    "agi-05-extra-args-select": select_commands("15557654325", "15551230003", "trunk-a", "primary", 1),
    "agi-06-extra-args-report": REPORTED,
    # winter has dynamic DIDs off: always its primary, even after the caller hung up
    "agi-07-hangup-during-agi": select_commands("15557654322", "15551230004", "trunk-a", "primary", 1),
    "agi-09-report-busy-486": REPORTED,
    "agi-11-report-congestion-503": REPORTED,
    # "trunk=trunk-b" is not a parameter of select: ignored, spring's own rotation applies
    "agi-12-select-trunk-b": select_commands("15557654321", "15551230007", "trunk-a", "primary", 1),
    "agi-13-report-chanunavail-trunk-b-unreachable": REPORTED,
}


def test_every_transcript_has_an_expectation():
    assert sorted(EXPECTED) == AGI_TRANSCRIPTS


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("name", AGI_TRANSCRIPTS)
async def test_transcript_replay(name, byte_by_byte):
    async with running_server() as (port, router, sink):
        result = await play(port, env_block(name), byte_by_byte=byte_by_byte,
                            hangup_after_env=name.startswith("agi-07"))
    assert result.commands == EXPECTED[name]
    assert result.closed_by_server
    kinds = [type(r).__name__ for r in sink.records]
    if "select" in name or name.startswith("agi-07"):
        assert kinds == ["AttemptRecord"]
    elif "report" in name:
        assert kinds == ["OutcomeRecord"] and sink.records[0].attempt is None   # orphan: no select seen
    else:
        assert kinds == []


@pytest.mark.parametrize("report, dialstatus, cause, fault", [
    ("agi-02-normal-report-answer", "ANSWER", 16, "answered"),
    ("agi-09-report-busy-486", "BUSY", 17, "callee"),
    ("agi-11-report-congestion-503", "CONGESTION", 34, "carrier"),
    ("agi-13-report-chanunavail-trunk-b-unreachable", "CHANUNAVAIL", 3, "carrier"),
])
async def test_full_call_cycle_select_report_hangup(report, dialstatus, cause, fault):
    uniqueid = env_block(report).split(b"agi_uniqueid: ")[1].split(b"\n")[0].decode()
    select_env = with_env(env_block("agi-01-normal-select"), uniqueid=uniqueid)
    async with running_server() as (port, router, sink):
        selected = await play(port, select_env)
        reported = await play(port, env_block(report))
        hangup = await play(port, with_env(env_block("agi-03-normal-h-extension"), uniqueid=uniqueid))
    assert selected.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"'
    assert reported.commands == REPORTED
    assert hangup.commands == UNSUPPORTED
    attempt, outcome = sink.records
    assert (attempt.uniqueid, attempt.attempt, attempt.trunk) == (uniqueid, 1, "trunk-a")
    assert (outcome.uniqueid, outcome.attempt, outcome.trunk) == (uniqueid, 1, "trunk-a")
    assert (outcome.dialstatus, outcome.hangupcause, outcome.fault, outcome.source) == (dialstatus, cause, fault, "agi")


async def test_three_attempts_of_one_call_take_primary_then_each_dynamic_did():
    env = env_block("agi-01-normal-select")
    async with running_server() as (port, router, sink):
        results = [await play(port, env) for _ in range(3)]
    assert results[0].commands == select_commands("15557654321", "15551230001", "trunk-a", "primary", 1)
    assert results[1].commands == select_commands("15557654322", "15551230001", "trunk-a", "dynamic", 2)
    assert results[2].commands == select_commands("15557654323", "15551230001", "trunk-a", "dynamic", 3)
    assert [(r.attempt, r.did, r.role) for r in sink.records] == [
        (1, "+15557654321", "primary"), (2, "+15557654322", "dynamic"), (3, "+15557654323", "dynamic")]
    assert {r.uniqueid for r in sink.records} == {"1796313750.4"}


async def test_fourth_attempt_of_a_three_did_pool_is_no_did():
    env = env_block("agi-01-normal-select")
    async with running_server() as (port, router, sink):
        for _ in range(3):
            await play(port, env)
        fourth = await play(port, env)
    assert fourth.commands == ['SET VARIABLE DIDR_STATUS "NO_DID"', 'SET VARIABLE DIDR_ATTEMPT "4"']
    assert sink.records[-1].status == "NO_DID"


async def test_hangup_during_select_still_answers_and_logs_the_row():
    async with running_server() as (port, router, sink):
        result = await play(port, env_block("agi-07-hangup-during-agi"), hangup_after_env=True,
                            reply=b"200 result=1\n")
    assert result.commands[0] == 'SET VARIABLE CALLERID(num) "15557654322"'
    assert sink.records[0].campaign == "winter"


async def test_a_refused_command_does_not_stop_the_rest():
    async with running_server() as (port, router, sink):
        result = await play(port, env_block("agi-01-normal-select"),
                            reply=b"511 Command Not Permitted on a dead channel or intercept routine\n")
    assert len(result.commands) == 6


async def test_replies_with_520_block_are_consumed_whole():
    usage = (b"520-Invalid command syntax.  Proper usage follows:\n Usage: SET VARIABLE <variablename> <value>\n"
             b"520 End of proper usage.\n")
    async with running_server() as (port, router, sink):
        result = await play(port, env_block("agi-01-normal-select"), reply=usage)
        again = await play(port, with_env(env_block("agi-01-normal-select"), uniqueid="2.2"))
    assert len(result.commands) == 6
    assert again.commands[0] == 'SET VARIABLE CALLERID(num) "15557654322"'


async def test_unknown_campaign_and_bad_requests_get_a_status_and_the_next_call_is_served():
    env = env_block("agi-01-normal-select")
    async with running_server() as (port, router, sink):
        unknown = await play(port, with_env(env, network_script="select?campaign=nosuch"))
        no_campaign = await play(port, with_env(env, network_script="select"))
        bad_number = await play(port, with_env(env, network_script="select?campaign=spring&number=1%26PJSIP/x"))
        bad_attempt = await play(port, with_env(env, network_script="select?campaign=spring&attempt=zero"))
        good = await play(port, env)
    assert unknown.commands == ['SET VARIABLE DIDR_STATUS "UNKNOWN_CAMPAIGN"', 'SET VARIABLE DIDR_ATTEMPT "1"']
    assert no_campaign.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"']
    assert bad_number.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"']
    assert bad_attempt.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"']
    # the unknown campaign used attempt 1 of that uniqueid; the good call is attempt 2 on spring's first slot
    assert good.commands == select_commands("15557654321", "15551230001", "trunk-a", "primary", 2)


async def test_campaign_from_first_agi_argument_when_the_query_has_none():
    env = with_env(env_block("agi-05-extra-args-select"), network_script="select", arg_1="summer")
    async with running_server() as (port, router, sink):
        result = await play(port, env)
    assert result.commands == select_commands("15557654324", "15551230003", "trunk-a", "primary", 1)


async def test_explicit_attempt_number_from_the_query():
    env = with_env(env_block("agi-01-normal-select"), network_script="select?campaign=spring&attempt=3")
    async with running_server() as (port, router, sink):
        result = await play(port, env)
    assert result.commands[-1] == 'SET VARIABLE DIDR_ATTEMPT "3"'
    assert sink.records[0].attempt == 3


@pytest.mark.parametrize("payload", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),   # a TLS hello
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"agi_network: yes\nagi_request: agi://x/select?campaign=spring\n",  # truncated: EOF before blank line
    b"",                                                                 # connect and close
])
async def test_garbage_or_truncation_costs_one_connection_only(payload):
    async with running_server() as (port, router, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        leftover = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        good = await play(port, env_block("agi-01-normal-select"))
    assert leftover == b""
    assert good.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    assert len(sink.records) == 1


async def test_a_stalled_client_is_dropped_after_the_env_deadline_and_others_are_served():
    async with running_server() as (port, router, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(env_block("agi-01-normal-select")[:100])          # then nothing
        good = await play(port, with_env(env_block("agi-01-normal-select"), uniqueid="9.9"))
        closed = await asyncio.wait_for(reader.read(), 3)               # server gives up on the staller
        writer.close()
    assert good.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    assert closed == b""


async def test_a_client_that_never_answers_a_command_is_dropped():
    async with running_server() as (port, router, sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(env_block("agi-01-normal-select"))
        first = await asyncio.wait_for(reader.readline(), 3)
        rest = await asyncio.wait_for(reader.read(), 3)                 # no reply from us: server closes
        writer.close()
    assert first == b'SET VARIABLE CALLERID(num) "15557654321"\n'
    assert rest == b""
    assert len(sink.records) == 1   # the decision reached Asterisk, so the row exists


@pytest.mark.parametrize("script, why", [
    ("select?campaign=spring&attempt=%C2%B2", "superscript two is not an attempt number"),
    ("select?campaign=spring&attempt=%D9%A3", "Arabic-Indic three is not an attempt number"),
    ("select?campaign=spring&campaign=winter", "a repeated parameter is ambiguous"),
    ("select?campaign=spring&prev=BUSY&prevcause=%C2%B9%C2%B7", "superscript cause"),
])
async def test_ambiguous_or_non_ascii_numbers_are_bad_requests(script, why):
    async with running_server() as (port, router, sink):
        result = await play(port, with_env(env_block("agi-01-normal-select"), network_script=script))
        good = await play(port, with_env(env_block("agi-01-normal-select"), uniqueid="ok.1"))
    assert result.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"'], why
    assert good.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"'


async def test_a_literal_plus_in_the_number_is_kept_and_an_overlong_uniqueid_refused():
    async with running_server() as (port, router, sink):
        plus = await play(port, with_env(env_block("agi-01-normal-select"),
                                         network_script="select?campaign=spring&number=+15551230001"))
        long_id = await play(port, with_env(env_block("agi-01-normal-select"), uniqueid="9" * 151))
    assert plus.commands[2] == 'SET VARIABLE DIDR_DIAL "PJSIP/+15551230001@trunk-a"'
    assert long_id.commands == ['SET VARIABLE DIDR_STATUS "BAD_REQUEST"']
