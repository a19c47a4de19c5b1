SELECT name, primary_did, dynamic_did_enabled FROM config_campaign ORDER BY name
