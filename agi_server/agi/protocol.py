"""The FastAGI wire protocol, sans IO: bytes in, events out; commands out as bytes.

No asyncio here. :class:`AgiParser` is fed whatever bytes arrived (any split, one
byte at a time is fine) and yields events. It has two phases, as the protocol does:

1. **Environment.** Asterisk opens with ``agi_key: value`` lines and one blank line
   (``res/res_agi.c`` ``setup_env``). Lines are split once on the first ``:`` and
   one following space; unset caller IDs read ``unknown``; ``agi_accountcode: ``
   has an empty value. ``agi_network_script`` carries the path and query string.
2. **Replies.** After each command Asterisk answers one line ``200 result=N
   (data)``, or ``510``/``511``, or ``100 result=0 Trying...`` before the final
   reply, or a multi-line ``520-`` ... ``520 End of proper usage.`` block. When the
   channel hangs up Asterisk writes an unsolicited ``HANGUP`` line between replies
   (and again after we close); it is an event of its own, the real reply follows.

EOF is an event too. Every limit is a named constant; going over one is a
:class:`ProtocolError`, never unbounded buffering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from agi_server.errors import ProtocolError

# Asterisk's own AGI buffer is AGI_BUF_LEN = 2048 bytes (res_agi.c); a command line
# longer than that is cut by Asterisk, so we refuse to build one.
MAX_COMMAND_BYTES = 2047
# Env lines carry channel names, caller names and the request URL; Asterisk formats
# each into a 2048-byte-ish buffer. We allow twice that before calling it garbage.
MAX_LINE_BYTES = 4096
# A real env block has ~25 lines plus agi_arg_N (Asterisk caps args at 128).
MAX_ENV_LINES = 200
# The 520 usage text is ~20 lines in Asterisk 22.
MAX_USAGE_LINES = 200

_REPLY = re.compile(r"^(\d{3})([ -])(.*)$")
_RESULT = re.compile(r"^result=(-?\d+)(?: \((.*)\))?(?: (.*))?$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_().:,-]+$")


# -- events -----------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """What the dialplan asked for: ``agi://host:port/<route>?<query>`` plus ``agi_arg_N``.

    ``repeated`` names query parameters given more than once (the last value is in
    ``query``): a route refuses them rather than guess which one was meant.
    """

    route: str
    query: dict[str, str]
    args: tuple[str, ...]
    repeated: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Environment:
    """The whole env block, in order, and the request parsed from it."""

    values: dict[str, str]
    request: Request

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)


@dataclass(frozen=True)
class Reply:
    """One final reply to a command. ``result`` and ``data`` are set for code 200."""

    code: int
    text: str
    result: int | None = None
    data: str | None = None
    usage: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass(frozen=True)
class Progress:
    """``100 result=0 Trying...``: Asterisk accepted the command; the final reply follows."""

    text: str


@dataclass(frozen=True)
class Hangup:
    """Unsolicited ``HANGUP``: the channel hung up. Commands in flight still get replies."""


@dataclass(frozen=True)
class Closed:
    """Asterisk closed its side. ``clean`` is False when a line was cut short."""

    clean: bool


# -- parser -----------------------------------------------------------------------

class AgiParser:
    """Incremental parser for the Asterisk side of a FastAGI session.

    Contract: call :meth:`feed` with each chunk read (``b""`` at EOF), then drain
    :meth:`events`. Raises :class:`ProtocolError` on garbage or an exceeded limit;
    after that, the session should be dropped.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._env: dict[str, str] | None = {}
        self._usage: list[str] | None = None
        self._events: list[object] = []
        self._eof = False

    @property
    def in_environment(self) -> bool:
        return self._env is not None

    def feed(self, data: bytes) -> None:
        if self._eof:
            return
        if not data:
            self._eof = True
            self._finish()
            return
        self._buffer += data
        self._split_lines()

    def events(self) -> list[object]:
        out, self._events = self._events, []
        return out

    def _split_lines(self) -> None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    raise ProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
                return
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if len(raw) > MAX_LINE_BYTES:
                raise ProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
            self._line(_decode(raw.rstrip(b"\r")))

    def _finish(self) -> None:
        truncated = bool(self._buffer)
        if self._env == {} and not truncated:
            # Connected and closed without a byte: a port probe (health check).
            self._events.append(Closed(clean=True))
            return
        if self._env is not None:
            raise ProtocolError(
                f"environment truncated: EOF after {len(self._env)} line(s), before the blank line"
            )
        self._events.append(Closed(clean=not truncated and self._usage is None))

    def _line(self, line: str) -> None:
        if self._env is not None:
            self._env_line(line)
        elif self._usage is not None:
            self._usage_line(line)
        else:
            self._reply_line(line)

    def _env_line(self, line: str) -> None:
        assert self._env is not None
        if line == "":
            if not self._env:
                raise ProtocolError("empty environment: blank line before any agi_ variable")
            env, self._env = self._env, None
            self._events.append(Environment(env, parse_request(env)))
            return
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not key.isprintable() or " " in key:
            raise ProtocolError(f"not an AGI environment line: {line[:80]!r}")
        if len(self._env) >= MAX_ENV_LINES:
            raise ProtocolError(f"environment longer than {MAX_ENV_LINES} lines")
        self._env[key] = value[1:] if value.startswith(" ") else value

    def _reply_line(self, line: str) -> None:
        if line == "HANGUP":
            self._events.append(Hangup())
            return
        match = _REPLY.match(line)
        if not match:
            raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
        code, dash, text = int(match[1]), match[2], match[3]
        if dash == "-":                       # start of a 520 usage block
            self._usage = [text]
        elif code == 100:
            self._events.append(Progress(text))
        else:
            self._events.append(_reply(code, text))

    def _usage_line(self, line: str) -> None:
        assert self._usage is not None
        if line.startswith("520 "):           # "520 End of proper usage."
            usage, self._usage = tuple(self._usage), None
            self._events.append(Reply(520, usage[0], usage=usage[1:]))
            return
        if len(self._usage) >= MAX_USAGE_LINES:
            raise ProtocolError(f"520 usage block longer than {MAX_USAGE_LINES} lines")
        self._usage.append(line)


