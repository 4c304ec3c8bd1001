import type { Context, MiddlewareHandler } from "hono";
import { REPLAY_WINDOW_SECONDS, RUNNER_HEADERS, verifyRunnerSignature } from "../../../contract/runner-auth.ts";
import { jobQueue, type NonceClaim } from "../durable/job-queue.ts";
import type { AppEnv, HonoEnv } from "../env.ts";
import { ApiError } from "../problem.ts";

export function runnerSecrets(env: AppEnv): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of (env.RUNNER_SECRETS ?? "").split(",")) {
    const i = pair.indexOf(":");
    if (i > 0) out.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  }
  return out;
}

export function replayedNonce(): ApiError {
  return new ApiError(401, "runner_replayed_nonce", "this nonce was already used");
}

/**
 * Verifies the runner HMAC headers (contract/runner-auth.ts) and leaves the body text and the request's nonce on the
 * context. The nonce is not burned here: see runnerAuth and burnNonce.
 */
async function verifySignature(c: Context<HonoEnv>): Promise<NonceClaim> {
  const runnerId = c.req.header(RUNNER_HEADERS.id) ?? "";
  const secret = runnerSecrets(c.env).get(runnerId);
  const body = await c.req.text();
  if (!secret) throw new ApiError(401, "runner_unauthorized", "unknown runner id or missing signature headers");
  const v = await verifyRunnerSignature({ headers: c.req.raw.headers, secret, method: c.req.method, url: c.req.url, body });
  if (!v.ok) {
    const detail = {
      missing_headers: "missing or malformed runner signature headers",
      stale_timestamp: "timestamp outside the replay window",
      bad_signature: "runner signature does not verify",
    }[v.reason];
    throw new ApiError(401, `runner_${v.reason}`, detail);
  }
  c.set("runnerId", v.runnerId);
  c.set("rawBody", body);
  return { runnerId: v.runnerId, nonce: v.nonce, expiresAt: (v.timestamp + REPLAY_WINDOW_SECONDS + 60) * 1000 };
}

/** For runner requests that change nothing in the JobQueue: verifies, then burns the nonce with a call of its own. */
export async function verifyRunnerRequest(c: Context<HonoEnv>): Promise<string> {
  const claim = await verifySignature(c);
  if (!(await jobQueue(c.env).useNonce(claim.runnerId, claim.nonce, claim.expiresAt))) throw replayedNonce();
  return claim.runnerId;
}

/**
 * For the lease and job routes, each of which makes one JobQueue call: verifies, and leaves the nonce for that call
 * (`runnerNonce(c)`), which burns it in the same SQL as the state change and refuses the request if it was used.
 * A route that answered 2xx without taking the nonce would accept replays, so that is a server error.
 */
export const runnerAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  c.set("runnerNonce", { claim: await verifySignature(c), taken: false });
  await next();
  if (!c.get("runnerNonce")!.taken && !c.error && c.res.status < 300) {
    throw new Error(`${c.req.method} ${c.req.path} answered without burning the runner's nonce`);
  }
};

export function runnerNonce(c: Context<HonoEnv>): NonceClaim {
  const n = c.get("runnerNonce");
  if (!n) throw new Error("runnerNonce() outside runnerAuth");
  n.taken = true;
  return n.claim;
}
