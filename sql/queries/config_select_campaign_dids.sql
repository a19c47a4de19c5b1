-- Ordered so each campaign's dynamic and fallback lists come out in position order.
SELECT campaign, did, role FROM config_campaign_did ORDER BY campaign, role, position
