import type { IncomingMessage } from "node:http";
import {
  type LeasedJob,
  RUNNER_ROUTES,
  type TicketPayload,
  type CompleteRequest,
  type FailRequest,
} from "../../contract/protocol.ts";
import { TicketError } from "../../contract/ticket.ts";
import { errorMessage, LeaseLostError, RunnerError } from "./errors.ts";
import { executeOperation } from "./execute.ts";
import { discard, header, type HttpRequest, isOk, request } from "./http-client.ts";
import type { Logger } from "./log.ts";
import type { RunnerMetrics } from "./metrics.ts";
import type { SessionCache } from "./models/session-cache.ts";
import type { OperationPipeline } from "./operations/types.ts";
import type { TicketKeyring } from "./ticket-keys.ts";
import { backoffMs, sleep, type WorkerClient } from "./worker-client.ts";

/** Why a job's AbortSignal fired; each ends the job differently. */
export class CanceledByWorker extends Error {
  override name = "CanceledByWorker";
}
export class ShutdownAbort extends Error {
  override name = "ShutdownAbort";
}

export type JobOutcome = "succeeded" | "failed" | "bad_ticket" | "lease_lost" | "canceled" | "released";

export interface JobDeps {
  client: WorkerClient;
  keyring: TicketKeyring;
  sessions: SessionCache;
  registry: ReadonlyMap<string, OperationPipeline>;
  metrics: RunnerMetrics;
  log: Logger;
  /** The runner's own pixel ceiling; the effective limit is the lower of this and the ticket's. */
  maxPixels: number;
  faultStallMs: number;
}

/** Verifies the ticket and that it belongs to this lease. Anything wrong → the job is not touched. */
async function acceptTicket(job: LeasedJob, d: JobDeps): Promise<TicketPayload | null> {
  try {
    const ticket = await d.keyring.verify(job.ticket);
    if (ticket.job_id !== job.job_id || ticket.lease_id !== job.lease_id || ticket.attempt !== job.attempt) {
      throw new TicketError("invalid_payload", "ticket does not belong to this lease (job_id/lease_id/attempt differ)");
    }
    return ticket;
  } catch (e) {
    const reason = e instanceof TicketError ? e.code : "error";
    d.metrics.rejectedTickets.inc({ reason });
    d.log("warn", "rejected a leased job: its ticket does not verify; not acting on it", {
      job_id: job.job_id,
      reason,
      error: errorMessage(e),
    });
    return null;
  }
}

const RETRYABLE_STATUS = (s: number) => s === 408 || s === 429 || s >= 500;

/** A request with a few retries on network errors and 5xx; the URLs are pre-signed, so retrying is safe. */
async function fetchWithRetry(url: string, init: HttpRequest, signal: AbortSignal, what: string): Promise<IncomingMessage> {
  let last: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    if (attempt > 0) await sleep(backoffMs(attempt, 200, 3000), signal);
    try {
      const res = await request(url, { ...init, signal });
      if (!RETRYABLE_STATUS(res.statusCode ?? 0)) return res;
      last = new Error(`${what}: HTTP ${res.statusCode}`);
      discard(res);
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      last = e;
    }
  }
  throw new RunnerError(
    what.startsWith("download") ? "input_unavailable" : "upload_failed",
    `${what} failed: ${errorMessage(last)}`,
    true,
  );
}

/** Downloads one input, refusing to read more than the ticket says it has (the ticket is the size authority). */
async function download(input: TicketPayload["inputs"][number], signal: AbortSignal): Promise<Uint8Array> {
  const res = await fetchWithRetry(input.url, {}, signal, `download of input ${input.name}`);
  const status = res.statusCode ?? 0;
  if (!isOk(status)) {
    discard(res);
    throw new RunnerError("input_unavailable", `download of input ${input.name}: HTTP ${status}`, true);
  }
  const declared = Number(header(res, "content-length") ?? NaN);
  if (Number.isFinite(declared) && declared !== input.bytes) {
    res.destroy();
    throw new RunnerError(
      "input_size_mismatch",
      `input ${input.name} is ${declared} bytes; the ticket says ${input.bytes}`,
      true,
    );
  }
  const out = new Uint8Array(input.bytes);
  let n = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (n + chunk.length > input.bytes) {
      res.destroy();
      throw new RunnerError(
        "input_size_mismatch",
        `input ${input.name} is larger than the ${input.bytes} bytes the ticket says`,
        true,
      );
    }
    out.set(chunk, n);
    n += chunk.length;
  }
  if (n !== input.bytes)
    throw new RunnerError("input_size_mismatch", `input ${input.name} has ${n} bytes; the ticket says ${input.bytes}`, true);
  return out;
}

