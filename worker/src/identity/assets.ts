/**
 * Asset records: what protect stores and what verify traces back to. The payload's clear asset ref is
 * only unique per (tenant master key); lookups go through the tenant's own keys, so another tenant's
 * ref with the same number is never reached (its tag fails under our keys) and a ref collision across
 * this tenant's key generations is settled by which key authenticates the payload.
 */

import { z } from "zod";
import { base64urlDecode, base64urlEncode, utf8 } from "../../../contract/encoding.ts";
import { DESCRIPTOR_CHIPS, type DescriptorChip } from "../../../contract/operations.ts";
import type { NormBox } from "../../../contract/watermark-geometry.ts";
import type { AppEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { ApiError } from "../problem.ts";
import { bitsToHex, hexToBits } from "./bits.ts";
import { hkdf } from "./chaos.ts";
import { activeMasterKey, masterKeysForSlot, rotateMasterKey, type MasterKey } from "./master-keys.ts";
import { DEFAULT_LAYOUT, encodePayload, openPayload, parseHeader, type OpenedPayload, type PayloadLayout } from "./payload.ts";

type AssetEnv = Pick<AppEnv, "DB" | "MASTER_KEY_ENCRYPTION_KEY">;

/** The face descriptor's length (face-api's 128-d recognition net; gpu-runner/src/face/identity-code.ts). */
export const DESCRIPTOR_LENGTH = 128;

export const FaceInput = z.object({
  box: z.object({ x: z.number(), y: z.number(), width: z.number().nonnegative(), height: z.number().nonnegative() }),
  score: z.number().min(0).max(1),
  identity_code: z.string().regex(/^[0-9a-fA-F]+$/),
  /** face.analyze's descriptor (include_descriptor): sealed in the record for verify's record comparison. */
  descriptor: z.array(z.number().finite()).length(DESCRIPTOR_LENGTH).optional(),
  /** Which face chip the descriptor was computed on (face.analyze descriptor_chip); only like is compared with like. */
  descriptor_chip: z.enum(DESCRIPTOR_CHIPS).optional(),
});
export type FaceInput = z.infer<typeof FaceInput>;

/** A box in fractions of the image's width and height. */
export type { NormBox };

interface StoredFace {
  box: FaceInput["box"];
  /** The box as fractions of the protected image's size (absent in records made before it was stored). */
  box_norm?: NormBox;
  score: number;
  /** base64url(iv ‖ AES-GCM(identity code hex)) under the record key of the asset's master key. */
  code_enc: string;
  /**
   * base64url(iv ‖ AES-GCM(base64 of the 128 float32 descriptor values, little-endian)), same key and AAD.
   * What verify compares against when the record is reachable: the whole descriptor, not 32 bits of it.
   */
  descriptor_enc?: string;
  descriptor_chip?: DescriptorChip;
}

/** What the record holds about one protected face, decrypted for verify (worker only, never sent anywhere). */
export interface RecordFace {
  box_norm: NormBox | null;
  code: string;
  descriptor: Float32Array | null;
  descriptor_chip: DescriptorChip | null;
}

/** Pixel box → fractions of the image size, rounded to 1e-4 (well below a pixel at 50 MP). */
export function normaliseBox(box: FaceInput["box"], image: { width: number; height: number }): NormBox {
  const r = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    x: r(box.x / image.width),
    y: r(box.y / image.height),
    width: r(box.width / image.width),
    height: r(box.height / image.height),
  };
}

function descriptorToText(d: ArrayLike<number>): string {
  const f = Float32Array.from(d);
  return base64urlEncode(new Uint8Array(f.buffer));
}

function descriptorFromText(text: string): Float32Array {
  const bytes = base64urlDecode(text);
  if (bytes.length !== DESCRIPTOR_LENGTH * 4) throw new Error("sealed descriptor has the wrong length");
  return new Float32Array(bytes.slice().buffer);
}

export interface AssetRow {
  id: string;
  tenant_id: string;
  master_key_id: string;
  key_slot: number;
  asset_ref: number;
  mode: "face" | "provenance";
  payload: string;
  owner: string | null;
  external_ref: string | null;
  faces: string | null;
  face_count: number;
  image_key: string | null;
  job_id: string | null;
  protected_at: number;
  deleted_at: number | null;
  /** The watermark codec that marked the image (watermark.embed's result); NULL in rows from before codec 2 = 1. */
  codec: 1 | 2 | null;
  /**
   * The protected image's size in pixels: verify maps the record's boxes into a cropped copy with it (a tiled
   * geometry is in units of the original's short side). NULL in rows from before it was stored.
   */
  width: number | null;
  height: number | null;
}

