import type { Context } from "hono";
import type { z } from "zod";
import { sha256Hex, stableJson } from "../../../contract/encoding.ts";
import { getOperation } from "../../../contract/operations.ts";
import { CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, ReleaseRequest } from "../../../contract/protocol.ts";
import { RUNNER_HEADERS } from "../../../contract/runner-auth.ts";
import { jobQueue, type HeartbeatOutcome, type ReportOutcome } from "../durable/job-queue.ts";
import type { HonoEnv } from "../env.ts";
import { runCompletionHooks } from "../lib/jobs-api.ts";
import { objectKeys } from "../lib/object-urls.ts";
import { leasedJob } from "../lib/tickets.ts";
import { ApiError, json, zodFieldErrors } from "../problem.ts";
import { newRouter } from "../router.ts";
import { operatorAuth } from "../middleware/auth.ts";
import { replayedNonce, runnerAuth, runnerNonce, verifyRunnerRequest } from "../middleware/runner-auth.ts";

/** Runner protocol (docs/protocol.md). Not in the public OpenAPI document. */
export const runner = newRouter();
type C = Context<HonoEnv>;

runner.use("/internal/runner/jobs/*", runnerAuth);
runner.use("/internal/runner/lease", runnerAuth);

function parseBody<T extends z.ZodType>(c: C, schema: T): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(c.get("rawBody") || "{}");
  } catch {
    throw new ApiError(400, "invalid_json", "the body is not valid JSON");
  }
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new ApiError(422, "validation_failed", "the request body is not valid", { errors: zodFieldErrors(r.error.issues) });
  return r.data;
}

/** The error for a JobQueue call that refused a job report or heartbeat. */
function refused(out: Exclude<ReportOutcome | HeartbeatOutcome, { ok: true }>): ApiError {
  if (out.code === "replayed_nonce") return replayedNonce();
  if (out.code === "not_found") return new ApiError(404, "job_not_found", out.detail);
  return new ApiError(409, out.code, out.detail);
}

function reportResponse(out: ReportOutcome): Response {
  if (!out.ok) throw refused(out);
  return json({ job_id: out.job.id, status: out.job.status, attempts: out.job.attempts });
}

runner.post("/internal/runner/lease", async (c) => {
  const req = parseBody(c, LeaseRequest);
  const queue = jobQueue(c.env);
  const leased = await queue.lease(c.get("runnerId")!, req.operations, req.max_jobs, req.wait_seconds * 1000, runnerNonce(c));
  if (!leased.ok) throw replayedNonce();
  const origin = new URL(c.req.url).origin;
  const jobs = [];
  for (const job of leased.jobs) {
    try {
      jobs.push(await leasedJob(c.env, job, origin));
    } catch (e) {
      // A job whose ticket cannot be built (e.g. a model missing from the manifest) would fail on every runner.
      const error = { type: "configuration_error", message: e instanceof Error ? e.message : String(e) };
      await queue.fail(job.id, job.lease_id!, "worker", error, false);
    }
  }
  return json({ jobs });
});

runner.post("/internal/runner/jobs/:id/heartbeat", async (c) => {
  const req = parseBody(c, HeartbeatRequest);
  const out = await jobQueue(c.env).heartbeat(c.req.param("id"), req.lease_id, req.extend_seconds, runnerNonce(c));
  if (!out.ok) throw refused(out);
  return json({ lease_expires_at: Math.floor(out.lease_expires_at / 1000), cancel: out.cancel });
});

runner.post("/internal/runner/jobs/:id/complete", async (c) => {
  const req = parseBody(c, CompleteRequest);
  const queue = jobQueue(c.env);
  const jobId = c.req.param("id");
  // Artifacts must be exactly the objects the ticket allowed, and they must really be there. A report without
  // artifacts (inspect, verify) skips the job read: complete() itself refuses an unknown job or a stale lease, and
  // it is one Durable Object round trip less between the runner's report and the waiting client.
  if (req.artifacts.length) {
    const job = await queue.byId(jobId);
    if (!job) throw new ApiError(404, "job_not_found", "no such job");
    const op = getOperation(job.operation)!;
    for (const a of req.artifacts) {
      const spec = op.artifacts.find((s) => s.name === a.name);
      if (!spec || a.key !== objectKeys.output(job.tenant_id, job.id, a.name)) {
        throw new ApiError(422, "invalid_artifact", `artifact ${a.name} does not match the ticket's outputs`);
      }
      const head = await c.env.OBJECTS.head(a.key);
      if (!head || head.size !== a.bytes)
        throw new ApiError(422, "artifact_missing", `artifact ${a.name} was not uploaded (or its size differs)`);
    }
  }
  const out = await queue.complete(
    jobId,
    req.lease_id,
    await sha256Hex(stableJson(req)),
    { result: req.result, artifacts: req.artifacts, metrics: req.metrics },
    runnerNonce(c),
  );
  if (out.ok && out.first) await runCompletionHooks(c.env, out.job);
  return reportResponse(out);
});

runner.post("/internal/runner/jobs/:id/fail", async (c) => {
  const req = parseBody(c, FailRequest);
  return reportResponse(
    await jobQueue(c.env).fail(
      c.req.param("id"),
      req.lease_id,
      await sha256Hex(stableJson(req)),
      req.error,
      req.retryable,
      runnerNonce(c),
    ),
  );
});

runner.post("/internal/runner/jobs/:id/release", async (c) => {
  const req = parseBody(c, ReleaseRequest);
  return reportResponse(
    await jobQueue(c.env).release(c.req.param("id"), req.lease_id, await sha256Hex(stableJson(req)), runnerNonce(c)),
  );
});

// Public keys are not secret; runners fetch them at start-up to verify tickets.
runner.get("/internal/runner/ticket-keys", (c) => {
  if (!c.env.TICKET_PUBLIC_KEY || !c.env.TICKET_SIGNING_KID)
    throw new ApiError(503, "not_configured", "no ticket key is configured");
  return c.json({ keys: [{ kid: c.env.TICKET_SIGNING_KID, public_key: c.env.TICKET_PUBLIC_KEY }] });
});

// Queue depth for autoscalers: a signed runner request or the platform operator's credential. Never a tenant key,
// whatever its scopes: the numbers are every tenant's together (issue 12, defect 2).
runner.use("/internal/metrics/queue", async (c, next) => {
  if (!c.req.header(RUNNER_HEADERS.signature)) return operatorAuth(c, next);
  await verifyRunnerRequest(c);
  await next();
});
runner.get("/internal/metrics/queue", async (c) => {
  const metrics = await jobQueue(c.env).metrics();
  if ((c.req.header("accept") ?? "").includes("application/json")) return json({ operations: metrics });
  const lines = [
    "# HELP vigil_jobs_queued Jobs waiting for a runner.",
    "# TYPE vigil_jobs_queued gauge",
    ...metrics.map((m) => `vigil_jobs_queued{operation="${m.operation}"} ${m.queued}`),
    "# HELP vigil_jobs_running Jobs leased to a runner.",
    "# TYPE vigil_jobs_running gauge",
    ...metrics.map((m) => `vigil_jobs_running{operation="${m.operation}"} ${m.running}`),
    "# HELP vigil_oldest_queued_job_age_seconds Age of the oldest queued job.",
    "# TYPE vigil_oldest_queued_job_age_seconds gauge",
    ...metrics.map(
      (m) => `vigil_oldest_queued_job_age_seconds{operation="${m.operation}"} ${m.oldest_queued_age_seconds.toFixed(3)}`,
    ),
  ];
  return c.text(lines.join("\n") + "\n", 200, { "content-type": "text/plain; version=0.0.4" });
});
