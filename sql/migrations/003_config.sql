-- Campaign config in PostgreSQL: an alternative source to the YAML file.
--
-- The database enforces what it can (names, enums, one trunk per DID, unique
-- names, references); the rest (dynamic DIDs on the primary's trunk, a DID listed
-- twice in a campaign, ...) is checked by the same validator as YAML
-- (agi_server.config.load.load_mapping) when the config is loaded or edited.
-- Any change to these tables sends one NOTIFY on channel didrouter_config per
-- transaction, so every running server reloads within a second.

-- One row: the global settings. NULL in a nullable column means "built-in default".
CREATE TABLE config_settings (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    dynamic_did_enabled  boolean NOT NULL DEFAULT true,   -- admin toggle "dynamic DID"
    default_country      text    NOT NULL DEFAULT '1' CHECK (default_country ~ '^[0-9]+$'),
    unknown_health       text    CHECK (unknown_health IN ('up', 'down')),
    listen_host          text,
    listen_port          integer CHECK (listen_port BETWEEN 1 AND 65535),
    dsn                  text,
    spool                text,
    spool_fsync_interval double precision CHECK (spool_fsync_interval > 0),
    timeout_env_read     double precision CHECK (timeout_env_read > 0),
    timeout_reply        double precision CHECK (timeout_reply > 0),
    timeout_session      double precision CHECK (timeout_session > 0)
);

CREATE TABLE config_trunk (
    name            text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    dial            text NOT NULL
                    -- exactly one {number} placeholder
                    CHECK (length(dial) - length(replace(dial, '{number}', '')) = 8),
    callerid_format text NOT NULL DEFAULT 'e164'
                    CHECK (callerid_format IN ('e164', 'plus_e164', 'national')),
    national_prefix text NOT NULL DEFAULT '',
    admin_state     text NOT NULL DEFAULT 'up' CHECK (admin_state IN ('up', 'down')),
    health          text NOT NULL DEFAULT 'auto'
                    CHECK (health IN ('auto', 'registration', 'qualify', 'both', 'none')),
    registration    text,   -- PJSIP registration name; NULL: the trunk name
    endpoint        text    -- PJSIP endpoint/AOR name; NULL: the trunk name
);

-- A DID is a primary key, so it is on exactly one trunk.
CREATE TABLE config_did (
    number text PRIMARY KEY CHECK (number ~ '^\+[0-9]{8,15}$'),
    trunk  text NOT NULL REFERENCES config_trunk (name) ON UPDATE CASCADE
);
CREATE INDEX config_did_trunk ON config_did (trunk);

CREATE TABLE config_campaign (
    name                text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    primary_did         text NOT NULL REFERENCES config_did (number) ON UPDATE CASCADE,
    dynamic_did_enabled boolean   -- NULL: follow config_settings.dynamic_did_enabled
);

-- The campaign's other DIDs, ordered per role. The primary is not listed here.
CREATE TABLE config_campaign_did (
    campaign text    NOT NULL REFERENCES config_campaign (name)
                     ON UPDATE CASCADE ON DELETE CASCADE,
    did      text    NOT NULL REFERENCES config_did (number) ON UPDATE CASCADE,
    role     text    NOT NULL CHECK (role IN ('dynamic', 'fallback')),
    position integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (campaign, did),
    UNIQUE (campaign, role, position)
);
CREATE INDEX config_campaign_did_did ON config_campaign_did (did);

-- One notification per transaction: PostgreSQL folds identical (channel, payload)
-- pairs sent in one transaction, and the payload is the transaction id.
CREATE FUNCTION config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('didrouter_config', txid_current()::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER config_settings_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON config_settings FOR EACH STATEMENT EXECUTE FUNCTION config_notify();
CREATE TRIGGER config_trunk_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON config_trunk FOR EACH STATEMENT EXECUTE FUNCTION config_notify();
CREATE TRIGGER config_did_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON config_did FOR EACH STATEMENT EXECUTE FUNCTION config_notify();
CREATE TRIGGER config_campaign_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON config_campaign FOR EACH STATEMENT EXECUTE FUNCTION config_notify();
CREATE TRIGGER config_campaign_did_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON config_campaign_did FOR EACH STATEMENT EXECUTE FUNCTION config_notify();
