/**
 * Identity routes. Mount with `app.route("/", identityRoutes)` after the /v1 auth middleware.
 *
 *   POST   /v1/protect                 image body (?owner=&external_ref=&strength=&format=) → 202 job-like flow
 *   POST   /v1/verify                  image body → 202 job-like flow; output.verdict when done
 *   GET    /v1/identity/flows/:id      poll a protect/verify flow
 *   GET    /v1/assets                  list asset records (?limit=&cursor=)
 *   GET    /v1/assets/:id              one record
 *   DELETE /v1/assets/:id              erase personal data, keep the verification tombstone
 *   GET    /v1/identity/keys           master key metadata (admin)
 *   POST   /v1/identity/keys/rotate    new active master key (admin)
 */

import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { intVar, type HonoEnv } from "../env.ts";
import { requireScope } from "../lib/keys.ts";
import { preferWait } from "../lib/prefer.ts";
import { strictestGeometry } from "../../../contract/geometry.ts";
import { checkImageGeometry } from "../lib/image-header.ts";
import { SUPPORTED_FORMATS, supportedImageType } from "../lib/sniff.ts";
import { ApiError } from "../problem.ts";
import { newRouter } from "../router.ts";
import { problemResponses } from "../schemas.ts";
import { PublicAsset, deleteAsset, getAsset, listAssets, publicAsset } from "./assets.ts";
import { getFlow, publicFlow, refreshFlow, startFlow, type FlowKind } from "./flows.ts";
import { listMasterKeys, rotateMasterKey } from "./master-keys.ts";
import { waitForFlow } from "./wait.ts";

export const identityRoutes = newRouter();
type C = Context<HonoEnv>;

const ProtectQuery = z.object({
  owner: z.string().max(200).nullable().default(null),
  external_ref: z.string().max(200).nullable().default(null),
  strength: z.coerce.number().min(0.1).max(4).default(1),
  format: z.enum(["png", "jpeg", "webp"]).default("png"),
});

/**
 * The stages each flow runs on the one image (worker/src/identity/flows.ts). The image must fit every one of
 * them, so the up-front check takes the strictest of their geometry limits: a 1x1 image to protect is refused
 * with 422 image_too_small (watermark.embed's 32 px) before any asset, object or job exists (issue 12 defect 7),
 * and a 20000x50 one with 422 unsupported_aspect_ratio (face.analyze's 16:1; defect 1).
 */
const FLOW_STAGES: Record<FlowKind, readonly string[]> = {
  protect: ["face.analyze", "watermark.embed"],
  verify: ["face.analyze", "watermark.decode"],
};
const FLOW_GEOMETRY = {
  protect: strictestGeometry(FLOW_STAGES.protect),
  verify: strictestGeometry(FLOW_STAGES.verify),
};

