import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { isTerminalStatus, type JobStatus } from "../contract/protocol.ts";
import { executeOperation } from "../gpu-runner/src/execute.ts";
import { SessionCache } from "../gpu-runner/src/models/session-cache.ts";
import { faceAnalyzePipeline } from "../gpu-runner/src/operations/face-analyze.ts";
import { DECODER_ID, watermarkDecodePipeline } from "../gpu-runner/src/operations/watermark.ts";
import { LocalStack } from "../scripts/local-stack.ts";
import { percentile } from "./stats.ts";

/**
 * Verify latency for a 2 MP photo with faces, written to bench/results/identity.json by
 * `npm run bench -- identity`.
 *
 * 1. End to end through the real local stack (wrangler dev + one CPU runner): the photo is protected once,
 *    then its protected JPEG is verified RUNS times after WARMUP verifies. Per verify: the client's time from
 *    POST /v1/verify (Prefer: wait=30) to the answer with the finished job, the verify job's own
 *    created_at → completed_at time in the worker, and each stage's child job's runner metrics (total_ms = decode
 *    + compute, model_ms = compute). Once with runner concurrency 1 (`npm start`'s default: the stages run one after the
 *    other) and once with 2 (what infra/autoscaler deploys: both stages are leased together, but face analysis
 *    holds the runner's event loop while it computes, so the decode stage mostly waits for it).
 * 2. Runner-side compute alone: `executeOperation` of face.analyze (with the params verify sends) and
 *    watermark.decode on the same bytes, in this process with the stack stopped.
 */

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const SAMPLE = root("node_modules/@vladmandic/face-api/demo/sample1.jpg"); // 3 women, MIT (face-api demo)
const SIZE = [1732, 1155] as const; // 2.0 MP, the size models/identity/CARD.md section 5 uses
const RUNS = Number(process.env.BENCH_IDENTITY_RUNS ?? 12);
const WARMUP = 3;
// One request with `Prefer: wait=30` (the worker answers when the job has finished), as a client would call it;
// BENCH_IDENTITY_WAIT=0 polls GET /v1/jobs/:id every POLL_MS instead (each poll costs workerd CPU on the same 2
// cores the runner needs). The job's own created_at → completed_at time (worker clock) is reported as well.
const WAIT = process.env.BENCH_IDENTITY_WAIT !== "0";
const POLL_MS = Number(process.env.BENCH_IDENTITY_POLL_MS ?? 50);
const CONCURRENCY = (process.env.BENCH_IDENTITY_CONCURRENCY ?? "1,2").split(",").map(Number);
const PORT = 28747; // spine bench: 28787

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x);
  return {
    n: s.length,
    p50_ms: r(percentile(s, 50)),
    p99_ms: r(percentile(s, 99)),
    min_ms: r(s[0]!),
    max_ms: r(s[s.length - 1]!),
  };
}

/** The fields of a job (worker/src/schemas.ts `Job`) this bench reads. */
interface JobJson {
  id: string;
  status: JobStatus;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  output: Record<string, any> | null;
  error: { type: string; message: string } | null;
  params: Record<string, unknown>;
  metrics: { model_ms?: number; total_ms?: number } | null;
  stages: { name: string; id: string; operation: string; status: JobStatus }[];
}

/** GET /v1/jobs/:id every `everyMs` until the job is terminal (a no-op for one answered finished). */
async function untilDone(stack: LocalStack, job: JobJson, everyMs: number): Promise<JobJson> {
  const auth = { authorization: `Bearer ${stack.vars.VIGIL_DEV_KEY}` };
  while (!isTerminalStatus(job.status)) {
    await new Promise((r) => setTimeout(r, everyMs));
    job = (await fetch(`${stack.url}/v1/jobs/${job.id}`, { headers: auth }).then((r) => r.json())) as JobJson;
  }
  return job;
}

