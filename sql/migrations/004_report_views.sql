-- Report views for analysts (issue 4, item 4). Definitions: docs/reports.md.
--
-- An attempt is a cdr_attempt row where a DID was chosen (status = 'OK' and did
-- IS NOT NULL). Its day is the UTC date of decided_at (when the DID was chosen),
-- not of the outcome. Ratios follow ITU-T E.411 and have every attempt as their
-- denominator, including attempts with no outcome yet (counted in no_outcome), so
-- incomplete data lowers ASR/NER visibly rather than silently.
--
--   answered           outcome_fault = 'answered'
--   network_completed  outcome_fault IN ('answered', 'callee'): the network
--                      delivered the call to the callee's side (answer, busy,
--                      no answer, absent, number changed/invalid). 'reputation'
--                      (Q.850 21 / 127: SIP 603, 608, 401/403/407) is NOT counted:
--                      the call was refused before it reached the callee, mostly
--                      by carrier call analytics, and counting it as completed
--                      would hide blocking of a DID. 'aborted' (our side
--                      cancelled) is not counted either, as in E.411.
--   carrier_failures   outcome_fault = 'carrier'
--   reputation_rejects outcome_fault = 'reputation'
--   ACD                mean answered_seconds over answered attempts whose duration
--                      is known (answered_timed of them)
--
-- The count columns can be summed across days, DIDs or trunks; re-derive ratios
-- from the sums (never average the ratios). ACD over a range is
-- sum(answered_seconds) / sum(answered_timed).

CREATE VIEW report_did_daily AS
SELECT
    day, campaign, did, trunk,
    attempts, answered, network_completed, carrier_failures, reputation_rejects,
    fallback_attempts, no_outcome, answered_seconds, answered_timed,
    answered::float8 / nullif(attempts, 0)                  AS asr,
    network_completed::float8 / nullif(attempts, 0)         AS ner,
    answered_seconds::float8 / nullif(answered_timed, 0)    AS acd,
    fallback_attempts::float8 / nullif(attempts, 0)         AS fallback_share,
    carrier_failures::float8 / nullif(attempts, 0)          AS carrier_share,
    reputation_rejects::float8 / nullif(attempts, 0)        AS reputation_share
FROM (
    SELECT
        (decided_at AT TIME ZONE 'UTC')::date                                       AS day,
        campaign, did, trunk,
        count(*)                                                                    AS attempts,
        count(*) FILTER (WHERE outcome_fault = 'answered')                          AS answered,
        count(*) FILTER (WHERE outcome_fault IN ('answered', 'callee'))             AS network_completed,
        count(*) FILTER (WHERE outcome_fault = 'carrier')                           AS carrier_failures,
        count(*) FILTER (WHERE outcome_fault = 'reputation')                        AS reputation_rejects,
        count(*) FILTER (WHERE role = 'fallback')                                   AS fallback_attempts,
        count(*) FILTER (WHERE outcome_fault IS NULL)                               AS no_outcome,
        coalesce(sum(answered_seconds) FILTER (WHERE outcome_fault = 'answered'), 0) AS answered_seconds,
        count(answered_seconds) FILTER (WHERE outcome_fault = 'answered')          AS answered_timed
    FROM cdr_attempt
    WHERE status = 'OK' AND did IS NOT NULL
    GROUP BY 1, campaign, did, trunk
) AS counts;

COMMENT ON VIEW report_did_daily IS
    'Per DID, campaign, trunk and UTC day of decided_at: attempts with a DID chosen, '
    'outcomes and E.411 ratios (ASR, NER, ACD). Definitions: docs/reports.md.';

CREATE VIEW report_campaign_daily AS
SELECT
    day, campaign, dids,
    attempts, answered, network_completed, carrier_failures, reputation_rejects,
    fallback_attempts, no_outcome, answered_seconds, answered_timed,
    answered::float8 / nullif(attempts, 0)                  AS asr,
    network_completed::float8 / nullif(attempts, 0)         AS ner,
    answered_seconds::float8 / nullif(answered_timed, 0)    AS acd,
    fallback_attempts::float8 / nullif(attempts, 0)         AS fallback_share,
    carrier_failures::float8 / nullif(attempts, 0)          AS carrier_share,
    reputation_rejects::float8 / nullif(attempts, 0)        AS reputation_share
FROM (
    SELECT
        day, campaign,
        count(DISTINCT did)               AS dids,
        sum(attempts)::bigint             AS attempts,
        sum(answered)::bigint             AS answered,
        sum(network_completed)::bigint    AS network_completed,
        sum(carrier_failures)::bigint     AS carrier_failures,
        sum(reputation_rejects)::bigint   AS reputation_rejects,
        sum(fallback_attempts)::bigint    AS fallback_attempts,
        sum(no_outcome)::bigint           AS no_outcome,
        sum(answered_seconds)             AS answered_seconds,
        sum(answered_timed)::bigint       AS answered_timed
    FROM report_did_daily
    GROUP BY day, campaign
) AS counts;

COMMENT ON VIEW report_campaign_daily IS
    'Per campaign and UTC day of decided_at: the sums of report_did_daily and their '
    'E.411 ratios. Definitions: docs/reports.md.';
