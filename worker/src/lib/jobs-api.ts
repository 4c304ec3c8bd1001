import { getOperation, runsOnRunner } from "../../../contract/operations.ts";
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
 *
 * A worker-run operation (contract `runs_on: "worker"`: protect, verify) registers how it starts with
 * registerWorkerOperation; its stages are child jobs created with `parent`, and it ends with the queue's settle().
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
  /** Makes the job a stage of this running worker-run job (listed in its `stages`, hidden from the job list). */
  parent?: { id: string; stage: string };
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
    parent: req.parent,
  });
  if ("conflict" in out) throw idempotencyConflict();
  if ("parent_ended" in out) throw new ApiError(409, "parent_job_ended", `job ${req.parent?.id} has already ended`);
  return out;
}

/**
 * Starts a worker-run job that the queue has just created (`running`, input stored): creates its first stages.
 * Whatever it throws fails the job (`stage_not_created`); afterwards its completion hooks drive it to settle().
 */
export type WorkerOperationStart = (env: AppEnv, job: JobRecord) => Promise<void>;

/**
 * What the worker does when a client reads a worker-run job (GET, wait, list): tidies state kept outside the
 * queue once the job has ended without its own hooks seeing it (a stage failed or the job was canceled).
 */
export type WorkerOperationRead = (env: AppEnv, job: JobRecord) => Promise<void>;

const workerOperations = new Map<string, { start: WorkerOperationStart; onRead?: WorkerOperationRead }>();

/** Registers how the worker runs `operation` (a contract entry with `runs_on: "worker"`). Call at module load. */
export function registerWorkerOperation(
  operation: string,
  impl: { start: WorkerOperationStart; onRead?: WorkerOperationRead },
): void {
  const spec = getOperation(operation);
  if (!spec || runsOnRunner(spec)) throw new Error(`${operation} is not a worker-run operation in the contract`);
  workerOperations.set(operation, impl);
}

export function workerOperation(operation: string) {
  return workerOperations.get(operation);
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
