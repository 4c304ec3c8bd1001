import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../gpu-runner/src/config.ts";
import { REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import type { OperationPipeline } from "../../gpu-runner/src/operations/types.ts";
import { type RunnerService, startRunner } from "../../gpu-runner/src/serve.ts";
import { FakeWorker } from "./fake-worker.ts";
import { photoBytes } from "./helpers.ts";

/**
 * The lease loop's and job's less travelled paths, each against the protocol-speaking fake worker: object-store
 * trouble (a 500 retried, a 404 input, a refused upload), tickets for another lease or attempt, an operation the
 * runner has no pipeline for, the ticket's own pixel limit, a duplicated lease entry, the concurrency bound and the
 * lease backoff. Each was a planted bug (scripts/mutants.ts) that no test noticed.
 */

const quiet = () => {};

/** Model-free pipelines: `test.echo` returns its input as the PNG artifact "image"; `test.orphan` an artifact "extra". */
const echoPipeline: OperationPipeline = {
  name: "test.echo",
  async run(ctx) {
    const image = ctx.inputs[0]!;
    return { result: { width: image.width }, images: [{ name: "image", image, format: "png" }] };
  },
};
const orphanPipeline: OperationPipeline = {
  name: "test.orphan",
  async run(ctx) {
    return { result: {}, images: [{ name: "extra", image: ctx.inputs[0]!, format: "png" }] };
  },
};
const registry: ReadonlyMap<string, OperationPipeline> = new Map([
  ...REGISTRY,
  [echoPipeline.name, echoPipeline],
  [orphanPipeline.name, orphanPipeline],
]);

async function runnerFor(worker: FakeWorker, env: Record<string, string> = {}): Promise<RunnerService> {
  const config = loadConfig({
    VIGIL_API_URL: worker.url,
    VIGIL_RUNNER_ID: worker.runnerId,
    VIGIL_RUNNER_SECRET: worker.secret,
    VIGIL_RUNNER_CONCURRENCY: "4",
    VIGIL_LEASE_WAIT_SECONDS: "1",
    VIGIL_TICKET_PUBLIC_KEYS: `${worker.kid}:${worker.publicKey}`,
    PORT: "0",
    ...env,
  });
  return startRunner(config, { registry, log: quiet });
}

const outcomeOf = (runner: RunnerService, id: string) =>
  runner.loop.outcomes.filter((o) => o.job_id === id).map((o) => o.outcome);

describe("job paths: object store, tickets, pipelines", () => {
  let worker: FakeWorker;
  let runner: RunnerService;
  let png: Buffer;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
    runner = await runnerFor(worker);
    png = await sharp(photoBytes()).resize(64, 48).png().toBuffer();
  });
  afterAll(async () => {
    await runner?.stop(500);
    await worker?.stop();
  });

  it("retries an input download the object store answered 500, and completes", async () => {
    const job = worker.enqueue({ inputs: [photoBytes()], failReads: 1 });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.fail).toBeUndefined();
    expect(job.state).toBe("completed");
    expect(job.inputReads).toBe(2); // the 500, then the retry
  });

  it("a missing input (404) fails the job input_unavailable, retryable", async () => {
    const job = worker.enqueue({ inputs: [photoBytes()] });
    worker.objects.delete(`in/${job.id}/0`);
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.fail).toMatchObject({ error: { type: "input_unavailable" }, retryable: true });
    expect(job.inputReads).toBe(1); // a 404 is not retried
  });

  it("an upload the object store refuses fails the job upload_failed instead of completing it", async () => {
    const job = worker.enqueue({ operation: "test.echo", inputs: [png], outputs: ["image"], rejectUploads: 403 });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.complete).toBeUndefined();
    expect(job.fail).toMatchObject({ error: { type: "upload_failed" }, retryable: true });
    expect(worker.objects.has(`out/${job.id}/image`)).toBe(false);
  });

  it("uploads and completes the same pipeline when the store accepts it (the control for the case above)", async () => {
    const job = worker.enqueue({ operation: "test.echo", inputs: [png], outputs: ["image"] });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.state).toBe("completed");
    expect(worker.objects.get(`out/${job.id}/image`)?.contentType).toBe("image/png");
  });

  it("an artifact the ticket has no URL for fails the job with a typed, non-retryable internal_error", async () => {
    const job = worker.enqueue({ operation: "test.orphan", inputs: [png], outputs: ["image"] });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.fail).toMatchObject({ error: { type: "internal_error" }, retryable: false });
    expect(job.fail!.error.message).toContain("no URL");
  });

  it("honours the ticket's pixel limit when it is below the runner's own", async () => {
    const job = worker.enqueue({ inputs: [photoBytes()], maxPixels: 1000, operation: "test.echo", outputs: ["image"] });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.fail).toMatchObject({ error: { type: "image_too_large" }, retryable: false });
  });

  it("rejects a validly signed ticket of another lease or another attempt of the same job: no input read, no report", async () => {
    const before = runner.metrics.rejectedTickets.get({ reason: "invalid_payload" });
    const bad = (["other-lease", "other-attempt"] as const).map((badTicket) =>
      worker.enqueue({ inputs: [photoBytes()], badTicket }),
    );
    await worker.waitFor(() => bad.every((j) => outcomeOf(runner, j.id).length === 1));
    for (const job of bad) {
      expect(outcomeOf(runner, job.id)).toEqual(["bad_ticket"]);
      expect(job.state).toBe("leased");
      expect(job.inputReads).toBe(0);
      expect(job.heartbeats).toBe(0);
    }
    expect(runner.metrics.rejectedTickets.get({ reason: "invalid_payload" })).toBe(before + 2);
  });

  it("releases a leased operation it has no pipeline for, without reading its input", async () => {
    const job = worker.enqueue({ operation: "test.not-served", inputs: [photoBytes()], ignoreOperations: true });
    await worker.waitFor(() => outcomeOf(runner, job.id).length === 1);
    expect(outcomeOf(runner, job.id)).toEqual(["released"]);
    expect(job.released).toBe(true);
    expect(job.inputReads).toBe(0);
    job.state = "completed"; // keep it from being leased again by this suite
  });

  it("runs a job listed twice in one lease response once", async () => {
    const job = worker.enqueue({ inputs: [photoBytes()], duplicateInLease: true, operation: "test.echo", outputs: ["image"] });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    await new Promise((r) => setTimeout(r, 300)); // a second run would report (409) shortly after the first
    expect(job.state).toBe("completed");
    expect(job.inputReads).toBe(1);
    expect(job.lostReports ?? 0).toBe(0);
    expect(outcomeOf(runner, job.id)).toEqual(["succeeded"]);
  });

  it("asks only for the operations it serves, and every request it sent matched the protocol", () => {
    expect(worker.leaseRequests.length).toBeGreaterThan(0);
    for (const r of worker.leaseRequests) expect(r.operations).toEqual([...registry.keys()]);
    expect(worker.badRequests).toEqual([]);
  });
});