/** The `identity_asset` object (GET /v1/assets, /v1/assets/:id). */
export const PublicAsset = z.object({
  id: z.string(),
  object: z.literal("identity_asset"),
  owner: z.string().nullable(),
  external_ref: z.string().nullable(),
  mode: z.enum(["face", "provenance"]),
  face_count: z.number().int().nonnegative(),
  faces: z.array(z.object({ box: FaceInput.shape.box, score: z.number() })),
  /** The watermark codec of the protected image: 1 = whole-frame mark (every asset before codec 2), 2 = tiled mark. */
  codec: z.union([z.literal(1), z.literal(2)]),
  master_key_id: z.string(),
  asset_ref: z.number().int().nonnegative(),
  protected_at: z.string(),
  deleted: z.boolean(),
});
export type PublicAsset = z.infer<typeof PublicAsset>;

export function publicAsset(row: AssetRow): PublicAsset {
  const faces = row.faces ? (JSON.parse(row.faces) as StoredFace[]) : [];
  return {
    id: row.id,
    object: "identity_asset",
    owner: row.owner,
    external_ref: row.external_ref,
    mode: row.mode,
    face_count: row.face_count,
    codec: row.codec ?? 1,
    faces: faces.map((f) => ({ box: f.box, score: f.score })),
    master_key_id: row.master_key_id,
    asset_ref: row.asset_ref,
    protected_at: new Date(row.protected_at).toISOString(),
    deleted: row.deleted_at !== null,
  };
}

async function recordKey(master: MasterKey): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", await hkdf(master.key, utf8("records"), 32), "AES-GCM", false, ["encrypt", "decrypt"]);
}

async function sealCode(key: CryptoKey, assetId: string, code: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8(assetId) }, key, utf8(code)));
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return base64urlEncode(out);
}

async function openCode(key: CryptoKey, assetId: string, sealed: string): Promise<string> {
  const all = base64urlDecode(sealed);
  const pt = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: all.subarray(0, 12), additionalData: utf8(assetId) },
    key,
    all.subarray(12),
  );
  return new TextDecoder().decode(pt);
}

export interface CreateAssetRequest {
  tenantId: string;
  /** Faces largest first (face.analyze order); the first face's code goes into the watermark. */
  faces: FaceInput[];
  /** The analysed image's size, to store boxes as fractions of it (face.analyze reports it). */
  image?: { width: number; height: number } | null;
  owner?: string | null;
  externalRef?: string | null;
  jobId?: string | null;
  layout?: PayloadLayout;
}

const MAX_REF_TRIES = 8;

/**
 * Allocates a fresh random ref under the tenant's active key, encrypts the payload and stores the record.
 * Returns the payload as hex for `watermark.embed`. When refs run out under one key (8 random picks all
 * taken, i.e. the key's ref space is crowded), the key is rotated, which opens a fresh ref space.
 */
export async function createAsset(env: AssetEnv, req: CreateAssetRequest): Promise<{ row: AssetRow; payloadHex: string }> {
  const layout = req.layout ?? DEFAULT_LAYOUT;
  const faces = req.faces.map((f) => FaceInput.parse(f));
  const main = faces[0];
  const code = main ? hexToBits(main.identity_code, layout.codeBits) : null;
  for (let round = 0; round < 2; round++) {
    const master = await activeMasterKey(env, req.tenantId);
    for (let i = 0; i < MAX_REF_TRIES; i++) {
      const ref = crypto.getRandomValues(new Uint32Array(1))[0]! % 2 ** layout.refBits;
      const taken = await env.DB.prepare(`SELECT 1 FROM identity_assets WHERE master_key_id = ? AND asset_ref = ?`)
        .bind(master.id, ref)
        .first();
      if (taken) continue;
      const row = await buildRow(master, layout, ref, code, faces, req);
      try {
        await insertRow(env, row);
      } catch {
        continue; // a concurrent protect took the same ref between the check and the insert
      }
      return { row, payloadHex: row.payload };
    }
    await rotateMasterKey(env, req.tenantId);
  }
  throw new ApiError(503, "asset_ref_exhausted", "could not allocate an asset reference; retry");
}

