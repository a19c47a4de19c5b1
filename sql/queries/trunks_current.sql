-- The latest recorded health of every (server, trunk), newest observation first.
SELECT DISTINCT ON (server, trunk)
       server, trunk, new_state AS state, old_state, cause, changed_at, observer
FROM trunk_state_change
ORDER BY server, trunk, changed_at DESC, recorded_at DESC
