import { Hono } from "hono";
import type { HonoEnv } from "../../worker/src/env.ts";
import { identityRoutes } from "../../worker/src/identity/routes.ts";
import { apiAuth } from "../../worker/src/middleware/auth.ts";
import { ApiError, problemResponse } from "../../worker/src/problem.ts";

/** The identity routes mounted as index.ts mounts them: behind the real API-key middleware, problem+json errors. */
export function identityApp(): Hono<HonoEnv> {
  const app = new Hono<HonoEnv>();
  app.use("/v1/*", apiAuth);
  app.route("/", identityRoutes);
  app.onError((err) => (err instanceof ApiError ? problemResponse(err) : new Response(String(err), { status: 500 })));
  return app;
}
