/**
 * Identity routes. POST /v1/protect and /v1/verify are job routes (worker/src/routes/jobs.ts, from their contract
 * entries); the worker runs those jobs in flows.ts. Mount with `app.route("/", identityRoutes)` after the /v1 auth middleware.
 *
 *   GET    /v1/identity/flows/:id      deprecated alias of GET /v1/jobs/:id for protect and verify (and idf_ flows)
 *   GET    /v1/assets                  list asset records (?limit=&cursor=)
 *   GET    /v1/assets/:id              one record
 *   DELETE /v1/assets/:id              erase personal data, keep the verification tombstone
 *   GET    /v1/identity/keys           master key metadata (admin)
 *   POST   /v1/identity/keys/rotate    new active master key (admin)
 */

import { createRoute, z } from "@hono/zod-openapi";
import { requireScope } from "../lib/keys.ts";
import { ApiError } from "../problem.ts";
import { newRouter } from "../router.ts";
import { Job, problemResponses } from "../schemas.ts";
import { PublicAsset, deleteAsset, getAsset, listAssets, publicAsset } from "./assets.ts";
import { flowAsJob } from "./flows.ts";
import { listMasterKeys, rotateMasterKey } from "./master-keys.ts";

export const identityRoutes = newRouter();

/** RFC 9745 Deprecation header: the alias has been deprecated since 2026-12-02 (00:00 UTC). */
const DEPRECATED_SINCE = "@1796169600";

const flowAlias = createRoute({
  method: "get",
  path: "/v1/identity/flows/{id}",
  summary: "Deprecated: a protect or verify job (use GET /v1/jobs/{id}).",
  description:
    "Deprecated alias of `GET /v1/jobs/{id}` for protect and verify jobs: protect and verify are jobs (`job_…`, listed, canceled and deleted with the job routes). " +
    "It also serves `idf_…` ids, the protect and verify requests made before they were jobs, in the same job shape.",
  deprecated: true,
  tags: ["Identity"],
  security: [{ bearer: [] }],
  request: { params: z.object({ id: z.string().openapi({ param: { name: "id", in: "path" }, example: "job_019a3f…" }) }) },
  responses: {
    200: { description: "The protect or verify job", content: { "application/json": { schema: Job } } },
    ...problemResponses(401, 404),
  },
});
const AssetId = z.object({ id: z.string().openapi({ description: "The asset id (`ast_...`).", example: "ast_2f1c9e" }) });
const DeletedAsset = z.object({
  id: z.string(),
  object: z.literal("identity_asset"),
  deleted: z.literal(true),
  kept: z.array(z.string()),
  erased: z.array(z.string()),
});
const AssetList = z.object({ object: z.literal("list"), data: z.array(PublicAsset), next_cursor: z.string().nullable() });
/**
 * The asset and master-key routes keep their own request checks (their error codes are part of the API), so they are
 * plain routes next to their document entries; each body is checked against the entry's schema with `satisfies`.
 */
type Body<T extends z.ZodTypeAny> = z.infer<T>;
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
identityRoutes.openAPIRegistry.registerPath({
  method: "get",
  path: "/v1/assets",
  summary: "Protected asset records, newest first.",
  tags: ["Identity"],
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(200).default(50).optional(),
      cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
    }),
  },
  responses: {
    200: json(AssetList, "A page of asset records"),
    ...problemResponses(401, 403, 422),
  },
});
identityRoutes.openAPIRegistry.registerPath({
  method: "get",
  path: "/v1/assets/{id}",
  summary: "One asset record.",
  tags: ["Identity"],
  security: [{ bearer: [] }],
  request: { params: AssetId },
  responses: { 200: json(PublicAsset, "The asset record"), ...problemResponses(401, 403, 404) },
});
identityRoutes.openAPIRegistry.registerPath({
  method: "delete",
  path: "/v1/assets/{id}",
  summary: "Erase owner, external_ref, faces and image; keep what verification needs.",
  tags: ["Identity"],
  security: [{ bearer: [] }],
  request: { params: AssetId },
  responses: { 200: json(DeletedAsset, "What was erased and what was kept"), ...problemResponses(401, 403, 404) },
});

