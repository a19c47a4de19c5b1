"""SQL lives in ``.sql`` files, found by name (the procrastinate way).

Layout, under the SQL directory::

    migrations/NNN_name.sql   one schema step each, applied in NNN order
    queries/<name>.sql        every statement the code runs, by name

The directory is ``$DIDROUTER_SQL_DIR`` when set, else ``<repo>/sql`` next to the
``agi_server`` package. Files are read once and cached (keyed by full path, so a test
that points the variable elsewhere sees its own files). A missing directory or file
raises :class:`~agi_server.errors.StoreError` naming the path.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import agi_server
from agi_server.errors import StoreError

ENV_VAR = "DIDROUTER_SQL_DIR"
_MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")


def sql_dir() -> Path:
    """The SQL directory in effect now (the environment is read on every call)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(agi_server.__file__).resolve().parent.parent / "sql"


@functools.lru_cache(maxsize=256)
def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot read SQL file {path}: {exc.strerror or exc}") from exc


def query(name: str) -> str:
    """The text of ``queries/<name>.sql``; StoreError if it does not exist."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise StoreError(f"bad SQL query name {name!r}")
    return _read(sql_dir() / "queries" / f"{name}.sql")


def migrations() -> list[tuple[int, str, str]]:
    """Every migration as ``(version, name, text)``, ascending by version.

    ``name`` is the file stem (``001_cdr_attempts``). Files not shaped ``NNN_name.sql``
    are ignored; two files with one version number are an error, since the order
    between them would be undefined.
    """
    directory = sql_dir() / "migrations"
    if not directory.is_dir():
        raise StoreError(f"SQL migrations directory not found: {directory}")
    found: dict[int, tuple[int, str, str]] = {}
    for path in sorted(directory.iterdir()):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(
                f"two migrations with version {version}: {found[version][1]} and {path.stem}"
            )
        found[version] = (version, path.stem, _read(path))
    return [found[v] for v in sorted(found)]


def clear_cache() -> None:
    """Forget cached file contents (tests that rewrite SQL files use this)."""
    _read.cache_clear()
