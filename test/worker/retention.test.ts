import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobQueue } from "../../worker/src/durable/job-queue.ts";
import type { AppEnv } from "../../worker/src/env.ts";
import { sweepRetention } from "../../worker/src/index.ts";
import { objectUrlSigner } from "../../worker/src/lib/object-urls.ts";
import { call, createInspectJob, leaseJob, runnerCall, testEnv } from "./helpers.ts";

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
