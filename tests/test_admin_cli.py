"""The admin CLI layer: ``cli_admin.register`` on a parser, handlers run in-process
against real PostgreSQL (plus ``python -m agi_server`` once cli.py wires them in)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agi_server import cli_admin
from agi_server.config.db import load_db
from agi_server.config.load import load_file, load_mapping
from agi_server.errors import ConfigError, DidrouterError
from tests.test_config_db import EXAMPLE, same, truncate_config

ROOT = Path(__file__).resolve().parent.parent


class Cli:
    """A parser with only the admin commands; ``run(*argv)`` -> (exit code, stdout, stderr)."""

    def __init__(self, capsys, dsn: str | None) -> None:
        self.parser = argparse.ArgumentParser(prog="didrouter")
        commands = self.parser.add_subparsers(dest="command", required=True)
        self.handlers = cli_admin.register(commands)
        self.capsys, self.dsn = capsys, dsn

    def run(self, *argv: str):
        args = list(argv) + (["--dsn", self.dsn] if self.dsn else [])
        namespace = self.parser.parse_args(args)
        code = self.handlers[namespace.command](namespace)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str):
        code, out, _ = self.run(*argv, "--json")
        assert code == 0
        return json.loads(out)


@pytest.fixture
def db(clean_db):
    asyncio.run(truncate_config(clean_db))     # clean_db also empties the recorded trunk health
    return clean_db


@pytest.fixture
def admin_cli(db, capsys):
    tool = Cli(capsys, db)
    code, out, _ = tool.run("config", "import", str(EXAMPLE))
    assert code == 0 and "2 trunks, 8 dids, 4 campaigns" in out
    return tool


def loaded(dsn):
    return asyncio.run(load_db(dsn))[0]


def test_import_then_export_round_trips(admin_cli):
    code, out, _ = admin_cli.run("config", "export")
    assert code == 0 and out.startswith("# didrouter config exported from the database")
    again, _ = load_mapping(yaml.safe_load(out), "export.yaml")
    assert same(again, load_file(EXAMPLE)[0])
    document = admin_cli.json("config", "export")
    assert same(load_mapping(document, "export.json")[0], again)


def test_import_of_an_invalid_file_writes_nothing(admin_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace('dynamic: ["+15557654322"', 'dynamic: ["+15558880003"'))
    with pytest.raises(ConfigError) as info:
        admin_cli.run("config", "import", str(bad))
    assert any("primary's trunk" in p.message for p in info.value.problems)
    assert same(loaded(admin_cli.dsn), load_file(EXAMPLE)[0])


def test_list_human_and_json(admin_cli):
    code, out, _ = admin_cli.run("campaigns", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["CAMPAIGN", "PRIMARY", "TRUNK", "DYNAMIC", "FALLBACK", "ROTATION"]
    assert lines[2].split() == ["spring", "+15557654321", "trunk-a", "2", "2", "on", "(inherit)"]
    rows = admin_cli.json("campaigns", "list")
    assert [r["name"] for r in rows] == ["autumn", "spring", "summer", "winter"]


def test_show_human_and_json(admin_cli):
    code, out, _ = admin_cli.run("campaigns", "show", "spring")
    assert out.splitlines()[0] == "campaign spring: dynamic DIDs on (inherit)"
    assert out.splitlines()[5].split() == ["fallback", "0", "+15558880001", "trunk-b", "up", "-"]
    view = admin_cli.json("campaigns", "show", "winter")
    assert [d["role"] for d in view["dids"]] == ["primary", "dynamic", "fallback"]


def test_edits_change_the_database(admin_cli):
    result = admin_cli.json("campaigns", "add-did", "summer", "+15558880009", "--role", "fallback",
                            "--trunk", "trunk-b")
    assert result["campaign"]["fallback"] == 2
    code, out, _ = admin_cli.run("campaigns", "remove-did", "spring", "+15557654322")
    assert code == 0 and "+15557654322" not in out
    admin_cli.run("campaigns", "set-primary", "spring", "+15557654323")
    code, out, _ = admin_cli.run("dynamic", "off", "--campaign", "autumn")
    assert "campaign autumn: dynamic DIDs off (campaign: off)" in out
    admin_cli.run("dynamic", "off")
    config = loaded(admin_cli.dsn)
    assert config.campaigns["summer"].fallback == ("+15558880003", "+15558880009")
    assert config.campaigns["spring"].primary == "+15557654323"
    assert config.campaigns["spring"].dynamic == ("+15557654321",)   # the old primary, same trunk
    assert config.campaigns["autumn"].dynamic_did_enabled is False
    assert config.settings.dynamic_did_enabled is False


def test_set_primary_says_what_happened_to_the_old_primary(admin_cli):
    code, out, _ = admin_cli.run("campaigns", "set-primary", "spring", "+15557654322")
    assert code == 0
    assert out.splitlines()[:2] == ["old primary +15557654321 is now the first dynamic DID",
                                    "campaign spring: dynamic DIDs on (inherit)"]
    admin_cli.run("campaigns", "remove-did", "summer", "+15558880003")
    result = admin_cli.json("campaigns", "set-primary", "summer", "+15558880003")
    assert result["message"] == ("old primary +15557654324 left the campaign: "
                                 "it is on trunk-a, not the new primary's trunk-b")
    code, out, _ = admin_cli.run("campaigns", "set-primary", "winter", "+15557654323", "--drop-old")
    assert out.splitlines()[0] == "old primary +15557654322 left the campaign: as asked (--drop-old)"
    assert loaded(admin_cli.dsn).campaigns["winter"].dynamic == ()


def test_dynamic_on_for_a_campaign_while_global_is_off_warns(admin_cli):
    admin_cli.run("dynamic", "off")
    code, out, err = admin_cli.run("dynamic", "on", "--campaign", "spring")
    assert code == 0
    assert err.splitlines() == [
        "database: warning: campaigns.spring.dynamic_did_enabled: true has no effect while the admin toggle "
        "settings.dynamic_did_enabled is off: the campaign stays off until the global toggle is on"]
    assert out.splitlines()[:2] == ["dynamic DIDs globally: off", "campaign spring: dynamic DIDs off (campaign: on)"]
    code, _, err = admin_cli.run("dynamic", "on")
    assert code == 0 and err == ""
    assert loaded(admin_cli.dsn).dynamic_enabled(loaded(admin_cli.dsn).campaigns["spring"]) is True


def test_import_of_a_dsn_warns_and_export_leaves_it_out(admin_cli, tmp_path):
    with_dsn = tmp_path / "with_dsn.yaml"
    with_dsn.write_text(EXAMPLE.read_text().replace("  # dsn: postgresql://didrouter@127.0.0.1:5432/didrouter",
                                                    "  dsn: postgresql://didrouter:s3cret@127.0.0.1:5432/didrouter"))
    code, _, err = admin_cli.run("config", "import", str(with_dsn))
    assert code == 0
    assert err.splitlines() == [f"{with_dsn}: warning: settings.dsn: not stored in the database (it may hold a "
                                "password): give servers the DSN with --dsn or DIDROUTER_DSN"]
    code, out, _ = admin_cli.run("config", "export")
    assert "s3cret" not in out and "dsn" not in yaml.safe_load(out)["settings"]
    assert same(load_mapping(yaml.safe_load(out), "export.yaml")[0], load_file(EXAMPLE)[0])


def test_refused_edit_raises_with_problems(admin_cli):
    with pytest.raises(ConfigError) as info:
        admin_cli.run("campaigns", "add-did", "spring", "+15558880003", "--role", "dynamic")
    assert any(p.field.startswith("campaigns.spring.dynamic") for p in info.value.problems)
    with pytest.raises(DidrouterError, match="unknown campaign"):
        admin_cli.run("campaigns", "remove-did", "nope", "+15557654322")


def test_warnings_go_to_stderr(admin_cli):
    code, out, err = admin_cli.run("campaigns", "add-did", "summer", "+15557654321", "--role", "fallback")
    assert code == 0
    assert "fallback DID +15557654321 is on the primary's trunk" in err


def test_dsn_is_required_and_read_from_the_environment(db, capsys, monkeypatch):
    monkeypatch.delenv("DIDROUTER_DSN", raising=False)
    with pytest.raises(DidrouterError, match="needs --dsn or DIDROUTER_DSN"):
        Cli(capsys, None).run("campaigns", "list")
    monkeypatch.setenv("DIDROUTER_DSN", db)
    code, _, _ = Cli(capsys, None).run("config", "import", str(EXAMPLE))
    assert code == 0


def test_help_shows_the_env_twin(capsys):
    tool = Cli(capsys, None)
    with pytest.raises(SystemExit):
        tool.parser.parse_args(["campaigns", "add-did", "--help"])
    out = " ".join(capsys.readouterr().out.split())   # undo line wrapping
    assert "[env: DIDROUTER_DSN]" in out and "--json" in out and "{dynamic,fallback}" in out


def test_bad_choices_are_usage_errors(capsys):
    tool = Cli(capsys, None)
    for argv in (["dynamic", "maybe"], ["campaigns", "add-did", "c", "1", "--role", "primary"],
                 ["campaigns"]):
        with pytest.raises(SystemExit) as info:
            tool.parser.parse_args(argv)
        assert info.value.code == 2


def test_commands_through_python_m_agi_server(admin_cli):
    env = {**os.environ, "DIDROUTER_DSN": admin_cli.dsn}
    done = subprocess.run([sys.executable, "-m", "agi_server", "campaigns", "list", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [r["name"] for r in json.loads(done.stdout)] == ["autumn", "spring", "summer", "winter"]
    done = subprocess.run([sys.executable, "-m", "agi_server", "campaigns", "add-did", "spring",
                           "+15558880003", "--role", "dynamic"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "primary's trunk" in done.stderr


def test_register_works_through_a_wrapper_that_adds_common_parents(capsys):
    """cli.py passes its subparsers wrapped so every command gets the logging options."""
    parser = argparse.ArgumentParser(prog="didrouter")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default="info")

    class Wrapped:
        def __init__(self, subparsers) -> None:
            self.subparsers = subparsers

        def add_parser(self, name, **kwargs):
            return self.subparsers.add_parser(name, parents=[common], **kwargs)

    handlers = cli_admin.register(Wrapped(parser.add_subparsers(dest="command", required=True)))
    args = parser.parse_args(["campaigns", "--log-level", "debug", "show", "spring", "--json"])
    assert (args.log_level, args.admin_action, args.json) == ("debug", "show", True)
    assert parser.parse_args(["dynamic", "on"]).log_level == "info"
    assert set(handlers) == {"config", "campaigns", "dynamic"}
