-- Empty the config tables (children first), as the first step of a full replace.
-- Run inside the writer's transaction: readers keep seeing the old rows until commit.
DELETE FROM config_campaign_did;
DELETE FROM config_campaign;
DELETE FROM config_did;
DELETE FROM config_trunk;
DELETE FROM config_settings;
