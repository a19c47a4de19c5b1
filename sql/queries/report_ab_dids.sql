-- A/B input: per DID of campaign $3 over UTC days $1..$2 (both inclusive), the attempts
-- that have an outcome (decided) and how many of them were answered. Attempts with no
-- outcome yet are left out: they are missing data, not failures.
SELECT
    did,
    (sum(attempts) - sum(no_outcome))::bigint AS decided,
    sum(answered)::bigint                     AS answered,
    sum(no_outcome)::bigint                   AS no_outcome
FROM report_did_daily
WHERE day BETWEEN $1::date AND $2::date
  AND campaign = $3::text
GROUP BY did
ORDER BY did
