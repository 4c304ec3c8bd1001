import { HTTPException } from "hono/http-exception";
import { timing } from "hono/timing";
import { consoleRoutes } from "./console/routes.ts";
import { docsRoutes } from "./docs/routes.ts";
import { openApiDocument } from "./docs/openapi.ts";
import { jobQueue } from "./durable/job-queue.ts";
import { intVar, type AppEnv } from "./env.ts";
import { handleWebhookBatch, type WebhookMessage } from "./lib/webhooks.ts";
import { keys } from "./keys/routes.ts";
import { apiAuth, operatorAuth } from "./middleware/auth.ts";
import { requestLog } from "./middleware/logging.ts";
import { ApiError, problemResponse } from "./problem.ts";
import { newRouter } from "./router.ts";
import { admin } from "./routes/admin.ts";
import { health } from "./routes/health.ts";
import { deleteJobObjects, jobs } from "./routes/jobs.ts";
import { objects } from "./routes/objects.ts";
import { runner } from "./routes/runner.ts";
import { uploads } from "./routes/uploads.ts";
import { webhooks } from "./routes/webhooks.ts";
import { identityRoutes } from "./identity/routes.ts";

export { JobQueue } from "./durable/job-queue.ts";
export { RateLimiter } from "./durable/rate-limiter.ts";
// Internal API for other worker modules (identity/protect/verify): see lib/jobs-api.ts and lib/webhooks.ts.
export { createJob, registerCompletionHook, type CompletionHook } from "./lib/jobs-api.ts";
export { emitEvent } from "./lib/webhooks.ts";

const app = newRouter();

app.use("*", requestLog);
// Server-Timing on every response: where a request spent its time (auth, rate limit, storage, queue, wait).
app.use("*", timing({ totalDescription: "total" }));
// Signed object URLs carry their own authorization; tenant management (/v1/admin) needs the platform operator's
// credential; everything else under /v1 needs a tenant API key.
app.use("/v1/*", async (c, next) => {
  const path = c.req.path;
  if (path.startsWith("/v1/objects/")) return next();
  if (path === "/v1/admin" || path.startsWith("/v1/admin/")) return operatorAuth(c, next);
  return apiAuth(c, next);
});

app.route("/", health);
app.route("/", objects);
app.route("/", uploads);
app.route("/", jobs);
app.route("/", admin);
app.route("/", keys);
app.route("/", webhooks);
app.route("/", identityRoutes);
app.route("/", runner);

app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
  type: "http",
  scheme: "bearer",
  description: "vgl_… tenant API key",
});
app.openAPIRegistry.registerComponent("securitySchemes", "operator", {
  type: "http",
  scheme: "bearer",
  description: "vop_… platform operator credential (the VIGIL_OPERATOR_KEY secret): tenant management; held by no tenant",
});
// The repository grants no licence (no LICENSE file, a private package): all rights reserved. An SPDX LicenseRef,
// since OpenAPI 3.1 asks for an identifier or a URL and there is no licence text to link to.
const license = { name: "Proprietary, all rights reserved", identifier: "LicenseRef-Vigil-Proprietary" };
// The generated document plus operationIds and the common errors (docs/openapi.ts); /docs renders the same one.
const openApi = openApiDocument(app, {
  openapi: "3.1.0",
  info: {
    title: "Vigil API",
    version: "1.0.0",
    description: "Watermarks photos against deepfake face swaps and restores degraded photos. Every operation is a job.",
    license,
  },
  // Relative: the API is served from the origin that serves this document (local wrangler dev or production).
  servers: [{ url: "/", description: "The origin that serves this document" }],
});
app.get("/openapi.json", (c) => c.json(openApi()));
app.route("/", docsRoutes(openApi));
app.route("/", consoleRoutes());

app.notFound((c) => problemResponse(new ApiError(404, "not_found", `no route for ${c.req.method} ${c.req.path}`), c.req.path));

const HTTP_EXCEPTION_CODES: Record<number, string> = { 413: "payload_too_large", 415: "unsupported_media_type" };

app.onError((err, c) => {
  if (err instanceof ApiError) return problemResponse(err, c.req.path);
  if (err instanceof HTTPException) {
    // Hono's own refusals: a body over a limit (413), a Content-Type the route does not declare (415, from
    // @hono/zod-openapi's validator), malformed JSON (400).
    const code = HTTP_EXCEPTION_CODES[err.status] ?? "bad_request";
    return problemResponse(new ApiError(err.status, code, err.message || "bad request"), c.req.path);
  }
  console.error(
    JSON.stringify({
      msg: "unhandled_error",
      request_id: c.get("requestId"),
      path: c.req.path,
      error: String(err),
      stack: err.stack,
    }),
  );
  return problemResponse(
    new ApiError(500, "internal_error", "an internal error occurred; quote the x-request-id header when reporting it"),
    c.req.path,
  );
});

/** Daily retention sweep: jobs older than RETENTION_DAYS go, with their objects; so do stale uploads. */
async function sweepRetention(env: AppEnv): Promise<number> {
  const cutoff = Date.now() - intVar(env.RETENTION_DAYS, 30) * 86_400_000;
  let removed = 0;
  for (;;) {
    const batch = await jobQueue(env).purgeBefore(cutoff, 200);
    for (const job of batch) await deleteJobObjects(env, job);
    removed += batch.length;
    if (batch.length < 200) break;
  }
  const { results } = await env.DB.prepare("SELECT id, object_key FROM uploads WHERE created_at < ?")
    .bind(cutoff)
    .all<{ id: string; object_key: string }>();
  for (const u of results) {
    await env.OBJECTS.delete(u.object_key);
    await env.DB.prepare("DELETE FROM uploads WHERE id = ?").bind(u.id).run();
  }
  return removed;
}

export default {
  fetch: app.fetch,
  async queue(batch: MessageBatch<WebhookMessage>, env: AppEnv): Promise<void> {
    await handleWebhookBatch(batch, env);
  },
  async scheduled(_controller: ScheduledController, env: AppEnv, ctx: ExecutionContext): Promise<void> {
    ctx.waitUntil(sweepRetention(env).then((n) => console.log(JSON.stringify({ msg: "retention_sweep", removed: n }))));
  },
} satisfies ExportedHandler<AppEnv, WebhookMessage>;

export { app, sweepRetention };
