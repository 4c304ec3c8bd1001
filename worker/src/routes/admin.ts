import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { HonoEnv, Scope } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { createApiKey, forgetApiKey, publicKey, requireScope, type ApiKeyRow } from "../lib/keys.ts";
import { ApiError, json } from "../problem.ts";
import { newRouter } from "../router.ts";
import { ApiKey, ApiKeyWithSecret, CreateKey, CreateTenant, problemResponses, RotateKey, Tenant } from "../schemas.ts";

export const admin = newRouter();
type C = Context<HonoEnv>;

// Every admin route needs the admin scope.
admin.use("/v1/admin/*", async (c, next) => {
  requireScope(c.get("principal"), "admin");
  await next();
});

interface TenantRow {
  id: string;
  name: string;
  created_at: number;
  rate_limit_per_minute: number | null;
  rate_limit_burst: number | null;
}

const tenantJson = (t: TenantRow) => ({
  id: t.id,
  object: "tenant" as const,
  name: t.name,
  created_at: new Date(t.created_at).toISOString(),
  rate_limit_per_minute: t.rate_limit_per_minute,
  rate_limit_burst: t.rate_limit_burst,
});

const TenantParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
const KeyParams = TenantParam.extend({ key_id: z.string().openapi({ param: { name: "key_id", in: "path" } }) });
const jsonBody = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } }, required: true });
const ok = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const tags = ["Admin"];
const security = [{ bearer: [] }];

async function tenantOr404(c: C, id: string): Promise<TenantRow> {
  const t = await c.env.DB.prepare("SELECT * FROM tenants WHERE id = ?").bind(id).first<TenantRow>();
  if (!t) throw new ApiError(404, "tenant_not_found", "no such tenant");
  return t;
}

async function keyOr404(c: C, tenantId: string, keyId: string): Promise<ApiKeyRow> {
  const k = await c.env.DB.prepare("SELECT * FROM api_keys WHERE id = ? AND tenant_id = ?")
    .bind(keyId, tenantId)
    .first<ApiKeyRow>();
  if (!k) throw new ApiError(404, "api_key_not_found", "no such API key");
  return k;
}

admin.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/tenants",
    tags,
    security,
    summary: "Create a tenant",
    request: { body: jsonBody(CreateTenant) },
    responses: { 201: ok(Tenant, "Created"), ...problemResponses(401, 403, 422) },
  }),
  (async (c: C & { req: { valid(t: "json"): z.infer<typeof CreateTenant> } }) => {
    const b = c.req.valid("json");
    const row: TenantRow = {
      id: newId("ten"),
      name: b.name,
      created_at: Date.now(),
      rate_limit_per_minute: b.rate_limit_per_minute ?? null,
      rate_limit_burst: b.rate_limit_burst ?? null,
    };
    await c.env.DB.prepare(
      "INSERT INTO tenants (id, name, created_at, rate_limit_per_minute, rate_limit_burst) VALUES (?, ?, ?, ?, ?)",
    )
      .bind(row.id, row.name, row.created_at, row.rate_limit_per_minute, row.rate_limit_burst)
      .run();
    return json(tenantJson(row), 201);
  }) as never,
);

admin.openapi(
  createRoute({
    method: "get",
    path: "/v1/admin/tenants",
    tags,
    security,
    summary: "List tenants",
    responses: {
      200: ok(z.object({ object: z.literal("list"), data: z.array(Tenant) }), "Tenants"),
      ...problemResponses(401, 403),
    },
  }),
  (async (c: C) => {
    const { results } = await c.env.DB.prepare("SELECT * FROM tenants ORDER BY created_at DESC LIMIT 1000").all<TenantRow>();
    return json({ object: "list", data: results.map(tenantJson) });
  }) as never,
);

admin.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/tenants/{id}/keys",
    tags,
    security,
    summary: "Create an API key (the secret is returned once)",
    request: { params: TenantParam, body: jsonBody(CreateKey) },
    responses: { 201: ok(ApiKeyWithSecret, "Created"), ...problemResponses(401, 403, 404, 422) },
  }),
  (async (c: C & { req: { valid(t: "json"): z.infer<typeof CreateKey> } }) => {
    const tenant = await tenantOr404(c, c.req.param("id")!);
    const b = c.req.valid("json");
    const { row, token } = await createApiKey(c.env, tenant.id, b.name ?? null, b.scopes as Scope[]);
    return json({ ...publicKey(row), key: token }, 201);
  }) as never,
);

admin.openapi(
  createRoute({
    method: "get",
    path: "/v1/admin/tenants/{id}/keys",
    tags,
    security,
    summary: "List a tenant's API keys (no secrets)",
    request: { params: TenantParam },
    responses: {
      200: ok(z.object({ object: z.literal("list"), data: z.array(ApiKey) }), "Keys"),
      ...problemResponses(401, 403, 404),
    },
  }),
  (async (c: C) => {
    const tenant = await tenantOr404(c, c.req.param("id")!);
    const { results } = await c.env.DB.prepare("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC")
      .bind(tenant.id)
      .all<ApiKeyRow>();
    return json({ object: "list", data: results.map(publicKey) });
  }) as never,
);

admin.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/tenants/{id}/keys/{key_id}/revoke",
    tags,
    security,
    summary: "Revoke an API key immediately",
    request: { params: KeyParams },
    responses: { 200: ok(ApiKey, "Revoked"), ...problemResponses(401, 403, 404) },
  }),
  (async (c: C) => {
    const key = await keyOr404(c, c.req.param("id")!, c.req.param("key_id")!);
    const now = Date.now();
    await c.env.DB.prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?").bind(now, key.id).run();
    forgetApiKey(key.id);
    return json(publicKey({ ...key, revoked_at: key.revoked_at ?? now }));
  }) as never,
);

admin.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/tenants/{id}/keys/{key_id}/rotate",
    tags,
    security,
    summary: "Rotate an API key: a new key with the same scopes; the old one works until the grace period ends",
    request: { params: KeyParams, body: { content: { "application/json": { schema: RotateKey } }, required: false } },
    responses: { 201: ok(ApiKeyWithSecret, "The new key"), ...problemResponses(401, 403, 404, 409, 422) },
  }),
  (async (c: C & { req: { valid(t: "json"): z.infer<typeof RotateKey> | undefined } }) => {
    const old = await keyOr404(c, c.req.param("id")!, c.req.param("key_id")!);
    if (old.revoked_at !== null) throw new ApiError(409, "api_key_revoked", "a revoked key cannot be rotated");
    const grace = (c.req.header("content-type") ?? "").includes("json") ? (c.req.valid("json")?.grace_seconds ?? 0) : 0;
    const { row, token } = await createApiKey(c.env, old.tenant_id, old.name, JSON.parse(old.scopes) as Scope[]);
    const now = Date.now();
    if (grace > 0) {
      await c.env.DB.prepare("UPDATE api_keys SET expires_at = ?, replaced_by = ? WHERE id = ?")
        .bind(now + grace * 1000, row.id, old.id)
        .run();
    } else {
      await c.env.DB.prepare("UPDATE api_keys SET revoked_at = ?, replaced_by = ? WHERE id = ?").bind(now, row.id, old.id).run();
    }
    forgetApiKey(old.id);
    return json({ ...publicKey(row), key: token }, 201);
  }) as never,
);
