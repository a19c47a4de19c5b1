INSERT INTO config_campaign (name, primary_did, dynamic_did_enabled) VALUES ($1, $2, $3)
