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
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "nope.yaml")


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
