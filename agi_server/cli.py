"""The ``didrouter`` command line. Every option has an environment twin (shown in --help)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from agi_server import __version__
from agi_server.errors import ConfigError, DidrouterError

DEFAULT_CONFIG = "config/didrouter.yaml"


def _option(parser: argparse.ArgumentParser, flag: str, env: str, help: str, **kwargs) -> None:
    """Add ``flag`` whose default comes from environment variable ``env``."""
    default = os.environ.get(env, kwargs.pop("default", None))
    parser.add_argument(flag, default=default, help=f"{help} [env: {env}]", **kwargs)


def _config_option(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--config", "DIDROUTER_CONFIG", f"YAML config file (default {DEFAULT_CONFIG})",
            default=DEFAULT_CONFIG, metavar="FILE")


def _dsn_option(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--dsn", "DIDROUTER_DSN", "PostgreSQL DSN, e.g. postgresql://user@host/db", metavar="DSN")


class _Commands:
    """Subparsers that all take the common options (logging)."""

    def __init__(self, subparsers, common: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._common = common

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._subparsers.add_parser(name, parents=[self._common], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="didrouter", description="Caller-ID (DID) and trunk selection for Asterisk, over FastAGI.")
    parser.add_argument("--version", action="version", version=f"didrouter {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    _option(common, "--log-format", "DIDROUTER_LOG_FORMAT", "log format: auto, json or console (default auto)",
            default="auto", choices=("auto", "json", "console"))
    _option(common, "--log-level", "DIDROUTER_LOG_LEVEL", "log level (default info)", default="info")
    commands = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

    serve = commands.add_parser("serve", help="run the FastAGI server")
    _config_option(serve)
    _option(serve, "--host", "DIDROUTER_HOST", "listen address (default: settings.listen.host)")
    _option(serve, "--port", "DIDROUTER_PORT", "listen port (default: settings.listen.port, 4573)", type=int)
    _dsn_option(serve)
    _option(serve, "--spool", "DIDROUTER_SPOOL", "CDR journal file (default: settings.spool)", metavar="FILE")
    _option(serve, "--config-source", "DIDROUTER_CONFIG_SOURCE",
            "read campaigns from the YAML --config (file) or from PostgreSQL at --dsn (database); default file",
            default="file", choices=("file", "database"))
    _option(serve, "--pidfile", "DIDROUTER_PIDFILE", "write the process id here (for kill -HUP to reload)", metavar="FILE")
    _option(serve, "--ami", "DIDROUTER_AMI",
            "Asterisk AMI to watch, replacing the config's asterisk_servers: space-separated "
            "ami://user:secret@host:port/name URLs", metavar="URLS")
    _option(serve, "--workers", "DIDROUTER_WORKERS", "processes sharing the port, e.g. one per core (default 1)",
            type=int, default=1)

    check = commands.add_parser("check-config", help="validate a config; print every error and warning")
    check.add_argument("file", nargs="?", help="config file (default: --config)")
    _config_option(check)

    migrate = commands.add_parser("migrate", help="apply the SQL migrations in sql/migrations to PostgreSQL")
    _dsn_option(migrate)

    trunks = commands.add_parser("trunks", help="current health of every trunk on every Asterisk server (from PostgreSQL)")
    _dsn_option(trunks)
    _config_option(trunks)
    trunks.add_argument("--json", action="store_true", help="JSON for scripts")

    health = commands.add_parser("healthcheck", help="exit 0 if the FastAGI port accepts a connection (for Docker)")
    _option(health, "--host", "DIDROUTER_HOST", "address to probe (default 127.0.0.1)", default="127.0.0.1")
    _option(health, "--port", "DIDROUTER_PORT", "port to probe (default 4573)", type=int, default=4573)

    from agi_server import cli_admin, cli_report

    COMMANDS.update(cli_admin.register(commands))
    COMMANDS.update(cli_report.register(commands))

    globals_ = commands.add_parser("dialplan-globals", help="print [globals] with each campaign's static primary, for AGISTATUS=FAILURE")
    _config_option(globals_)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from agi_server import logs

    logs.configure(args.log_format, args.log_level)
    try:
        _check_default_config(args)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"didrouter: {exc}", file=sys.stderr)
        return 2
    except DidrouterError as exc:
        print(f"didrouter: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _check_default_config(args: argparse.Namespace) -> None:
    """A missing *default* config file gets a hint, not just "No such file"."""
    uses_file = getattr(args, "config", None) == DEFAULT_CONFIG and not getattr(args, "file", None)
    if uses_file and getattr(args, "config_source", "file") == "file" and args.command != "trunks" \
            and not os.path.exists(DEFAULT_CONFIG):
        raise DidrouterError(
            f"no config at {DEFAULT_CONFIG}: pass --config FILE or set DIDROUTER_CONFIG "
            "(start from config/didrouter.example.yaml)")


def cmd_serve(args: argparse.Namespace) -> int:
    from agi_server.app import App, Overrides, Worker, run
    from agi_server import workers
    from agi_server.config.load import parse_ami_url
    from agi_server.config.source import DatabaseSource, FileSource

    index, count = workers.parse_worker(os.environ.get(workers.WORKER_ENV))
    if args.config_source == "database":
        if not args.dsn:
            raise DidrouterError("--config-source database needs --dsn or DIDROUTER_DSN")
        source = DatabaseSource(args.dsn)
    else:
        source = FileSource(args.config)
    if int(args.workers) > 1 and count == 1:
        config = asyncio.run(source.load())[0]   # validate first, and learn the listen address
        host = args.host or config.settings.host
        port = int(args.port) if args.port is not None else config.settings.port
        if not port:
            raise DidrouterError("--workers needs a fixed port (the workers share it)")
        return workers.supervise(args.argv, int(args.workers), host, port, args.pidfile)

    async def main() -> None:
        ami = tuple(parse_ami_url(url) for url in (args.ami or "").split()) or None
        overrides = Overrides(args.host, args.port, args.dsn, args.spool, ami)
        app = await App.create(source, overrides, Worker(index, count, workers.inherited_socket()))
        await run(app, args.pidfile if count == 1 else None, supervisor=os.getppid() if count > 1 else None)

    asyncio.run(main())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from agi_server.config.load import load_file

    path = args.file or args.config
    _, warnings = load_file(path)
    for problem in warnings:
        print(problem)
    print(f"{path}: OK ({len(warnings)} warning(s))")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from agi_server.migrate import apply_migrations

    if not args.dsn:
        raise DidrouterError("migrate needs --dsn or DIDROUTER_DSN")
    applied = asyncio.run(apply_migrations(args.dsn))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def cmd_trunks(args: argparse.Namespace) -> int:
    import json

    from agi_server import trunks

    if not args.dsn:
        raise DidrouterError("trunks reads PostgreSQL: give --dsn or DIDROUTER_DSN")
    rows = asyncio.run(trunks.current(args.dsn))
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    print(trunks.table(rows, asyncio.run(_configured_trunks(args))))
    return 0


async def _configured_trunks(args: argparse.Namespace) -> list[str]:
    """Trunk names from the YAML --config if it exists, else from the config tables."""
    from agi_server.config.load import load_file

    if os.path.exists(args.config):
        return sorted(load_file(args.config)[0].trunks)
    from agi_server.config.db import load_db

    try:
        return sorted((await load_db(args.dsn))[0].trunks)
    except DidrouterError:
        return []   # no config in the database either: only what was recorded


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Connect and close without sending: the server logs such a probe at debug level only."""
    import socket

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    try:
        with socket.create_connection((host, int(args.port)), timeout=2.0):
            return 0
    except OSError as exc:
        print(f"didrouter: FastAGI {host}:{args.port} not accepting: {exc}", file=sys.stderr)
        return 1


def cmd_dialplan_globals(args: argparse.Namespace) -> int:
    from agi_server.config.load import load_file
    from agi_server.dialplan import static_globals, static_warnings

    config, _ = load_file(args.config)
    print(static_globals(config), end="")
    for line in static_warnings(config):
        print(f"didrouter: warning: {line}", file=sys.stderr)
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "check-config": cmd_check_config,
    "migrate": cmd_migrate,
    "dialplan-globals": cmd_dialplan_globals,
    "healthcheck": cmd_healthcheck,
    "trunks": cmd_trunks,
}