identityRoutes.openapi(flowAlias, async (c) => {
  const principal = c.get("principal");
  if (!principal) throw new ApiError(401, "unauthorized", "an API key is required");
  const { id } = c.req.valid("param");
  const job = await flowAsJob(c.env, principal.tenantId, id, new URL(c.req.url).origin);
  if (!job) throw new ApiError(404, "not_found", `no protect or verify job ${id}`);
  return c.json(job, 200, { deprecation: DEPRECATED_SINCE, link: `</v1/jobs/${job.id}>; rel="successor-version"` });
});

identityRoutes.get("/v1/assets", async (c) => {
  const principal = requireScope(c.get("principal"), "protect");
  const limit = Number(c.req.query("limit") ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new ApiError(422, "invalid_limit", "limit must be 1..200");
  const page = await listAssets(c.env, principal.tenantId, { limit, cursor: c.req.query("cursor") });
  return c.json({ object: "list", ...page } satisfies Body<typeof AssetList>);
});

identityRoutes.get("/v1/assets/:id", async (c) => {
  const principal = requireScope(c.get("principal"), "protect");
  const row = await getAsset(c.env, principal.tenantId, c.req.param("id"));
  if (!row) throw new ApiError(404, "not_found", `no asset ${c.req.param("id")}`);
  return c.json(publicAsset(row) satisfies Body<typeof PublicAsset>);
});

identityRoutes.delete("/v1/assets/:id", async (c) => {
  const principal = requireScope(c.get("principal"), "protect");
  const gone = await deleteAsset(c.env, principal.tenantId, c.req.param("id"));
  if (!gone) throw new ApiError(404, "not_found", `no asset ${c.req.param("id")}`);
  if (gone.imageKey) await c.env.OBJECTS.delete(gone.imageKey);
  return c.json({
    id: c.req.param("id"),
    object: "identity_asset",
    deleted: true,
    kept: ["asset_id", "protected_at", "master_key_id", "asset_ref", "payload"],
    erased: ["owner", "external_ref", "faces", "image"],
  } satisfies Body<typeof DeletedAsset>);
});

/** A tenant's identity master key, metadata only (the wrapped key never leaves D1): one shape wherever it is served. */
const IdentityMasterKey = z
  .object({
    id: z.string(),
    object: z.literal("identity_master_key"),
    generation: z.number().int(),
    slot: z.number().int(),
    status: z.enum(["active", "retired"]),
    created_at: z.string().datetime(),
    retired_at: z.string().datetime().nullable(),
  })
  .openapi("IdentityMasterKey");
const IdentityMasterKeyList = z
  .object({ object: z.literal("list"), data: z.array(IdentityMasterKey) })
  .openapi("IdentityMasterKeyList");

// Master keys: the tenant's own, with the admin scope; the tenant always comes from the caller's key, never the request.
for (const [method, path, summary, status] of [
  ["get", "/v1/identity/keys", "The tenant's identity master keys (metadata only; scope admin).", 200],
  [
    "post",
    "/v1/identity/keys/rotate",
    "A new active master key for the tenant; older ones are retired and still verify (scope admin).",
    201,
  ],
] as const) {
  identityRoutes.openAPIRegistry.registerPath({
    method,
    path,
    summary,
    tags: ["Identity"],
    security: [{ bearer: [] }],
    // A rotation racing another one is a 409 rotation_conflict (master-keys.ts).
    responses: {
      [status]:
        method === "get"
          ? { description: "The master keys, newest first", content: { "application/json": { schema: IdentityMasterKeyList } } }
          : { description: "The new active master key", content: { "application/json": { schema: IdentityMasterKey } } },
      ...(method === "post" ? problemResponses(401, 403, 409, 429) : problemResponses(401, 403, 429)),
    },
  });
}

identityRoutes.get("/v1/identity/keys", async (c) => {
  const principal = requireScope(c.get("principal"), "admin");
  return c.json({ object: "list", data: await listMasterKeys(c.env, principal.tenantId) } satisfies Body<
    typeof IdentityMasterKeyList
  >);
});

identityRoutes.post("/v1/identity/keys/rotate", async (c) => {
  const principal = requireScope(c.get("principal"), "admin");
  const row = await rotateMasterKey(c.env, principal.tenantId);
  // The listed shape (one object, one schema): a new key was created now and is not retired.
  const key = (await listMasterKeys(c.env, principal.tenantId)).find((k) => k.id === row.id)!;
  return c.json(key satisfies Body<typeof IdentityMasterKey>, 201);
});
