"""What can be checked of the shipped dialplan and Docker files without Asterisk or Docker."""

import os
import re
import socket
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from agi_server.config.load import load_file
from agi_server.dialplan import static_globals, static_warnings
from tests.agi_harness import EXAMPLE_CONFIG, running_server

ROOT = Path(__file__).parent.parent
DIALPLAN = (ROOT / "dialplan" / "extensions_didrouter.conf").read_text()


def didrouter(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agi_server", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=30)


def test_dialplan_calls_only_served_routes_and_documents_every_variable():
    routes = set(re.findall(r"AGI\(\$\{DIDR_AGI\}/(\w+)\?", DIALPLAN))
    assert routes == {"select", "report"}
    for variable in ("DIDR_STATUS", "DIDR_DIAL", "DIDR_TRUNK", "DIDR_ROLE", "DIDR_ATTEMPT", "CALLERID(num)"):
        assert variable in DIALPLAN.split("[globals]")[0], variable
    assert "Set(AGISIGHUP=no)" in DIALPLAN and "Set(AGIEXITONHANGUP=no)" in DIALPLAN
    assert '"${AGISTATUS}" = "FAILURE"' in DIALPLAN


def test_static_globals_define_what_the_dialplan_reads():
    config, _ = load_file(EXAMPLE_CONFIG)
    generated = static_globals(config)
    for prefix in set(re.findall(r"\$\{(DIDR_STATIC_\w+?_)\$\{CAMPAIGN\}\}", DIALPLAN)):
        for campaign in config.campaigns:
            assert re.search(rf"^{prefix}{campaign}=\S", generated, re.M), (prefix, campaign)
    assert "DIDR_STATIC_CID_spring=15557654321" in generated
    assert "DIDR_STATIC_DIAL_PRE_spring=PJSIP/\nDIDR_STATIC_DIAL_POST_spring=@trunk-a" in generated


def test_static_globals_never_route_on_an_admin_down_trunk():
    config, _ = load_file(EXAMPLE_CONFIG)
    assert static_warnings(config) == []
    down = replace(config, trunks={**config.trunks, "trunk-a": replace(config.trunks["trunk-a"], admin_state="down")})
    generated = static_globals(down)
    # spring: primary on trunk-a (down) -> its first fallback DID, on trunk-b
    assert ("; campaign spring: primary's trunk trunk-a is admin_state down: static route on fallback DID "
            "+15558880001 (trunk-b)\n"
            "DIDR_STATIC_CID_spring=15558880001\n"
            "DIDR_STATIC_DIAL_PRE_spring=PJSIP/\n"
            "DIDR_STATIC_DIAL_POST_spring=@trunk-b\n") in generated
    assert "DIDR_STATIC_CID_summer=15558880003" in generated
    assert "@trunk-a" not in generated
    assert static_warnings(down) == []
    # and when the fallback trunk is down too, no static route at all
    both = replace(down, trunks={**down.trunks, "trunk-b": replace(down.trunks["trunk-b"], admin_state="down")})
    generated = static_globals(both)
    assert not re.search(r"^DIDR_STATIC_", generated, re.M)
    assert ("; campaign spring: no static route: the primary's trunk trunk-a is admin_state down and no "
            "fallback DID is on a trunk that is up; the dialplan hangs up (nostatic) if didrouter is unreachable"
            ) in generated.splitlines()
    assert static_warnings(both) == [
        f"warning: campaign {name}: no static route in the dialplan globals: its primary's trunk trunk-a is "
        "admin_state down and no fallback DID is on a trunk that is up; while didrouter is unreachable its calls "
        "are hung up" for name in ("autumn", "spring", "summer", "winter")]
    # the dialplan's nostatic branch is what an empty DIDR_STATIC_CID_<campaign> leads to
    assert '"${DIDR_STATIC_CID_${CAMPAIGN}}" = ""]?nostatic' in DIALPLAN


def test_compose_config_validates_and_its_globals_file_is_current():
    run = didrouter("check-config", str(ROOT / "docker" / "didrouter.compose.yaml"), env={"DIDROUTER_AMI_SECRET": "s"})
    assert run.returncode == 0, run.stderr
    shipped = (ROOT / "docker" / "asterisk" / "didrouter_globals.conf").read_text()
    generated = didrouter("dialplan-globals", "--config", str(EXAMPLE_CONFIG)).stdout
    assert shipped == generated


def test_compose_mounts_files_that_exist():
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    for source in re.findall(r"- (\.\.?/[^:]+):", compose):
        assert (ROOT / "docker" / source).resolve().exists(), source


async def test_healthcheck_exit_codes_and_probe_is_not_a_warning():
    async with running_server() as (port, router, sink):
        ok = await _healthcheck(port)
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    down = await _healthcheck(free)
    assert ok.returncode == 0
    assert down.returncode == 1 and "not accepting" in down.stderr
    assert sink.records == []


async def _healthcheck(port: int) -> subprocess.CompletedProcess:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "healthcheck", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return subprocess.CompletedProcess([], proc.returncode, out.decode(), err.decode())


def test_entrypoint_migrates_when_a_dsn_is_set_then_execs_serve(tmp_path):
    fake = tmp_path / "didrouter"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "DIDROUTER_DSN": "postgresql://x/y"}
    subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve"], env=env, check=True, timeout=10)
    assert (tmp_path / "calls").read_text().splitlines() == ["migrate", "serve"]
    (tmp_path / "calls").unlink()
    subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve"], env={"PATH": env["PATH"]}, check=True)
    assert (tmp_path / "calls").read_text().splitlines() == ["serve"]


def test_dockerfile_runs_as_non_root_with_a_healthcheck():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "USER didrouter" in dockerfile
    assert 'CMD ["didrouter", "healthcheck"]' in dockerfile
    assert "FROM python:3.11-slim" in dockerfile
