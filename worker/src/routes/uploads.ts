import { createRoute } from "@hono/zod-openapi";
import { newId } from "../lib/ids.ts";
import { objectKeys, objectUrlSigner } from "../lib/object-urls.ts";
import { newRouter } from "../router.ts";
import { ok, problemResponses, Upload } from "../schemas.ts";
import { MAX_OBJECT_BYTES } from "./objects.ts";

export const uploads = newRouter();
const UPLOAD_URL_SECONDS = 3600;

uploads.openapi(
  createRoute({
    method: "post",
    path: "/v1/uploads",
    tags: ["Uploads"],
    security: [{ bearer: [] }],
    summary: "Get a signed URL to PUT a large image to; reference it as { upload_id } when creating a job",
    responses: {
      201: ok(Upload, "Created"),
      ...problemResponses(401, 429),
    },
  }),
  async (c) => {
    const tenantId = c.get("principal")!.tenantId;
    const id = newId("upl");
    const key = objectKeys.upload(tenantId, id);
    const expiresAt = Math.floor(Date.now() / 1000) + UPLOAD_URL_SECONDS;
    const url = await objectUrlSigner(c.env, new URL(c.req.url).origin).sign("PUT", key, expiresAt);
    await c.env.DB.prepare("INSERT INTO uploads (id, tenant_id, object_key, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
      .bind(id, tenantId, key, Date.now(), expiresAt * 1000)
      .run();
    return c.json(
      { upload_id: id, upload_url: url, expires_at: new Date(expiresAt * 1000).toISOString(), max_bytes: MAX_OBJECT_BYTES },
      201,
    );
  },
);