/** Heartbeats every lease/3 seconds; a `cancel` answer or a lost lease aborts the job. */
function startHeartbeat(job: LeasedJob, d: JobDeps, abort: AbortController): () => void {
  const leaseMs = Math.max(3000, job.lease_expires_at * 1000 - Date.now());
  const everyMs = Math.max(1000, Math.floor(leaseMs / 3));
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const beat = async () => {
    try {
      const res = await d.client.call<{ cancel?: boolean }>(
        "POST",
        RUNNER_ROUTES.heartbeat(job.job_id),
        { lease_id: job.lease_id },
        abort.signal,
      );
      if (res.cancel) abort.abort(new CanceledByWorker("the job was canceled"));
    } catch (e) {
      if (e instanceof LeaseLostError) abort.abort(e);
      else if (!abort.signal.aborted) d.log("warn", "heartbeat failed", { job_id: job.job_id, error: errorMessage(e) });
    }
    if (!stopped && !abort.signal.aborted) timer = setTimeout(beat, everyMs);
  };
  timer = setTimeout(beat, everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function report(d: JobDeps, path: string, body: CompleteRequest | FailRequest | { lease_id: string }): Promise<void> {
  await d.client.call("POST", path, body);
}

/**
 * Runs one leased job start to finish and reports it. Never throws: every path ends in complete, fail,
 * release, or (bad ticket, lost lease, cancel) deliberately saying nothing.
 */
export async function runLeasedJob(job: LeasedJob, d: JobDeps, shutdown: AbortSignal): Promise<JobOutcome> {
  const started = performance.now();
  const ticket = await acceptTicket(job, d);
  if (!ticket) return "bad_ticket";
  const pipeline = d.registry.get(ticket.operation);
  const labels = { operation: ticket.operation };
  if (!pipeline) {
    d.log("warn", "leased an operation this runner has no pipeline for; releasing", {
      job_id: job.job_id,
      operation: ticket.operation,
    });
    await report(d, RUNNER_ROUTES.release(job.job_id), { lease_id: job.lease_id }).catch(() => {});
    return "released";
  }
  const abort = new AbortController();
  const onShutdown = () => abort.abort(new ShutdownAbort("runner shutting down"));
  if (shutdown.aborted) onShutdown();
  shutdown.addEventListener("abort", onShutdown, { once: true });
  const stopHeartbeat = startHeartbeat(job, d, abort);
  let outcome: JobOutcome;
  try {
    if (d.faultStallMs > 0) await sleep(d.faultStallMs, abort.signal);
    const inputs = [];
    for (const input of ticket.inputs) inputs.push(await download(input, abort.signal));
    const out = await executeOperation({
      pipeline,
      params: ticket.params,
      inputs,
      maxPixels: Math.min(ticket.limits.max_pixels, d.maxPixels),
      models: ticket.models,
      sessions: d.sessions,
      signal: abort.signal,
      jobId: job.job_id,
    });
    const artifacts: CompleteRequest["artifacts"] = [];
    for (const a of out.artifacts) {
      const target = ticket.outputs.find((o) => o.name === a.name);
      if (!target)
        throw new RunnerError("internal_error", `pipeline produced artifact ${a.name}, which the ticket has no URL for`);
      const res = await fetchWithRetry(
        target.url,
        { method: "PUT", headers: { "content-type": a.contentType }, body: new Uint8Array(a.body) },
        abort.signal,
        `upload of ${a.name}`,
      );
      discard(res);
      const status = res.statusCode ?? 0;
      if (!isOk(status)) throw new RunnerError("upload_failed", `upload of ${a.name}: HTTP ${status}`, true);
      artifacts.push({ name: a.name, key: target.key, content_type: a.contentType, bytes: a.body.length, sha256: a.sha256 });
    }
    if (abort.signal.aborted) throw abort.signal.reason;
    const metrics = { model_ms: out.metrics.model_ms, total_ms: Math.round((performance.now() - started) * 100) / 100 };
    stopHeartbeat();
    await report(d, RUNNER_ROUTES.complete(job.job_id), { lease_id: job.lease_id, result: out.result, artifacts, metrics });
    d.metrics.modelSeconds.observe(out.metrics.model_ms / 1000, labels);
    outcome = "succeeded";
  } catch (e) {
    stopHeartbeat();
    outcome = await settleFailure(job, d, abort.signal, e);
  } finally {
    shutdown.removeEventListener("abort", onShutdown);
  }
  d.metrics.jobs.inc({ ...labels, outcome });
  d.metrics.jobDuration.observe((performance.now() - started) / 1000, labels);
  d.log(outcome === "succeeded" ? "info" : "warn", `job ${outcome}`, {
    job_id: job.job_id,
    operation: ticket.operation,
    attempt: job.attempt,
  });
  return outcome;
}

async function settleFailure(job: LeasedJob, d: JobDeps, signal: AbortSignal, e: unknown): Promise<JobOutcome> {
  const reason = signal.aborted ? signal.reason : e;
  try {
    if (reason instanceof LeaseLostError || e instanceof LeaseLostError) return "lease_lost";
    if (reason instanceof CanceledByWorker) return "canceled";
    if (reason instanceof ShutdownAbort) {
      await report(d, RUNNER_ROUTES.release(job.job_id), { lease_id: job.lease_id });
      return "released";
    }
    const err = e instanceof RunnerError ? e : new RunnerError("internal_error", errorMessage(e), true);
    if (!(e instanceof RunnerError))
      d.log("error", "unexpected job error", { job_id: job.job_id, error: errorMessage(e), stack: (e as Error)?.stack });
    await report(d, RUNNER_ROUTES.fail(job.job_id), {
      lease_id: job.lease_id,
      error: { type: err.code, message: err.message.slice(0, 2000) },
      retryable: err.retryable,
    });
    return "failed";
  } catch (reportError) {
    if (reportError instanceof LeaseLostError) return "lease_lost";
    // The worker stayed unreachable: the lease will expire and another runner retries the job.
    d.log("error", "could not report job outcome", { job_id: job.job_id, error: errorMessage(reportError) });
    return "lease_lost";
  }
}
