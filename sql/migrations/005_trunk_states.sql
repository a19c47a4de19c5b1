-- Trunk health changes, per Asterisk server and trunk, as each didrouter process
-- saw them (AMI registration/qualify signals with hysteresis, the call-outcome
-- breaker, the AMI link lost). `didrouter trunks` reads the latest row per
-- (server, trunk) from here.
CREATE TABLE trunk_state_change (
    server      text        NOT NULL,   -- Asterisk server name
    trunk       text        NOT NULL,
    old_state   text        NOT NULL,   -- up | down | unknown
    new_state   text        NOT NULL,
    cause       text        NOT NULL,
    changed_at  timestamptz NOT NULL,
    observer    text        NOT NULL DEFAULT '',   -- didrouter process (host:pid)
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, trunk, changed_at, new_state, observer)
);
CREATE INDEX trunk_state_change_latest ON trunk_state_change (server, trunk, changed_at DESC);
