import { describe, expect, it } from "vitest";
import { call, createTenantKey, expectProblem, OPERATOR_KEY, operatorCall, postJson } from "./helpers.ts";

/**
 * Issue 12, defect 3: rotating an expired key brought it back (the rotation set a new expiry on it). A key can be
 * rotated once, while it is active: rotating an expired, revoked or already rotated key is a 409 that changes
 * nothing. Checked on both routes that rotate: the operator's and the tenant's self-service one.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Via {
  name: string;
  /** A tenant with one key K (inspect) and a way to rotate, revoke and list its keys. */
  setup(): Promise<{
    key: string;
    keyId: string;
    rotate(id: string, grace?: number): Promise<Response>;
    revoke(id: string): Promise<Response>;
    count(): Promise<number>;
  }>;
}

const vias: Via[] = [
  {
    name: "operator route",
    async setup() {
      const k = await createTenantKey(["inspect"]);
      const base = `/v1/admin/tenants/${k.tenantId}/keys`;
      return {
        key: k.key,
        keyId: k.keyId,
        rotate: (id, grace) =>
          postJson(`${base}/${id}/rotate`, grace === undefined ? {} : { grace_seconds: grace }, { key: OPERATOR_KEY }),
        revoke: (id) => operatorCall(`${base}/${id}/revoke`, { json: {} }),
        count: async () => ((await (await operatorCall(base)).json()) as { data: unknown[] }).data.length,
      };
    },
  },
  {
    name: "self-service route",
    async setup() {
      const admin = await createTenantKey(["admin"]);
      const minted = await postJson("/v1/api_keys", { scopes: ["inspect"] }, { key: admin.key });
      expect(minted.status).toBe(201);
      const k = (await minted.json()) as { id: string; key: string };
      return {
        key: k.key,
        keyId: k.id,
        rotate: (id, grace) =>
          postJson(`/v1/api_keys/${id}/rotate`, grace === undefined ? {} : { grace_seconds: grace }, { key: admin.key }),
        revoke: (id) => postJson(`/v1/api_keys/${id}/revoke`, {}, { key: admin.key }),
        count: async () => ((await (await call("/v1/api_keys", { key: admin.key })).json()) as { data: unknown[] }).data.length,
      };
    },
  },
];

describe.each(vias)("API key rotation ($name)", (via) => {
  it("rotating an expired key is 409 api_key_expired and does not bring it back", async () => {
    const t = await via.setup();
    const first = await t.rotate(t.keyId, 1);
    expect(first.status).toBe(201);
    await sleep(1100);
    await expectProblem(await call("/v1/jobs", { key: t.key }), 401, "api_key_expired");
    const before = await t.count();
    await expectProblem(await t.rotate(t.keyId, 3600), 409, "api_key_expired");
    await expectProblem(await call("/v1/jobs", { key: t.key }), 401, "api_key_expired");
    expect(await t.count()).toBe(before); // no second successor
  });

  it("rotating a key already rotated (inside its grace period) is 409 api_key_already_rotated; its grace is unchanged", async () => {
    const t = await via.setup();
    const first = await t.rotate(t.keyId, 1);
    expect(first.status).toBe(201);
    const before = await t.count();
    await expectProblem(await t.rotate(t.keyId, 3600), 409, "api_key_already_rotated");
    expect(await t.count()).toBe(before);
    expect((await call("/v1/jobs", { key: t.key })).status).toBe(200);
    await sleep(1100);
    await expectProblem(await call("/v1/jobs", { key: t.key }), 401, "api_key_expired"); // still the first grace
    // The successor is an ordinary key: it rotates.
    const successor = (await first.json()) as { id: string; key: string };
    expect((await t.rotate(successor.id)).status).toBe(201);
  });

  it("rotating a revoked key is 409 api_key_revoked", async () => {
    const t = await via.setup();
    expect((await t.revoke(t.keyId)).status).toBe(200);
    const before = await t.count();
    await expectProblem(await t.rotate(t.keyId, 3600), 409, "api_key_revoked");
    await expectProblem(await call("/v1/jobs", { key: t.key }), 401, "api_key_revoked");
    expect(await t.count()).toBe(before);
  });

  it("two concurrent rotations of one key: one successor, one 409", async () => {
    const t = await via.setup();
    const results = await Promise.all([t.rotate(t.keyId, 60), t.rotate(t.keyId, 60)]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(await t.count()).toBe((via.name === "operator route" ? 1 : 2) + 1);
  });
});
