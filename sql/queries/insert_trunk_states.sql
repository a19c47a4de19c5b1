-- Batch insert of trunk state changes (parallel arrays); replays are idempotent.
INSERT INTO trunk_state_change (server, trunk, old_state, new_state, cause, changed_at, observer)
SELECT server, trunk, old, new, cause, to_timestamp(at), observer
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[])
    AS t(server, trunk, old, new, cause, at, observer)
ON CONFLICT DO NOTHING
