import { getOperation } from "../../../contract/operations.ts";
import type { Artifact } from "../../../contract/protocol.ts";
import { jobQueue, type JobInput, type JobRecord } from "../durable/job-queue.ts";
import type { AppEnv } from "../env.ts";
import { ApiError, zodFieldErrors } from "../problem.ts";
import { newId } from "./ids.ts";

/**
 * Internal API for other worker modules (identity/protect/verify):
 *
 *   const { job } = await createJob(env, { tenantId, operation: "watermark.embed", inputs: [{ key, content_type, bytes }],
 *                                          params: { bits: "…" }, origin: new URL(c.req.url).origin });
 *   registerCompletionHook("watermark.embed", async ({ env, job }) => { … });
 *
 * Inputs must already be in R2 under the tenant's prefix (`tenants/<tenant>/...`). Params are validated with
 * the operation's schema (ApiError 422 on failure). Hooks run once per job, in the worker, right after the
 * runner's first successful `complete` report is committed; they cannot change the stored result (it is
 * final), so they record their own state elsewhere. A throwing hook is logged and does not fail the report.
 */

export interface CreateJobRequest {
  tenantId: string;
  operation: string;
  inputs: JobInput[];
  params?: Record<string, unknown>;
  /** Origin used for absolute URLs in webhook payloads. */
  origin: string;
  jobId?: string;
  idempotency?: { key: string; hash: string };
  /** `Prefer: wait` in ms: the answer comes when the job ends or this time is up (`waitedMs` says how long). */
  waitMs?: number;
}

export async function createJob(
  env: AppEnv,
  req: CreateJobRequest,
): Promise<{ job: JobRecord; replayed: boolean; waitedMs?: number }> {
  const op = getOperation(req.operation);
  if (!op) throw new ApiError(404, "unknown_operation", `no operation named ${req.operation}`);
  if (req.inputs.length < op.inputs.min || req.inputs.length > op.inputs.max) {
    throw new ApiError(422, "invalid_inputs", `${op.name} takes ${op.inputs.min}-${op.inputs.max} inputs`);
  }
  for (const input of req.inputs) {
    if (!input.key.startsWith(`tenants/${req.tenantId}/`))
      throw new ApiError(403, "forbidden_object", "inputs must belong to the tenant");
  }
  const parsed = op.params.safeParse(req.params ?? {});
  if (!parsed.success) {
    throw new ApiError(422, "invalid_params", "the parameters are not valid for this operation", {
      errors: zodFieldErrors(parsed.error.issues, "params"),
    });
  }
  const out = await jobQueue(env).create({
    id: req.jobId ?? newId("job"),
    tenantId: req.tenantId,
    operation: op.name,
    params: parsed.data as Record<string, unknown>,
    inputs: req.inputs,
    origin: req.origin,
    idempotency: req.idempotency,
    waitMs: req.waitMs,
  });
  if ("conflict" in out) throw idempotencyConflict();
  return out;
}

export function idempotencyConflict(): ApiError {
  return new ApiError(409, "idempotency_key_reused", "this Idempotency-Key was already used with a different request");
}

export interface CompletionHookContext {
  env: AppEnv;
  job: JobRecord;
  artifacts: Artifact[];
}
export type CompletionHook = (ctx: CompletionHookContext) => Promise<void> | void;

const hooks = new Map<string, CompletionHook[]>();

/** Registers `hook` for successful jobs of `operation`. Call at module load (top level), not per request. */
export function registerCompletionHook(operation: string, hook: CompletionHook): void {
  hooks.set(operation, [...(hooks.get(operation) ?? []), hook]);
}

export async function runCompletionHooks(env: AppEnv, job: JobRecord): Promise<void> {
  for (const hook of hooks.get(job.operation) ?? []) {
    try {
      await hook({ env, job, artifacts: job.artifacts });
    } catch (e) {
      console.error(JSON.stringify({ msg: "completion_hook_failed", job: job.id, operation: job.operation, error: String(e) }));
    }
  }
}
