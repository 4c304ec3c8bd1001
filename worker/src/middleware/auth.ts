import type { Context, MiddlewareHandler, Next } from "hono";
import { rateLimiter } from "../durable/rate-limiter-stub.ts";
import type { TakeResult } from "../durable/rate-limiter.ts";
import { intVar, type HonoEnv } from "../env.ts";
import { authenticate, authenticateOperator } from "../keys/service.ts";
import { timed } from "../lib/server-timing.ts";
import { ApiError } from "../problem.ts";

type C = Context<HonoEnv>;

/** Bearer-key authentication followed by the tenant's token bucket. */
export const apiAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  const auth = await timed(c, "auth", () => authenticate(c.env, c.req.header("authorization") ?? null));
  c.set("principal", { tenantId: auth.tenantId, keyId: auth.keyId, scopes: auth.scopes, expiresAt: auth.expiresAt });
  await limited(c, next, {
    policy: "tenant",
    bucket: auth.tenantId,
    perMinute: auth.rateLimit.perMinute ?? intVar(c.env.RATE_LIMIT_PER_MINUTE, 600),
    burst: auth.rateLimit.burst ?? intVar(c.env.RATE_LIMIT_BURST, 100),
  });
};

/**
 * The platform operator's credential (VIGIL_OPERATOR_KEY) for tenant management and /internal metrics. The operator
 * has a bucket of its own with the deployment's default limits: a runaway script of the operator's cannot starve a
 * tenant, and the operator's answers carry RateLimit fields like every authenticated answer.
 */
export const operatorAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  await timed(c, "auth", () => authenticateOperator(c.env, c.req.header("authorization") ?? null));
  c.set("operator", true);
  await limited(c, next, {
    policy: "operator",
    // Tenant ids are `ten_…`, so this name cannot collide with a tenant's limiter.
    bucket: "operator",
    perMinute: intVar(c.env.RATE_LIMIT_PER_MINUTE, 600),
    burst: intVar(c.env.RATE_LIMIT_BURST, 100),
  });
};

/** For routes only the operator may use, behind operatorAuth: a second check, so a routing slip cannot open them. */
export function requireOperator(c: C): void {
  if (!c.get("operator")) throw new ApiError(403, "operator_required", "this route needs the platform operator's credential");
}

interface Policy {
  /** The policy's name in RateLimit-Policy and RateLimit. */
  policy: string;
  bucket: string;
  perMinute: number;
  burst: number;
}

/**
 * RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10/-11) for a token bucket of `burst` tokens refilled at
 * perMinute / 60 per second:
 * - `RateLimit-Policy: "tenant";q=<burst>;w=<seconds to refill a whole burst>` — the quota and its window;
 * - `RateLimit: "tenant";r=<tokens left>;t=<seconds until the bucket is full again>`;
 * - the RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset trio of the earlier drafts (same numbers, delta
 *   seconds), which is what most client libraries and gateways read today.
 * `t` is computed from the whole tokens left, so it can overstate the wait by under one token's refill time; it
 * never understates it. The limiter reports floor(tokens).
 */
function rateLimitFields(p: Policy, verdict: TakeResult): Record<string, string> {
  const perSecond = p.perMinute / 60;
  const window = Math.ceil(p.burst / perSecond);
  const reset = Math.ceil((p.burst - verdict.remaining) / perSecond);
  return {
    "ratelimit-policy": `"${p.policy}";q=${p.burst};w=${window}`,
    ratelimit: `"${p.policy}";r=${verdict.remaining};t=${reset}`,
    "ratelimit-limit": String(p.burst),
    "ratelimit-remaining": String(verdict.remaining),
    "ratelimit-reset": String(reset),
  };
}

/**
 * Takes a token and runs the rest of the chain, then puts the RateLimit fields on whatever answer came back. They
 * used to be set with c.header() before the handler ran, and every handler that returned a Response of its own
 * dropped them (issue 12, defect 5). After `await next()`, c.res is the final answer: a handler's Response, or the
 * problem answer onError made of a thrown ApiError. A 429 carries them too, with Retry-After.
 */
async function limited(c: C, next: Next, p: Policy): Promise<void> {
  const verdict = await timed(c, "ratelimit", () => rateLimiter(c.env, p.bucket).take(p.perMinute, p.burst));
  const fields = rateLimitFields(p, verdict);
  if (!verdict.allowed) {
    throw new ApiError(429, "rate_limited", `rate limit of ${p.perMinute} requests per minute exceeded`, {
      headers: { ...fields, "retry-after": String(verdict.retryAfter) },
    });
  }
  await next();
  setHeaders(c, fields);
}

function setHeaders(c: C, fields: Record<string, string>): void {
  try {
    for (const [k, v] of Object.entries(fields)) c.res.headers.set(k, v);
  } catch {
    // A Response with immutable headers (one passed through from fetch()): copy it, body untouched.
    const res = new Response(c.res.body, c.res);
    for (const [k, v] of Object.entries(fields)) res.headers.set(k, v);
    c.res = undefined;
    c.res = res;
  }
}
