"""Config loading and validation: every error and warning, with file and field."""

import subprocess
import sys
from pathlib import Path

import pytest

from agi_server.config.load import load_file
from agi_server.errors import ConfigError
from agi_server.numbers import format_callerid, to_e164
from tests.agi_harness import EXAMPLE_CONFIG

BASE = """
settings: {default_country: "1"}
trunks:
  - {name: trunk-a, dial: "PJSIP/{number}@trunk-a"}
  - {name: trunk-b, dial: "PJSIP/{number}@trunk-b"}
dids:
  - {number: "+15557654321", trunk: trunk-a}
  - {number: "+15557654322", trunk: trunk-a}
  - {number: "+15558880001", trunk: trunk-b}
campaigns:
  - {name: spring, primary: "+15557654321", dynamic: ["+15557654322"], fallback: ["+15558880001"]}
"""


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "didrouter.yaml"
    path.write_text(text)
    return load_file(path)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return [str(p) for p in info.value.problems]


def test_example_config_is_valid_and_normalised():
    config, warnings = load_file(EXAMPLE_CONFIG)
    assert warnings == []
    spring = config.campaigns["spring"]
    assert spring.primary == "+15557654321"
    assert spring.dynamic == ("+15557654322", "+15557654323")
    assert {config.dids[n].trunk for n in spring.fallback} == {"trunk-b"}
    assert sorted(config.campaigns) == ["autumn", "spring", "summer", "winter"]
    assert config.settings.port == 4573 and config.settings.host == "127.0.0.1"


def test_base_is_valid(tmp_path):
    config, warnings = load_text(tmp_path, BASE)
    assert warnings == []


def test_unknown_did(tmp_path):
    problems = problems_of(tmp_path, BASE.replace('dynamic: ["+15557654322"]', 'dynamic: ["+15550000000"]'))
    assert any("error: campaigns.spring.dynamic[0]: unknown DID +15550000000" in p for p in problems)
    assert all(p.startswith(str(tmp_path / "didrouter.yaml")) for p in problems)


def test_did_on_two_trunks(tmp_path):
    text = BASE.replace('  - {number: "+15558880001", trunk: trunk-b}',
                        '  - {number: "+15558880001", trunk: trunk-b}\n  - {number: "+15557654321", trunk: trunk-b}')
    problems = problems_of(tmp_path, text)
    assert any("dids[3].number: DID +15557654321 is on two trunks (trunk-a and trunk-b)" in p for p in problems)


def test_dynamic_did_on_another_trunk_is_an_error(tmp_path):
    problems = problems_of(tmp_path, BASE.replace('dynamic: ["+15557654322"]', 'dynamic: ["+15558880001"]'))
    assert any("error: campaigns.spring.dynamic[0]: dynamic DID +15558880001 is on trunk trunk-b" in p for p in problems)


def test_fallback_on_the_primary_trunk_is_a_warning(tmp_path):
    config, warnings = load_text(tmp_path, BASE.replace('fallback: ["+15558880001"]', 'fallback: ["+15557654322"]').replace('dynamic: ["+15557654322"]', 'dynamic: []'))
    assert [w.field for w in warnings] == ["campaigns.spring.fallback[0]"]
    assert "cannot help while that trunk is down" in warnings[0].message


def test_duplicate_names(tmp_path):
    text = BASE + '  - {name: spring, primary: "+15557654322"}\n'
    text = text.replace('  - {name: trunk-b,', '  - {name: trunk-a, dial: "PJSIP/{number}@x"}\n  - {name: trunk-b,')
    problems = problems_of(tmp_path, text)
    assert any("trunks[1].name: duplicate trunk name 'trunk-a'" in p for p in problems)
    assert any("campaigns[1].name: duplicate campaign name 'spring'" in p for p in problems)


def test_empty_pools_and_sections(tmp_path):
    problems = problems_of(tmp_path, "settings: {}\ntrunks: []\ndids: []\ncampaigns:\n  - {name: c}\n")
    text = "\n".join(problems)
    assert "trunks: at least one trunk is needed" in text
    assert "dids: at least one DID is needed" in text
    assert "campaigns[0].primary: a phone number is required" in text


def test_no_fallback_is_a_warning(tmp_path):
    _, warnings = load_text(tmp_path, BASE.replace(', fallback: ["+15558880001"]', ""))
    assert [w.field for w in warnings] == ["campaigns.spring.fallback"]