async function buildRow(
  master: MasterKey,
  layout: PayloadLayout,
  ref: number,
  code: Uint8Array | null,
  faces: FaceInput[],
  req: CreateAssetRequest,
): Promise<AssetRow> {
  const id = newId("ast");
  const bits = await encodePayload(master.key, layout, { slot: master.slot, ref, code });
  const key = await recordKey(master);
  const image = req.image && req.image.width > 0 && req.image.height > 0 ? req.image : null;
  const stored: StoredFace[] = await Promise.all(
    faces.map(async (f) => ({
      box: f.box,
      ...(image ? { box_norm: normaliseBox(f.box, image) } : {}),
      score: f.score,
      code_enc: await sealCode(key, id, f.identity_code.toLowerCase()),
      ...(f.descriptor
        ? { descriptor_enc: await sealCode(key, id, descriptorToText(f.descriptor)), descriptor_chip: f.descriptor_chip ?? "box" }
        : {}),
    })),
  );
  return {
    id,
    tenant_id: req.tenantId,
    master_key_id: master.id,
    key_slot: master.slot,
    asset_ref: ref,
    mode: code ? "face" : "provenance",
    payload: bitsToHex(bits),
    owner: req.owner ?? null,
    external_ref: req.externalRef ?? null,
    faces: JSON.stringify(stored),
    face_count: faces.length,
    image_key: null,
    job_id: req.jobId ?? null,
    protected_at: Date.now(),
    deleted_at: null,
    // Known once watermark.embed has run (setAssetImage); the analysed image's size until then.
    codec: null,
    width: image?.width ?? null,
    height: image?.height ?? null,
  };
}

