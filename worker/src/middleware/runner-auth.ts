import type { MiddlewareHandler } from "hono";
import { REPLAY_WINDOW_SECONDS, RUNNER_HEADERS, verifyRunnerSignature } from "../../../contract/runner-auth.ts";
import { jobQueue } from "../durable/job-queue.ts";
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

/**
 * Verifies the runner HMAC headers (contract/runner-auth.ts), then burns the nonce in the JobQueue so a
 * captured request cannot be replayed within the timestamp window. Leaves the body text on the context.
 */
export async function verifyRunnerRequest(c: Parameters<MiddlewareHandler<HonoEnv>>[0]): Promise<string> {
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
  const fresh = await jobQueue(c.env).useNonce(v.runnerId, v.nonce, (v.timestamp + REPLAY_WINDOW_SECONDS + 60) * 1000);
  if (!fresh) throw new ApiError(401, "runner_replayed_nonce", "this nonce was already used");
  c.set("runnerId", v.runnerId);
  c.set("rawBody", body);
  return v.runnerId;
}

export const runnerAuth: MiddlewareHandler<HonoEnv> = async (c, next) => {
  await verifyRunnerRequest(c);
  await next();
};
