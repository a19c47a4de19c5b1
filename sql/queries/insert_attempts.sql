-- Batch insert of CDR attempts as parallel arrays (one round trip per batch).
-- $11 is decided_at as UNIX seconds. ON CONFLICT on the key makes replays of the
-- spool idempotent; the command tag's row count is the number of new rows.
INSERT INTO cdr_attempt (
    server, uniqueid, attempt, campaign, destination, did, trunk, role,
    status, reason, decided_at, channel, peer
)
SELECT server, uniqueid, attempt, campaign, destination, did, trunk, role,
       status, reason, to_timestamp(decided_at), channel, peer
FROM unnest(
    $1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[],
    $13::text[]
) AS t(server, uniqueid, attempt, campaign, destination, did, trunk, role,
       status, reason, decided_at, channel, peer)
ON CONFLICT (server, uniqueid, attempt) DO NOTHING
