import type { MiddlewareHandler } from "hono";
import { rateLimiter } from "../durable/rate-limiter-stub.ts";
import { intVar, type HonoEnv } from "../env.ts";
import { authenticate } from "../lib/keys.ts";
import { timed } from "../lib/server-timing.ts";
import { ApiError } from "../problem.ts";

/** Bearer-key authentication followed by the tenant's token bucket. */
export const apiAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  const auth = await timed(c, "auth", () => authenticate(c.env, c.req.header("authorization") ?? null));
  c.set("principal", { tenantId: auth.tenantId, keyId: auth.keyId, scopes: auth.scopes });
  const perMinute = auth.rateLimit.perMinute ?? intVar(c.env.RATE_LIMIT_PER_MINUTE, 600);
  const burst = auth.rateLimit.burst ?? intVar(c.env.RATE_LIMIT_BURST, 100);
  const verdict = await timed(c, "ratelimit", () => rateLimiter(c.env, auth.tenantId).take(perMinute, burst));
  c.header("ratelimit-limit", String(burst));
  c.header("ratelimit-remaining", String(verdict.remaining));
  if (!verdict.allowed) {
    throw new ApiError(429, "rate_limited", `rate limit of ${perMinute} requests per minute exceeded`, {
      headers: { "retry-after": String(verdict.retryAfter) },
    });
  }
  await next();
};
