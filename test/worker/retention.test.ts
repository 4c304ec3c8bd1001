import { createExecutionContext, createScheduledController, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobQueue } from "../../worker/src/durable/job-queue.ts";
import type { AppEnv } from "../../worker/src/env.ts";
import worker, { sweepRetention } from "../../worker/src/index.ts";
import { objectUrlSigner } from "../../worker/src/lib/object-urls.ts";
import { call, createInspectJob, leaseJob, postJson, runnerCall, testEnv } from "./helpers.ts";

const env = testEnv as unknown as AppEnv;
const queueStub = () => testEnv.JOB_QUEUE.get(testEnv.JOB_QUEUE.idFromName("global")) as DurableObjectStub<JobQueue>;

async function objectKeysOf(jobId: string): Promise<string[]> {
  const listed = await env.OBJECTS.list({ prefix: `tenants/ten_dev/jobs/${jobId}/` });
  return listed.objects.map((o) => o.key);
}

describe("object lifecycle", () => {
  it("DELETE /v1/jobs/{id} removes the job's objects, outputs included", async () => {
    const job = await createInspectJob();
    await env.OBJECTS.put(`tenants/ten_dev/jobs/${job.id}/outputs/extra`, "leftover from a failed attempt");
    expect(await objectKeysOf(job.id)).toHaveLength(2);
    expect((await call(`/v1/jobs/${job.id}`, { method: "DELETE" })).status).toBe(200);
    expect(await objectKeysOf(job.id)).toEqual([]);
  });

  it("the retention sweep deletes finished jobs older than RETENTION_DAYS and their objects, and keeps recent ones", async () => {
    const old = await createInspectJob();
    const recent = await createInspectJob();
    for (const j of [old, recent]) {
      const l = await leaseJob(j.id);
      await runnerCall(`/internal/runner/jobs/${j.id}/complete`, { lease_id: l.lease_id, result: {} });
    }
    await runInDurableObject(queueStub(), (_i, state) => {
      state.storage.sql.exec("UPDATE jobs SET created_at = ? WHERE id = ?", Date.now() - 31 * 86_400_000, old.id);
    });
    expect(await sweepRetention(env)).toBeGreaterThanOrEqual(1);
    expect((await call(`/v1/jobs/${old.id}`)).status).toBe(404);
    expect(await objectKeysOf(old.id)).toEqual([]);
    expect((await call(`/v1/jobs/${recent.id}`)).status).toBe(200);
    expect(await objectKeysOf(recent.id)).toHaveLength(1);
  });
});

describe("retention sweep", () => {
  const age = (id: string, days: number) =>
    runInDurableObject(queueStub(), (_i, state) => {
      state.storage.sql.exec("UPDATE jobs SET created_at = ? WHERE id = ?", Date.now() - days * 86_400_000, id);
    });

  it("keeps queued and running jobs however old they are; removes old failed and canceled ones", async () => {
    const running = await createInspectJob();
    const failed = await createInspectJob();
    const lr = await leaseJob(running.id);
    const lf = await leaseJob(failed.id);
    // Created after the leases: leaseJob takes jobs in FIFO order and would lease this one on the way.
    const queued = await createInspectJob();
    const canceled = await createInspectJob();
    await runnerCall(`/internal/runner/jobs/${failed.id}/fail`, {
      lease_id: lf.lease_id,
      error: { type: "bad_image", message: "x" },
      retryable: false,
    });
    expect((await call(`/v1/jobs/${canceled.id}/cancel`, { method: "POST" })).status).toBe(200);
    for (const j of [queued, running, failed, canceled]) await age(j.id, 400);
    await sweepRetention(env);
    expect(((await (await call(`/v1/jobs/${queued.id}`)).json()) as { status: string }).status).toBe("queued");
    expect(((await (await call(`/v1/jobs/${running.id}`)).json()) as { status: string }).status).toBe("running");
    expect(await objectKeysOf(queued.id)).toHaveLength(1);
    expect(await objectKeysOf(running.id)).toHaveLength(1);
    expect((await call(`/v1/jobs/${failed.id}`)).status).toBe(404);
    expect((await call(`/v1/jobs/${canceled.id}`)).status).toBe(404);
    // The running job's runner can still report: nothing under it was deleted.
    expect((await runnerCall(`/internal/runner/jobs/${running.id}/complete`, { lease_id: lr.lease_id, result: {} })).status).toBe(
      200,
    );
  });

  it("deletes uploads older than RETENTION_DAYS with their objects, and keeps recent ones", async () => {
    const mk = async () => (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string };
    const [old, recent] = [await mk(), await mk()];
    const keyOf = async (id: string) =>
      (await env.DB.prepare("SELECT object_key FROM uploads WHERE id = ?").bind(id).first<{ object_key: string }>())?.object_key;
    const oldKey = (await keyOf(old.upload_id))!;
    const recentKey = (await keyOf(recent.upload_id))!;
    await env.OBJECTS.put(oldKey, "old bytes");
    await env.OBJECTS.put(recentKey, "recent bytes");
    await env.DB.prepare("UPDATE uploads SET created_at = ? WHERE id = ?")
      .bind(Date.now() - 31 * 86_400_000, old.upload_id)
      .run();
    await sweepRetention(env);
    expect(await keyOf(old.upload_id)).toBeUndefined();
    expect(await env.OBJECTS.head(oldKey)).toBeNull();
    expect(await keyOf(recent.upload_id)).toBe(recentKey);
    expect(await env.OBJECTS.head(recentKey)).not.toBeNull();
  });

  it("the scheduled handler runs the sweep", async () => {
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    await runnerCall(`/internal/runner/jobs/${job.id}/complete`, { lease_id: l.lease_id, result: {} });
    await age(job.id, 31);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "17 3 * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await call(`/v1/jobs/${job.id}`)).status).toBe(404);
    expect(await objectKeysOf(job.id)).toEqual([]);
  });
});

describe("S3 presigned URLs", () => {
  it("with R2 S3 credentials configured, URLs are SigV4 presigned for the bucket and expire as asked", async () => {
    const s3env: AppEnv = {
      ...env,
      R2_S3_ENDPOINT: "https://0123456789abcdef.r2.cloudflarestorage.com",
      R2_ACCESS_KEY_ID: "AKIDEXAMPLE",
      R2_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      R2_BUCKET: "vigil-objects",
    };
    const expires = Math.floor(Date.now() / 1000) + 600;
    const url = new URL(await objectUrlSigner(s3env, "http://ignored").sign("PUT", "tenants/t1/jobs/j1/outputs/image", expires));
    expect(url.hostname).toContain("r2.cloudflarestorage.com");
    expect(url.pathname).toContain("tenants/t1/jobs/j1/outputs/image");
    expect(url.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    // Signing time + TTL must land on the requested expiry.
    const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(url.searchParams.get("X-Amz-Date")!)!;
    const signedAt = Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!) / 1000;
    expect(Math.abs(signedAt + Number(url.searchParams.get("X-Amz-Expires")) - expires)).toBeLessThanOrEqual(1);
  });
});
