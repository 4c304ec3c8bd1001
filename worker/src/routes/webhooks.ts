import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { HonoEnv } from "../env.ts";
import { requireScope } from "../keys/service.ts";
import { newId } from "../lib/ids.ts";
import { checkWebhookUrl } from "../lib/ssrf.ts";
import { sealSecret } from "../lib/secret-box.ts";
import { generateWebhookSecret, PREVIOUS_SECRET_GRACE_SECONDS } from "../lib/webhooks.ts";
import { ApiError } from "../problem.ts";
import { newRouter } from "../router.ts";
import {
  CreateWebhookEndpoint,
  ok,
  problemResponses,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
} from "../schemas.ts";

export const webhooks = newRouter();
type C = Context<HonoEnv>;

// Webhook endpoints are tenant administration: they choose where the tenant's job events go and hold its signing
// secrets. They needed no scope at all, so any key (an inspect-only one in a client app) could point the events
// elsewhere (issue 12, defect 2). Always within the caller's tenant: endpointOr404 matches the tenant id.
for (const path of ["/v1/webhook_endpoints", "/v1/webhook_endpoints/*"]) {
  webhooks.use(path, async (c, next) => {
    requireScope(c.get("principal"), "admin");
    await next();
  });
}

interface EndpointRow {
  id: string;
  tenant_id: string;
  url: string;
  description: string | null;
  events: string;
  secret: string;
  created_at: number;
}

const endpointJson = (e: EndpointRow) => ({
  id: e.id,
  object: "webhook_endpoint" as const,
  url: e.url,
  description: e.description,
  events: JSON.parse(e.events) as string[],
  created_at: new Date(e.created_at).toISOString(),
});

const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
const tags = ["Webhooks"];
const security = [{ bearer: [] }];

async function endpointOr404(c: C, id: string): Promise<EndpointRow> {
  const row = await c.env.DB.prepare("SELECT * FROM webhook_endpoints WHERE id = ? AND tenant_id = ?")
    .bind(id, c.get("principal")!.tenantId)
    .first<EndpointRow>();
  if (!row) throw new ApiError(404, "webhook_endpoint_not_found", "no such webhook endpoint");
  return row;
}

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/v1/webhook_endpoints",
    tags,
    security,
    summary: "Register a webhook endpoint (the whsec_ secret is returned once)",
    request: { body: { content: { "application/json": { schema: CreateWebhookEndpoint } }, required: true } },
    responses: { 201: ok(WebhookEndpointWithSecret, "Created"), ...problemResponses(401, 403, 422) },
  }),
  async (c) => {
    const b = c.req.valid("json");
    const verdict = checkWebhookUrl(b.url, c.env.VIGIL_MODE);
    if (!verdict.ok) {
      throw new ApiError(422, "webhook_url_not_allowed", `webhook URL rejected: ${verdict.reason}`, {
        errors: [{ path: "url", message: verdict.reason }],
      });
    }
    const row: EndpointRow = {
      id: newId("we"),
      tenant_id: c.get("principal")!.tenantId,
      url: verdict.url.toString(),
      description: b.description ?? null,
      events: JSON.stringify(b.events),
      secret: generateWebhookSecret(),
      created_at: Date.now(),
    };
    await c.env.DB.prepare(
      "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
      .bind(
        row.id,
        row.tenant_id,
        row.url,
        row.description,
        row.events,
        await sealSecret(c.env.MASTER_KEY_ENCRYPTION_KEY, row.id, row.secret),
        row.created_at,
      )
      .run();
    return c.json({ ...endpointJson(row), secret: row.secret }, 201);
  },
);

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/v1/webhook_endpoints",
    tags,
    security,
    summary: "List webhook endpoints",
    responses: {
      200: ok(z.object({ object: z.literal("list"), data: z.array(WebhookEndpoint) }), "Endpoints"),
      ...problemResponses(401, 403),
    },
  }),
  async (c) => {
    const { results } = await c.env.DB.prepare("SELECT * FROM webhook_endpoints WHERE tenant_id = ? ORDER BY created_at DESC")
      .bind(c.get("principal")!.tenantId)
      .all<EndpointRow>();
    return c.json({ object: "list" as const, data: results.map(endpointJson) }, 200);
  },
);

