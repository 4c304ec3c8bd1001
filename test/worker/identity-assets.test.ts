import { describe, expect, it } from "vitest";
import { testEnv } from "./helpers.ts";
import { bitsToHex, hexToBits } from "../../worker/src/identity/bits.ts";
import {
  assetFaceCodes,
  createAsset,
  deleteAsset,
  getAsset,
  listAssets,
  setAssetImage,
  tracePayload,
  type FaceInput,
} from "../../worker/src/identity/assets.ts";
import {
  activeMasterKey,
  listMasterKeys,
  masterKeysForSlot,
  rotateMasterKey,
  unwrapKey,
  type MasterKeyRow,
} from "../../worker/src/identity/master-keys.ts";
import { DEFAULT_LAYOUT, openPayload } from "../../worker/src/identity/payload.ts";

const env = testEnv;
const tenant = () => `ten_${crypto.randomUUID().replaceAll("-", "")}`;
const randomCode = () => Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
const face = (code = randomCode(), x = 10): FaceInput => ({
  box: { x, y: 20, width: 120, height: 140 },
  score: 0.98,
  identity_code: code,
});

async function keyRows(tenantId: string): Promise<MasterKeyRow[]> {
  const { results } = await env.DB.prepare(`SELECT * FROM identity_master_keys WHERE tenant_id = ? ORDER BY generation`)
    .bind(tenantId)
    .all<MasterKeyRow>();
  return results;
}

describe("tenant master keys", () => {
  it("are created on first use, once, and stored only wrapped", async () => {
    const t = tenant();
    const [a, b] = await Promise.all([activeMasterKey(env, t), activeMasterKey(env, t)]);
    expect(a.id).toBe(b.id);
    const rows = await keyRows(t);
    expect(rows).toHaveLength(1);
    const raw = await unwrapKey(env, rows[0]!);
    expect(raw.length).toBe(32);
    // iv (12) + ciphertext (32) + GCM tag (16), and the raw key does not appear in the stored text.
    const stored = rows[0]!.wrapped;
    expect(atob(stored.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (stored.length % 4)) % 4)).length).toBe(60);
    expect(stored).not.toContain(btoa(String.fromCharCode(...raw)).slice(0, 20));
  });

  it("refuse to unwrap under another tenant's id or another KEK", async () => {
    const t = tenant();
    await activeMasterKey(env, t);
    const row = (await keyRows(t))[0]!;
    await expect(unwrapKey(env, { ...row, tenant_id: tenant() })).rejects.toThrow(/cannot be unwrapped/);
    const otherKek = { ...env, MASTER_KEY_ENCRYPTION_KEY: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" };
    await expect(unwrapKey(otherKek, row)).rejects.toThrow(/cannot be unwrapped/);
    await expect(activeMasterKey({ ...env, MASTER_KEY_ENCRYPTION_KEY: "short" }, t)).rejects.toThrow(/32 bytes/);
  });

  it("rotate to a new active generation; old ones are retired but still listed and usable", async () => {
    const t = tenant();
    const first = await activeMasterKey(env, t);
    const second = await rotateMasterKey(env, t);
    expect(second.generation).toBe(1);
    expect((await activeMasterKey(env, t)).id).toBe(second.id);
    const listed = await listMasterKeys(env, t);
    expect(listed.map((k) => [k.generation, k.status])).toEqual([
      [1, "active"],
      [0, "retired"],
    ]);
    expect(JSON.stringify(listed)).not.toContain("wrapped");
    expect((await masterKeysForSlot(env, t, 0)).map((k) => k.id)).toEqual([first.id]);
  });

  it("key slots wrap after 16 generations and both keys of a slot are tried", async () => {
    const t = tenant();
    await activeMasterKey(env, t);
    for (let i = 0; i < 16; i++) await rotateMasterKey(env, t);
    const slot0 = await masterKeysForSlot(env, t, 0);
    expect(slot0.map((k) => k.generation)).toEqual([16, 0]);
  });
});

