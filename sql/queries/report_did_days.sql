-- report_did_daily rows for UTC days $1..$2 (both inclusive), optionally only campaign $3.
SELECT day, campaign, did, trunk, attempts, answered, network_completed, carrier_failures,
       reputation_rejects, fallback_attempts, no_outcome, asr, ner, acd, fallback_share,
       carrier_share, reputation_share
FROM report_did_daily
WHERE day BETWEEN $1::date AND $2::date
  AND ($3::text IS NULL OR campaign = $3::text)
ORDER BY day, campaign, did, trunk NULLS LAST