async function insertRow(env: AssetEnv, r: AssetRow): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO identity_assets (id, tenant_id, master_key_id, key_slot, asset_ref, mode, payload, owner, external_ref, faces,
       face_count, image_key, job_id, protected_at, deleted_at, codec, width, height)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)`,
  )
    .bind(
      r.id,
      r.tenant_id,
      r.master_key_id,
      r.key_slot,
      r.asset_ref,
      r.mode,
      r.payload,
      r.owner,
      r.external_ref,
      r.faces,
      r.face_count,
      r.image_key,
      r.job_id,
      r.protected_at,
      r.codec,
      r.width,
      r.height,
    )
    .run();
}

/**
 * A record is written when face analysis is in (its ref and key go into the payload that watermark.embed seals),
 * but it is an asset only once its marked image exists: until then the API neither lists nor returns it, and a
 * failed embed discards it (discardUnissuedAsset). Deleted assets keep a tombstone without an image.
 */
const ISSUED = "(image_key IS NOT NULL OR deleted_at IS NOT NULL)";

/** What watermark.embed reports about the image it marked (absent from a codec-1 embedder's result). */
export interface EmbeddedMark {
  codec?: 1 | 2;
  width?: number;
  height?: number;
}

/**
 * Records where the watermarked image lives once watermark.embed has finished: the asset exists from now on.
 * With it, the codec that marked it (1 when the embedder does not say) and the marked image's size (the analysed
 * size stays when the embedder does not say).
 */
export async function setAssetImage(
  env: AssetEnv,
  tenantId: string,
  assetId: string,
  imageKey: string,
  mark: EmbeddedMark = {},
): Promise<void> {
  const size = mark.width && mark.height ? mark : null;
  await env.DB.prepare(
    `UPDATE identity_assets SET image_key = ?, protected_at = ?, codec = ?, width = COALESCE(?, width), height = COALESCE(?, height)
       WHERE tenant_id = ? AND id = ? AND deleted_at IS NULL`,
  )
    .bind(imageKey, Date.now(), mark.codec ?? 1, size?.width ?? null, size?.height ?? null, tenantId, assetId)
    .run();
}

/** Removes a record whose watermark was never issued (its protect flow failed after face analysis). */
export async function discardUnissuedAsset(env: AssetEnv, tenantId: string, assetId: string): Promise<boolean> {
  const res = await env.DB.prepare(
    `DELETE FROM identity_assets WHERE tenant_id = ? AND id = ? AND image_key IS NULL AND deleted_at IS NULL`,
  )
    .bind(tenantId, assetId)
    .run();
  return res.meta.changes === 1;
}

export async function getAsset(env: AssetEnv, tenantId: string, assetId: string): Promise<AssetRow | null> {
  return env.DB.prepare(`SELECT * FROM identity_assets WHERE tenant_id = ? AND id = ? AND ${ISSUED}`)
    .bind(tenantId, assetId)
    .first<AssetRow>();
}

/** Decrypted identity codes of a record's faces (largest first); empty after deletion. */
export async function assetFaceCodes(env: AssetEnv, row: AssetRow): Promise<string[]> {
  if (!row.faces) return [];
  const master = (await masterKeysForSlot(env, row.tenant_id, row.key_slot)).find((k) => k.id === row.master_key_id);
  if (!master) throw new ApiError(500, "master_key_missing", `master key ${row.master_key_id} is gone`);
  const key = await recordKey(master);
  return Promise.all((JSON.parse(row.faces) as StoredFace[]).map((f) => openCode(key, row.id, f.code_enc)));
}

/**
 * What the record holds about each protected face (largest first, so [0] is the payload's face), decrypted:
 * verify's record comparison. Empty after deletion (faces erased) or for a provenance-only record.
 */
export async function assetFaceRecords(env: AssetEnv, row: AssetRow): Promise<RecordFace[]> {
  if (!row.faces) return [];
  const master = (await masterKeysForSlot(env, row.tenant_id, row.key_slot)).find((k) => k.id === row.master_key_id);
  if (!master) throw new ApiError(500, "master_key_missing", `master key ${row.master_key_id} is gone`);
  const key = await recordKey(master);
  return Promise.all(
    (JSON.parse(row.faces) as StoredFace[]).map(async (f) => ({
      box_norm: f.box_norm ?? null,
      code: await openCode(key, row.id, f.code_enc),
      descriptor: f.descriptor_enc ? descriptorFromText(await openCode(key, row.id, f.descriptor_enc)) : null,
      descriptor_chip: f.descriptor_enc ? (f.descriptor_chip ?? "box") : null,
    })),
  );
}

export interface ListAssetsOptions {
  limit?: number;
  /** Opaque cursor from the previous page. */
  cursor?: string | null;
  includeDeleted?: boolean;
}

/** Newest first, keyset-paginated on (protected_at, id). */
export async function listAssets(env: AssetEnv, tenantId: string, opts: ListAssetsOptions = {}) {
  const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
  let before: [number, string] = [Number.MAX_SAFE_INTEGER, "\uffff"];
  if (opts.cursor) before = decodeCursor(opts.cursor);
  const { results } = await env.DB.prepare(
    `SELECT * FROM identity_assets WHERE tenant_id = ? AND (protected_at < ? OR (protected_at = ? AND id < ?)) AND ${ISSUED}
       ${opts.includeDeleted ? "" : "AND deleted_at IS NULL"} ORDER BY protected_at DESC, id DESC LIMIT ?`,
  )
    .bind(tenantId, before[0], before[0], before[1], limit + 1)
    .all<AssetRow>();
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  return {
    data: page.map(publicAsset),
    next_cursor: results.length > limit && last ? base64urlEncode(utf8(`${last.protected_at}:${last.id}`)) : null,
  };
}

function decodeCursor(cursor: string): [number, string] {
  try {
    const text = new TextDecoder().decode(base64urlDecode(cursor));
    const m = /^(\d+):(ast_[0-9a-f]+)$/.exec(text);
    if (m) return [Number(m[1]), m[2]!];
  } catch {
    // fall through to the error below
  }
  throw new ApiError(400, "invalid_cursor", "the cursor is not one this API returned");
}

/**
 * Deletes an asset's personal data and keeps a tombstone. Verification of the image still authenticates
 * the watermark and reports `source` with asset_id and protected_at (owner null); what is lost: owner,
 * external_ref, face boxes and the stored per-face codes and descriptors (so only the watermark's main-face code remains
 * for the identity comparison) and the link to the watermarked image. Returns the image key for the
 * caller to delete from storage, or null when there was none or the record was already deleted.
 */
export async function deleteAsset(env: AssetEnv, tenantId: string, assetId: string): Promise<{ imageKey: string | null } | null> {
  const row = await getAsset(env, tenantId, assetId);
  if (!row) return null;
  if (row.deleted_at !== null) return { imageKey: null };
  await env.DB.prepare(
    `UPDATE identity_assets SET owner = NULL, external_ref = NULL, faces = NULL, image_key = NULL, deleted_at = ?
       WHERE tenant_id = ? AND id = ?`,
  )
    .bind(Date.now(), tenantId, assetId)
    .run();
  return { imageKey: row.image_key };
}

export interface TracedPayload {
  opened: OpenedPayload;
  masterKeyId: string;
  asset: AssetRow;
}

/**
 * Authenticates recovered payload bits under the tenant's keys and finds the record. Null means "not
 * protected by this tenant": no key of the slot authenticates it, or it authenticates but names a ref
 * never issued (a forged tag that got lucky), which the tombstones on deletion make a safe rule.
 */
export async function tracePayload(
  env: AssetEnv,
  tenantId: string,
  payloadHex: string,
  layout: PayloadLayout = DEFAULT_LAYOUT,
): Promise<TracedPayload | null> {
  let bits: Uint8Array;
  try {
    bits = hexToBits(payloadHex, layout.totalBits);
  } catch {
    return null;
  }
  const { slot } = parseHeader(layout, bits);
  for (const master of await masterKeysForSlot(env, tenantId, slot)) {
    const opened = await openPayload(master.key, layout, bits);
    if (!opened) continue;
    const asset = await env.DB.prepare(`SELECT * FROM identity_assets WHERE master_key_id = ? AND asset_ref = ?`)
      .bind(master.id, opened.ref)
      .first<AssetRow>();
    if (asset && asset.tenant_id === tenantId) return { opened, masterKeyId: master.id, asset };
  }
  return null;
}
