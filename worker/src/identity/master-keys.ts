/**
 * Per-tenant master keys for the identity cipher. 32 random bytes each, stored only wrapped with
 * AES-256-GCM under MASTER_KEY_ENCRYPTION_KEY (base64url, 32 bytes); the AAD binds tenant and key id,
 * so a wrapped key copied onto another tenant's row fails to unwrap.
 */

import { base64urlDecode, base64urlEncode, utf8 } from "../../../contract/encoding.ts";
import type { AppEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { ApiError } from "../problem.ts";
import { importMasterKey } from "./chaos.ts";
import { DEFAULT_LAYOUT } from "./payload.ts";

export interface MasterKeyRow {
  id: string;
  tenant_id: string;
  generation: number;
  slot: number;
  wrapped: string;
  status: "active" | "retired";
  created_at: number;
  retired_at: number | null;
}

export interface MasterKey {
  id: string;
  tenantId: string;
  generation: number;
  slot: number;
  /** HKDF key handle; the raw bytes never leave this module. */
  key: CryptoKey;
}

type KeyEnv = Pick<AppEnv, "DB" | "MASTER_KEY_ENCRYPTION_KEY">;

const SLOTS = 2 ** DEFAULT_LAYOUT.keySlotBits;

async function kek(env: KeyEnv): Promise<CryptoKey> {
  const raw = env.MASTER_KEY_ENCRYPTION_KEY ? safeDecode(env.MASTER_KEY_ENCRYPTION_KEY) : null;
  if (!raw || raw.length !== 32) {
    throw new ApiError(500, "misconfigured", "MASTER_KEY_ENCRYPTION_KEY must be 32 bytes, base64url");
  }
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

function safeDecode(text: string): Uint8Array | null {
  try {
    return base64urlDecode(text);
  } catch {
    return null;
  }
}

const aad = (tenantId: string, keyId: string) => utf8(`vigil/identity-master-key/${tenantId}/${keyId}`);

export async function wrapKey(env: KeyEnv, tenantId: string, keyId: string, raw: Uint8Array): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(tenantId, keyId) }, await kek(env), raw),
  );
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return base64urlEncode(out);
}

export async function unwrapKey(env: KeyEnv, row: Pick<MasterKeyRow, "tenant_id" | "id" | "wrapped">): Promise<Uint8Array> {
  const all = base64urlDecode(row.wrapped);
  const wrappingKey = await kek(env);
  try {
    const raw = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: all.subarray(0, 12), additionalData: aad(row.tenant_id, row.id) },
      wrappingKey,
      all.subarray(12),
    );
    return new Uint8Array(raw);
  } catch {
    throw new ApiError(500, "master_key_unwrap_failed", `master key ${row.id} cannot be unwrapped with the configured KEK`);
  }
}

async function toMasterKey(env: KeyEnv, row: MasterKeyRow): Promise<MasterKey> {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    generation: row.generation,
    slot: row.slot,
    key: await importMasterKey(await unwrapKey(env, row)),
  };
}

async function insertGeneration(env: KeyEnv, tenantId: string, generation: number): Promise<MasterKeyRow> {
  const id = newId("imk");
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const row: MasterKeyRow = {
    id,
    tenant_id: tenantId,
    generation,
    slot: generation % SLOTS,
    wrapped: await wrapKey(env, tenantId, id, raw),
    status: "active",
    created_at: Date.now(),
    retired_at: null,
  };
  await env.DB.prepare(
    `INSERT INTO identity_master_keys (id, tenant_id, generation, slot, wrapped, status, created_at) VALUES (?, ?, ?, ?, ?, 'active', ?)`,
  )
    .bind(row.id, tenantId, generation, row.slot, row.wrapped, row.created_at)
    .run();
  return row;
}

async function activeRow(env: KeyEnv, tenantId: string): Promise<MasterKeyRow | null> {
  return env.DB.prepare(
    `SELECT * FROM identity_master_keys WHERE tenant_id = ? AND status = 'active' ORDER BY generation DESC LIMIT 1`,
  )
    .bind(tenantId)
    .first<MasterKeyRow>();
}

/** The tenant's active key, created on first use. Concurrent first uses converge on generation 0. */
export async function activeMasterKey(env: KeyEnv, tenantId: string): Promise<MasterKey> {
  let row = await activeRow(env, tenantId);
  if (!row) {
    try {
      row = await insertGeneration(env, tenantId, 0);
    } catch {
      // Lost the race on UNIQUE (tenant_id, generation): the winner's row is the key.
      row = await activeRow(env, tenantId);
      if (!row) throw new ApiError(500, "master_key_unavailable", "could not create the tenant master key");
    }
  }
  return toMasterKey(env, row);
}

/** Adds a new active generation and retires the others; retired keys still verify. */
export async function rotateMasterKey(env: KeyEnv, tenantId: string): Promise<MasterKeyRow> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const top = await env.DB.prepare(`SELECT MAX(generation) AS g FROM identity_master_keys WHERE tenant_id = ?`)
      .bind(tenantId)
      .first<{ g: number | null }>();
    const generation = top?.g === null || top?.g === undefined ? 0 : top.g + 1;
    let row: MasterKeyRow;
    try {
      row = await insertGeneration(env, tenantId, generation);
    } catch {
      continue;
    }
    await env.DB.prepare(
      `UPDATE identity_master_keys SET status = 'retired', retired_at = ? WHERE tenant_id = ? AND generation < ? AND status = 'active'`,
    )
      .bind(Date.now(), tenantId, generation)
      .run();
    return row;
  }
  throw new ApiError(409, "rotation_conflict", "concurrent master key rotations; retry");
}

/** Every key of the tenant whose generation maps to `slot` (newest first): the verifier tries each. */
export async function masterKeysForSlot(env: KeyEnv, tenantId: string, slot: number): Promise<MasterKey[]> {
  const { results } = await env.DB.prepare(
    `SELECT * FROM identity_master_keys WHERE tenant_id = ? AND slot = ? ORDER BY generation DESC`,
  )
    .bind(tenantId, slot)
    .all<MasterKeyRow>();
  return Promise.all(results.map((r) => toMasterKey(env, r)));
}

export async function masterKeyById(env: KeyEnv, tenantId: string, id: string): Promise<MasterKey | null> {
  const row = await env.DB.prepare(`SELECT * FROM identity_master_keys WHERE tenant_id = ? AND id = ?`)
    .bind(tenantId, id)
    .first<MasterKeyRow>();
  return row ? toMasterKey(env, row) : null;
}

/** Metadata only (never key material), for an admin listing. */
export async function listMasterKeys(env: KeyEnv, tenantId: string) {
  const { results } = await env.DB.prepare(
    `SELECT id, generation, slot, status, created_at, retired_at FROM identity_master_keys WHERE tenant_id = ? ORDER BY generation DESC`,
  )
    .bind(tenantId)
    .all<Omit<MasterKeyRow, "wrapped" | "tenant_id">>();
  return results.map((r) => ({
    id: r.id,
    object: "identity_master_key" as const,
    generation: r.generation,
    slot: r.slot,
    status: r.status,
    created_at: new Date(r.created_at).toISOString(),
    retired_at: r.retired_at === null ? null : new Date(r.retired_at).toISOString(),
  }));
}
