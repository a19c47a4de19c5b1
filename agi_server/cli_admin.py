"""Admin commands of the ``didrouter`` CLI: ``config``, ``campaigns`` and ``dynamic``.

:func:`register` adds them to the top-level subparsers and returns their handlers by
top-level command name; each handler takes the parsed namespace and returns an exit
code. Every command takes ``--dsn`` (env DIDROUTER_DSN) and ``--json``: JSON on stdout
for scripts, otherwise readable tables; warnings go to stderr. Errors are raised
(ConfigError, DidrouterError) for ``cli.main`` to print.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, Callable

from agi_server import admin, texttable
from agi_server.errors import DidrouterError

Handler = Callable[[argparse.Namespace], int]


def _option(parser: argparse.ArgumentParser, flag: str, env: str, help: str, **kwargs) -> None:
    """Add ``flag`` whose default comes from environment variable ``env`` (as cli.py)."""
    default = os.environ.get(env, kwargs.pop("default", None))
    parser.add_argument(flag, default=default, help=f"{help} [env: {env}]", **kwargs)


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give an admin (leaf) command ``--dsn`` and ``--json``; return the parser."""
    _option(parser, "--dsn", "DIDROUTER_DSN", "PostgreSQL DSN of the config database", metavar="DSN")
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    return parser


