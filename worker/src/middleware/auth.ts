import type { MiddlewareHandler } from "hono";
import { endTime, startTime } from "hono/timing";
import { rateLimiter } from "../durable/rate-limiter-stub.ts";
import { intVar, type HonoEnv } from "../env.ts";
import { authenticate } from "../lib/keys.ts";
import { ApiError } from "../problem.ts";

/** Bearer-key authentication followed by the tenant's token bucket. */
export const apiAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  startTime(c, "auth");
  const auth = await authenticate(c.env, c.req.header("authorization") ?? null);
  endTime(c, "auth");
  c.set("principal", { tenantId: auth.tenantId, keyId: auth.keyId, scopes: auth.scopes });
  const perMinute = auth.rateLimit.perMinute ?? intVar(c.env.RATE_LIMIT_PER_MINUTE, 600);
  const burst = auth.rateLimit.burst ?? intVar(c.env.RATE_LIMIT_BURST, 100);
  startTime(c, "ratelimit");
  const verdict = await rateLimiter(c.env, auth.tenantId).take(perMinute, burst);
  endTime(c, "ratelimit");
  c.header("ratelimit-limit", String(burst));
  c.header("ratelimit-remaining", String(verdict.remaining));
  if (!verdict.allowed) {
    throw new ApiError(429, "rate_limited", `rate limit of ${perMinute} requests per minute exceeded`, {
      headers: { "retry-after": String(verdict.retryAfter) },
    });
  }
  await next();
};
