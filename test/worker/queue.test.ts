import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobQueue } from "../../worker/src/durable/job-queue.ts";
import {
  call,
  createInspectJob,
  lease,
  leaseJob,
  OPERATOR_KEY,
  postJson,
  RUNNER_A,
  RUNNER_B,
  runnerCall,
  testEnv,
  type JobJson,
} from "./helpers.ts";

const queueStub = () => testEnv.JOB_QUEUE.get(testEnv.JOB_QUEUE.idFromName("global")) as DurableObjectStub<JobQueue>;

/** Moves a job's lease expiry into the past, as if its runner had gone silent. */
async function expireLease(jobId: string): Promise<void> {
  await runInDurableObject(queueStub(), (_instance, state) => {
    state.storage.sql.exec("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", Date.now() - 1000, jobId);
  });
}

const getJob = async (id: string) => (await (await call(`/v1/jobs/${id}`)).json()) as JobJson;
const complete = (id: string, leaseId: string, result: Record<string, unknown> = { ok: true }, runner = RUNNER_A) =>
  runnerCall(`/internal/runner/jobs/${id}/complete`, { lease_id: leaseId, result }, { runner });
const typeOf = async (res: Response) => ((await res.json()) as { type: string }).type;

describe("leases", () => {
  it("two runners racing for one job: exactly one gets it", async () => {
    const job = await createInspectJob();
    const [a, b] = await Promise.all([
      lease(["inspect"], { runner: RUNNER_A, max_jobs: 32 }),
      lease(["inspect"], { runner: RUNNER_B, max_jobs: 32 }),
    ]);
    const hits = [...a, ...b].filter((j) => j.job_id === job.id);
    expect(hits).toHaveLength(1);
    expect(hits[0]!.attempt).toBe(1);
    const running = await getJob(job.id);
    expect(running.status).toBe("running");
    expect(running.started_at).not.toBeNull();
    expect(running.attempts).toBe(1);
  });

  it("long-poll: a waiting lease returns as soon as a job is queued", async () => {
    await lease(["inspect"], { max_jobs: 32 }); // drain
    const started = Date.now();
    const waiting = lease(["inspect"], { wait_seconds: 10 });
    await new Promise((r) => setTimeout(r, 300));
    const job = await createInspectJob();
    const got = await waiting;
    expect(got.map((j) => j.job_id)).toContain(job.id);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("an empty long-poll returns [] after wait_seconds", async () => {
    const started = Date.now();
    expect(await lease(["watermark.decode"], { wait_seconds: 1 })).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("heartbeat extends the lease; a stale lease id is 409 lease_lost", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    const hb = await runnerCall(`/internal/runner/jobs/${job.id}/heartbeat`, { lease_id: l.lease_id, extend_seconds: 120 });
    expect(hb.status).toBe(200);
    const body = (await hb.json()) as { lease_expires_at: number; cancel: boolean };
    expect(body.cancel).toBe(false);
    expect(body.lease_expires_at).toBeGreaterThan(l.lease_expires_at);
    const stale = await runnerCall(`/internal/runner/jobs/${job.id}/heartbeat`, { lease_id: "lease_bogus" });
    expect(stale.status).toBe(409);
    expect(await typeOf(stale)).toBe("https://vigil.dev/errors/lease_lost");
  });

  it("an expired lease is re-queued by the alarm with attempt+1; the old lease's late complete is 409 and changes nothing", async () => {
    const job = await createInspectJob();
    const first = await leaseJob(job.id);
    await expireLease(job.id);
    expect(await runDurableObjectAlarm(queueStub())).toBe(true);
    const requeued = await getJob(job.id);
    expect(requeued.status).toBe("queued");
    expect(requeued.attempts).toBe(1);

    const second = await leaseJob(job.id, "inspect", RUNNER_B);
    expect(second.attempt).toBe(2);
    expect(second.lease_id).not.toBe(first.lease_id);

    const late = await complete(job.id, first.lease_id, { from: "old" });
    expect(late.status).toBe(409);
    expect(await typeOf(late)).toBe("https://vigil.dev/errors/lease_lost");
    expect((await complete(job.id, second.lease_id, { from: "new" }, RUNNER_B)).status).toBe(200);
    const done = await getJob(job.id);
    expect(done.status).toBe("succeeded");
    expect(done.output).toEqual({ from: "new" });
    expect(done.attempts).toBe(2);
  });

  it("a report on an expired lease that is not yet re-queued is refused and changes nothing", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    await expireLease(job.id);
    // No alarm has run: the job is still `running` under this lease id, only its expiry has passed.
    for (const [route, body] of [
      ["complete", { lease_id: l.lease_id, result: { late: true } }],
      ["fail", { lease_id: l.lease_id, error: { type: "x", message: "late" }, retryable: false }],
      ["release", { lease_id: l.lease_id }],
      ["heartbeat", { lease_id: l.lease_id }],
    ] as const) {
      const res = await runnerCall(`/internal/runner/jobs/${job.id}/${route}`, body);
      expect(res.status, route).toBe(409);
      expect(await typeOf(res), route).toBe("https://vigil.dev/errors/lease_lost");
    }
    const still = await getJob(job.id);
    expect(still.status).toBe("running");
    expect(still.output).toBeNull();
    expect(still.attempts).toBe(1);
    // The alarm then re-queues it for another runner.
    await runDurableObjectAlarm(queueStub());
    expect((await getJob(job.id)).status).toBe("queued");
  });

  it("duplicate complete is idempotent; a different result for the same lease is refused; the result never changes", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    const a = await complete(job.id, l.lease_id, { n: 1 });
    const b = await complete(job.id, l.lease_id, { n: 1 });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(await b.json()).toEqual(await a.json());
    const c = await complete(job.id, l.lease_id, { n: 2 });
    expect(c.status).toBe(409);
    expect(await typeOf(c)).toBe("https://vigil.dev/errors/report_conflict");
    const f = await runnerCall(`/internal/runner/jobs/${job.id}/fail`, {
      lease_id: l.lease_id,
      error: { type: "x", message: "y" },
      retryable: false,
    });
    expect(f.status).toBe(409);
    expect((await getJob(job.id)).output).toEqual({ n: 1 });
  });

  it("retryable failures re-queue until max_attempts, then the job fails with the last error", async () => {
    const job = await createInspectJob();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const l = await leaseJob(job.id);
      expect(l.attempt).toBe(attempt);
      const res = await runnerCall(`/internal/runner/jobs/${job.id}/fail`, {
        lease_id: l.lease_id,
        error: { type: "oom", message: `out of memory #${attempt}` },
        retryable: true,
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe(attempt < 3 ? "queued" : "failed");
    }
    const failed = await getJob(job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error).toEqual({ type: "oom", message: "out of memory #3" });
  });

  it("expired leases past max_attempts end failed with runner_crashed, not retried again", async () => {
    const job = await createInspectJob();
    for (let attempt = 1; attempt <= 3; attempt++) {
      await leaseJob(job.id);
      await expireLease(job.id);
      await runDurableObjectAlarm(queueStub());
    }
    const failed = await getJob(job.id);
    expect(failed.status).toBe("failed");
    expect(failed.error?.type).toBe("runner_crashed");
    expect(failed.attempts).toBe(3);
    expect(await lease(["inspect"], { max_jobs: 32 })).not.toContainEqual(expect.objectContaining({ job_id: job.id }));
  });

  it("non-retryable failure fails at once; release returns the job without spending an attempt", async () => {
    const a = await createInspectJob();
    const la = await leaseJob(a.id);
    await runnerCall(`/internal/runner/jobs/${a.id}/fail`, {
      lease_id: la.lease_id,
      error: { type: "bad_image", message: "corrupt" },
      retryable: false,
    });
    expect((await getJob(a.id)).status).toBe("failed");

    const b = await createInspectJob();
    const lb = await leaseJob(b.id);
    expect((await runnerCall(`/internal/runner/jobs/${b.id}/release`, { lease_id: lb.lease_id })).status).toBe(200);
    const back = await getJob(b.id);
    expect(back.status).toBe("queued");
    expect(back.attempts).toBe(0);
    expect((await leaseJob(b.id)).attempt).toBe(1);
  });

  it("cancel: heartbeat tells the runner, and its complete is refused", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    expect((await postJson(`/v1/jobs/${job.id}/cancel`, {})).status).toBe(200);
    const hb = await runnerCall(`/internal/runner/jobs/${job.id}/heartbeat`, { lease_id: l.lease_id });
    expect(hb.status).toBe(200);
    expect(((await hb.json()) as { cancel: boolean }).cancel).toBe(true);
    const c = await complete(job.id, l.lease_id);
    expect(c.status).toBe(409);
    expect(await typeOf(c)).toBe("https://vigil.dev/errors/job_canceled");
    expect((await getJob(job.id)).status).toBe("canceled");
  });

  it("complete refuses artifacts the ticket did not ask for", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    const res = await runnerCall(`/internal/runner/jobs/${job.id}/complete`, {
      lease_id: l.lease_id,
      result: {},
      artifacts: [
        { name: "image", key: "tenants/other/jobs/x/outputs/image", content_type: "image/png", bytes: 1, sha256: "0".repeat(64) },
      ],
    });
    expect(res.status).toBe(422);
    expect(await typeOf(res)).toBe("https://vigil.dev/errors/invalid_artifact");
  });
});

