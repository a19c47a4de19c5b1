-- Call outcomes: how each attempt ended, from the dialplan's report AGI ("agi")
-- or from AMI events ("ami"). They complete the attempt's own row in cdr_attempt.
--
-- Which source wins when they differ: the report AGI, because it carries the
-- DIALSTATUS and HANGUPCAUSE of that very Dial() as the dialplan saw them; AMI
-- (DialEnd/Hangup/Cdr) fills a row only while no report has. Among outcomes of
-- the same rank the latest wins.

CREATE FUNCTION didrouter_outcome_rank(source text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE source WHEN 'agi' THEN 2 WHEN 'ami' THEN 1 ELSE 0 END
$$;

ALTER TABLE cdr_attempt ADD COLUMN outcome_trunk text;  -- trunk the outcome was reported for

-- Outcomes whose attempt row is not in cdr_attempt (yet). With a farm of servers a
-- report may be written before the select's row; it is adopted when that row
-- arrives. attempt IS NULL is an orphan: a report for a call with no select on
-- record and no attempt number. Orphans stay here for analysts, never dropped.
CREATE TABLE cdr_outcome_pending (
    server           text        NOT NULL,
    uniqueid         text        NOT NULL,
    attempt          integer,
    dialstatus       text        NOT NULL,
    hangupcause      integer,
    answered_seconds numeric(12, 3),
    dialed_seconds   numeric(12, 3),
    outcome_fault    text        NOT NULL,
    outcome_source   text        NOT NULL,
    outcome_at       timestamptz NOT NULL,
    trunk            text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (server, uniqueid, attempt, outcome_source)
);
