-- One row per call attempt that got a decision (design invariant 2).
-- Keyed by (server, uniqueid, attempt) so a spool replay is idempotent:
-- the writer inserts with ON CONFLICT (server, uniqueid, attempt) DO NOTHING.
-- Few CHECKs on purpose: a row the database refuses is a row lost from the
-- analysts' view, so validation happens in the writer, once, with a log line.

CREATE TABLE cdr_attempt (
    server           text        NOT NULL,   -- Asterisk server name
    uniqueid         text        NOT NULL,   -- agi_uniqueid of the channel
    attempt          integer     NOT NULL CHECK (attempt >= 1),
    campaign         text        NOT NULL,
    destination      text        NOT NULL,   -- number dialled, as the dialplan gave it
    did              text,                   -- caller ID chosen, +E.164; NULL if none
    trunk            text,
    role             text,                   -- primary | dynamic | fallback
    status           text        NOT NULL,   -- DIDR_STATUS sent (OK, NO_DID, ...)
    reason           text        NOT NULL DEFAULT '',
    decided_at       timestamptz NOT NULL,
    channel          text        NOT NULL DEFAULT '',
    peer             text        NOT NULL DEFAULT '',   -- AGI client address

    -- Call outcome, filled in later by the report route / AMI (NULL until known).
    dialstatus       text,                   -- ${DIALSTATUS}: ANSWER, BUSY, NOANSWER, ...
    hangupcause      integer,                -- Q.850 cause code
    answered_seconds numeric(12, 3),         -- talk time after answer
    dialed_seconds   numeric(12, 3),         -- time from Dial() to answer or give-up
    outcome_fault    text,                   -- outcome class: answered, callee, carrier, ...
    outcome_source   text,                   -- who told us: agi (report route) | ami
    outcome_at       timestamptz,

    inserted_at      timestamptz NOT NULL DEFAULT now(),

    PRIMARY KEY (server, uniqueid, attempt)
);

-- "How did this DID do last week?" and "what did this campaign dial today?"
CREATE INDEX cdr_attempt_did_decided_at ON cdr_attempt (did, decided_at);
CREATE INDEX cdr_attempt_campaign_decided_at ON cdr_attempt (campaign, decided_at);