describe("runner authentication", () => {
  const body = { runner_id: "runner-a", operations: ["inspect"], max_jobs: 1, wait_seconds: 0 };

  it("rejects a bad signature, an unknown runner and missing headers", async () => {
    const wrong = await runnerCall("/internal/runner/lease", body, { runner: { id: "runner-a", secret: "not-the-secret" } });
    expect(wrong.status).toBe(401);
    expect(await typeOf(wrong)).toBe("https://vigil.dev/errors/runner_bad_signature");
    expect((await runnerCall("/internal/runner/lease", body, { runner: { id: "ghost", secret: "x" } })).status).toBe(401);
    expect((await postJson("/internal/runner/lease", body, { key: null })).status).toBe(401);
  });

  it("rejects a stale timestamp", async () => {
    const res = await runnerCall("/internal/runner/lease", body, { now: Math.floor(Date.now() / 1000) - 301 });
    expect(res.status).toBe(401);
    expect(await typeOf(res)).toBe("https://vigil.dev/errors/runner_stale_timestamp");
  });

  it("rejects a replayed nonce and a body swapped under a valid signature", async () => {
    const { signRunnerRequest } = await import("../../contract/runner-auth.ts");
    const text = JSON.stringify(body);
    const url = "http://vigil.test/internal/runner/lease";
    const headers = await signRunnerRequest({ runnerId: RUNNER_A.id, secret: RUNNER_A.secret, method: "POST", url, body: text });
    const send = (b: string) =>
      call("/internal/runner/lease", {
        key: null,
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: b,
      });
    expect((await send(text)).status).toBe(200);
    const replay = await send(text);
    expect(replay.status).toBe(401);
    expect(await typeOf(replay)).toBe("https://vigil.dev/errors/runner_replayed_nonce");
    const h2 = await signRunnerRequest({ runnerId: RUNNER_A.id, secret: RUNNER_A.secret, method: "POST", url, body: text });
    const swapped = await call("/internal/runner/lease", {
      key: null,
      method: "POST",
      headers: { ...h2, "content-type": "application/json" },
      body: JSON.stringify({ ...body, max_jobs: 32 }),
    });
    expect(swapped.status).toBe(401);
  });

  it("the job routes burn the nonce in their own queue call: a replayed heartbeat or completion is refused", async () => {
    const { signRunnerRequest } = await import("../../contract/runner-auth.ts");
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    const signed = async (path: string, payload: unknown) => {
      const text = JSON.stringify(payload);
      const headers = await signRunnerRequest({
        runnerId: RUNNER_A.id,
        secret: RUNNER_A.secret,
        method: "POST",
        url: `http://vigil.test${path}`,
        body: text,
      });
      return () =>
        call(path, { key: null, method: "POST", headers: { ...headers, "content-type": "application/json" }, body: text });
    };
    const beat = await signed(`/internal/runner/jobs/${job.id}/heartbeat`, { lease_id: l.lease_id });
    expect((await beat()).status).toBe(200);
    const beatAgain = await beat();
    expect(beatAgain.status).toBe(401);
    expect(await typeOf(beatAgain)).toBe("https://vigil.dev/errors/runner_replayed_nonce");
    const done = await signed(`/internal/runner/jobs/${job.id}/complete`, { lease_id: l.lease_id, result: { ok: true } });
    expect((await done()).status).toBe(200);
    const doneAgain = await done();
    expect(doneAgain.status).toBe(401);
    expect(await typeOf(doneAgain)).toBe("https://vigil.dev/errors/runner_replayed_nonce");
    // A fresh signature for the same report is the runner's legitimate retry: answered again, not applied twice.
    expect((await complete(job.id, l.lease_id)).status).toBe(200);
    expect((await getJob(job.id)).status).toBe("succeeded");
  });

  it("queue metrics: Prometheus by default, JSON on request; runner or operator only", async () => {
    await createInspectJob();
    const prom = await runnerCall("/internal/metrics/queue", undefined, { method: "GET" });
    expect(prom.status).toBe(200);
    const text = await prom.text();
    expect(text).toMatch(/vigil_jobs_queued\{operation="inspect"\} [1-9]\d*/);
    expect(text).toContain('vigil_jobs_running{operation="enhance.lowlight"}');
    const js = await call("/internal/metrics/queue", { key: OPERATOR_KEY, headers: { accept: "application/json" } });
    expect(js.status).toBe(200);
    const m = (await js.json()) as { operations: { operation: string; queued: number; oldest_queued_age_seconds: number }[] };
    expect(m.operations.find((o) => o.operation === "inspect")!.queued).toBeGreaterThan(0);
    expect((await call("/internal/metrics/queue", { key: null })).status).toBe(401);
  });
});
