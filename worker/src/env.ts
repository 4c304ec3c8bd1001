import type { TimingVariables } from "hono/timing";
import type { OperationSpec } from "../../contract/operations.ts";
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

/**
 * API key scopes: the operation scopes of the contract (contract/operations.ts, the scope each job needs) plus
 * `admin`, the tenant's own key, webhook and master-key management. Derived from the contract rather than
 * spelled out twice; the list below fails to compile if the two drift apart.
 */
export type Scope = OperationSpec["scope"] | "admin";
const SCOPE_LIST = ["protect", "verify", "restore", "inspect", "admin"] as const satisfies readonly Scope[];
type NoneMissing<T extends never> = T;
export type ScopesComplete = NoneMissing<Exclude<Scope, (typeof SCOPE_LIST)[number]>>;
export const SCOPES: readonly Scope[] = SCOPE_LIST;

/** A tenant API key that authenticated. The operator is not a principal: it has no tenant (see `operator` below). */
export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: Scope[];
  /** Set while a rotated key is in its grace period (ms since the epoch); null for a key with no end. */
  expiresAt: number | null;
}

/** Hono environment: bindings plus what middleware puts on the context. */
export interface HonoEnv {
  Bindings: AppEnv;
  Variables: TimingVariables & {
    requestId: string;
    principal?: Principal;
    /** True once operatorAuth accepted the platform operator's credential (keys/service.ts). */
    operator?: boolean;
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
