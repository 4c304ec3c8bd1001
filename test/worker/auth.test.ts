import { describe, expect, it, vi } from "vitest";
import { AUTH_CACHE_TTL_MS, TtlCache } from "../../worker/src/keys/service.ts";
import { call, createTenantKey, expectProblem, operatorCall, postImage, testEnv } from "./helpers.ts";

describe("API key authentication", () => {
  it("rejects missing and malformed keys", async () => {
    await expectProblem(await call("/v1/jobs", { key: null }), 401, "unauthorized");
    await expectProblem(
      await call("/v1/jobs", { key: "vgl_0000000000000000_notarealsecretnotarealsecret" }),
      401,
      "invalid_api_key",
    );
    await expectProblem(await call("/v1/jobs", { key: "garbage" }), 401, "invalid_api_key");
  });

  it("accepts a created key, and a wrong secret for a real key id fails", async () => {
    const { key } = await createTenantKey(["inspect"]);
    expect((await call("/v1/jobs", { key })).status).toBe(200);
    const forged = key.slice(0, -4) + (key.endsWith("AAAA") ? "BBBB" : "AAAA");
    await expectProblem(await call("/v1/jobs", { key: forged }), 401, "invalid_api_key");
  });

  it("enforces scopes: a restore-only key cannot inspect or administer", async () => {
    const { key } = await createTenantKey(["restore"]);
    await expectProblem(await postImage("/v1/inspect", undefined, { key }), 403, "insufficient_scope");
    await expectProblem(await call("/v1/api_keys", { key }), 403, "insufficient_scope");
    await expectProblem(await call("/v1/admin/tenants", { key }), 403, "operator_required");
    expect((await postImage("/v1/enhance/lowlight", undefined, { key })).status).toBe(202);
  });

  it("admin scope can do everything in its own tenant, and nothing of the operator's", async () => {
    const { key } = await createTenantKey(["admin"]);
    expect((await postImage("/v1/inspect", undefined, { key })).status).toBe(202);
    expect((await call("/v1/api_keys", { key })).status).toBe(200);
    await expectProblem(await call("/v1/admin/tenants", { key }), 403, "operator_required");
  });

  it("revoked keys stop working", async () => {
    const { tenantId, keyId, key } = await createTenantKey(["inspect"]);
    // Used first, so this isolate has the key's row cached: revoking through the admin API must drop it.
    expect((await call("/v1/jobs", { key })).status).toBe(200);
    const r = await operatorCall(`/v1/admin/tenants/${tenantId}/keys/${keyId}/revoke`, { json: {} });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { revoked_at: string | null }).revoked_at).not.toBeNull();
    await expectProblem(await call("/v1/jobs", { key }), 401, "api_key_revoked");
  });

  it("a key revoked elsewhere (another isolate, straight in D1) stops working within the auth cache TTL", async () => {
    const { keyId, key } = await createTenantKey(["inspect"]);
    expect((await call("/v1/jobs", { key })).status).toBe(200);
    // What another isolate's admin call does: D1 changes, this isolate's cache does not hear of it.
    await testEnv.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), keyId).run();
    expect((await call("/v1/jobs", { key })).status).toBe(200); // the documented staleness, bounded by the TTL
    const realNow = Date.now;
    const spy = vi.spyOn(Date, "now").mockImplementation(() => realNow() + AUTH_CACHE_TTL_MS + 1000);
    try {
      await expectProblem(await call("/v1/jobs", { key }), 401, "api_key_revoked");
    } finally {
      spy.mockRestore();
    }
  });

  it("the TTL cache expires entries and stays bounded", () => {
    let now = 1000;
    const cache = new TtlCache<number>(30_000, 2, () => now);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3); // evicts the oldest
    expect([cache.get("a"), cache.get("b"), cache.get("c"), cache.size]).toEqual([undefined, 2, 3, 2]);
    now += 29_999;
    expect(cache.get("b")).toBe(2);
    now += 1;
    expect(cache.get("b")).toBeUndefined();
    cache.delete("c");
    expect(cache.get("c")).toBeUndefined();
  });

  it("rotation without grace revokes the old key; with grace both work until expiry", async () => {
    const a = await createTenantKey(["inspect"]);
    expect((await call("/v1/jobs", { key: a.key })).status).toBe(200); // cached before the rotation
    const rotated = await operatorCall(`/v1/admin/tenants/${a.tenantId}/keys/${a.keyId}/rotate`, { json: {} });
    expect(rotated.status).toBe(201);
    const fresh = (await rotated.json()) as { key: string; scopes: string[]; id: string };
    expect(fresh.scopes).toEqual(["inspect"]);
    expect((await call("/v1/jobs", { key: fresh.key })).status).toBe(200);
    await expectProblem(await call("/v1/jobs", { key: a.key }), 401, "api_key_revoked");

    const b = await createTenantKey(["inspect"]);
    const withGrace = await operatorCall(`/v1/admin/tenants/${b.tenantId}/keys/${b.keyId}/rotate`, {
      json: { grace_seconds: 1 },
    });
    const next = (await withGrace.json()) as { key: string };
    expect((await call("/v1/jobs", { key: b.key })).status).toBe(200);
    expect((await call("/v1/jobs", { key: next.key })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    await expectProblem(await call("/v1/jobs", { key: b.key }), 401, "api_key_expired");
    expect((await call("/v1/jobs", { key: next.key })).status).toBe(200);

    const list = await operatorCall(`/v1/admin/tenants/${b.tenantId}/keys`);
    const keys = ((await list.json()) as { data: { id: string; replaced_by: string | null }[] }).data;
    expect(keys).toHaveLength(2);
    // No secrets listed. The secret is everything after `vgl_<key id>_`: it is base64url and can itself hold or
    // start with "_" (split("_")[2] was then "", and `not.toContain("")` failed about one run in 64).
    const secret = b.key.slice(`vgl_${b.key.split("_")[1]}_`.length);
    expect(secret.length).toBeGreaterThan(16);
    expect(JSON.stringify(keys)).not.toContain(secret);
    expect(keys.find((k) => k.id === b.keyId)!.replaced_by).toBeTruthy();
  });

  it("tenants are isolated: another tenant's job is a 404", async () => {
    const a = await createTenantKey(["inspect"]);
    const b = await createTenantKey(["inspect"]);
    const job = (await (await postImage("/v1/inspect", undefined, { key: a.key })).json()) as { id: string };
    expect((await call(`/v1/jobs/${job.id}`, { key: a.key })).status).toBe(200);
    await expectProblem(await call(`/v1/jobs/${job.id}`, { key: b.key }), 404, "job_not_found");
  });

  it("admin input is validated with field errors", async () => {
    // The body is validated before the handler looks the tenant up.
    await expectProblem(
      await operatorCall("/v1/admin/tenants/ten_nope/keys", { json: { scopes: ["root"] } }),
      422,
      "validation_failed",
    );
    const bad = await operatorCall("/v1/admin/tenants", { json: { name: "" } });
    await expectProblem(bad.clone(), 422, "validation_failed");
    expect(((await bad.json()) as { errors: { path: string }[] }).errors[0]!.path).toBe("name");
  });
});

