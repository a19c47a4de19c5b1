INSERT INTO config_trunk (
    name, dial, callerid_format, national_prefix, admin_state, health, registration, endpoint
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
