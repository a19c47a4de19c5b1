SELECT dynamic_did_enabled, default_country, unknown_health, listen_host, listen_port,
       dsn, spool, spool_fsync_interval, timeout_env_read, timeout_reply, timeout_session
FROM config_settings