def test_bad_values_are_reported_together(tmp_path):
    text = BASE.replace('dial: "PJSIP/{number}@trunk-a"}', 'dial: "PJSIP/trunk-a", callerid_format: weird, admin_state: off}')
    text = text.replace('settings: {default_country: "1"}', 'settings: {default_country: "1", port: many, timeouts: {reply: -1}}')
    problems = "\n".join(problems_of(tmp_path, text))
    assert "trunks[0].dial: must contain {number} exactly once" in problems
    assert "trunks[0].callerid_format: 'weird' is not one of" in problems
    assert "settings.port: expected int" in problems
    assert "settings.timeouts.reply: must be a positive number" in problems


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in problems_of(tmp_path, "campaigns: [\n")[0]
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path / "nope.yaml")
    assert [(p.field, p.message) for p in info.value.problems] == [("-", "cannot read: no such file")]


def test_yaml_syntax_error_names_line_and_column_on_one_line(tmp_path):
    path = tmp_path / "didrouter.yaml"
    path.write_text('settings:\n  default_country: "1\ntrunks: []\n')
    with pytest.raises(ConfigError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert (problem.source, problem.severity, problem.field) == (str(path), "error", "line 4, column 1")
    assert problem.message == ("not valid YAML: found unexpected end of stream "
                               "(while scanning a quoted scalar that starts at line 2, column 20)")
    assert str(info.value) == f"{path}: 1 error(s)"   # a summary, not the problem again


def test_config_error_message_is_a_count_not_the_problem(tmp_path):
    text = BASE.replace('default_country: "1"', 'default_country: "1", breaker_failures: 0, port: 70000')
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert str(info.value) == f"{tmp_path / 'didrouter.yaml'}: 2 error(s)"


def test_a_path_that_is_not_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path)
    assert [(p.field, p.message) for p in info.value.problems] == [("-", "is a directory, not a config file")]
    plain = tmp_path / "plain.yaml"
    plain.write_text(BASE)
    with pytest.raises(ConfigError) as info:
        load_file(plain / "didrouter.yaml")
    assert [p.message for p in info.value.problems] == [f"cannot read: {plain} is a file, not a directory"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError) as info:
        load_file(binary)
    assert [p.message for p in info.value.problems] == ["cannot read: not UTF-8 text (byte 0)"]


@pytest.mark.parametrize("value", ["0", "-1", "0.0", ".nan"])
def test_spool_fsync_interval_must_be_positive(tmp_path, value):
    text = BASE.replace('settings: {default_country: "1"}', f'settings: {{default_country: "1", spool_fsync_interval: {value}}}')
    problems = problems_of(tmp_path, text)
    assert problems == [f"{tmp_path / 'didrouter.yaml'}: error: settings.spool_fsync_interval: must be a positive number of seconds"]


def test_port_range_and_field_as_written(tmp_path):
    def port_problems(settings: str) -> list[str]:
        text = BASE.replace('settings: {default_country: "1"}', f"settings: {settings}")
        return [p.split(": error: ", 1)[1] for p in problems_of(tmp_path, text)]

    assert port_problems("{listen: {port: 65536}}") == [
        "settings.listen.port: 65536 is not a TCP port: use 0..65535 (0 = any free port)"]
    assert port_problems("{port: -1}") == ["settings.port: -1 is not a TCP port: use 0..65535 (0 = any free port)"]
    assert port_problems("{listen: {port: many}}") == ["settings.listen.port: expected int, got 'many'"]
    assert port_problems("{listen: 4573}") == ["settings.listen: must be a mapping with host and port"]
    for port in (0, 65535):
        config, _ = load_text(tmp_path, BASE.replace('settings: {default_country: "1"}', f"settings: {{listen: {{port: {port}}}}}"))
        assert config.settings.port == port


def test_session_timeout_must_cover_env_read_and_reply(tmp_path):
    text = BASE.replace('settings: {default_country: "1"}', "settings: {timeouts: {env_read: 2, reply: 3, session: 4.5}}")
    assert problems_of(tmp_path, text) == [
        f"{tmp_path / 'didrouter.yaml'}: error: settings.timeouts.session: 4.5 s is shorter than env_read + reply "
        "(2 + 3 s): a session could not even read one reply"]
    config, _ = load_text(tmp_path, text.replace("session: 4.5", "session: 5"))
    assert config.settings.timeouts.session == 5.0


@pytest.mark.parametrize("country", ["\u00b2", "\u0661", "1\u00b9", "+1", ""])
def test_default_country_must_be_ascii_digits(tmp_path, country):
    text = BASE.replace('default_country: "1"', f'default_country: "{country}"')
    problems = problems_of(tmp_path, text)
    assert f"{tmp_path / 'didrouter.yaml'}: error: settings.default_country: must be a country calling code, digits 0-9 only (1, 44, 91)" in problems


