-- Per campaign, DID and trunk over UTC days $1..$2 (both inclusive), optionally only
-- campaign $3 (NULL: all). Counts are summed from report_did_daily; ratios re-derived.
SELECT
    campaign, did, trunk,
    sum(attempts)::bigint           AS attempts,
    sum(answered)::bigint           AS answered,
    sum(network_completed)::bigint  AS network_completed,
    sum(carrier_failures)::bigint   AS carrier_failures,
    sum(reputation_rejects)::bigint AS reputation_rejects,
    sum(fallback_attempts)::bigint  AS fallback_attempts,
    sum(no_outcome)::bigint         AS no_outcome,
    sum(answered)::float8           / nullif(sum(attempts), 0)       AS asr,
    sum(network_completed)::float8  / nullif(sum(attempts), 0)       AS ner,
    sum(answered_seconds)::float8   / nullif(sum(answered_timed), 0) AS acd,
    sum(fallback_attempts)::float8  / nullif(sum(attempts), 0)       AS fallback_share,
    sum(carrier_failures)::float8   / nullif(sum(attempts), 0)       AS carrier_share,
    sum(reputation_rejects)::float8 / nullif(sum(attempts), 0)       AS reputation_share
FROM report_did_daily
WHERE day BETWEEN $1::date AND $2::date
  AND ($3::text IS NULL OR campaign = $3::text)
GROUP BY campaign, did, trunk
ORDER BY campaign, did, trunk NULLS LAST