interface VerifySample {
  client_ms: number;
  job_ms: number;
  verdict: string;
  stages: Record<string, { total_ms: number; model_ms: number; started: number; completed: number }>;
  /** The params the worker gave the face.analyze stage. */
  analyzeParams: Record<string, unknown>;
}

async function verifyOnce(stack: LocalStack, image: Uint8Array<ArrayBuffer>): Promise<VerifySample> {
  const auth = { authorization: `Bearer ${stack.vars.VIGIL_DEV_KEY}` };
  const t0 = performance.now();
  const res = await fetch(`${stack.url}/v1/verify`, {
    method: "POST",
    headers: { ...auth, "content-type": "image/jpeg", ...(WAIT ? { prefer: "wait=30" } : {}) },
    body: image,
  });
  const answered = (await res.json()) as JobJson;
  if (res.status !== 200 && res.status !== 202) throw new Error(`verify: HTTP ${res.status} ${JSON.stringify(answered)}`);
  const job = await untilDone(stack, answered, POLL_MS);
  const client_ms = performance.now() - t0;
  if (job.status !== "succeeded") throw new Error(`verify job ${job.id} ${job.status}: ${JSON.stringify(job.error)}`);
  const stages: VerifySample["stages"] = {};
  let analyzeParams: Record<string, unknown> = {};
  for (const { name, id } of job.stages) {
    const child = (await fetch(`${stack.url}/v1/jobs/${id}`, { headers: auth }).then((r) => r.json())) as JobJson;
    stages[name] = {
      total_ms: Number(child.metrics?.total_ms),
      model_ms: Number(child.metrics?.model_ms),
      started: Date.parse(child.started_at!),
      completed: Date.parse(child.completed_at!),
    };
    if (name === "face.analyze") analyzeParams = child.params;
  }
  return {
    client_ms,
    job_ms: Date.parse(job.completed_at!) - Date.parse(job.created_at),
    verdict: job.output!.verdict,
    stages,
    analyzeParams,
  };
}

