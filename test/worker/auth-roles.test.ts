import { createExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/src/index.ts";
import { SCOPES, type Principal } from "../../worker/src/env.ts";
import { hasScope } from "../../worker/src/keys/service.ts";
import {
  call,
  createTenantKey,
  DEV_KEY,
  expectProblem,
  OPERATOR_KEY,
  ORIGIN,
  operatorCall,
  postJson,
  runnerCall,
  testEnv,
} from "./helpers.ts";

/**
 * Issue 12, defect 2: the `admin` scope was global. Tenant management and /internal metrics now belong to the
 * platform operator (VIGIL_OPERATOR_KEY), which no tenant key holds; a tenant's `admin` scope manages its own
 * tenant's keys, webhooks and master keys only.
 */

const works = async (key: string) => (await call("/v1/jobs", { key })).status;

describe("the operator routes refuse every tenant key", () => {
  it("a tenant admin key cannot list or create tenants, or mint, list, revoke or rotate another tenant's keys", async () => {
    const a = await createTenantKey(["admin"]);
    const b = await createTenantKey(["inspect"]);
    const key = a.key;
    await expectProblem(await call("/v1/admin/tenants", { key }), 403, "operator_required");
    await expectProblem(await postJson("/v1/admin/tenants", { name: "mine now" }, { key }), 403, "operator_required");
    await expectProblem(
      await postJson(`/v1/admin/tenants/${b.tenantId}/keys`, { scopes: ["admin"] }, { key }),
      403,
      "operator_required",
    );
    await expectProblem(await call(`/v1/admin/tenants/${b.tenantId}/keys`, { key }), 403, "operator_required");
    await expectProblem(
      await postJson(`/v1/admin/tenants/${b.tenantId}/keys/${b.keyId}/revoke`, {}, { key }),
      403,
      "operator_required",
    );
    await expectProblem(
      await postJson(`/v1/admin/tenants/${b.tenantId}/keys/${b.keyId}/rotate`, {}, { key }),
      403,
      "operator_required",
    );
    // Not even in its own tenant: the operator routes are the operator's.
    await expectProblem(
      await postJson(`/v1/admin/tenants/${a.tenantId}/keys`, { scopes: ["admin"] }, { key }),
      403,
      "operator_required",
    );
    expect(await works(b.key)).toBe(200); // b's key was neither revoked nor rotated
    const keys = (await (await operatorCall(`/v1/admin/tenants/${b.tenantId}/keys`)).json()) as { data: unknown[] };
    expect(keys.data).toHaveLength(1); // and nothing was minted in b
  });

  it("the dev key is a tenant key like any other: 403 on the operator routes", async () => {
    await expectProblem(await call("/v1/admin/tenants", { key: DEV_KEY }), 403, "operator_required");
    await expectProblem(await postJson("/v1/admin/tenants", { name: "x" }, { key: DEV_KEY }), 403, "operator_required");
  });

  it("no key or a wrong operator token is 401, a revoked tenant key too", async () => {
    await expectProblem(await call("/v1/admin/tenants", { key: null }), 401, "unauthorized");
    await expectProblem(await call("/v1/admin/tenants", { key: OPERATOR_KEY.slice(0, -1) + "X" }), 401, "invalid_operator_key");
    const a = await createTenantKey(["admin"]);
    await operatorCall(`/v1/admin/tenants/${a.tenantId}/keys/${a.keyId}/revoke`, { json: {} });
    await expectProblem(await call("/v1/admin/tenants", { key: a.key }), 401, "invalid_operator_key");
  });

  it("global queue metrics: the operator or a signed runner request, never a tenant key", async () => {
    const a = await createTenantKey(["admin"]);
    await expectProblem(await call("/internal/metrics/queue", { key: a.key }), 403, "operator_required");
    await expectProblem(await call("/internal/metrics/queue", { key: DEV_KEY }), 403, "operator_required");
    await expectProblem(await call("/internal/metrics/queue", { key: null }), 401, "unauthorized");
    const op = await operatorCall("/internal/metrics/queue", { headers: { accept: "application/json" } });
    expect(op.status).toBe(200);
    expect(((await op.json()) as { operations: unknown[] }).operations).toBeInstanceOf(Array);
    expect((await runnerCall("/internal/metrics/queue", undefined, { method: "GET" })).status).toBe(200);
  });
});

describe("the operator credential", () => {
  it("creates tenants and manages any tenant's keys, which is how a tenant gets its first admin key", async () => {
    const t = await operatorCall("/v1/admin/tenants", { json: { name: "acme" } });
    expect(t.status).toBe(201);
    const tenant = (await t.json()) as { id: string };
    const k = await operatorCall(`/v1/admin/tenants/${tenant.id}/keys`, { json: { scopes: ["admin"] } });
    expect(k.status).toBe(201);
    const key = (await k.json()) as { id: string; key: string; tenant_id: string };
    expect(key.tenant_id).toBe(tenant.id);
    // The tenant's admin then serves itself.
    const own = await call("/v1/api_keys", { key: key.key });
    expect(own.status).toBe(200);
    expect(((await own.json()) as { data: { id: string }[] }).data.map((d) => d.id)).toEqual([key.id]);
    const list = (await (await operatorCall("/v1/admin/tenants")).json()) as { data: { id: string }[] };
    expect(list.data.map((d) => d.id)).toContain(tenant.id);
    await expectProblem(
      await operatorCall("/v1/admin/tenants/ten_nope/keys", { json: { scopes: ["inspect"] } }),
      404,
      "tenant_not_found",
    );
  });

  it("is not a tenant key: tenant routes answer 403 tenant_key_required", async () => {
    await expectProblem(await call("/v1/jobs", { key: OPERATOR_KEY }), 403, "tenant_key_required");
    await expectProblem(await call("/v1/api_keys", { key: OPERATOR_KEY }), 403, "tenant_key_required");
  });

  it("absent (VIGIL_OPERATOR_KEY unset), the operator routes answer 503 not_configured; tenant keys still get 403", async () => {
    const env = { ...testEnv, VIGIL_OPERATOR_KEY: undefined };
    const fetchWith = (path: string, key: string) =>
      app.fetch(new Request(`${ORIGIN}${path}`, { headers: { authorization: `Bearer ${key}` } }), env, createExecutionContext());
    await expectProblem(await fetchWith("/v1/admin/tenants", OPERATOR_KEY), 503, "operator_not_configured");
    await expectProblem(await fetchWith("/internal/metrics/queue", OPERATOR_KEY), 503, "operator_not_configured");
    await expectProblem(await fetchWith("/v1/admin/tenants", DEV_KEY), 403, "operator_required");
    // A short secret is refused as not configured rather than trusted.
    const weak = { ...testEnv, VIGIL_OPERATOR_KEY: "vop_short" };
    const res = await app.fetch(
      new Request(`${ORIGIN}/v1/admin/tenants`, { headers: { authorization: "Bearer vop_short" } }),
      weak,
      createExecutionContext(),
    );
    await expectProblem(res, 503, "operator_not_configured");
  });
});

describe("a tenant's admin scope is limited to its own tenant", () => {
  it("self-service API keys: mint, list, revoke and rotate in its own tenant; another tenant's key id is a 404", async () => {
    const a = await createTenantKey(["admin"]);
    const b = await createTenantKey(["admin"]);
    const minted = await postJson("/v1/api_keys", { name: "ci", scopes: ["inspect"], tenant_id: b.tenantId }, { key: a.key });
    expect(minted.status).toBe(201);
    const m = (await minted.json()) as { id: string; key: string; tenant_id: string; scopes: string[] };
    expect([m.tenant_id, m.scopes]).toEqual([a.tenantId, ["inspect"]]); // a tenant_id in the body is ignored
    expect(await works(m.key)).toBe(200);
    const list = (await (await call("/v1/api_keys", { key: a.key })).json()) as { data: { id: string; tenant_id: string }[] };
    expect(list.data.map((k) => k.id).sort()).toEqual([a.keyId, m.id].sort());
    expect(JSON.stringify(list)).not.toContain(m.key.split("_")[2]!); // no secrets listed

    await expectProblem(await postJson(`/v1/api_keys/${b.keyId}/revoke`, {}, { key: a.key }), 404, "api_key_not_found");
    await expectProblem(await postJson(`/v1/api_keys/${b.keyId}/rotate`, {}, { key: a.key }), 404, "api_key_not_found");
    expect(await works(b.key)).toBe(200);

    const rotated = await postJson(`/v1/api_keys/${m.id}/rotate`, {}, { key: a.key });
    expect(rotated.status).toBe(201);
    const next = (await rotated.json()) as { key: string; scopes: string[]; tenant_id: string };
    expect([next.scopes, next.tenant_id]).toEqual([["inspect"], a.tenantId]);
    await expectProblem(await call("/v1/jobs", { key: m.key }), 401, "api_key_revoked");
    const revoked = await postJson(`/v1/api_keys/${m.id}/revoke`, {}, { key: a.key });
    expect(revoked.status).toBe(200);
    expect(await works(next.key)).toBe(200);
  });

  it("self-service API keys need the admin scope", async () => {
    const { key, keyId } = await createTenantKey(["protect", "verify", "restore", "inspect"]);
    await expectProblem(await call("/v1/api_keys", { key }), 403, "insufficient_scope");
    await expectProblem(await postJson("/v1/api_keys", { scopes: ["inspect"] }, { key }), 403, "insufficient_scope");
    await expectProblem(await postJson(`/v1/api_keys/${keyId}/revoke`, {}, { key }), 403, "insufficient_scope");
    await expectProblem(await postJson(`/v1/api_keys/${keyId}/rotate`, {}, { key }), 403, "insufficient_scope");
    expect(await works(key)).toBe(200);
  });

  it("no escalation: a key being rotated out cannot mint a key that outlives it", async () => {
    const a = await createTenantKey(["admin"]);
    const r = await postJson(`/v1/api_keys/${a.keyId}/rotate`, { grace_seconds: 60 }, { key: a.key });
    expect(r.status).toBe(201);
    const successor = (await r.json()) as { id: string; key: string };
    expect(await works(a.key)).toBe(200); // still inside its grace period
    await expectProblem(await postJson("/v1/api_keys", { scopes: ["admin"] }, { key: a.key }), 403, "api_key_superseded");
    await expectProblem(await postJson(`/v1/api_keys/${successor.id}/rotate`, {}, { key: a.key }), 403, "api_key_superseded");
    // The successor can retire it now.
    expect((await postJson(`/v1/api_keys/${a.keyId}/revoke`, {}, { key: successor.key })).status).toBe(200);
    await expectProblem(await call("/v1/jobs", { key: a.key }), 401, "api_key_revoked");
  });

  it("no escalation by scope: key management needs admin, and admin holds every tenant scope", async () => {
    // So a key can never grant a scope it lacks. If admin stops implying a scope, requireKeyManager
    // (keys/service.ts) needs a subset check on the granted scopes, and this test says so.
    const admin = { tenantId: "ten_x", keyId: "key_x", scopes: ["admin"], expiresAt: null } satisfies Principal;
    expect(SCOPES.filter((s) => !hasScope(admin, s))).toEqual([]);
    const almost = await createTenantKey(["protect", "verify", "restore", "inspect"]);
    await expectProblem(await postJson("/v1/api_keys", { scopes: ["admin"] }, { key: almost.key }), 403, "insufficient_scope");
    await expectProblem(await postJson("/v1/api_keys", { scopes: ["inspect"] }, { key: almost.key }), 403, "insufficient_scope");
  });

  it("webhook endpoints need the admin scope, and another tenant's endpoint is a 404", async () => {
    const a = await createTenantKey(["admin"]);
    const b = await createTenantKey(["admin"]);
    const user = await createTenantKey(["protect", "verify", "restore", "inspect"]);
    const created = await postJson(
      "/v1/webhook_endpoints",
      { url: "https://hooks.example.com/a", events: ["*"] },
      { key: a.key },
    );
    expect(created.status).toBe(201);
    const ep = (await created.json()) as { id: string };
    for (const [path, method] of [
      ["/v1/webhook_endpoints", "GET"],
      [`/v1/webhook_endpoints/${ep.id}`, "DELETE"],
      [`/v1/webhook_endpoints/${ep.id}/rotate_secret`, "POST"],
      [`/v1/webhook_endpoints/${ep.id}/deliveries`, "GET"],
    ] as const) {
      await expectProblem(await call(path, { key: user.key, method }), 403, "insufficient_scope");
      if (path !== "/v1/webhook_endpoints")
        await expectProblem(await call(path, { key: b.key, method }), 404, "webhook_endpoint_not_found");
    }
    await expectProblem(
      await postJson("/v1/webhook_endpoints", { url: "https://hooks.example.com/u", events: ["*"] }, { key: user.key }),
      403,
      "insufficient_scope",
    );
    const listB = (await (await call("/v1/webhook_endpoints", { key: b.key })).json()) as { data: unknown[] };
    expect(listB.data).toEqual([]);
    expect((await call(`/v1/webhook_endpoints/${ep.id}/deliveries`, { key: a.key })).status).toBe(200);
  });

  it("master keys: listed and rotated in the caller's tenant only, with the admin scope", async () => {
    const a = await createTenantKey(["admin"]);
    const b = await createTenantKey(["admin"]);
    const user = await createTenantKey(["protect", "verify"]);
    await expectProblem(await call("/v1/identity/keys", { key: user.key }), 403, "insufficient_scope");
    await expectProblem(await postJson("/v1/identity/keys/rotate", {}, { key: user.key }), 403, "insufficient_scope");
    const r = await postJson("/v1/identity/keys/rotate", {}, { key: a.key });
    expect(r.status).toBe(201);
    const mk = (await r.json()) as { id: string };
    const listA = (await (await call("/v1/identity/keys", { key: a.key })).json()) as { data: { id: string }[] };
    const listB = (await (await call("/v1/identity/keys", { key: b.key })).json()) as { data: { id: string }[] };
    expect(listA.data.map((k) => k.id)).toContain(mk.id);
    expect(listB.data.map((k) => k.id)).not.toContain(mk.id);
  });
});
