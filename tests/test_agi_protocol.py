"""The sans-IO FastAGI parser and command encoder, against Asterisk's real bytes."""

import pytest

from agi_server.agi import protocol
from agi_server.agi.protocol import AgiParser, Closed, Environment, Progress, Reply
from agi_server.errors import ProtocolError
from tests.asterisk import FIXTURES, env_block


def parse(data: bytes, chunk: int | None = None) -> list[object]:
    parser = AgiParser()
    events: list[object] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        events += parser.events()
    return events


def test_env_block_of_a_real_select_split_once_on_colon_space():
    [env] = parse(env_block("agi-01-normal-select"))
    assert isinstance(env, Environment)
    assert env.get("agi_uniqueid") == "1796313750.4"
    assert env.get("agi_calleridname") == "Alice Normal"
    assert env.get("agi_accountcode") == ""
    assert env.get("agi_dnid") == "unknown"
    assert env.request.route == "select"
    assert env.request.query == {"campaign": "spring"}
    assert env.request.args == ()


def test_byte_by_byte_gives_the_same_events():
    data = env_block("agi-05-extra-args-select") + b"200 result=1\nHANGUP\n200 result=1 (ANSWER)\n"
    assert parse(data, chunk=1) == parse(data)


def test_query_is_percent_decoded_and_args_kept_in_order_including_empty():
    [env] = parse(env_block("agi-05-extra-args-select"))
    assert env.request.query == {"campaign": "autumn", "number": "15551230003", "lang": "de", "empty": "", "sp": "a b"}
    assert env.request.args == ("first arg", "15551230003", "autumn", "", "last quoted arg")


def test_replies_200_with_data_510_511_and_progress():
    parser = AgiParser()
    parser.feed(env_block("agi-01-normal-select"))
    parser.events()
    parser.feed(b"200 result=1 (CHANUNAVAIL)\n510 Invalid or unknown command\n"
                b"511 Command Not Permitted on a dead channel or intercept routine\n100 result=0 Trying...\n200 result=0\n")
    events = parser.events()
    assert events[0] == Reply(200, "result=1 (CHANUNAVAIL)", 1, "CHANUNAVAIL")
    assert events[1].code == 510 and not events[1].ok
    assert events[2].code == 511
    assert events[3] == Progress("result=0 Trying...")
    assert events[4] == Reply(200, "result=0", 0, None)


def test_multiline_520_usage_block_is_one_reply():
    parser = AgiParser()
    parser.feed(env_block("agi-01-normal-select"))
    parser.events()
    parser.feed(b"520-Invalid command syntax.  Proper usage follows:\n Usage: SET VARIABLE <variablename> <value>\n"
                b"     Sets a variable to the current channel.\n520 End of proper usage.\n200 result=1\n")
    usage, after = parser.events()
    assert usage.code == 520 and usage.text == "Invalid command syntax.  Proper usage follows:"
    assert usage.usage[0] == " Usage: SET VARIABLE <variablename> <value>"
    assert after == Reply(200, "result=1", 1, None)


def test_unsolicited_hangup_then_the_real_reply_as_in_agi_07():
    rx = (FIXTURES / "agi-07-hangup-during-agi.rx.txt").read_bytes()
    events = parse(rx + b"")
    assert isinstance(events[0], Environment)
    assert [type(e).__name__ for e in events[1:]] == ["Hangup", "Reply", "Reply", "Reply", "Reply", "Hangup"]
    assert events[4].code == 511


def test_eof_is_an_event_and_a_truncated_env_is_an_error():
    parser = AgiParser()
    parser.feed(env_block("agi-01-normal-select") + b"200 result=1\n")
    parser.feed(b"")
    assert parser.events()[-1] == Closed(clean=True)
    truncated = AgiParser()
    truncated.feed(env_block("agi-01-normal-select")[:200])
    with pytest.raises(ProtocolError, match="environment truncated"):
        truncated.feed(b"")


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\xff\xfe\n", b"\n", b"agi network yes\n"])
def test_garbage_is_a_protocol_error(garbage):
    with pytest.raises(ProtocolError):
        parse(garbage)


def test_bounds_on_line_length_and_env_lines():
    with pytest.raises(ProtocolError, match="longer than"):
        parse(b"agi_x: " + b"a" * (protocol.MAX_LINE_BYTES + 10))
    many = b"".join(b"agi_k%d: v\n" % i for i in range(protocol.MAX_ENV_LINES + 1))
    with pytest.raises(ProtocolError, match="lines"):
        parse(many)


def test_reply_garbage_after_env_is_an_error():
    parser = AgiParser()
    parser.feed(env_block("agi-01-normal-select"))
    with pytest.raises(ProtocolError, match="not an AGI reply"):
        parser.feed(b"hello\n")


def test_set_variable_quotes_and_escapes():
    assert protocol.set_variable("CALLERID(num)", "15557654321") == b'SET VARIABLE CALLERID(num) "15557654321"\n'
    assert protocol.set_variable("X", 'a "b" \\c') == b'SET VARIABLE X "a \\"b\\" \\\\c"\n'


def test_set_variable_refuses_crlf_bad_names_and_overlong_lines():
    with pytest.raises(ProtocolError, match="CR or LF"):
        protocol.set_variable("X", "a\nb")
    with pytest.raises(ProtocolError, match="name"):
        protocol.set_variable("X Y", "a")
    with pytest.raises(ProtocolError, match="2047"):
        protocol.set_variable("X", "a" * 2040)
    assert len(protocol.set_variable("X", "a" * 2020)) <= 2047
