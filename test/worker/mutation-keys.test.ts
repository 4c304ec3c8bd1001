import { describe, expect, it } from "vitest";
import { call, createTenantKey, DEV_KEY, expectProblem, postJson } from "./helpers.ts";

/**
 * API key behaviour that planted bugs (scripts/mutants.ts, `npm run mutation`) showed no test pinned down: a rotation's
 * grace period is the length asked for. The other tests wait out short graces (a few seconds), which a grace cut to a
 * tenth also passes; here an hour is asked and the old key's recorded expiry is checked to the second. And the dev
 * key is matched whole, not by its look.
 */

interface KeyJson {
  id: string;
  expires_at: string | null;
  revoked_at: string | null;
  replaced_by: string | null;
}

describe("rotation grace", () => {
  it("the old key expires exactly grace_seconds after the rotation, and works until then", async () => {
    const admin = await createTenantKey(["admin"]);
    const minted = await postJson("/v1/api_keys", { scopes: ["inspect"] }, { key: admin.key });
    expect(minted.status).toBe(201);
    const old = (await minted.json()) as { id: string; key: string };
    const t0 = Date.now();
    const rotated = await postJson(`/v1/api_keys/${old.id}/rotate`, { grace_seconds: 3600 }, { key: admin.key });
    const t1 = Date.now();
    expect(rotated.status).toBe(201);
    const successor = (await rotated.json()) as { id: string; key: string };
    const keys = ((await (await call("/v1/api_keys", { key: admin.key })).json()) as { data: KeyJson[] }).data;
    const before = keys.find((k) => k.id === old.id)!;
    expect(before.replaced_by).toBe(successor.id);
    expect(before.revoked_at).toBeNull();
    const expires = Date.parse(before.expires_at!);
    expect(expires).toBeGreaterThanOrEqual(t0 + 3600_000);
    expect(expires).toBeLessThanOrEqual(t1 + 3600_000);
    // Inside its grace the old key still works, and so does its successor.
    expect((await call("/v1/jobs", { key: old.key })).status).toBe(200);
    expect((await call("/v1/jobs", { key: successor.key })).status).toBe(200);
  });
});

describe("the dev key", () => {
  it("only the exact dev key is the dev key: one changed character, or just its prefix, is 401", async () => {
    expect((await call("/v1/jobs", { key: DEV_KEY })).status).toBe(200);
    const last = DEV_KEY.at(-1) === "f" ? "e" : "f";
    for (const key of [DEV_KEY.slice(0, -1) + last, `${DEV_KEY}x`, "vgl_dev_0123456789abcdef0123"])
      await expectProblem(await call("/v1/jobs", { key }), 401, "invalid_api_key");
  });
});
