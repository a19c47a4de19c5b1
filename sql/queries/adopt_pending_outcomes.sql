-- Move pending outcomes onto attempt rows that have arrived since (same ranking
-- rule as apply_outcomes). Run after each batch of attempt inserts.
WITH adopted AS (
    DELETE FROM cdr_outcome_pending p
    USING cdr_attempt a
    WHERE p.attempt IS NOT NULL
      AND a.server = p.server AND a.uniqueid = p.uniqueid AND a.attempt = p.attempt
    RETURNING p.*
), best AS (
    SELECT DISTINCT ON (server, uniqueid, attempt) *
    FROM adopted
    ORDER BY server, uniqueid, attempt, didrouter_outcome_rank(outcome_source) DESC, outcome_at DESC
)
UPDATE cdr_attempt a
SET dialstatus = o.dialstatus, hangupcause = o.hangupcause,
    answered_seconds = o.answered_seconds, dialed_seconds = o.dialed_seconds,
    outcome_fault = o.outcome_fault, outcome_source = o.outcome_source,
    outcome_at = o.outcome_at, outcome_trunk = o.trunk
FROM best o
WHERE a.server = o.server AND a.uniqueid = o.uniqueid AND a.attempt = o.attempt
  AND (a.outcome_source IS NULL
       OR didrouter_outcome_rank(a.outcome_source) < didrouter_outcome_rank(o.outcome_source)
       OR (didrouter_outcome_rank(a.outcome_source) = didrouter_outcome_rank(o.outcome_source)
           AND a.outcome_at <= o.outcome_at))
