-- Serialises config writers (import and admin edits) until the transaction ends.
-- $1 is a constant key (see agi_server.config.db.LOCK_KEY). Readers never wait.
SELECT pg_advisory_xact_lock($1)