def register(commands: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add ``config``, ``campaigns`` and ``dynamic`` to ``commands``; return their handlers.

    ``commands`` only needs ``add_parser(name, help=...)`` (no other keyword is passed,
    so a wrapper that adds ``parents`` works). The second-level action is in
    ``args.admin_action``; ``--dsn`` and ``--json`` go after the action.
    """

    config = commands.add_parser("config", help="copy the campaign config between YAML and PostgreSQL")
    actions = config.add_subparsers(dest="admin_action", required=True, metavar="ACTION")
    imp = _common(actions.add_parser("import", help="validate a YAML file and replace the database config with it"))
    imp.add_argument("file", metavar="FILE")
    _common(actions.add_parser("export", help="print the database config as YAML"))

    camp = commands.add_parser("campaigns", help="list, show and edit campaigns in the config database")
    actions = camp.add_subparsers(dest="admin_action", required=True, metavar="ACTION")
    _common(actions.add_parser("list", help="one line per campaign"))
    show = _common(actions.add_parser("show", help="a campaign's DIDs, roles and trunks"))
    show.add_argument("name", metavar="NAME")
    add = _common(actions.add_parser("add-did", help="add a dynamic or fallback DID"))
    add.add_argument("name", metavar="NAME", help="campaign")
    add.add_argument("number", metavar="NUMBER", help="DID, e.g. +15557654322")
    add.add_argument("--role", required=True, choices=admin.ROLES,
                     help="dynamic: rotated with the primary (same trunk); fallback: used while the primary's trunk is down")
    add.add_argument("--trunk", help="trunk of a DID not yet in the config")
    for action, text in (("remove-did", "take a dynamic or fallback DID out"),
                         ("set-primary", "make a DID the primary (the old one becomes the first dynamic DID if on "
                                         "the same trunk, else it leaves the campaign)")):
        parser = _common(actions.add_parser(action, help=text))
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("number", metavar="NUMBER")
    primary = actions.choices["set-primary"]
    primary.add_argument("--drop-old", action="store_true",
                         help="take the old primary out of the campaign even if it is on the same trunk")

    dyn = _common(commands.add_parser("dynamic", help="turn dynamic DID rotation on or off, globally or per campaign"))
    dyn.add_argument("state", choices=tuple(admin.TOGGLES), help="inherit: the campaign follows the global setting")
    dyn.add_argument("--campaign", metavar="NAME", help="set it for this campaign only")
    dyn.set_defaults(admin_action="set")

    return {
        "config": _dispatch({"import": cmd_config_import, "export": cmd_config_export}),
        "campaigns": _dispatch({
            "list": cmd_campaigns_list, "show": cmd_campaigns_show, "add-did": cmd_add_did,
            "remove-did": cmd_remove_did, "set-primary": cmd_set_primary,
        }),
        "dynamic": cmd_dynamic,
    }


def _dispatch(table: dict[str, Handler]) -> Handler:
    def handle(args: argparse.Namespace) -> int:
        return table[args.admin_action](args)
    return handle


def _dsn(args: argparse.Namespace) -> str:
    if not args.dsn:
        raise DidrouterError(f"{args.command} needs --dsn or DIDROUTER_DSN")
    return args.dsn


# -- handlers ------------------------------------------------------------------------


def cmd_config_import(args: argparse.Namespace) -> int:
    from agi_server.config.db import import_config
    from agi_server.config.load import load_file

    config, warnings = load_file(args.file)
    warnings += asyncio.run(import_config(_dsn(args), config))
    counts = {"trunks": len(config.trunks), "dids": len(config.dids), "campaigns": len(config.campaigns)}
    if args.json:
        return _print_json({"imported": args.file, **counts, "warnings": [str(w) for w in warnings]})
    _print_warnings([str(w) for w in warnings])
    print(f"imported {args.file}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def cmd_config_export(args: argparse.Namespace) -> int:
    from agi_server.config.db import load_db
    from agi_server.config.export import dump_json, dump_yaml, to_document

    config, warnings = asyncio.run(load_db(_dsn(args)))
    document = to_document(config)
    if args.json:
        print(dump_json(document))
        return 0
    _print_warnings([str(w) for w in warnings])
    print(dump_yaml(document, header="didrouter config exported from the database"), end="")
    return 0


def cmd_campaigns_list(args: argparse.Namespace) -> int:
    rows = asyncio.run(admin.list_campaigns(_dsn(args)))
    if args.json:
        return _print_json(rows)
    print(table(("CAMPAIGN", "PRIMARY", "TRUNK", "DYNAMIC", "FALLBACK", "ROTATION"), [
        (r["name"], r["primary"], r["trunk"], r["dynamic"], r["fallback"], _rotation(r))
        for r in rows]))
    return 0


def cmd_campaigns_show(args: argparse.Namespace) -> int:
    view = asyncio.run(_show_with_health(_dsn(args), args.name))
    if args.json:
        return _print_json(view)
    print(format_campaign(view))
    return 0


async def _show_with_health(dsn: str, name: str) -> dict:
    """The campaign, with each trunk's last recorded health on every server
    (table trunk_state_change, as ``didrouter trunks`` shows it)."""
    from agi_server import trunks
    from agi_server.errors import StoreError

    try:
        rows = await trunks.current(dsn)
    except StoreError:
        rows = []                                   # no health recorded yet: show "-"
    by_trunk: dict[str, list[str]] = {}
    for row in rows:
        by_trunk.setdefault(row["trunk"], []).append(f"{row['server']}: {row['state']}")
    return await admin.show_campaign(dsn, name, lambda trunk: ", ".join(by_trunk.get(trunk, [])) or None)


def cmd_add_did(args: argparse.Namespace) -> int:
    return _edited(args, admin.add_did(_dsn(args), args.name, args.number, args.role, args.trunk))


def cmd_remove_did(args: argparse.Namespace) -> int:
    return _edited(args, admin.remove_did(_dsn(args), args.name, args.number))


def cmd_set_primary(args: argparse.Namespace) -> int:
    return _edited(args, admin.set_primary(_dsn(args), args.name, args.number, args.drop_old))


def cmd_dynamic(args: argparse.Namespace) -> int:
    result = asyncio.run(admin.set_dynamic(_dsn(args), args.state, args.campaign))
    if args.json:
        return _print_json(result)
    _print_warnings(result["warnings"])
    print(f"dynamic DIDs globally: {'on' if result['global'] else 'off'}")
    if result["campaign"]:
        print(format_campaign(result["campaign"]))
    return 0


def _edited(args: argparse.Namespace, edit: Any) -> int:
    result = asyncio.run(edit)
    if args.json:
        return _print_json(result)
    _print_warnings(result["warnings"])
    if result.get("message"):
        print(result["message"])
    print(format_campaign(result["campaign"]))
    return 0


# -- formatting ----------------------------------------------------------------------


def format_campaign(view: dict[str, Any]) -> str:
    """A campaign view (see :func:`admin.campaign_view`) as a heading and a table."""
    head = f"campaign {view['name']}: dynamic DIDs {_rotation(view)}"
    rows = [(d["role"], d["position"], d["number"], d["trunk"], d["trunk_admin_state"],
             d["trunk_health"] or "-") for d in view["dids"]]
    return head + "\n" + table(("ROLE", "#", "NUMBER", "TRUNK", "ADMIN", "HEALTH"), rows)


def _rotation(view: dict[str, Any]) -> str:
    effective = "on" if view["dynamic_effective"] else "off"
    setting = view["dynamic_did_enabled"]
    return f"{effective} (inherit)" if setting == "inherit" else f"{effective} (campaign: {setting})"


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    """Left-aligned columns separated by two spaces."""
    return texttable.render(headers, rows)


def _print_json(data: Any) -> int:
    from agi_server.config.export import dump_json

    print(dump_json(data))
    return 0


def _print_warnings(warnings: list[str]) -> None:
    for text in warnings:
        print(text, file=sys.stderr)
