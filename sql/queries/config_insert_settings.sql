INSERT INTO config_settings (
    dynamic_did_enabled, default_country, unknown_health, listen_host, listen_port,
    dsn, spool, spool_fsync_interval, timeout_env_read, timeout_reply, timeout_session
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
