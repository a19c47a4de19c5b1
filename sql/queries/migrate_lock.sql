-- Session-level advisory lock: a second process migrating at the same time waits
-- here, then finds the work done. $1 is a constant key (see migrate.LOCK_KEY).
SELECT pg_advisory_lock($1)
