-- Verify's second look at the protected face's place (issue 4): when the watermark authenticates, the asset
-- record holds the protected face's box, and the first face.analyze found no face there, the worker runs
-- face.analyze once more on that region with a lower detector cut. Its job id and result live here.
ALTER TABLE identity_flows ADD COLUMN region_job TEXT;
ALTER TABLE identity_flows ADD COLUMN region_result TEXT;
CREATE INDEX identity_flows_region ON identity_flows (region_job);
