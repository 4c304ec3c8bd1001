import type { AppEnv } from "../env.ts";
import type { RateLimiter } from "./rate-limiter.ts";

/** One limiter instance per tenant. */
export function rateLimiter(env: AppEnv, tenantId: string): DurableObjectStub<RateLimiter> {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenantId));
}