async function readImage(c: C, kind: FlowKind): Promise<{ bytes: Uint8Array; contentType: string }> {
  const limit = intVar(c.env.MAX_INLINE_UPLOAD_BYTES, 10 * 1024 * 1024);
  const declared = Number(c.req.header("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new ApiError(413, "input_too_large", `images up to ${limit} bytes`);
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength === 0) throw new ApiError(400, "empty_body", "the request body is empty");
  if (bytes.byteLength > limit) throw new ApiError(413, "input_too_large", `images up to ${limit} bytes`);
  const contentType = supportedImageType(bytes);
  checkImageGeometry(bytes, FLOW_GEOMETRY[kind], `${kind} (${FLOW_STAGES[kind].join(" + ")})`);
  return { bytes, contentType };
}

async function start(c: C, kind: FlowKind, params: unknown) {
  const principal = requireScope(c.get("principal"), kind);
  const { bytes, contentType } = await readImage(c, kind);
  const flow = await startFlow(c.env, {
    tenantId: principal.tenantId,
    kind,
    image: bytes,
    contentType,
    origin: new URL(c.req.url).origin,
    params,
  });
  const wait = preferWait(c);
  const done = wait > 0 ? await waitForFlow(c.env, flow, wait * 1000) : flow;
  const headers: Record<string, string> = { location: `/v1/identity/flows/${flow.id}` };
  if (wait > 0) headers["preference-applied"] = `wait=${wait}`;
  return c.json(publicFlow(done), done.status === "running" ? 202 : 200, headers);
}

// Documentation entries for /openapi.json; the handlers below validate by hand.
const FlowJob = z
  .object({
    id: z.string(),
    object: z.literal("job"),
    operation: z.enum(["protect", "verify"]),
    status: z.enum(["running", "succeeded", "failed"]),
    output: z.record(z.string(), z.unknown()).nullable(),
    error: z.record(z.string(), z.unknown()).nullable(),
    stages: z.record(z.string(), z.string().nullable()),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("IdentityFlow");
const imageBody = { content: { "image/*": { schema: z.string().openapi({ format: "binary" }) } } };
for (const [path, summary, query, kind] of [
  [
    "/v1/protect",
    "Watermark an image with its faces' encrypted identity (scope protect). Output: asset record.",
    ProtectQuery,
    "protect",
  ],
  [
    "/v1/verify",
    "Verdict authentic | face_swapped | not_protected | inconclusive, with evidence and source (scope verify).",
    undefined,
    "verify",
  ],
] as const) {
  const g = FLOW_GEOMETRY[kind];
  identityRoutes.openAPIRegistry.registerPath({
    method: "post",
    path,
    summary,
    description:
      `Runs ${FLOW_STAGES[kind].join(" and ")} on the image. It is sniffed from its bytes: ${SUPPORTED_FORMATS}; anything else, BMP included, is \`415 unsupported_image\`. ` +
      `Its shorter side must be at least ${g.min_side} px (\`422 image_too_small\`) and its longer side at most ${g.max_aspect_ratio} times the shorter (\`422 unsupported_aspect_ratio\`), the strictest limits of those stages, checked before anything is stored.`,
    tags: ["Identity"],
    security: [{ bearer: [] }],
    request: { query, body: imageBody },
    responses: {
      200: {
        description: "Finished within `Prefer: wait=N` (N <= 60)",
        content: { "application/json": { schema: FlowJob } },
      },
      202: {
        description: "Started (or still running when the wait ran out); poll `Location`: /v1/identity/flows/{id}",
        content: { "application/json": { schema: FlowJob } },
      },
      ...problemResponses(400, 401, 403, 413, 415, 422, 429),
    },
  });
}
identityRoutes.openAPIRegistry.registerPath({
  method: "get",
  path: "/v1/identity/flows/{id}",
  summary: "A protect or verify request; `output` once succeeded.",
  tags: ["Identity"],
  security: [{ bearer: [] }],
  request: { params: z.object({ id: z.string() }) },
  responses: {
    200: { description: "The flow", content: { "application/json": { schema: FlowJob } } },
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
    200: json(
      z.object({
        object: z.literal("list"),
        data: z.array(PublicAsset),
        next_cursor: z.string().nullable(),
      }),
      "A page of asset records",
    ),
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

identityRoutes.post("/v1/protect", async (c) => {
  const q = ProtectQuery.safeParse(c.req.query());
  if (!q.success)
    throw new ApiError(422, "invalid_params", q.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  return start(c, "protect", q.data);
});

identityRoutes.post("/v1/verify", (c) => start(c, "verify", {}));

identityRoutes.get("/v1/identity/flows/:id", async (c) => {
  const principal = c.get("principal");
  if (!principal) throw new ApiError(401, "unauthorized", "an API key is required");
  const flow = await getFlow(c.env, principal.tenantId, c.req.param("id"));
  if (!flow) throw new ApiError(404, "not_found", `no flow ${c.req.param("id")}`);
  return c.json(publicFlow(await refreshFlow(c.env, flow)));
});

identityRoutes.get("/v1/assets", async (c) => {
  const principal = requireScope(c.get("principal"), "protect");
  const limit = Number(c.req.query("limit") ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new ApiError(422, "invalid_limit", "limit must be 1..200");
  return c.json({ object: "list", ...(await listAssets(c.env, principal.tenantId, { limit, cursor: c.req.query("cursor") })) });
});

identityRoutes.get("/v1/assets/:id", async (c) => {
  const principal = requireScope(c.get("principal"), "protect");
  const row = await getAsset(c.env, principal.tenantId, c.req.param("id"));
  if (!row) throw new ApiError(404, "not_found", `no asset ${c.req.param("id")}`);
  return c.json(publicAsset(row));
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
  });
});

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
      [status]: { description: "OK" },
      ...problemResponses(...(method === "post" ? [401, 403, 409, 429] : [401, 403, 429])),
    },
  });
}

identityRoutes.get("/v1/identity/keys", async (c) => {
  const principal = requireScope(c.get("principal"), "admin");
  return c.json({ object: "list", data: await listMasterKeys(c.env, principal.tenantId) });
});

identityRoutes.post("/v1/identity/keys/rotate", async (c) => {
  const principal = requireScope(c.get("principal"), "admin");
  const row = await rotateMasterKey(c.env, principal.tenantId);
  return c.json(
    { id: row.id, object: "identity_master_key", generation: row.generation, slot: row.slot, status: row.status },
    201,
  );
});
