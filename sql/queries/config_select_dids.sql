SELECT number, trunk FROM config_did ORDER BY number