async function throughStack(photo: Buffer, concurrency: number) {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-identity-"));
  const stack = new LocalStack({
    port: PORT,
    persistTo: join(dir, "state"),
    envFile: join(dir, "dev.vars"),
    runners: 1,
    runnerConcurrency: concurrency,
    vars: { RATE_LIMIT_PER_MINUTE: "1000000", RATE_LIMIT_BURST: "100000" },
  });
  try {
    await stack.start();
    const auth = { authorization: `Bearer ${stack.vars.VIGIL_DEV_KEY}` };
    const answered = await fetch(`${stack.url}/v1/protect?format=jpeg`, {
      method: "POST",
      headers: { ...auth, "content-type": "image/jpeg" },
      body: new Uint8Array(photo),
    }).then((r) => r.json() as Promise<JobJson>);
    const protectJob = await untilDone(stack, answered, 100);
    if (protectJob.status !== "succeeded") throw new Error(`protect ${protectJob.status}: ${JSON.stringify(protectJob.error)}`);
    const image: Response = await fetch(protectJob.output!.image_url);
    const protectedJpeg = new Uint8Array(await image.arrayBuffer());

    for (let i = 0; i < WARMUP; i++) await verifyOnce(stack, protectedJpeg);
    const samples: VerifySample[] = [];
    for (let i = 0; i < RUNS; i++) samples.push(await verifyOnce(stack, protectedJpeg));
    const stage = (name: string, key: "total_ms" | "model_ms") => summary(samples.map((s) => s.stages[name]![key]));
    // Stage overlap: how long both stage jobs were leased at the same time (worker clock: leased → completed).
    const overlap = samples.map((s) => {
      const [a, b] = [s.stages["face.analyze"]!, s.stages["watermark.decode"]!];
      return Math.max(0, Math.min(a.completed, b.completed) - Math.max(a.started, b.started));
    });
    return {
      runner_concurrency: concurrency,
      analyze_params: samples[0]!.analyzeParams,
      protected_jpeg_bytes: protectedJpeg.byteLength,
      faces_protected: protectJob.output!.faces.length,
      verdicts: [...new Set(samples.map((s) => s.verdict))],
      verify_client_wall: {
        ...summary(samples.map((s) => s.client_ms)),
        note: WAIT
          ? "POST /v1/verify with Prefer: wait=30 until the answer with the finished job"
          : `POST /v1/verify until a poll (every ${POLL_MS} ms) sees the job finished`,
      },
      verify_job_in_worker: {
        ...summary(samples.map((s) => s.job_ms)),
        note: "verify job created_at → completed_at (worker clock)",
      },
      stage_runner_total: {
        "face.analyze": stage("face.analyze", "total_ms"),
        "watermark.decode": stage("watermark.decode", "total_ms"),
      },
      stage_runner_model: {
        "face.analyze": stage("face.analyze", "model_ms"),
        "watermark.decode": stage("watermark.decode", "model_ms"),
      },
      stage_overlap: summary(overlap),
    };
  } catch (err) {
    console.error(stack.outputTails());
    throw err;
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runner-side compute in this process: decode + pipeline, as a runner runs each stage (no network). */
async function inProcess(photo: Buffer, verifyAnalyzeParams: Record<string, unknown>) {
  const sessions = new SessionCache({ modelsDir: root("models"), executionProviders: ["cpu"] });
  const models = await sessions.refsFor([DECODER_ID]);
  const signal = new AbortController().signal;
  const run = (pipeline: typeof faceAnalyzePipeline, params: Record<string, unknown>) =>
    executeOperation({ pipeline, params, inputs: [photo], maxPixels: 50_000_000, models, sessions, signal });
  const cases = {
    "face.analyze (verify's params)": () => run(faceAnalyzePipeline, verifyAnalyzeParams),
    "face.analyze (all faces, the default)": () => run(faceAnalyzePipeline, {}),
    "watermark.decode": () => run(watermarkDecodePipeline, {}),
  };
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(cases)) {
    for (let i = 0; i < WARMUP; i++) await fn();
    const total: number[] = [];
    const model: number[] = [];
    const cpu: number[] = [];
    let faces = 0;
    for (let i = 0; i < RUNS; i++) {
      const c0 = process.cpuUsage();
      const r = await fn();
      const c = process.cpuUsage(c0);
      total.push(r.metrics.total_ms);
      model.push(r.metrics.model_ms);
      cpu.push((c.user + c.system) / 1000);
      faces = Array.isArray(r.result.faces) ? r.result.faces.length : faces;
    }
    out[name] = {
      wall_decode_plus_compute: summary(total),
      wall_compute: summary(model),
      cpu_of_process: summary(cpu),
      ...(name.startsWith("face") ? { faces_analysed: faces } : {}),
    };
  }
  await sessions.release();
  return out;
}

export async function runIdentityBench() {
  const photo = await sharp(SAMPLE).resize(SIZE[0], SIZE[1]).jpeg({ quality: 90 }).toBuffer();
  const load0 = loadavg()[0]!;
  const stacked: Record<string, Awaited<ReturnType<typeof throughStack>>> = {};
  for (const c of CONCURRENCY) stacked[`runner_concurrency_${c}`] = await throughStack(photo, c);
  const runner = await inProcess(photo, Object.values(stacked)[0]!.analyze_params);
  return {
    machine: {
      cpus: cpus().length,
      node: process.version,
      load_avg_1m: [load0, loadavg()[0]!].map((l) => Math.round(l * 10) / 10),
    },
    image: {
      source: "node_modules/@vladmandic/face-api/demo/sample1.jpg (3 faces)",
      width: SIZE[0],
      height: SIZE[1],
      format: "jpeg q90 in; protected with format=jpeg; verify gets the protected JPEG",
    },
    runs: RUNS,
    warmup: WARMUP,
    target: "verify <= 1 s on CPU for 2 MP",
    verify_end_to_end: stacked,
    runner_compute_in_process: runner,
  };
}