def _reply(code: int, text: str) -> Reply:
    match = _RESULT.match(text) if code == 200 else None
    if match:
        return Reply(code, text, int(match[1]), match[2])
    return Reply(code, text)


def _decode(raw: bytes) -> str:
    # Caller names arrive as raw UTF-8; anything else must not kill the session.
    return raw.decode("utf-8", errors="replace")


# -- request ----------------------------------------------------------------------

def parse_request(env: dict[str, str]) -> Request:
    """Route, percent-decoded query and positional args from an env block.

    ``agi_network_script`` is ``select?campaign=spring`` for
    ``AGI(agi://host:4573/select?campaign=spring)``; without it (plain AGI) the
    path of ``agi_request`` is used.
    """
    script = env.get("agi_network_script") or env.get("agi_request", "")
    if "://" in script:  # agi://host:port/path?query
        script = script.split("://", 1)[1].partition("/")[2]
    path, _, query = script.partition("?")
    route = path.strip("/").rsplit("/", 1)[-1]
    pairs = parse_query(query)
    args = []
    for index in range(1, MAX_ENV_LINES):
        key = f"agi_arg_{index}"
        if key not in env:
            break
        args.append(env[key])
    names = [name for name, _ in pairs]
    repeated = frozenset(name for name in names if names.count(name) > 1)
    return Request(route, dict(pairs), tuple(args), repeated)


def parse_query(query: str) -> list[tuple[str, str]]:
    """``a=1&b=%2B1`` -> pairs, percent-decoded.

    Not HTML-form decoding: a literal ``+`` stays a ``+`` (a dialplan writes
    ``number=+15551230001`` as it is; Asterisk does not encode query strings).
    """
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


# -- commands ---------------------------------------------------------------------

def set_variable(name: str, value: str) -> bytes:
    """``SET VARIABLE name "value"`` as bytes, value quoted and escaped.

    Asterisk's ``parse_args`` (res_agi.c) treats ``\\`` as an escape and ``"`` as
    a quote toggle, so both are escaped. CR and LF would end the command line early
    and cannot be escaped: they are refused, as is a line over 2047 bytes.
    """
    if not _VARIABLE_NAME.match(name):
        raise ProtocolError(f"bad channel variable name {name!r}")
    if "\r" in value or "\n" in value:
        raise ProtocolError(f"value for {name} contains CR or LF")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return _command(f'SET VARIABLE {name} "{escaped}"')


def get_variable(name: str) -> bytes:
    """``GET VARIABLE name``; the value comes back as ``200 result=1 (value)``."""
    if not _VARIABLE_NAME.match(name):
        raise ProtocolError(f"bad channel variable name {name!r}")
    return _command(f"GET VARIABLE {name}")


def _command(text: str) -> bytes:
    line = text.encode("utf-8") + b"\n"
    if len(line) > MAX_COMMAND_BYTES:
        raise ProtocolError(f"command of {len(line)} bytes is over Asterisk's {MAX_COMMAND_BYTES}")
    return line
