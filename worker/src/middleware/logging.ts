import type { MiddlewareHandler } from "hono";
import type { HonoEnv } from "../env.ts";

/** One JSON log line per request; echoes or mints x-request-id. */
export const requestLog: MiddlewareHandler<HonoEnv> = async (c, next) => {
  const given = c.req.header("x-request-id");
  const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
  c.set("requestId", requestId);
  const started = Date.now();
  await next();
  c.res.headers.set("x-request-id", requestId);
  if (c.env.VIGIL_REQUEST_LOG === "off") return; // the test suite turns request lines off
  console.log(
    JSON.stringify({
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Date.now() - started,
      tenant: c.get("principal")?.tenantId ?? null,
      runner: c.get("runnerId") ?? null,
    }),
  );
};