@pytest.mark.parametrize("dial, why", [
    ("PJSIP/{number}@trunk-a,30", "Dial() timeout and options belong in the dialplan (DIDR_DIAL_OPTIONS)"),
    ("PJSIP/{number}@trunk-a&PJSIP/{number}@trunk-b", "would make Dial() ring a second channel"),
    ('PJSIP/{number}@\\"trunk-a', "a double quote breaks the dialplan's quoting"),
    ("PJSIP/{number}@trunk-a\\n", "a line break (LF) would cut the AGI SET VARIABLE command"),
    ("PJSIP/{number}@trunk-a\\r", "a line break (CR) would cut the AGI SET VARIABLE command"),
])
def test_dial_template_characters_that_break_the_dialplan(tmp_path, dial, why):
    text = BASE.replace('dial: "PJSIP/{number}@trunk-a"', f'dial: "{dial}"')
    problems = [p for p in problems_of(tmp_path, text) if "trunks[0].dial: must not contain" in p]
    assert len(problems) == 1 and why in problems[0], problems


def test_dial_template_forbidden_characters_are_named(tmp_path):
    text = BASE.replace('dial: "PJSIP/{number}@trunk-a"', 'dial: "PJSIP/{number}@trunk-a,g"')
    assert problems_of(tmp_path, text) == [
        f"{tmp_path / 'didrouter.yaml'}: error: trunks[0].dial: must not contain ',': Dial() timeout and options "
        "belong in the dialplan (DIDR_DIAL_OPTIONS); the shipped dialplan appends ',timeout,options' itself"]


def test_campaign_toggle_on_while_the_admin_toggle_is_off_is_a_warning(tmp_path):
    text = BASE.replace('settings: {default_country: "1"}', "settings: {dynamic_did_enabled: false}")
    text = text.replace('fallback: ["+15558880001"]}', 'fallback: ["+15558880001"], dynamic_did_enabled: true}')
    config, warnings = load_text(tmp_path, text)
    assert [(w.field, w.message) for w in warnings] == [(
        "campaigns.spring.dynamic_did_enabled",
        "true has no effect while the admin toggle settings.dynamic_did_enabled is off: "
        "the campaign stays off until the global toggle is on")]
    assert config.dynamic_enabled(config.campaigns["spring"]) is False
    _, warnings = load_text(tmp_path, text.replace("dynamic_did_enabled: false", "dynamic_did_enabled: true"))
    assert warnings == []


def test_primary_trunk_admin_down_is_a_warning(tmp_path):
    text = BASE.replace('dial: "PJSIP/{number}@trunk-a"}', 'dial: "PJSIP/{number}@trunk-a", admin_state: down}')
    _, warnings = load_text(tmp_path, text)
    assert [(w.field, w.message) for w in warnings] == [(
        "campaigns.spring.primary",
        "the primary's trunk trunk-a has admin_state down: calls use its fallback DIDs until it is up")]
    _, warnings = load_text(tmp_path, text.replace(', fallback: ["+15558880001"]', ""))
    assert ("campaigns.spring.primary",
            "the primary's trunk trunk-a has admin_state down: calls fail with NO_TRUNK (no fallback DIDs) until it is up"
            ) in [(w.field, w.message) for w in warnings]


def test_numbers():
    assert to_e164("(555) 765-4321", "1") == "+15557654321"
    assert to_e164("15557654321", "1") == "+15557654321"
    assert to_e164("0044 20 7946 0958", "1") == "+442079460958"
    assert to_e164("020 7946 0958", "44") == "+442079460958"
    assert format_callerid("+15557654321", "e164", "1") == "15557654321"
    assert format_callerid("+15557654321", "plus_e164", "1") == "+15557654321"
    assert format_callerid("+442079460958", "national", "44", "0") == "02079460958"


def test_check_config_command_prints_errors_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace('dynamic: ["+15557654322"]', 'dynamic: ["+15558880001"]'))
    run = subprocess.run([sys.executable, "-m", "agi_server", "check-config", str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert f"{bad}: error: campaigns.spring.dynamic[0]" in run.stderr
    ok = subprocess.run([sys.executable, "-m", "agi_server", "check-config", str(EXAMPLE_CONFIG)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_check_config_prints_a_yaml_error_once_then_a_summary(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaigns: [\n")
    run = subprocess.run([sys.executable, "-m", "agi_server", "check-config", str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"{bad}: error: line 2, column 1: not valid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node that starts at line 2, column 1)",
        f"didrouter: {bad}: 1 error(s)",
    ]
