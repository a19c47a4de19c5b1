SELECT name, dial, callerid_format, national_prefix, admin_state, health, registration, endpoint
FROM config_trunk
ORDER BY name
