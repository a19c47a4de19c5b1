"""Build a :class:`Config` from YAML (or any mapping), collecting every problem.

The loader never stops at the first mistake: it walks the whole document, records a
:class:`Problem` with file and field for each, and raises one :class:`ConfigError`
carrying them all. Warnings are returned beside a good config.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

import yaml

from agi_server.config.model import AmiServer, Campaign, Config, Did, Settings, Timeouts, Trunk
from agi_server.config.validate import Problem, check_config, error, warning
from agi_server.errors import ConfigError
from agi_server.numbers import CALLERID_FORMATS, NumberError, to_e164

TRUNK_STATES = ("up", "down")
HEALTH_SOURCES = ("auto", "registration", "qualify", "both", "none")
UNKNOWN_HEALTH_POLICIES = ("up", "down")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DIGITS = re.compile(r"[0-9]+")          # ASCII only: str.isdigit() also takes "²" or "١"
# Characters a trunk's dial template must not hold, and why.
_DIAL_FORBIDDEN = (
    (",", "Dial() timeout and options belong in the dialplan (DIDR_DIAL_OPTIONS); "
          "the shipped dialplan appends ',timeout,options' itself"),
    ("&", "'&' would make Dial() ring a second channel at the same time"),
    ('"', "a double quote breaks the dialplan's quoting of DIDR_DIAL"),
    ("\r", "a line break (CR) would cut the AGI SET VARIABLE command and the dialplan globals line"),
    ("\n", "a line break (LF) would cut the AGI SET VARIABLE command and the dialplan globals line"),
)
SECTIONS = ("settings", "trunks", "dids", "campaigns", "asterisk_servers")


def load_file(path: str | os.PathLike) -> tuple[Config, list[Problem]]:
    """Read and validate a YAML config. Returns (config, warnings) or raises ConfigError."""
    source = str(path)
    try:
        text = _read(Path(path))
    except _Unreadable as exc:
        _refuse(source, [error(source, "-", str(exc))])
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _refuse(source, [_yaml_problem(source, exc)])
    return load_mapping(document, source)


class _Unreadable(Exception):
    """The config path is not a readable UTF-8 file (message says why)."""


def _read(path: Path) -> str:
    if path.is_dir():
        raise _Unreadable("is a directory, not a config file")
    try:
        return path.read_text(encoding="utf-8")
    except NotADirectoryError:
        parent = next((p for p in path.parents if p.is_file()), path.parent)
        raise _Unreadable(f"cannot read: {parent} is a file, not a directory") from None
    except FileNotFoundError:
        raise _Unreadable("cannot read: no such file") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"cannot read: not UTF-8 text (byte {exc.start})") from None


def _yaml_problem(source: str, exc: yaml.YAMLError) -> Problem:
    """One line: the position as the field, PyYAML's problem (and context) as the message."""
    mark = getattr(exc, "problem_mark", None)
    field = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "-"
    message = getattr(exc, "problem", None) or str(exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        where = f" that starts at line {context_mark.line + 1}, column {context_mark.column + 1}" if context_mark else ""
        message = f"{message} ({context}{where})"
    return error(source, field, " ".join(f"not valid YAML: {message}".split()))


def _refuse(source: str, problems: list[Problem]) -> NoReturn:
    """Raise ConfigError with every problem; its message is only a summary (the problems
    are printed one by one before it)."""
    count = sum(p.severity == "error" for p in problems)
    raise ConfigError(f"{source}: {count} error(s)", tuple(problems))


def load_mapping(document: Any, source: str) -> tuple[Config, list[Problem]]:
    """Validate a parsed document. Returns (config, warnings) or raises ConfigError."""
    builder = _Builder(source)
    config = builder.build(document)
    problems = builder.problems + (check_config(config) if config else [])
    errors = [p for p in problems if p.severity == "error"]
    if errors or config is None:
        _refuse(source, problems)
    return config, [p for p in problems if p.severity == "warning"]


class _Builder:
    """Turns a parsed YAML document into model objects, noting problems as it goes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append(error(self.source, field, message))

    def build(self, doc: Any) -> Config | None:
        if not isinstance(doc, dict):
            self.fail("-", "the config must be a mapping with settings, trunks, dids and campaigns")
            return None
        for key in doc:
            if key not in SECTIONS:
                self.problems.append(warning(self.source, str(key), f"unknown section (known: {', '.join(SECTIONS)})"))
        settings = self.settings(doc.get("settings") or {})
        trunks = self.trunks(doc.get("trunks"))
        dids = self.dids(doc.get("dids"), settings.default_country, trunks)
        campaigns = self.campaigns(doc.get("campaigns"), settings.default_country)
        servers = self.servers(doc.get("asterisk_servers") or [])
        return Config(settings, trunks, dids, campaigns, servers, self.source)

    # -- sections -----------------------------------------------------------------

    def settings(self, raw: Any) -> Settings:
        if not isinstance(raw, dict):
            self.fail("settings", "must be a mapping")
            return Settings()
        known = {f.name for f in fields(Settings)} | {"listen"}
        self.unknown_keys("settings", raw, known)
        values = {k: raw[k] for k in raw if k in known and k not in ("timeouts", "listen")}
        listen = raw.get("listen") or {}
        written = {"host": "settings.host", "port": "settings.port"}   # field names as written
        if isinstance(listen, dict):
            values.update({k: listen[k] for k in ("host", "port") if k in listen})
            written.update({k: f"settings.listen.{k}" for k in ("host", "port") if k in listen})
        else:
            self.fail("settings.listen", "must be a mapping with host and port")
        values["timeouts"] = self.timeouts(raw.get("timeouts") or {})
        settings = self.typed(Settings, "settings", values, written)
        if settings.unknown_health not in UNKNOWN_HEALTH_POLICIES:
            self.fail("settings.unknown_health", f"must be one of {UNKNOWN_HEALTH_POLICIES}")
        for name in ("trunk_fail_after", "trunk_recover_after", "breaker_cool_off"):
            if getattr(settings, name) < 0:
                self.fail(f"settings.{name}", "must be zero or more seconds")
        if not settings.spool_fsync_interval > 0:   # also refuses NaN
            self.fail("settings.spool_fsync_interval", "must be a positive number of seconds")
        if not 0 <= settings.port <= 65535:
            self.fail(written["port"], f"{settings.port} is not a TCP port: use 0..65535 (0 = any free port)")
        if settings.breaker_failures < 1:
            self.fail("settings.breaker_failures", "must be 1 or more")
        if not _DIGITS.fullmatch(str(settings.default_country)):
            self.fail("settings.default_country", "must be a country calling code, digits 0-9 only (1, 44, 91)")
        return settings

    def timeouts(self, raw: Any) -> Timeouts:
        if not isinstance(raw, dict):
            self.fail("settings.timeouts", "must be a mapping")
            return Timeouts()
        self.unknown_keys("settings.timeouts", raw, {f.name for f in fields(Timeouts)})
        timeouts = self.typed(Timeouts, "settings.timeouts", raw)
        positive = True
        for f in fields(Timeouts):
            if not getattr(timeouts, f.name) > 0:   # also refuses NaN
                self.fail(f"settings.timeouts.{f.name}", "must be a positive number of seconds")
                positive = False
        if positive and timeouts.session < timeouts.env_read + timeouts.reply:
            self.fail("settings.timeouts.session",
                      f"{timeouts.session:g} s is shorter than env_read + reply "
                      f"({timeouts.env_read:g} + {timeouts.reply:g} s): a session could not even read one reply")
        return timeouts

    def trunks(self, raw: Any) -> dict[str, Trunk]:
        trunks: dict[str, Trunk] = {}
        for where, item in self.items("trunks", raw):
            trunk = self.typed(Trunk, where, item)
            if trunk is None:
                continue
            if not _NAME.match(trunk.name):
                self.fail(f"{where}.name", f"{trunk.name!r}: use letters, digits, _ and -")
            if trunk.name in trunks:
                self.fail(f"{where}.name", f"duplicate trunk name {trunk.name!r}")
            if not isinstance(trunk.dial, str):
                self.fail(f"{where}.dial", "a Dial() string is required, e.g. PJSIP/{number}@trunk-a")
                continue
            if trunk.dial.count("{number}") != 1:
                self.fail(f"{where}.dial", "must contain {number} exactly once, e.g. PJSIP/{number}@trunk-a")
            for char, why in _DIAL_FORBIDDEN:
                if char in trunk.dial:
                    self.fail(f"{where}.dial", f"must not contain {char!r}: {why}")
            self.choice(f"{where}.callerid_format", trunk.callerid_format, CALLERID_FORMATS)
            self.choice(f"{where}.admin_state", trunk.admin_state, TRUNK_STATES)
            self.choice(f"{where}.health", trunk.health, HEALTH_SOURCES)
            trunks.setdefault(trunk.name, trunk)
        if not trunks:
            self.fail("trunks", "at least one trunk is needed")
        return trunks

    def dids(self, raw: Any, country: str, trunks: dict[str, Trunk]) -> dict[str, Did]:
        dids: dict[str, Did] = {}
        for where, item in self.items("dids", raw):
            number = self.number(f"{where}.number", item.get("number"), country)
            trunk = item.get("trunk")
            self.unknown_keys(where, item, {"number", "trunk"})
            if trunk not in trunks:
                self.fail(f"{where}.trunk", f"unknown trunk {trunk!r}")
            if number is None:
                continue
            if number in dids:
                other = dids[number].trunk
                what = f"on two trunks ({other} and {trunk})" if other != trunk else "listed twice"
                self.fail(f"{where}.number", f"DID {number} is {what}")
                continue
            dids[number] = Did(number, str(trunk))
        if not dids:
            self.fail("dids", "at least one DID is needed")
        return dids

    def campaigns(self, raw: Any, country: str) -> dict[str, Campaign]:
        campaigns: dict[str, Campaign] = {}
        for where, item in self.items("campaigns", raw):
            self.unknown_keys(where, item, {"name", "primary", "dynamic", "fallback", "dynamic_did_enabled"})
            name = item.get("name")
            if not isinstance(name, str) or not name:
                self.fail(f"{where}.name", "a campaign needs a name")
                continue
            if name in campaigns:
                self.fail(f"{where}.name", f"duplicate campaign name {name!r}")
                continue
            if not _NAME.match(name):
                self.fail(f"{where}.name", f"{name!r}: use letters, digits, _ and - (it becomes a dialplan variable name)")
                continue
            primary = self.number(f"{where}.primary", item.get("primary"), country)
            if primary is None:
                continue
            toggle = item.get("dynamic_did_enabled")
            if toggle is not None and not isinstance(toggle, bool):
                self.fail(f"{where}.dynamic_did_enabled", "must be true, false or absent")
                toggle = None
            campaigns[name] = Campaign(
                name, primary,
                self.numbers(f"{where}.dynamic", item.get("dynamic"), country),
                self.numbers(f"{where}.fallback", item.get("fallback"), country),
                toggle,
            )
        if not campaigns:
            self.fail("campaigns", "at least one campaign is needed")
        return campaigns

    def servers(self, raw: Any) -> tuple[AmiServer, ...]:
        servers: list[AmiServer] = []
        for where, item in self.items("asterisk_servers", raw, required=False):
            item = dict(item)
            secret_env = item.pop("secret_env", None)
            if secret_env:
                if secret_env not in os.environ:
                    self.fail(f"{where}.secret_env", f"environment variable {secret_env} is not set")
                item["secret"] = os.environ.get(secret_env, "")
            item["agi_peers"] = tuple(item.get("agi_peers") or ())
            server = self.typed(AmiServer, where, item)
            if server is not None:
                if any(s.name == server.name for s in servers):
                    self.fail(f"{where}.name", f"duplicate server name {server.name!r}")
                servers.append(server)
        return tuple(servers)

    # -- helpers ------------------------------------------------------------------

    def items(self, section: str, raw: Any, required: bool = True):
        if raw is None and not required:
            return
        if not isinstance(raw, list):
            self.fail(section, "must be a list")
            return
        for index, item in enumerate(raw):
            where = f"{section}[{index}]"
            if isinstance(item, dict):
                yield where, item
            else:
                self.fail(where, "must be a mapping")

    def typed(self, cls, where: str, values: dict, written: dict[str, str] | None = None):
        """Build ``cls(**values)`` coercing scalars to the field types; note bad ones.

        ``written`` maps a field name to its path as written in the document (default
        ``where.name``), for fields read from elsewhere (``settings.listen.port``).
        """
        clean = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            value = values[f.name]
            kind = str(f.type)
            try:
                clean[f.name] = _coerce(value, kind)
            except (TypeError, ValueError):
                self.fail((written or {}).get(f.name, f"{where}.{f.name}"), f"expected {kind}, got {value!r}")
        try:
            return cls(**clean)
        except TypeError as exc:
            missing = str(exc).split("argument")[-1].strip(": ")
            self.fail(where, f"missing required field(s) {missing}")
            return None

    def unknown_keys(self, where: str, raw: dict, known: set[str]) -> None:
        for key in raw:
            if key not in known:
                self.problems.append(warning(self.source, f"{where}.{key}", "unknown key, ignored"))

    def choice(self, where: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.fail(where, f"{value!r} is not one of {', '.join(allowed)}")

    def number(self, where: str, raw: Any, country: str) -> str | None:
        if raw is None or raw == "":
            self.fail(where, "a phone number is required")
            return None
        try:
            return to_e164(str(raw), country)
        except NumberError as exc:
            self.fail(where, str(exc))
            return None

    def numbers(self, where: str, raw: Any, country: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raw = [raw]
        found = (self.number(f"{where}[{i}]", n, country) for i, n in enumerate(raw))
        return tuple(n for n in found if n is not None)


def _coerce(value: Any, kind: str) -> Any:
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ValueError(value)
    if kind.startswith("int"):
        if isinstance(value, bool):
            raise ValueError(value)
        return int(value)
    if kind.startswith("float"):
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if kind.startswith("str") and value is not None:
        if isinstance(value, (dict, list)):
            raise ValueError(value)
        return str(value)
    return value


def parse_ami_url(url: str) -> AmiServer:
    """``ami://user:secret@host:port/name`` (port 5038 and name = host by default).

    User and secret are percent-decoded, so a secret may hold any character.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "ami" or not parts.hostname or not parts.username:
        _refuse("--ami", [error("--ami", url.split("@")[-1], "want ami://user:secret@host:port/name")])
    try:
        port = parts.port or 5038
    except ValueError:
        _refuse("--ami", [error("--ami", url.split("@")[-1], "the port must be a number")])
    name = parts.path.strip("/") or parts.hostname
    return AmiServer(name=name, host=parts.hostname, port=port, username=unquote(parts.username),
                     secret=unquote(parts.password or ""))
