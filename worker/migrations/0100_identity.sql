-- Identity watermarking (issue 4): per-tenant master keys for the chaotic payload cipher, and asset records.

-- Master keys are stored only wrapped (AES-256-GCM under the MASTER_KEY_ENCRYPTION_KEY secret, AAD binds
-- tenant and key id). A rotation adds a generation; retired keys stay for verification of older images.
CREATE TABLE identity_master_keys (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  generation INTEGER NOT NULL,
  -- generation modulo 2^keySlotBits: the value carried in the payload's clear header
  slot INTEGER NOT NULL,
  -- base64url(iv ‖ ciphertext ‖ tag)
  wrapped TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
  created_at INTEGER NOT NULL,
  retired_at INTEGER,
  UNIQUE (tenant_id, generation)
);
CREATE INDEX identity_master_keys_slot ON identity_master_keys (tenant_id, slot);

-- One row per protected image. Plaintext identity codes are never stored: `payload` is the encrypted
-- watermark payload (hex) and each face's code in `faces` is AES-GCM encrypted under a key derived from
-- the tenant master key. Deleting a record keeps a tombstone (ids, key, ref, protected_at) so that
-- verification can still authenticate the watermark; owner, external_ref, faces and image_key are erased.
CREATE TABLE identity_assets (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  master_key_id TEXT NOT NULL REFERENCES identity_master_keys(id),
  key_slot INTEGER NOT NULL,
  asset_ref INTEGER NOT NULL,
  mode TEXT NOT NULL CHECK (mode IN ('face', 'provenance')),
  payload TEXT NOT NULL,
  owner TEXT,
  external_ref TEXT,
  faces TEXT,
  face_count INTEGER NOT NULL DEFAULT 0,
  image_key TEXT,
  job_id TEXT,
  protected_at INTEGER NOT NULL,
  deleted_at INTEGER,
  -- the keystream is derived from (key, ref): a ref must never repeat under one key
  UNIQUE (master_key_id, asset_ref)
);
CREATE INDEX identity_assets_ref ON identity_assets (tenant_id, key_slot, asset_ref);
CREATE INDEX identity_assets_list ON identity_assets (tenant_id, protected_at);