describe("asset records", () => {
  it("protect → trace: the payload authenticates under the tenant key and finds the record", async () => {
    const t = tenant();
    const codes = [randomCode(), randomCode()];
    const { row, payloadHex } = await createAsset(env, {
      tenantId: t,
      faces: [face(codes[0], 10), face(codes[1], 300)],
      owner: "newsroom",
      externalRef: "photo-17",
      jobId: "job_x",
    });
    expect(payloadHex).toMatch(/^[0-9a-f]{16}$/);
    expect(row.mode).toBe("face");
    const traced = await tracePayload(env, t, payloadHex);
    expect(traced?.asset.id).toBe(row.id);
    expect(traced?.opened.mode).toBe("face");
    expect(bitsToHex(traced!.opened.code!)).toBe(codes[0]);
    expect(await assetFaceCodes(env, traced!.asset)).toEqual(codes);
    // No plaintext identity code in the stored row.
    const stored = JSON.stringify(await getAsset(env, t, row.id));
    for (const c of codes) expect(stored).not.toContain(c);
  });

  it("an image without faces gets a provenance payload that traces with no identity code", async () => {
    const t = tenant();
    const { row, payloadHex } = await createAsset(env, { tenantId: t, faces: [], owner: "o" });
    expect(row.mode).toBe("provenance");
    const traced = await tracePayload(env, t, payloadHex);
    expect(traced?.opened).toMatchObject({ mode: "provenance", code: null });
    expect(traced?.asset.id).toBe(row.id);
  });

  it("another tenant cannot trace it (not_protected for them), even with a record at the same ref", async () => {
    const a = tenant();
    const b = tenant();
    const { row, payloadHex } = await createAsset(env, { tenantId: a, faces: [face()] });
    await activeMasterKey(env, b);
    // Give tenant B a record with the very same slot and ref number under its own key.
    const bKey = await activeMasterKey(env, b);
    await env.DB.prepare(
      `INSERT INTO identity_assets (id, tenant_id, master_key_id, key_slot, asset_ref, mode, payload, face_count, protected_at)
       VALUES (?, ?, ?, ?, ?, 'provenance', '00', 0, ?)`,
    )
      .bind(`ast_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`, b, bKey.id, row.key_slot, row.asset_ref, Date.now())
      .run();
    expect(await tracePayload(env, b, payloadHex)).toBeNull();
    expect((await tracePayload(env, a, payloadHex))?.asset.id).toBe(row.id);
  });

  it("tampered or malformed payloads do not trace", async () => {
    const t = tenant();
    const { payloadHex } = await createAsset(env, { tenantId: t, faces: [] });
    const bits = hexToBits(payloadHex, 64);
    // A flipped provenance payload never opens as provenance. It can open as a face payload at the 8-bit tag's
    // 2^-8 rate per try (the documented forgery bound, measured in identity-payload.test.ts): about 15 % of runs
    // see one such open among 64 flips, so only a count far above that rate is a failure (P(> 5) < 1e-6).
    let asProvenance = 0;
    let asFace = 0;
    for (let i = 0; i < 64; i++) {
      const f = bits.slice();
      f[i]! ^= 1;
      const traced = await tracePayload(env, t, bitsToHex(f));
      if (traced?.opened.mode === "provenance") asProvenance++;
      else if (traced) asFace++;
    }
    expect(asProvenance).toBe(0);
    expect(asFace).toBeLessThanOrEqual(5);
    expect(await tracePayload(env, t, "xyz")).toBeNull();
    expect(await tracePayload(env, t, "00")).toBeNull();
  });

  it("payloads made before a rotation still trace after it", async () => {
    const t = tenant();
    const before = await createAsset(env, { tenantId: t, faces: [face()] });
    await rotateMasterKey(env, t);
    const after = await createAsset(env, { tenantId: t, faces: [face()] });
    expect(after.row.master_key_id).not.toBe(before.row.master_key_id);
    expect((await tracePayload(env, t, before.payloadHex))?.asset.id).toBe(before.row.id);
    expect((await tracePayload(env, t, after.payloadHex))?.asset.id).toBe(after.row.id);
  });

  it("equal identity codes get different payloads (refs differ, so do keystreams)", async () => {
    const t = tenant();
    const code = randomCode();
    const a = await createAsset(env, { tenantId: t, faces: [face(code)] });
    const b = await createAsset(env, { tenantId: t, faces: [face(code)] });
    expect(a.row.asset_ref).not.toBe(b.row.asset_ref);
    expect(a.payloadHex.slice(6)).not.toBe(b.payloadHex.slice(6));
  });

  it("rejects malformed faces with a clear error", async () => {
    await expect(createAsset(env, { tenantId: tenant(), faces: [{ ...face(), identity_code: "xyz" }] })).rejects.toThrow();
    await expect(createAsset(env, { tenantId: tenant(), faces: [face("abc")] })).rejects.toThrow(/8 hex digits/);
  });

  it("list newest first with cursors; delete keeps a tombstone that still traces", async () => {
    const t = tenant();
    const made = [];
    // An asset is listed once its marked image exists, and protected_at is that moment.
    for (let i = 0; i < 5; i++) {
      made.push(await createAsset(env, { tenantId: t, faces: [face()], owner: `o${i}`, externalRef: `r${i}` }));
      await setAssetImage(env, t, made[i]!.row.id, i === 4 ? `tenants/${t}/img.png` : `tenants/${t}/img${i}.png`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const unissued = await createAsset(env, { tenantId: t, faces: [face()], owner: "pending" });
    const page1 = await listAssets(env, t, { limit: 3 });
    expect(page1.data.map((a) => a.owner)).toEqual(["o4", "o3", "o2"]);
    const page2 = await listAssets(env, t, { limit: 3, cursor: page1.next_cursor });
    expect(page2.data.map((a) => a.owner)).toEqual(["o1", "o0"]);
    expect(page2.next_cursor).toBeNull();
    expect(await getAsset(env, t, unissued.row.id)).toBeNull();
    await expect(listAssets(env, t, { cursor: "garbage" })).rejects.toThrow(/cursor/);

    const gone = await deleteAsset(env, t, made[4]!.row.id);
    expect(gone).toEqual({ imageKey: `tenants/${t}/img.png` });
    expect(await deleteAsset(env, t, made[4]!.row.id)).toEqual({ imageKey: null });
    expect(await deleteAsset(env, tenant(), made[3]!.row.id)).toBeNull();
    expect((await listAssets(env, t)).data).toHaveLength(4);
    const traced = await tracePayload(env, t, made[4]!.payloadHex);
    expect(traced?.asset).toMatchObject({ id: made[4]!.row.id, owner: null, external_ref: null, faces: null, image_key: null });
    expect(traced?.asset.deleted_at).not.toBeNull();
    expect(traced?.opened.mode).toBe("face");
    expect(await assetFaceCodes(env, traced!.asset)).toEqual([]);
  });

  it("the stored payload is exactly what opens under the record's key", async () => {
    const t = tenant();
    const { row } = await createAsset(env, { tenantId: t, faces: [face()] });
    const key = (await masterKeysForSlot(env, t, row.key_slot)).find((k) => k.id === row.master_key_id)!;
    const opened = await openPayload(key.key, DEFAULT_LAYOUT, hexToBits(row.payload, 64));
    expect(opened?.ref).toBe(row.asset_ref);
  });
});
