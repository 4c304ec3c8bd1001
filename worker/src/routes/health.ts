import { newRouter } from "../router.ts";
import type { HonoEnv } from "../env.ts";

export const health = newRouter();

// Liveness only: cheap and unauthenticated, used by `npm start` and load balancers.
health.get("/healthz", (c) => c.json({ ok: true }));
