INSERT INTO config_campaign_did (campaign, did, role, position) VALUES ($1, $2, $3, $4)
