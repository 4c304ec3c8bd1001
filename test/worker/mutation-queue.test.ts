import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobQueue } from "../../worker/src/durable/job-queue.ts";
import {
  call,
  createInspectJob,
  createTenantKey,
  expectProblem,
  lease,
  leaseJob,
  OPERATOR_KEY,
  postImage,
  postJson,
  runnerCall,
  testEnv,
  type JobJson,
} from "./helpers.ts";

const queueStub = () => testEnv.JOB_QUEUE.get(testEnv.JOB_QUEUE.idFromName("global")) as DurableObjectStub<JobQueue>;

/**
 * JobQueue behaviour that planted bugs (scripts/mutants.ts, `npm run mutation`) showed no test pinned down: the order
 * and size of a lease, the operations it is limited to, cancel after the end, and the last page of a listing.
 * Everything goes through the real routes and the real Durable Object.
 */

/** Leases everything queued for `operations`, so the case below starts from an empty queue. */
async function drain(operations: string[]): Promise<void> {
  while ((await lease(operations, { max_jobs: 32 })).length) {
    /* keep leasing */
  }
}

describe("lease: order, size and operations", () => {
  it("hands out the oldest queued job first", async () => {
    await drain(["inspect"]);
    const first = await createInspectJob();
    const second = await createInspectJob();
    expect((await lease(["inspect"], { max_jobs: 1 })).map((j) => j.job_id)).toEqual([first.id]);
    expect((await lease(["inspect"], { max_jobs: 1 })).map((j) => j.job_id)).toEqual([second.id]);
  });

  it("hands out at most max_jobs, oldest first, and leaves the rest queued", async () => {
    await drain(["inspect"]);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await createInspectJob()).id);
    const two = await lease(["inspect"], { max_jobs: 2 });
    expect(two.map((j) => j.job_id)).toEqual(ids.slice(0, 2));
    const third = (await (await call(`/v1/jobs/${ids[2]}`)).json()) as JobJson;
    expect(third.status).toBe("queued");
    expect((await lease(["inspect"], { max_jobs: 32 })).map((j) => j.job_id)).toEqual([ids[2]]);
  });

  it("hands out only jobs of the operations the runner asked for", async () => {
    await drain(["inspect", "watermark.decode"]);
    const job = await createInspectJob();
    // A runner serving another operation (watermark.decode) gets nothing; the inspect job is still there for an inspect runner.
    expect(await lease(["watermark.decode"], { max_jobs: 32 })).toEqual([]);
    expect((await lease(["inspect"], { max_jobs: 32 })).map((j) => j.job_id)).toEqual([job.id]);
  });
});

describe("cancel after the end", () => {
  it("a succeeded job is not cancelable (409 job_not_cancelable) and stays succeeded", async () => {
    const job = await createInspectJob();
    const leased = await leaseJob(job.id);
    const done = await runnerCall(`/internal/runner/jobs/${job.id}/complete`, { lease_id: leased.lease_id, result: { ok: 1 } });
    expect(done.status).toBe(200);
    await expectProblem(await postJson(`/v1/jobs/${job.id}/cancel`, {}), 409, "job_not_cancelable");
    expect(((await (await call(`/v1/jobs/${job.id}`)).json()) as JobJson).status).toBe("succeeded");
  });

  it("a failed job is not cancelable either", async () => {
    const job = await createInspectJob();
    const leased = await leaseJob(job.id);
    const failed = await runnerCall(`/internal/runner/jobs/${job.id}/fail`, {
      lease_id: leased.lease_id,
      error: { type: "truncated_image", message: "cut short" },
      retryable: false,
    });
    expect(failed.status).toBe(200);
    await expectProblem(await postJson(`/v1/jobs/${job.id}/cancel`, {}), 409, "job_not_cancelable");
    expect(((await (await call(`/v1/jobs/${job.id}`)).json()) as JobJson).status).toBe("failed");
  });
});

describe("listing: the last page", () => {
  it("a page that ends exactly at the last job has no next page", async () => {
    const { key } = await createTenantKey(["inspect"]);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await createInspectJob(key)).id);
    type Page = { data: JobJson[]; has_more: boolean; next_cursor: string | null };
    const all = (await (await call("/v1/jobs?limit=3", { key })).json()) as Page;
    expect(all.data.map((j) => j.id)).toEqual([...ids].reverse());
    expect(all.has_more).toBe(false);
    expect(all.next_cursor).toBeNull();
    const first = (await (await call("/v1/jobs?limit=2", { key })).json()) as Page;
    expect(first.has_more).toBe(true);
    const last = (await (
      await call(`/v1/jobs?limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`, { key })
    ).json()) as Page;
    expect(last.data.map((j) => j.id)).toEqual([ids[0]]);
    expect(last.has_more).toBe(false);
    expect(last.next_cursor).toBeNull();
  });

  it("another tenant's job is a 404 on read, cancel and delete, and absent from its listing", async () => {
    const a = await createTenantKey(["inspect"]);
    const b = await createTenantKey(["inspect"]);
    const res = await postImage("/v1/inspect", undefined, { key: a.key });
    expect(res.status).toBe(202);
    const job = (await res.json()) as JobJson;
    await expectProblem(await call(`/v1/jobs/${job.id}`, { key: b.key }), 404, "job_not_found");
    await expectProblem(await postJson(`/v1/jobs/${job.id}/cancel`, {}, { key: b.key }), 404, "job_not_found");
    expect((await call(`/v1/jobs/${job.id}`, { key: b.key, method: "DELETE" })).status).toBe(404);
    expect(((await (await call("/v1/jobs", { key: b.key })).json()) as { data: JobJson[] }).data).toEqual([]);
    expect(((await (await call(`/v1/jobs/${job.id}`, { key: a.key })).json()) as JobJson).status).toBe("queued");
  });
});

describe("timers and metrics", () => {
  it("a new lease moves the queue's alarm to its expiry, so a silent runner's job is re-queued on time", async () => {
    await createInspectJob(); // the alarm is now at most the 10-minute housekeeping
    const job = await createInspectJob();
    const leased = await leaseJob(job.id);
    const alarm = await runInDurableObject(queueStub(), (_instance, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    // The lease's expiry, which the runner is told in whole seconds (rounded down).
    expect(alarm!).toBeLessThanOrEqual((leased.lease_expires_at + 1) * 1000);
  });

  it("queue metrics count queued and running jobs of an operation separately", async () => {
    await drain(["inspect"]);
    const metrics = async () => {
      const res = await call("/internal/metrics/queue", { key: OPERATOR_KEY, headers: { accept: "application/json" } });
      expect(res.status).toBe(200);
      const m = (await res.json()) as { operations: { operation: string; queued: number; running: number }[] };
      return m.operations.find((o) => o.operation === "inspect")!;
    };
    const before = await metrics();
    expect(before.queued).toBe(0);
    for (let i = 0; i < 4; i++) await createInspectJob();
    expect((await lease(["inspect"], { max_jobs: 1 })).length).toBe(1);
    const after = await metrics();
    expect(after.queued).toBe(3);
    // Earlier cases of this file left leased jobs running, so a count that mixed the two statuses would differ.
    expect(after.running).toBe(before.running + 1);
  });
});
