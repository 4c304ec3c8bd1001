import type { TimingVariables } from "hono/timing";
import type { NonceClaim } from "./durable/job-queue.ts";
/**
 * The worker's environment: generated bindings (worker-configuration.d.ts) with vars widened to
 * string (the generated literal types would reject "local"), plus secrets, which `wrangler types`
 * cannot see.
 */
export type AppEnv = Omit<
  Cloudflare.Env,
  | "VIGIL_MODE"
  | "RETENTION_DAYS"
  | "MAX_INLINE_UPLOAD_BYTES"
  | "RATE_LIMIT_PER_MINUTE"
  | "RATE_LIMIT_BURST"
  | "JOB_QUEUE"
  | "RATE_LIMITER"
> & {
  VIGIL_MODE: string;
  RETENTION_DAYS: string;
  MAX_INLINE_UPLOAD_BYTES: string;
  RATE_LIMIT_PER_MINUTE: string;
  RATE_LIMIT_BURST: string;
  JOB_QUEUE: DurableObjectNamespace<import("./durable/job-queue.ts").JobQueue>;
  RATE_LIMITER: DurableObjectNamespace<import("./durable/rate-limiter.ts").RateLimiter>;
  /** "off" silences the per-request log line (tests). */
  VIGIL_REQUEST_LOG?: string;
  VIGIL_DEV_KEY?: string;
  /** The platform operator's bearer token (tenant management, /internal metrics); held by no tenant key. */
  VIGIL_OPERATOR_KEY?: string;
  TICKET_SIGNING_KEY?: string;
  TICKET_SIGNING_KID?: string;
  TICKET_PUBLIC_KEY?: string;
  RUNNER_SECRETS?: string;
  OBJECT_URL_SECRET?: string;
  MASTER_KEY_ENCRYPTION_KEY?: string;
  R2_S3_ENDPOINT?: string;
  R2_ACCESS_KEY_ID?: string;
  R2_SECRET_ACCESS_KEY?: string;
  R2_BUCKET?: string;
};

export type Scope = "protect" | "verify" | "restore" | "inspect" | "admin";
export const SCOPES: readonly Scope[] = ["protect", "verify", "restore", "inspect", "admin"];

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: Scope[];
}

/** Hono environment: bindings plus what middleware puts on the context. */
export interface HonoEnv {
  Bindings: AppEnv;
  Variables: TimingVariables & {
    requestId: string;
    principal?: Principal;
    runnerId?: string;
    rawBody?: string;
    /** Set by runnerAuth; the route's JobQueue call burns it (middleware/runner-auth.ts). */
    runnerNonce?: { claim: NonceClaim; taken: boolean };
  };
}

export function intVar(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
