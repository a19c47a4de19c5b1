"""Migrations: the SQL files load, apply in order, are idempotent and safe to race."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from agi_server import sqlfiles
from agi_server.errors import StoreError
from agi_server.migrate import apply_migrations
from tests.conftest import ADMIN_DSN, with_database

EXPECTED_COLUMNS = {
    "server": "text", "uniqueid": "text", "attempt": "integer", "campaign": "text",
    "destination": "text", "did": "text", "trunk": "text", "role": "text",
    "status": "text", "reason": "text", "decided_at": "timestamp with time zone",
    "channel": "text", "peer": "text", "dialstatus": "text", "hangupcause": "integer",
    "answered_seconds": "numeric", "dialed_seconds": "numeric", "outcome_fault": "text", "outcome_source": "text",
    "outcome_at": "timestamp with time zone", "inserted_at": "timestamp with time zone",
    "outcome_trunk": "text",
}


@pytest.fixture
async def empty_db():
    """A database with nothing in it, dropped afterwards."""
    name = f"didrouter_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"', timeout=30)
        yield with_database(ADMIN_DSN, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)', timeout=30)
    finally:
        await admin.close(timeout=10)


def test_migrations_are_numbered_and_ordered():
    found = sqlfiles.migrations()
    versions = [version for version, _, _ in found]
    assert versions == sorted(versions) and versions[0] == 1
    assert found[0][1] == "001_cdr_attempts"
    assert "CREATE TABLE cdr_attempt" in found[0][2]


async def test_apply_then_idempotent(empty_db):
    names = [name for _, name, _ in sqlfiles.migrations()]
    assert await apply_migrations(empty_db) == names
    assert await apply_migrations(empty_db) == []
    conn = await asyncpg.connect(empty_db, timeout=10)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
        assert [r["name"] for r in rows] == names
        columns = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'cdr_attempt'")
        assert {r["column_name"]: r["data_type"] for r in columns} == EXPECTED_COLUMNS
        key = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'cdr_attempt'::regclass AND contype = 'p'")
        assert key == "PRIMARY KEY (server, uniqueid, attempt)"
        indexes = {r["indexdef"].split(" USING btree ")[1] for r in await conn.fetch(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'cdr_attempt'")}
        assert {"(did, decided_at)", "(campaign, decided_at)"} <= indexes
    finally:
        await conn.close(timeout=10)


async def test_concurrent_migrators_apply_once(empty_db):
    results = await asyncio.gather(*(apply_migrations(empty_db) for _ in range(4)))
    names = [name for _, name, _ in sqlfiles.migrations()]
    assert sorted(results, key=len) == [[], [], [], names]


async def test_unreachable_database_is_a_store_error(dead_dsn):
    with pytest.raises(StoreError, match="cannot connect"):
        await apply_migrations(dead_dsn)


def test_sql_dir_override_and_missing_files(tmp_path, monkeypatch):
    (tmp_path / "queries").mkdir()
    (tmp_path / "migrations").mkdir()
    (tmp_path / "queries" / "hello.sql").write_text("SELECT 1")
    (tmp_path / "migrations" / "002_b.sql").write_text("-- b")
    (tmp_path / "migrations" / "001_a.sql").write_text("-- a")
    (tmp_path / "migrations" / "README.txt").write_text("ignored")
    monkeypatch.setenv(sqlfiles.ENV_VAR, str(tmp_path))
    assert sqlfiles.query("hello") == "SELECT 1"
    assert sqlfiles.migrations() == [(1, "001_a", "-- a"), (2, "002_b", "-- b")]
    with pytest.raises(StoreError, match="nope.sql"):
        sqlfiles.query("nope")
    (tmp_path / "migrations" / "0002_c.sql").write_text("-- c")
    with pytest.raises(StoreError, match="two migrations with version 2"):
        sqlfiles.migrations()
    monkeypatch.setenv(sqlfiles.ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(StoreError, match="not found"):
        sqlfiles.migrations()


def test_every_query_file_exists():
    for name in ("insert_attempts", "schema_migrations_create", "schema_migrations_applied",
                 "schema_migrations_insert", "migrate_lock", "migrate_unlock"):
        assert sqlfiles.query(name).strip()
