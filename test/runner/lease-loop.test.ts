import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../gpu-runner/src/config.ts";
import { readEncoded } from "../../gpu-runner/src/image/decode.ts";
import { pHash } from "../../gpu-runner/src/operations/phash.ts";
import { REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import type { OperationPipeline } from "../../gpu-runner/src/operations/types.ts";
import { type RunnerService, startRunner } from "../../gpu-runner/src/serve.ts";
import { FakeWorker } from "./fake-worker.ts";
import { photoBytes, TINY_MODEL } from "./helpers.ts";
import { invertPipeline } from "./test-pipelines.ts";

const quiet = () => {};
const registry: ReadonlyMap<string, OperationPipeline> = new Map([...REGISTRY, [invertPipeline.name, invertPipeline]]);
const modelSha = createHash("sha256").update(readFileSync(TINY_MODEL)).digest("hex");
const modelRef = { id: "tiny-invert", version: "1", sha256: modelSha };
let modelsDir: string;

beforeAll(() => {
  modelsDir = mkdtempSync(join(tmpdir(), "vigil-runner-models-"));
  copyFileSync(TINY_MODEL, join(modelsDir, "tiny-invert.onnx"));
  writeFileSync(
    join(modelsDir, "manifest.json"),
    JSON.stringify({ version: 1, models: [{ ...modelRef, file: "tiny-invert.onnx" }] }),
  );
});
afterAll(() => rmSync(modelsDir, { recursive: true, force: true }));

async function runnerFor(worker: FakeWorker, env: Record<string, string> = {}): Promise<RunnerService> {
  const config = loadConfig({
    VIGIL_API_URL: worker.url,
    VIGIL_RUNNER_ID: worker.runnerId,
    VIGIL_RUNNER_SECRET: worker.secret,
    VIGIL_RUNNER_CONCURRENCY: "2",
    VIGIL_MODELS_DIR: modelsDir,
    VIGIL_LEASE_WAIT_SECONDS: "1",
    PORT: "0",
    ...env,
  });
  return startRunner(config, { registry, log: quiet });
}

function portOf(service: RunnerService): number {
  return (service.server.address() as { port: number }).port;
}

describe("lease loop against a protocol-speaking worker", () => {
  let worker: FakeWorker;
  let runner: RunnerService;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
    worker.failNextLeases = 3; // the first lease attempts hit a worker that is briefly down
    // No VIGIL_TICKET_PUBLIC_KEYS: the runner fetches them with a signed request.
    runner = await runnerFor(worker);
  });
  afterAll(async () => {
    await runner?.stop(1000);
    await worker?.stop();
  });

  it("leases an inspect job, reports complete with the real result and timing metrics", async () => {
    const photo = photoBytes();
    const job = worker.enqueue({ inputs: [photo] });
    await worker.waitFor(() => job.state !== "leased" && job.state !== "queued");
    expect(job.state).toBe("completed");
    expect(worker.leaseCalls).toBeGreaterThanOrEqual(4);
    const expected = await pHash(await readEncoded(photo, { maxPixels: 1e8 }));
    expect(job.complete).toMatchObject({
      lease_id: job.leaseId,
      result: { phash: expected, format: "jpeg", bytes: photo.length },
      artifacts: [],
    });
    const metrics = job.complete!.metrics as { model_ms: number; total_ms: number };
    expect(metrics.total_ms).toBeGreaterThan(0);
    expect(metrics.model_ms).toBe(0);
    expect(worker.authFailures).toEqual([]);
  });

  it("runs a model pipeline: uploads the artifact to the signed URL and reports its sha256", async () => {
    const png = await sharp(photoBytes()).resize(96, 64).png().toBuffer();
    const job = worker.enqueue({ operation: "test.invert", inputs: [png], outputs: ["image"], models: [modelRef] });
    await worker.waitFor(() => job.state === "completed" || job.state === "failed");
    expect(job.fail).toBeUndefined();
    const uploaded = worker.objects.get(`out/${job.id}/image`)!;
    expect(uploaded.contentType).toBe("image/png");
    const [artifact] = job.complete!.artifacts as { sha256: string; bytes: number; key: string; name: string }[];
    expect(artifact).toMatchObject({
      name: "image",
      key: `out/${job.id}/image`,
      bytes: uploaded.body.length,
      content_type: "image/png",
    });
    expect(artifact!.sha256).toBe(createHash("sha256").update(uploaded.body).digest("hex"));
    const input = await sharp(png).raw().toBuffer();
    const output = await sharp(uploaded.body).raw().toBuffer();
    for (const i of [0, 1, 2, 1000, input.length - 1]) expect(output[i]).toBe(255 - input[i]!);
    expect((job.complete!.metrics as { model_ms: number }).model_ms).toBeGreaterThan(0);
  });

  it("never acts on a bad ticket: no input read, no report", async () => {
    const bad = (["tamper", "foreign", "mismatch", "expired"] as const).map((badTicket) =>
      worker.enqueue({ inputs: [photoBytes()], badTicket }),
    );
    await worker.waitFor(
      () =>
        runner.metrics.rejectedTickets.get({ reason: "bad_signature" }) >= 2 &&
        runner.loop.outcomes.filter((o) => o.outcome === "bad_ticket").length >= 4,
    );
    for (const job of bad) {
      expect(job.state).toBe("leased");
      expect(job.inputReads).toBe(0);
      expect(job.heartbeats).toBe(0);
    }
    expect(runner.metrics.rejectedTickets.get({ reason: "expired" })).toBe(1);
    expect(runner.metrics.rejectedTickets.get({ reason: "invalid_payload" })).toBe(1);
  });

  it("reports a bad image as a non-retryable typed failure", async () => {
    const photo = photoBytes();
    const truncated = worker.enqueue({ inputs: [photo.subarray(0, photo.length >> 1)] });
    const bomb = worker.enqueue({ operation: "test.invert", inputs: [Buffer.alloc(0)], outputs: ["image"], models: [modelRef] });
    await worker.waitFor(() => truncated.state === "failed" && bomb.state === "failed");
    expect(truncated.fail).toMatchObject({ error: { type: "truncated_image" }, retryable: false });
    expect(bomb.fail).toMatchObject({ error: { type: "empty_input" }, retryable: false });
  });

  it("drops a job silently when the worker says the lease is gone (409)", async () => {
    const job = worker.enqueue({ inputs: [photoBytes()], loseLease: true });
    await worker.waitFor(() => runner.loop.outcomes.some((o) => o.job_id === job.id));
    expect(runner.loop.outcomes.find((o) => o.job_id === job.id)?.outcome).toBe("lease_lost");
    expect(job.lostReports).toBe(1); // one complete attempt, no fail or release after it
    expect(job.complete).toBeUndefined();
    expect(job.fail).toBeUndefined();
  });

  it("refuses a model whose ticket sha256 does not match the file", async () => {
    const job = worker.enqueue({
      operation: "test.invert",
      inputs: [await sharp(photoBytes()).png().toBuffer()],
      outputs: ["image"],
      models: [{ ...modelRef, sha256: "c".repeat(64) }],
    });
    await worker.waitFor(() => job.state === "failed");
    expect(job.fail).toMatchObject({ error: { type: "model_checksum_mismatch" }, retryable: false });
  });

  it("serves /healthz and Prometheus /metrics", async () => {
    const health = await fetch(`http://127.0.0.1:${portOf(runner)}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", operations: [...registry.keys()] });
    const text = await (await fetch(`http://127.0.0.1:${portOf(runner)}/metrics`)).text();
    expect(text).toContain('vigil_runner_jobs_total{operation="inspect",outcome="succeeded"} 1');
    expect(text).toContain('vigil_runner_jobs_total{operation="inspect",outcome="failed"} 1');
    expect(text).toMatch(/vigil_runner_job_duration_seconds_bucket\{operation="inspect",le="\+Inf"\} \d+/);
    expect(text).toMatch(/vigil_runner_model_seconds_count\{operation="test.invert"\} 1/);
    expect(text).toContain("vigil_runner_inflight 0");
    expect(text).toContain("# TYPE vigil_runner_lease_errors_total counter");
  });
});

