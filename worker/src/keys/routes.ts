import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { HonoEnv, Scope } from "../env.ts";
import { requireOperator } from "../middleware/auth.ts";
import { ApiError } from "../problem.ts";
import { newRouter } from "../router.ts";
import {
  ApiKey,
  ApiKeyWithSecret,
  CreateKey,
  jsonBody,
  ok,
  problemResponses,
  RotateKey,
  type ProblemStatus,
} from "../schemas.ts";
import {
  apiKeyOr404,
  createApiKey,
  listApiKeys,
  publicKey,
  requireKeyManager,
  requireScope,
  revokeApiKey,
  rotateApiKey,
} from "./service.ts";

/**
 * API key routes, twice over the same service:
 * - the operator's, for any tenant: /v1/admin/tenants/{id}/keys… (how a tenant gets its first admin key);
 * - a tenant's own, Stripe-style: /v1/api_keys…, with the `admin` scope, always in the caller's tenant, so another
 *   tenant's key id is a 404 like a missing one.
 */
export const keys = newRouter();
type C = Context<HonoEnv>;

const pathParam = (name: string, description: string) => z.string().openapi({ param: { name, in: "path" }, description });

interface Variant {
  tags: string[];
  security: Record<string, string[]>[];
  /** The collection path and the path of one key, in OpenAPI syntax. */
  base: string;
  one: string;
  params: { collection?: z.ZodObject; key: z.ZodObject };
  keyParam: string;
  /** 401/403/404 codes the variant can answer, for the document. */
  errors: ProblemStatus[];
  /** The tenant the request acts on, after the variant's checks. */
  tenant(c: C): Promise<string>;
  /** Throws unless the caller may hand out keys (minting, and a rotation's successor). */
  mayGrant(c: C): void;
}

async function tenantOr404(c: C, id: string): Promise<string> {
  const t = await c.env.DB.prepare("SELECT id FROM tenants WHERE id = ?").bind(id).first<{ id: string }>();
  if (!t) throw new ApiError(404, "tenant_not_found", "no such tenant");
  return t.id;
}

const TenantId = pathParam("id", "Tenant id (ten_…)");
const variants: Variant[] = [
  {
    tags: ["Admin"],
    security: [{ operator: [] }],
    base: "/v1/admin/tenants/{id}/keys",
    one: "/v1/admin/tenants/{id}/keys/{key_id}",
    params: {
      collection: z.object({ id: TenantId }),
      key: z.object({ id: TenantId, key_id: pathParam("key_id", "API key id (key_…)") }),
    },
    keyParam: "key_id",
    errors: [401, 403, 404, 503],
    async tenant(c) {
      requireOperator(c);
      return tenantOr404(c, c.req.param("id")!);
    },
    mayGrant: () => {},
  },
  {
    tags: ["API keys"],
    security: [{ bearer: [] }],
    base: "/v1/api_keys",
    one: "/v1/api_keys/{id}",
    params: { key: z.object({ id: pathParam("id", "API key id (key_…) of the caller's tenant") }) },
    keyParam: "id",
    errors: [401, 403, 404],
    tenant: async (c) => requireScope(c.get("principal"), "admin").tenantId,
    mayGrant: (c) => void requireKeyManager(c.get("principal")),
  },
];

for (const v of variants) {
  const keyId = (c: C) => c.req.param(v.keyParam)!;
  const withTenant = (s: string) =>
    v.base.startsWith("/v1/admin") ? `${s} (platform operator; any tenant)` : `${s} (own tenant)`;

  keys.openapi(
    createRoute({
      method: "post",
      path: v.base,
      tags: v.tags,
      security: v.security,
      summary: withTenant("Create an API key; the secret is returned once"),
      request: { ...(v.params.collection ? { params: v.params.collection } : {}), body: jsonBody(CreateKey) },
      responses: { 201: ok(ApiKeyWithSecret, "Created"), ...problemResponses(...v.errors, 422) },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const scopes = b.scopes as Scope[];
      const tenantId = await v.tenant(c);
      v.mayGrant(c);
      const { row, token } = await createApiKey(c.env, tenantId, b.name ?? null, scopes);
      return c.json({ ...publicKey(row), key: token }, 201);
    },
  );

  keys.openapi(
    createRoute({
      method: "get",
      path: v.base,
      tags: v.tags,
      security: v.security,
      summary: withTenant("List API keys (no secrets)"),
      ...(v.params.collection ? { request: { params: v.params.collection } } : {}),
      responses: {
        200: ok(z.object({ object: z.literal("list"), data: z.array(ApiKey) }), "Keys"),
        ...problemResponses(...v.errors),
      },
    }),
    async (c) => {
      const rows = await listApiKeys(c.env, await v.tenant(c));
      return c.json({ object: "list" as const, data: rows.map(publicKey) }, 200);
    },
  );

  keys.openapi(
    createRoute({
      method: "post",
      path: `${v.one}/revoke`,
      tags: v.tags,
      security: v.security,
      summary: withTenant("Revoke an API key immediately"),
      request: { params: v.params.key },
      responses: { 200: ok(ApiKey, "Revoked"), ...problemResponses(...v.errors) },
    }),
    async (c) => c.json(publicKey(await revokeApiKey(c.env, await v.tenant(c), keyId(c))), 200),
  );

  keys.openapi(
    createRoute({
      method: "post",
      path: `${v.one}/rotate`,
      tags: v.tags,
      security: v.security,
      summary: withTenant(
        "Rotate an active API key: a successor with the same scopes; the old key works until the grace period ends. " +
          "A key rotates once: an expired, revoked or already rotated key is a 409",
      ),
      request: { params: v.params.key, body: { content: { "application/json": { schema: RotateKey } }, required: false } },
      responses: { 201: ok(ApiKeyWithSecret, "The successor"), ...problemResponses(...v.errors, 409, 422) },
    }),
    async (c) => {
      const tenantId = await v.tenant(c);
      const old = await apiKeyOr404(c.env, tenantId, keyId(c));
      v.mayGrant(c); // a successor is a new key, as when minting
      const grace = (c.req.header("content-type") ?? "").includes("json") ? (c.req.valid("json")?.grace_seconds ?? 0) : 0;
      const { row, token } = await rotateApiKey(c.env, old, grace);
      return c.json({ ...publicKey(row), key: token }, 201);
    },
  );
}
