import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../scripts/local-stack.ts";
import { api, pollJob, startTestStack, WebhookReceiver } from "./harness.ts";

const photo = readFileSync(new URL("../fixtures/photo.jpg", import.meta.url));

describe("local stack end to end: wrangler dev + runner", () => {
  let stack: LocalStack;
  let cleanup: () => Promise<void>;
  const receiver = new WebhookReceiver();
  let call: ReturnType<typeof api>;

  beforeAll(async () => {
    ({ stack, cleanup } = await startTestStack({ port: 18787, runners: 1 }));
    call = api(stack);
    const url = await receiver.listen();
    const ep = await call("/v1/webhook_endpoints", { method: "POST", json: { url, events: ["job.succeeded", "job.failed"] } });
    expect(ep.status).toBe(201);
    expect(ep.data.secret).toMatch(/^whsec_/);
    receiver.setSecret(ep.data.secret);
  });

  afterAll(async () => {
    receiver.close();
    await cleanup?.();
  });

  it("runs an inspect job on real pixels and delivers a signed webhook", async () => {
    const res = await call("/v1/inspect", {
      method: "POST",
      headers: { "content-type": "image/jpeg", prefer: "wait=30" },
      body: photo,
    });
    expect(res.status).toBe(200);
    const job = res.data;
    expect(job).toMatchObject({ operation: "inspect", status: "succeeded", error: null });
    expect(job.output).toMatchObject({ width: 512, height: 512, format: "jpeg" });
    expect(JSON.stringify(job.output)).toMatch(/[0-9a-f]{16}/); // the perceptual hash
    const event = await receiver.waitFor((e) => e.payload?.data?.job?.id === job.id);
    expect(event.type).toBe("job.succeeded");
    expect(receiver.rejected).toBe(0);
  });

  it("answers 202 with Location when the job is not waited for, then the job completes", async () => {
    const res = await call("/v1/inspect", { method: "POST", headers: { "content-type": "image/jpeg" }, body: photo });
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toBe(`/v1/jobs/${res.data.id}`);
    const done = await pollJob(call, res.data.id, (j) => j.status === "succeeded");
    expect(done.output.width).toBe(512);
  });

  it("fails a job with a clear error for a corrupt image, and sends job.failed", async () => {
    const corrupt = Buffer.concat([photo.subarray(0, 2000)]); // truncated JPEG: magic bytes pass, decoding fails
    const res = await call("/v1/inspect", {
      method: "POST",
      headers: { "content-type": "image/jpeg", prefer: "wait=30" },
      body: corrupt,
    });
    expect(res.status).toBe(200);
    expect(res.data.status).toBe("failed");
    expect(res.data.error.type).toMatch(/truncated|corrupt/);
    const event = await receiver.waitFor((e) => e.payload?.data?.job?.id === res.data.id);
    expect(event.type).toBe("job.failed");
  });

  it("kill -9 of a runner mid-job: every job still succeeds exactly once after the lease expires", async () => {
    // A second runner that stalls after leasing, so it is reliably mid-job when killed.
    const stalled = await stack.startRunner({ VIGIL_RUNNER_FAULT_STALL_MS: "600000" });
    const [healthy] = stack.runners;
    stack.killRunner(healthy!, "SIGTERM"); // graceful: only the stalled runner leases from now on
    await new Promise((r) => healthy!.process.once("exit", r));

    const first = await call("/v1/inspect", { method: "POST", headers: { "content-type": "image/jpeg" }, body: photo });
    await pollJob(call, first.data.id, (j) => j.status === "running", 30_000);
    stack.killRunner(stalled, "SIGKILL");

    const more = [];
    for (let i = 0; i < 9; i++) {
      more.push((await call("/v1/inspect", { method: "POST", headers: { "content-type": "image/jpeg" }, body: photo })).data.id);
    }
    await stack.startRunner();
    const ids = [first.data.id, ...more];
    const jobs = await Promise.all(
      ids.map((id) => pollJob(call, id, (j) => j.status !== "queued" && j.status !== "running", 90_000)),
    );
    expect(jobs.map((j) => j.status)).toEqual(ids.map(() => "succeeded"));
    expect(jobs[0].attempts).toBe(2);

    // Exactly once: one job.succeeded per job, every output identical to a clean run.
    for (const id of ids) await receiver.waitFor((e) => e.payload?.data?.job?.id === id && e.type === "job.succeeded");
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of ids) {
      const deliveries = receiver.events.filter((e) => e.payload?.data?.job?.id === id && e.type === "job.succeeded");
      expect(new Set(deliveries.map((d) => d.id)).size).toBe(1);
    }
    const phashes = new Set(jobs.map((j) => JSON.stringify(j.output)));
    expect(phashes.size).toBe(1);
  });
});
