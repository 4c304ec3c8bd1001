-- Composite protect/verify requests: each is driven by completion hooks of its child jobs
-- (face.analyze, then watermark.embed; or face.analyze and watermark.decode in parallel).
CREATE TABLE identity_flows (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('protect', 'verify')),
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  input_key TEXT NOT NULL,
  params TEXT NOT NULL,
  origin TEXT NOT NULL,
  analyze_job TEXT,
  -- watermark.embed (protect) or watermark.decode (verify)
  mark_job TEXT,
  analyze_result TEXT,
  decode_result TEXT,
  asset_id TEXT,
  output TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX identity_flows_analyze ON identity_flows (analyze_job);
CREATE INDEX identity_flows_mark ON identity_flows (mark_job);
CREATE INDEX identity_flows_tenant ON identity_flows (tenant_id, created_at);
