INSERT INTO config_did (number, trunk) VALUES ($1, $2)
