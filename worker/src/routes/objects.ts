import { newRouter } from "../router.ts";
import type { HonoEnv } from "../env.ts";
import { isSafeKey, OBJECTS_PATH, verifyObjectUrl } from "../lib/object-urls.ts";
import { ApiError } from "../problem.ts";

/** Largest object accepted through a signed PUT (the largest operation input limit). */
export const MAX_OBJECT_BYTES = 50 * 1024 * 1024;

export const objects = newRouter();

async function authorize(c: { env: HonoEnv["Bindings"]; req: { url: string; method: string } }): Promise<string> {
  const url = new URL(c.req.url);
  const key = decodeURIComponent(url.pathname.slice(OBJECTS_PATH.length));
  if (!isSafeKey(key)) throw new ApiError(404, "not_found", "no such object");
  if (!c.env.OBJECT_URL_SECRET) throw new ApiError(503, "not_configured", "signed object URLs are not configured");
  const method = c.req.method === "HEAD" ? "GET" : c.req.method;
  const v = await verifyObjectUrl(
    c.env.OBJECT_URL_SECRET,
    method,
    key,
    url.searchParams.get("expires"),
    url.searchParams.get("sig"),
  );
  if (!v.ok)
    throw new ApiError(403, v.code, v.code === "url_expired" ? "this signed URL has expired" : "the URL signature is not valid");
  return key;
}

objects.on(["GET", "HEAD"], `${OBJECTS_PATH}*`, async (c) => {
  const key = await authorize(c);
  const obj = await c.env.OBJECTS.get(key);
  if (!obj) throw new ApiError(404, "not_found", "no such object");
  const headers = new Headers({
    etag: obj.httpEtag,
    "content-length": String(obj.size),
    "cache-control": "private, max-age=300",
  });
  headers.set("content-type", obj.httpMetadata?.contentType ?? "application/octet-stream");
  return new Response(c.req.method === "HEAD" ? null : obj.body, { headers });
});

objects.put(`${OBJECTS_PATH}*`, async (c) => {
  const key = await authorize(c);
  const declared = Number(c.req.header("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_OBJECT_BYTES) {
    throw new ApiError(413, "payload_too_large", `objects are limited to ${MAX_OBJECT_BYTES} bytes`);
  }
  const body = await c.req.arrayBuffer();
  if (body.byteLength > MAX_OBJECT_BYTES)
    throw new ApiError(413, "payload_too_large", `objects are limited to ${MAX_OBJECT_BYTES} bytes`);
  const contentType = c.req.header("content-type") ?? "application/octet-stream";
  const obj = await c.env.OBJECTS.put(key, body, { httpMetadata: { contentType } });
  return c.json({ key, bytes: obj?.size ?? body.byteLength, etag: obj?.httpEtag ?? null }, 201);
});