describe("rate limiting", () => {
  it("returns 429 with Retry-After once the tenant's bucket is empty", async () => {
    const { key } = await createTenantKey(["inspect"], { rate_limit_per_minute: 6, rate_limit_burst: 3 });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await call("/v1/jobs", { key });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(limited).toBeDefined();
    // One token every 60 / 6 = 10 s, and the bucket was emptied well under a second ago.
    expect(limited!.headers.get("retry-after")).toBe("10");
    await expectProblem(limited!, 429, "rate_limited");
    // Another tenant is unaffected.
    expect((await call("/v1/jobs")).status).toBe(200);
  });
});

describe("errors and docs", () => {
  it("unknown routes are 404 problems", async () => {
    await expectProblem(await call("/v1/nope"), 404, "not_found");
    await expectProblem(await call("/nothing-here", { key: null }), 404, "not_found");
  });

  it("serves the generated OpenAPI 3.1 document and the reference page", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe("3.1.0");
    for (const p of [
      "/v1/inspect",
      "/v1/enhance/lowlight",
      "/v1/jobs",
      "/v1/jobs/{id}",
      "/v1/uploads",
      "/v1/webhook_endpoints",
      "/v1/admin/tenants",
      "/v1/api_keys",
      "/v1/api_keys/{id}/rotate",
    ]) {
      expect(doc.paths).toHaveProperty(p);
    }
    const docs = await call("/docs", { key: null });
    expect(docs.status).toBe(200);
    expect(docs.headers.get("content-type")).toContain("text/html");
  });

  it("declares servers, and every path template's parameters on each of its operations", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as {
      servers?: { url: string }[];
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; required?: boolean }[] }>>;
    };
    expect(doc.servers?.length).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths))
      for (const name of [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!))
        for (const [method, op] of Object.entries(ops)) {
          const p = op.parameters?.find((x) => x.in === "path" && x.name === name);
          if (!p || p.required !== true) missing.push(`${method.toUpperCase()} ${path}: {${name}}`);
        }
    expect(missing).toEqual([]);
  });

  it("echoes x-request-id", async () => {
    const res = await call("/healthz", { key: null, headers: { "x-request-id": "req-123" } });
    expect(res.headers.get("x-request-id")).toBe("req-123");
    expect((await call("/healthz", { key: null })).headers.get("x-request-id")).toMatch(/[0-9a-f-]{36}/);
  });
});
