-- Apply a batch of outcomes (parallel arrays) to their attempt rows, keeping the
-- higher-ranked source (didrouter_outcome_rank); outcomes with no attempt row
-- yet, or no attempt number at all, go to cdr_outcome_pending. $10 is UNIX seconds.
WITH incoming AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::integer[], $4::text[], $5::integer[],
        $6::numeric[], $7::numeric[], $8::text[], $9::text[], $10::float8[], $11::text[]
    ) AS t(server, uniqueid, attempt, dialstatus, hangupcause, answered_seconds,
           dialed_seconds, fault, source, at, trunk)
), best AS (
    SELECT DISTINCT ON (server, uniqueid, attempt, source) *
    FROM incoming
    ORDER BY server, uniqueid, attempt, source, at DESC
), updated AS (
    UPDATE cdr_attempt a
    SET dialstatus = o.dialstatus, hangupcause = o.hangupcause,
        answered_seconds = o.answered_seconds, dialed_seconds = o.dialed_seconds,
        outcome_fault = o.fault, outcome_source = o.source,
        outcome_at = to_timestamp(o.at), outcome_trunk = o.trunk
    FROM (
        SELECT DISTINCT ON (server, uniqueid, attempt) *
        FROM best
        ORDER BY server, uniqueid, attempt, didrouter_outcome_rank(source) DESC, at DESC
    ) o
    WHERE a.server = o.server AND a.uniqueid = o.uniqueid AND a.attempt = o.attempt
      AND (a.outcome_source IS NULL
           OR didrouter_outcome_rank(a.outcome_source) < didrouter_outcome_rank(o.source)
           OR (didrouter_outcome_rank(a.outcome_source) = didrouter_outcome_rank(o.source)
               AND a.outcome_at <= to_timestamp(o.at)))
    RETURNING 1
)
INSERT INTO cdr_outcome_pending (
    server, uniqueid, attempt, dialstatus, hangupcause, answered_seconds,
    dialed_seconds, outcome_fault, outcome_source, outcome_at, trunk
)
SELECT b.server, b.uniqueid, b.attempt, b.dialstatus, b.hangupcause, b.answered_seconds,
       b.dialed_seconds, b.fault, b.source, to_timestamp(b.at), b.trunk
FROM best b
WHERE b.attempt IS NULL OR NOT EXISTS (
    SELECT 1 FROM cdr_attempt a
    WHERE a.server = b.server AND a.uniqueid = b.uniqueid AND a.attempt = b.attempt)
ON CONFLICT (server, uniqueid, attempt, outcome_source) DO UPDATE
SET dialstatus = EXCLUDED.dialstatus, hangupcause = EXCLUDED.hangupcause,
    answered_seconds = EXCLUDED.answered_seconds, dialed_seconds = EXCLUDED.dialed_seconds,
    outcome_fault = EXCLUDED.outcome_fault, outcome_at = EXCLUDED.outcome_at,
    trunk = EXCLUDED.trunk
WHERE cdr_outcome_pending.outcome_at <= EXCLUDED.outcome_at
