import { createRoute, z } from "@hono/zod-openapi";
import { newId } from "../lib/ids.ts";
import { requireOperator } from "../middleware/auth.ts";
import { newRouter } from "../router.ts";
import { CreateTenant, jsonBody, ok, problemResponses, Tenant } from "../schemas.ts";

/**
 * Tenant management: the platform operator's alone (VIGIL_OPERATOR_KEY, checked by operatorAuth in index.ts). No
 * tenant key reaches it, whatever its scopes: a tenant's `admin` used to list every tenant and mint keys in any of
 * them (issue 12, defect 2). The operator's key routes for any tenant are in keys/routes.ts.
 */
export const admin = newRouter();

admin.use("/v1/admin/*", async (c, next) => {
  requireOperator(c);
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

const tags = ["Admin"];
const security = [{ operator: [] }];

admin.openapi(
  createRoute({
    method: "post",
    path: "/v1/admin/tenants",
    tags,
    security,
    summary: "Create a tenant",
    request: { body: jsonBody(CreateTenant) },
    responses: { 201: ok(Tenant, "Created"), ...problemResponses(401, 403, 422, 503) },
  }),
  async (c) => {
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
    return c.json(tenantJson(row), 201);
  },
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
      ...problemResponses(401, 403, 503),
    },
  }),
  async (c) => {
    const { results } = await c.env.DB.prepare("SELECT * FROM tenants ORDER BY created_at DESC LIMIT 1000").all<TenantRow>();
    return c.json({ object: "list" as const, data: results.map(tenantJson) }, 200);
  },
);