describe("heartbeats stop once the job is reported", () => {
  let worker: FakeWorker;
  let runner: RunnerService;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
    runner = await runnerFor(worker, { VIGIL_RUNNER_FAULT_STALL_MS: "1500" });
  });
  afterAll(async () => {
    await runner?.stop(500);
    await worker?.stop();
  });

  it("no heartbeat after the complete: none arrives (and none is refused) in the two intervals that follow", async () => {
    // 3 s lease: a heartbeat every second; the job reports after ~1.5 s, with one heartbeat behind it.
    const job = worker.enqueue({ inputs: [photoBytes()], leaseSeconds: 3 });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.state).toBe("completed");
    const beats = job.heartbeats;
    expect(beats).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 2200));
    expect(job.heartbeats).toBe(beats);
    expect(job.lostReports ?? 0).toBe(0);
  });
});

describe("lease loop: concurrency bound and lease backoff", () => {
  let worker: FakeWorker;
  let runner: RunnerService;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
    worker.malformedLeases = 2; // not retried by the client: each is one failed lease in the loop
    runner = await runnerFor(worker, { VIGIL_RUNNER_CONCURRENCY: "2", VIGIL_RUNNER_FAULT_STALL_MS: "800" });
  });
  afterAll(async () => {
    await runner?.stop(500);
    await worker?.stop();
  });

  it("waits at least 500 ms before leasing again after a failed lease", async () => {
    await worker.waitFor(() => worker.leaseRequests.length >= 3);
    const [a, b, c] = worker.leaseRequests.map((r) => r.at);
    expect(b! - a!).toBeGreaterThanOrEqual(450);
    expect(c! - b!).toBeGreaterThanOrEqual(450);
    expect(runner.metrics.leaseErrors.get()).toBe(2);
  });

  it("never holds more jobs than its concurrency, asks only for free slots, and frees each slot when a job ends", async () => {
    const jobs = Array.from({ length: 5 }, () => worker.enqueue({ inputs: [photoBytes()] }));
    await worker.waitFor(() => jobs.every((j) => j.state === "completed" || j.state === "failed"), 20_000);
    expect(jobs.map((j) => j.state)).toEqual(Array(5).fill("completed"));
    expect(worker.maxLeasedAtOnce).toBe(2);
    for (const r of worker.leaseRequests) expect(r.max_jobs).toBeGreaterThanOrEqual(1);
    for (const r of worker.leaseRequests) expect(r.max_jobs).toBeLessThanOrEqual(2);
    expect(worker.badRequests).toEqual([]);
  });

  it("a successful lease resets the backoff: the next failure waits about the first step again, not a grown one", async () => {
    // Backoff is 500 ms + full jitter (Math.random() x min(15 s, 500 ms x 2^errors)). With the jitter pinned at 0.9,
    // the first failure after a recovery waits 500 + 0.9 x 1000 = 1.4 s; had the two failures before the recovery
    // still counted, it would be 500 + 0.9 x 4000 = 4.1 s.
    const random = vi.spyOn(Math, "random").mockReturnValue(0.9);
    try {
      const from = worker.leaseRequests.length;
      worker.malformedLeases = 1;
      await worker.waitFor(() => worker.leaseRequests.length >= from + 2 && worker.malformedLeases === 0, 10_000);
      const [bad, next] = worker.leaseRequests.slice(from, from + 2).map((r) => r.at);
      expect(next! - bad!).toBeGreaterThanOrEqual(1300);
      expect(next! - bad!).toBeLessThan(2500);
    } finally {
      random.mockRestore();
    }
  });
});