describe("heartbeats, cancel and graceful shutdown", () => {
  let worker: FakeWorker;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
  });
  afterAll(() => worker?.stop());

  it("heartbeats every lease/3 and, on SIGTERM-style stop, releases work it cannot finish in the grace period", async () => {
    const runner = await runnerFor(worker, {
      VIGIL_RUNNER_FAULT_STALL_MS: "60000",
      VIGIL_TICKET_PUBLIC_KEYS: `${worker.kid}:${worker.publicKey}`,
    });
    const job = worker.enqueue({ inputs: [photoBytes()], leaseSeconds: 3 });
    await worker.waitFor(() => job.heartbeats >= 2, 10_000);
    const t0 = Date.now();
    await runner.stop(300);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(job.state).toBe("released");
    expect(job.inputReads).toBe(0);
    expect(runner.loop.outcomes).toEqual([{ job_id: job.id, outcome: "released" }]);
    // After stop, nothing leases: a new job stays queued.
    const later = worker.enqueue({ inputs: [photoBytes()] });
    await new Promise((r) => setTimeout(r, 300));
    expect(later.state).toBe("queued");
    later.state = "released";
  });

  it("lets in-flight work finish when it fits in the grace period", async () => {
    const runner = await runnerFor(worker, {
      VIGIL_RUNNER_FAULT_STALL_MS: "700",
      VIGIL_TICKET_PUBLIC_KEYS: `${worker.kid}:${worker.publicKey}`,
    });
    const job = worker.enqueue({ inputs: [photoBytes()] });
    await worker.waitFor(() => runner.loop.inflightCount === 1);
    await runner.stop(10_000);
    expect(job.state).toBe("completed");
  });

  it("aborts a job the worker cancels, without reporting it", async () => {
    const runner = await runnerFor(worker, {
      VIGIL_RUNNER_FAULT_STALL_MS: "60000",
      VIGIL_TICKET_PUBLIC_KEYS: `${worker.kid}:${worker.publicKey}`,
    });
    const job = worker.enqueue({ inputs: [photoBytes()], leaseSeconds: 3, cancel: true });
    await worker.waitFor(() => runner.loop.outcomes.some((o) => o.job_id === job.id), 10_000);
    expect(runner.loop.outcomes.find((o) => o.job_id === job.id)?.outcome).toBe("canceled");
    expect(job.state).toBe("leased");
    expect(job.heartbeats).toBe(1);
    await runner.stop(100);
  });
});
