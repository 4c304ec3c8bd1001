import { z } from "zod";

/**
 * Wire contract between the worker and runners (see docs/protocol.md). Both sides import these
 * schemas; neither re-declares them.
 */

export const PROTOCOL_VERSION = 1;

export const JobStatus = z.enum(["queued", "running", "succeeded", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;
export const TERMINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "canceled"];
/** Whether a job in `status` is done: it changes no more. */
export const isTerminalStatus = (status: JobStatus): boolean => TERMINAL_STATUSES.includes(status);

export const ModelRef = z.object({ id: z.string(), version: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const TicketInput = z.object({
  name: z.string(),
  url: z.string().url(),
  content_type: z.string(),
  bytes: z.number().int().nonnegative(),
});

export const TicketOutput = z.object({
  name: z.string(),
  /** Signed PUT URL; the runner uploads the artifact body here. */
  url: z.string().url(),
  key: z.string(),
});

/** Signed by the worker with Ed25519. Everything a runner acts on comes from here, never from the lease envelope. */
export const TicketPayload = z.object({
  v: z.literal(PROTOCOL_VERSION),
  job_id: z.string(),
  lease_id: z.string(),
  attempt: z.number().int().positive(),
  operation: z.string(),
  params: z.record(z.string(), z.unknown()),
  models: z.array(ModelRef),
  inputs: z.array(TicketInput),
  outputs: z.array(TicketOutput),
  limits: z.object({ max_pixels: z.number().int().positive() }),
  issued_at: z.number().int(),
  expires_at: z.number().int(),
  /** Key id of the worker's signing key, so keys can rotate. */
  kid: z.string(),
});
export type TicketPayload = z.infer<typeof TicketPayload>;

export const LeaseRequest = z.object({
  runner_id: z.string().min(1).max(128),
  operations: z.array(z.string()).min(1),
  /** How many jobs the runner can take now. */
  max_jobs: z.number().int().min(1).max(32).default(1),
  /** Long-poll: hold the request up to this long when the queue is empty. */
  wait_seconds: z.number().int().min(0).max(30).default(20),
});
export type LeaseRequest = z.infer<typeof LeaseRequest>;

export const LeasedJob = z.object({
  job_id: z.string(),
  lease_id: z.string(),
  attempt: z.number().int().positive(),
  lease_expires_at: z.number().int(),
  /** Compact signed ticket: base64url(payload JSON) "." base64url(Ed25519 signature). */
  ticket: z.string(),
});
export type LeasedJob = z.infer<typeof LeasedJob>;

export const LeaseResponse = z.object({ jobs: z.array(LeasedJob) });
export type LeaseResponse = z.infer<typeof LeaseResponse>;

export const HeartbeatRequest = z.object({
  lease_id: z.string(),
  extend_seconds: z.number().int().min(1).max(600).optional(),
});
export const HeartbeatResponse = z.object({ lease_expires_at: z.number().int(), cancel: z.boolean() });

export const Artifact = z.object({
  name: z.string(),
  key: z.string(),
  content_type: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type Artifact = z.infer<typeof Artifact>;

export const CompleteRequest = z.object({
  lease_id: z.string(),
  result: z.record(z.string(), z.unknown()),
  artifacts: z.array(Artifact).default([]),
  metrics: z.object({ model_ms: z.number().nonnegative(), total_ms: z.number().nonnegative() }).optional(),
});
export type CompleteRequest = z.infer<typeof CompleteRequest>;

export const FailRequest = z.object({
  lease_id: z.string(),
  error: z.object({ type: z.string(), message: z.string().max(2000) }),
  /** false for deterministic failures (bad image): no further attempts. */
  retryable: z.boolean(),
});
export type FailRequest = z.infer<typeof FailRequest>;

export const ReleaseRequest = z.object({ lease_id: z.string() });

/** Runner-facing routes, relative to the worker origin. */
export const RUNNER_ROUTES = {
  lease: "/internal/runner/lease",
  heartbeat: (jobId: string) => `/internal/runner/jobs/${jobId}/heartbeat`,
  complete: (jobId: string) => `/internal/runner/jobs/${jobId}/complete`,
  fail: (jobId: string) => `/internal/runner/jobs/${jobId}/fail`,
  release: (jobId: string) => `/internal/runner/jobs/${jobId}/release`,
  ticketKeys: "/internal/runner/ticket-keys",
  queueMetrics: "/internal/metrics/queue",
} as const;
