"""CDR: one row per call attempt, journaled locally first, then batched to PostgreSQL."""
