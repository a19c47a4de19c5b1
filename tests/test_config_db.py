"""Campaign config in PostgreSQL: schema constraints, import/load/export round trips,
validated admin edits, and the LISTEN/NOTIFY listener. Real PostgreSQL throughout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import asyncpg
import pytest
import yaml

from agi_server import admin
from agi_server.config.db import ConfigListener, import_config, load_db, to_document
from agi_server.config.export import dump_yaml
from agi_server.config.load import load_file, load_mapping
from agi_server.config.model import AmiServer
from agi_server.errors import ConfigError, StoreError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "didrouter.example.yaml"
CONFIG_TABLES = "config_campaign_did, config_campaign, config_did, config_trunk, config_settings"


async def truncate_config(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f"TRUNCATE {CONFIG_TABLES}", timeout=30)
    finally:
        await conn.close(timeout=10)


@pytest.fixture
async def db(pg_dsn):
    """``pg_dsn`` with the config tables emptied."""
    await truncate_config(pg_dsn)
    return pg_dsn


@pytest.fixture
async def example_db(db):
    """``db`` holding the example config."""
    config, _ = load_file(EXAMPLE)
    await import_config(db, config)
    return db


@pytest.fixture
async def conn(db):
    connection = await asyncpg.connect(db, timeout=10)
    yield connection
    await connection.close(timeout=10)


def same(a, b) -> bool:
    """Configs equal apart from where they came from."""
    return dataclasses.replace(a, source="x") == dataclasses.replace(b, source="x")


# -- schema ------------------------------------------------------------------------


async def _trunk(conn, name="t1", dial="PJSIP/{number}@t1", **columns):
    cols = {"name": name, "dial": dial, **columns}
    names = ", ".join(cols)
    marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    await conn.execute(f"INSERT INTO config_trunk ({names}) VALUES ({marks})", *cols.values())


async def test_a_did_cannot_be_on_two_trunks(conn):
    await _trunk(conn, "t1")
    await _trunk(conn, "t2", "PJSIP/{number}@t2")
    await conn.execute("INSERT INTO config_did VALUES ('+15550000001', 't1')")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO config_did VALUES ('+15550000001', 't2')")


async def test_names_are_unique(conn):
    await _trunk(conn, "t1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await _trunk(conn, "t1")
    await conn.execute("INSERT INTO config_did VALUES ('+15550000001', 't1')")
    await conn.execute("INSERT INTO config_campaign VALUES ('c', '+15550000001', NULL)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO config_campaign VALUES ('c', '+15550000001', true)")


@pytest.mark.parametrize("column, value", [
    ("callerid_format", "bogus"), ("admin_state", "maybe"), ("health", "sometimes"),
])
async def test_trunk_enums_are_checked(conn, column, value):
    with pytest.raises(asyncpg.CheckViolationError):
        await _trunk(conn, **{column: value})


@pytest.mark.parametrize("name, dial", [
    ("t1", "PJSIP/trunk"), ("t1", "PJSIP/{number}{number}"), ("bad name", "PJSIP/{number}"),
])
async def test_trunk_name_and_dial_are_checked(conn, name, dial):
    with pytest.raises(asyncpg.CheckViolationError):
        await _trunk(conn, name, dial)


async def test_did_form_references_and_roles_are_checked(conn):
    await _trunk(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO config_did VALUES ('5550000001', 't1')")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO config_did VALUES ('+15550000001', 'nope')")
    await conn.execute("INSERT INTO config_did VALUES ('+15550000001', 't1'), ('+15550000002', 't1')")
    await conn.execute("INSERT INTO config_campaign VALUES ('c', '+15550000001', NULL)")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO config_campaign_did VALUES ('c', '+15550000002', 'primary', 0)")
    await conn.execute("INSERT INTO config_campaign_did VALUES ('c', '+15550000002', 'dynamic', 0)")
    with pytest.raises(asyncpg.UniqueViolationError):  # one role per DID per campaign
        await conn.execute("INSERT INTO config_campaign_did VALUES ('c', '+15550000002', 'fallback', 0)")


async def test_settings_is_one_row_with_checked_values(conn):
    await conn.execute("INSERT INTO config_settings (dynamic_did_enabled) VALUES (true)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO config_settings (dynamic_did_enabled) VALUES (false)")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE config_settings SET default_country = '+1'")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE config_settings SET unknown_health = 'maybe'")


# -- import, load, export ----------------------------------------------------------


async def test_import_then_load_gives_the_same_config(example_db):
    expected, _ = load_file(EXAMPLE)
    loaded, warnings = await load_db(example_db)
    assert loaded.source == "database"
    assert same(loaded, expected)
    assert loaded.campaigns["spring"].dynamic == ("+15557654322", "+15557654323")
    assert all(w.source == "database" for w in warnings)


async def test_yaml_db_yaml_round_trip(example_db):
    expected, _ = load_file(EXAMPLE)
    loaded, _ = await load_db(example_db)
    text = dump_yaml(to_document(loaded))
    again, _ = load_mapping(yaml.safe_load(text), "export.yaml")
    assert same(again, expected)


def same_but_dsn(a, b) -> bool:
    """Configs equal apart from where they came from and ``settings.dsn`` (never stored)."""
    return same(dataclasses.replace(a, settings=dataclasses.replace(a.settings, dsn=None)),
                dataclasses.replace(b, settings=dataclasses.replace(b.settings, dsn=None)))


async def test_round_trip_keeps_optional_fields(db):
    base, _ = load_file(EXAMPLE)
    trunk = dataclasses.replace(base.trunks["trunk-b"], registration="reg-b", endpoint="ep-b",
                                callerid_format="national", national_prefix="0")
    settings = dataclasses.replace(base.settings, dsn="postgresql://x:secret@h/db", unknown_health="down")
    config = dataclasses.replace(base, settings=settings, trunks={**base.trunks, "trunk-b": trunk})
    await import_config(db, config)
    loaded, _ = await load_db(db)
    assert same_but_dsn(loaded, config)
    assert loaded.settings.unknown_health == "down" and loaded.trunks["trunk-b"].endpoint == "ep-b"
    again, _ = load_mapping(yaml.safe_load(dump_yaml(to_document(loaded))), "export.yaml")
    assert same_but_dsn(again, config)


async def test_the_dsn_is_not_stored_and_import_says_so(db, conn):
    base, _ = load_file(EXAMPLE)
    config = dataclasses.replace(base, settings=dataclasses.replace(base.settings, dsn="postgresql://u:secret@h/db"))
    warnings = await import_config(db, config)
    assert [(w.field, w.message) for w in warnings] == [(
        "settings.dsn", "not stored in the database (it may hold a password): "
        "give servers the DSN with --dsn or DIDROUTER_DSN")]
    assert await conn.fetchval("SELECT dsn FROM config_settings") is None
    loaded, _ = await load_db(db)
    assert loaded.settings.dsn is None
    assert "secret" not in dump_yaml(to_document(loaded))
    # a DSN written by an older version is neither loaded nor exported, and an edit clears it
    await conn.execute("UPDATE config_settings SET dsn = 'postgresql://u:secret@h/db'")
    assert (await load_db(db))[0].settings.dsn is None
    await admin.set_dynamic(db, "on")
    assert await conn.fetchval("SELECT dsn FROM config_settings") is None
    assert await import_config(db, base) == []


async def test_import_warns_that_ami_servers_stay_in_yaml(db):
    config, _ = load_file(EXAMPLE)
    config = dataclasses.replace(config, ami_servers=(AmiServer("pbx1"),))
    warnings = await import_config(db, config)
    assert [w.field for w in warnings] == ["asterisk_servers"]
    loaded, _ = await load_db(db)
    assert loaded.ami_servers == ()


async def test_empty_database_config_is_a_config_error(db):
    with pytest.raises(ConfigError) as info:
        await load_db(db)
    assert {p.field for p in info.value.problems} >= {"trunks", "dids", "campaigns"}


async def test_invalid_rows_are_reported_like_yaml(example_db, conn):
    # The database cannot see that a dynamic DID is on another trunk; the validator does.
    await conn.execute("INSERT INTO config_campaign_did VALUES ('summer', '+15558880001', 'dynamic', 0)")
    with pytest.raises(ConfigError) as info:
        await load_db(example_db)
    assert any("primary's trunk" in p.message and p.source == "database" for p in info.value.problems)


async def test_unreachable_database_is_a_store_error(dead_dsn):
    with pytest.raises(StoreError, match="cannot connect"):
        await load_db(dead_dsn)


# -- admin edits -------------------------------------------------------------------


async def test_invalid_edit_is_refused_and_nothing_is_written(example_db):
    before, _ = await load_db(example_db)
    with pytest.raises(ConfigError) as info:
        await admin.add_did(example_db, "spring", "+15558880003", "dynamic")
    assert any("must be on the primary's trunk" in p.message for p in info.value.problems)
    with pytest.raises(ConfigError):  # a new DID on an unknown trunk
        await admin.add_did(example_db, "spring", "+15550009999", "fallback", trunk="nope")
    after, _ = await load_db(example_db)
    assert after == before


@pytest.mark.parametrize("call, message", [
    (lambda dsn: admin.add_did(dsn, "nope", "+15557654322", "dynamic"), "unknown campaign"),
    (lambda dsn: admin.add_did(dsn, "spring", "+15557654322", "dynamic"), "already in campaign"),
    (lambda dsn: admin.add_did(dsn, "spring", "+15550009999", "dynamic"), "give its trunk"),
    (lambda dsn: admin.add_did(dsn, "summer", "+15558880001", "fallback", "trunk-a"), "is on trunk trunk-b"),
    (lambda dsn: admin.add_did(dsn, "spring", "+15557654324", "primary"), "role must be"),
    (lambda dsn: admin.remove_did(dsn, "spring", "+15557654321"), "set another primary"),
    (lambda dsn: admin.remove_did(dsn, "spring", "+15557654325"), "not in campaign"),
    (lambda dsn: admin.set_primary(dsn, "spring", "+15550009999"), "not known yet"),
    (lambda dsn: admin.set_dynamic(dsn, "inherit"), "inherit is per campaign"),
])
async def test_edits_that_make_no_sense_are_refused(example_db, call, message):
    before, _ = await load_db(example_db)
    with pytest.raises(admin.AdminError, match=message):
        await call(example_db)
    assert (await load_db(example_db))[0] == before


async def test_add_did_known_and_new(example_db):
    result = await admin.add_did(example_db, "summer", "5557654325", "dynamic")  # national form
    assert [d["number"] for d in result["campaign"]["dids"] if d["role"] == "dynamic"] == ["+15557654325"]
    await admin.add_did(example_db, "summer", "+15558880009", "fallback", trunk="trunk-b")
    config, _ = await load_db(example_db)
    assert config.campaigns["summer"].dynamic == ("+15557654325",)
    assert config.campaigns["summer"].fallback == ("+15558880003", "+15558880009")
    assert config.dids["+15558880009"].trunk == "trunk-b"


async def test_remove_did(example_db):
    await admin.remove_did(example_db, "spring", "+15557654322")
    await admin.remove_did(example_db, "spring", "+15558880002")
    spring = (await load_db(example_db))[0].campaigns["spring"]
    assert (spring.dynamic, spring.fallback) == (("+15557654323",), ("+15558880001",))


async def test_set_primary_keeps_the_old_primary_as_dynamic_1_on_the_same_trunk(example_db):
    result = await admin.set_primary(example_db, "spring", "+15557654323")
    assert result["campaign"]["primary"] == "+15557654323"
    assert result["old_primary"] == {"number": "+15557654321", "role": "dynamic"}
    assert result["message"] == "old primary +15557654321 is now the first dynamic DID"
    spring = (await load_db(example_db))[0].campaigns["spring"]
    assert spring.primary == "+15557654323"
    assert spring.dynamic == ("+15557654321", "+15557654322")   # the new primary left the dynamic list
    assert spring.fallback == ("+15558880001", "+15558880002")


async def test_set_primary_on_another_trunk_drops_the_old_primary_and_says_why(example_db):
    await admin.remove_did(example_db, "summer", "+15558880003")
    result = await admin.set_primary(example_db, "summer", "+15558880003")
    assert result["old_primary"] == {"number": "+15557654324", "role": None}
    assert result["message"] == ("old primary +15557654324 left the campaign: "
                                 "it is on trunk-a, not the new primary's trunk-b")
    config, _ = await load_db(example_db)
    summer = config.campaigns["summer"]
    assert (summer.primary, summer.dynamic, summer.fallback) == ("+15558880003", (), ())
    assert config.dids["+15557654324"].trunk == "trunk-a"      # still a DID, just not in the campaign


async def test_set_primary_drop_old_and_unchanged(example_db):
    result = await admin.set_primary(example_db, "spring", "+15557654322", drop_old=True)
    assert result["message"] == "old primary +15557654321 left the campaign: as asked (--drop-old)"
    assert (await load_db(example_db))[0].campaigns["spring"].dynamic == ("+15557654323",)
    result = await admin.set_primary(example_db, "spring", "+15557654322")
    assert (result["old_primary"], result["message"]) == (None, "+15557654322 is already the primary of spring")
    assert (await load_db(example_db))[0].campaigns["spring"].dynamic == ("+15557654323",)


async def test_set_primary_on_another_trunk_is_refused_while_dynamics_disagree(example_db):
    with pytest.raises(ConfigError):
        await admin.set_primary(example_db, "spring", "+15558880003")
    assert (await load_db(example_db))[0].campaigns["spring"].primary == "+15557654321"


async def test_dynamic_toggle_global_and_per_campaign(example_db):
    result = await admin.set_dynamic(example_db, "off")
    assert result["global"] is False and result["campaign"] is None
    config, _ = await load_db(example_db)
    assert config.settings.dynamic_did_enabled is False
    assert not config.dynamic_enabled(config.campaigns["spring"])
    await admin.set_dynamic(example_db, "on")
    await admin.set_dynamic(example_db, "off", campaign="spring")
    await admin.set_dynamic(example_db, "inherit", campaign="winter")
    config, _ = await load_db(example_db)
    assert config.settings.dynamic_did_enabled is True
    assert config.campaigns["spring"].dynamic_did_enabled is False
    assert config.campaigns["winter"].dynamic_did_enabled is None
    result = await admin.set_dynamic(example_db, "on", campaign="spring")
    assert result["campaign"]["dynamic_did_enabled"] == "on"
    assert result["warnings"] == []


async def test_campaign_on_while_the_global_toggle_is_off_succeeds_with_a_warning(example_db):
    await admin.set_dynamic(example_db, "off")
    result = await admin.set_dynamic(example_db, "on", campaign="spring")
    assert (result["global"], result["campaign"]["dynamic_did_enabled"], result["campaign"]["dynamic_effective"]) \
        == (False, "on", False)
    assert result["warnings"] == [
        "database: warning: campaigns.spring.dynamic_did_enabled: true has no effect while the admin toggle "
        "settings.dynamic_did_enabled is off: the campaign stays off until the global toggle is on"]
    assert (await load_db(example_db))[0].campaigns["spring"].dynamic_did_enabled is True


async def test_list_and_show(example_db):
    rows = await admin.list_campaigns(example_db)
    assert [r["name"] for r in rows] == ["autumn", "spring", "summer", "winter"]
    winter = rows[3]
    assert (winter["dynamic_did_enabled"], winter["dynamic_effective"]) == ("off", False)
    view = await admin.show_campaign(example_db, "spring", health={"trunk-a": "up", "trunk-b": "down"}.get)
    assert [(d["role"], d["number"], d["trunk"], d["trunk_health"]) for d in view["dids"]] == [
        ("primary", "+15557654321", "trunk-a", "up"),
        ("dynamic", "+15557654322", "trunk-a", "up"),
        ("dynamic", "+15557654323", "trunk-a", "up"),
        ("fallback", "+15558880001", "trunk-b", "down"),
        ("fallback", "+15558880002", "trunk-b", "down"),
    ]
    with pytest.raises(admin.AdminError, match="unknown campaign"):
        await admin.show_campaign(example_db, "nope")


# -- listener ----------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
async def listening(example_db, wait_until):
    counter = Counter()
    listener = ConfigListener(example_db, counter, keepalive=0.5, min_backoff=0.05)
    await listener.start()
    await wait_until(lambda: listener.listening and counter.count == 1)  # the resync call
    yield listener, counter
    await listener.stop()


async def test_listener_fires_within_a_second_of_an_edit(listening, example_db, wait_until):
    listener, counter = listening
    await admin.remove_did(example_db, "spring", "+15557654322")
    await wait_until(lambda: counter.count == 2, timeout=1.0)
    assert counter.count == 2


async def test_listener_gets_one_notification_per_import(listening, example_db, wait_until):
    listener, counter = listening
    config, _ = load_file(EXAMPLE)
    await import_config(example_db, config)   # ~20 statements, one transaction
    await admin.set_dynamic(example_db, "off")
    # Notifications arrive in commit order: once the edit's has arrived, the import's
    # (folded into one) has too, so exactly two calls means one per transaction.
    await wait_until(lambda: counter.count >= 3, timeout=1.0)
    assert counter.count == 3


async def test_listener_reconnects_after_its_connection_is_killed(listening, example_db, wait_until):
    listener, counter = listening
    old_pid = listener.server_pid
    killer = await asyncpg.connect(example_db, timeout=10)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", old_pid)
    finally:
        await killer.close(timeout=10)
    await wait_until(lambda: listener.connections == 2 and listener.server_pid not in (None, old_pid))
    assert counter.count == 2          # reconnecting calls back: changes may have been missed
    await admin.set_dynamic(example_db, "off", campaign="spring")
    await wait_until(lambda: counter.count == 3, timeout=1.0)


async def test_listener_stop_closes_its_connection(example_db, wait_until):
    listener = ConfigListener(example_db, Counter())
    await listener.start()
    await wait_until(lambda: listener.listening)
    pid = listener.server_pid
    await listener.stop()
    conn = await asyncpg.connect(example_db, timeout=10)
    try:
        await wait_until(lambda: conn.fetchval(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1", pid))
        assert not listener.listening
    finally:
        await conn.close(timeout=10)


async def test_listener_survives_a_dead_database_and_a_failing_callback(dead_dsn, example_db, wait_until):
    down = ConfigListener(dead_dsn, Counter(), min_backoff=0.01, max_backoff=0.05)
    await down.start()
    await down.stop()
    assert not down.listening

    calls = Counter()

    def broken() -> None:
        calls()
        raise RuntimeError("callback bug")

    listener = ConfigListener(example_db, broken)
    await listener.start()
    try:
        await wait_until(lambda: calls.count == 1)
        await admin.set_dynamic(example_db, "off")
        await wait_until(lambda: calls.count == 2, timeout=1.0)
        assert listener.listening and listener.connections == 1
    finally:
        await listener.stop()