webhooks.openapi(
  createRoute({
    method: "delete",
    path: "/v1/webhook_endpoints/{id}",
    tags,
    security,
    summary: "Delete a webhook endpoint",
    request: { params: IdParam },
    responses: {
      200: ok(z.object({ id: z.string(), object: z.literal("webhook_endpoint"), deleted: z.literal(true) }), "Deleted"),
      ...problemResponses(401, 403, 404),
    },
  }),
  async (c) => {
    const ep = await endpointOr404(c, c.req.valid("param").id);
    await c.env.DB.prepare("DELETE FROM webhook_endpoints WHERE id = ?").bind(ep.id).run();
    return c.json({ id: ep.id, object: "webhook_endpoint" as const, deleted: true as const }, 200);
  },
);

webhooks.openapi(
  createRoute({
    method: "post",
    path: "/v1/webhook_endpoints/{id}/rotate_secret",
    tags,
    security,
    summary: "New signing secret; the old one stays valid (and is signed with too) for 24 hours",
    request: { params: IdParam },
    responses: { 200: ok(WebhookEndpointWithSecret, "Rotated"), ...problemResponses(401, 403, 404) },
  }),
  async (c) => {
    const ep = await endpointOr404(c, c.req.valid("param").id);
    const secret = generateWebhookSecret();
    await c.env.DB.prepare(
      "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_secret_expires_at = ? WHERE id = ?",
    )
      // The old secret stays sealed as it was; both are bound to the endpoint id.
      .bind(
        await sealSecret(c.env.MASTER_KEY_ENCRYPTION_KEY, ep.id, secret),
        ep.secret,
        Date.now() + PREVIOUS_SECRET_GRACE_SECONDS * 1000,
        ep.id,
      )
      .run();
    return c.json({ ...endpointJson(ep), secret }, 200);
  },
);

type DeliveryStatus = z.infer<typeof WebhookDelivery>["status"];
interface DeliveryRow {
  id: string;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  created_at: number;
  updated_at: number;
}
interface AttemptRow {
  delivery_id: string;
  attempt: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  created_at: number;
}

webhooks.openapi(
  createRoute({
    method: "get",
    path: "/v1/webhook_endpoints/{id}/deliveries",
    tags,
    security,
    summary: "Recent deliveries to an endpoint, each with every attempt (status code, error, duration)",
    request: { params: IdParam, query: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) }) },
    responses: {
      200: ok(z.object({ object: z.literal("list"), data: z.array(WebhookDelivery) }), "Deliveries"),
      ...problemResponses(401, 403, 404),
    },
  }),
  async (c) => {
    const ep = await endpointOr404(c, c.req.valid("param").id);
    const { limit } = c.req.valid("query");
    const { results: deliveries } = await c.env.DB.prepare(
      "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY created_at DESC LIMIT ?",
    )
      .bind(ep.id, limit)
      .all<DeliveryRow>();
    const ids = deliveries.map((d) => d.id);
    const attempts = ids.length
      ? (
          await c.env.DB.prepare(
            `SELECT * FROM webhook_attempts WHERE delivery_id IN (${ids.map(() => "?").join(",")}) ORDER BY attempt`,
          )
            .bind(...ids)
            .all<AttemptRow>()
        ).results
      : [];
    const iso = (ms: number) => new Date(ms).toISOString();
    return c.json(
      {
        object: "list" as const,
        data: deliveries.map((d) => ({
          id: d.id,
          object: "webhook_delivery" as const,
          event_id: d.event_id,
          event_type: d.event_type,
          status: d.status,
          attempts: attempts
            .filter((a) => a.delivery_id === d.id)
            .map((a) => ({
              attempt: a.attempt,
              status_code: a.status_code,
              error: a.error,
              duration_ms: a.duration_ms,
              created_at: iso(a.created_at),
            })),
          created_at: iso(d.created_at),
          updated_at: iso(d.updated_at),
        })),
      },
      200,
    );
  },
);
