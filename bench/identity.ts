import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
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
 *    POST /v1/verify (Prefer: wait=30) to the answer with the finished flow, the flow's own
 *    created → finished time in the worker, and each stage job's runner metrics (total_ms = decode + compute,
 *    model_ms = compute). Once with runner concurrency 1 (`npm start`'s default: the stages run one after the
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
// One request with `Prefer: wait=30` (the worker answers when the flow has finished), as a client would call it;
// BENCH_IDENTITY_WAIT=0 polls /v1/identity/flows/:id every POLL_MS instead (each poll costs workerd CPU on the
// same 2 cores the runner needs). The flow's own created → finished time (worker clock) is reported as well.
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

interface VerifySample {
  client_ms: number;
  flow_ms: number;
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
  let flow = (await res.json()) as any;
  if (res.status !== 200 && res.status !== 202) throw new Error(`verify: HTTP ${res.status} ${JSON.stringify(flow)}`);
  while (flow.status === "running") {
    await new Promise((r) => setTimeout(r, POLL_MS));
    flow = await fetch(`${stack.url}/v1/identity/flows/${flow.id}`, { headers: auth }).then((r) => r.json());
  }
  const client_ms = performance.now() - t0;
  if (flow.status !== "succeeded") throw new Error(`verify flow ${flow.id} ${flow.status}: ${JSON.stringify(flow.error)}`);
  const stages: VerifySample["stages"] = {};
  let analyzeParams: Record<string, unknown> = {};
  for (const [name, id] of Object.entries(flow.stages as Record<string, string>)) {
    const job = (await fetch(`${stack.url}/v1/jobs/${id}`, { headers: auth }).then((r) => r.json())) as any;
    stages[name] = {
      total_ms: Number(job.metrics?.total_ms),
      model_ms: Number(job.metrics?.model_ms),
      started: Date.parse(job.started_at),
      completed: Date.parse(job.completed_at),
    };
    if (name === "face.analyze") analyzeParams = job.params;
  }
  return {
    client_ms,
    flow_ms: Date.parse(flow.updated_at) - Date.parse(flow.created_at),
    verdict: flow.output.verdict,
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
    const p = await fetch(`${stack.url}/v1/protect?format=jpeg`, {
      method: "POST",
      headers: { ...auth, "content-type": "image/jpeg" },
      body: new Uint8Array(photo),
    }).then((r) => r.json() as Promise<any>);
    let flow: any = p;
    while (flow.status === "running") {
      await new Promise((r) => setTimeout(r, 100));
      flow = await fetch(`${stack.url}/v1/identity/flows/${p.id}`, { headers: auth }).then((r) => r.json());
    }
    if (flow.status !== "succeeded") throw new Error(`protect ${flow.status}: ${JSON.stringify(flow.error)}`);
    const image: Response = await fetch(flow.output.image_url);
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
      faces_protected: flow.output.faces.length,
      verdicts: [...new Set(samples.map((s) => s.verdict))],
      verify_client_wall: {
        ...summary(samples.map((s) => s.client_ms)),
        note: WAIT
          ? "POST /v1/verify with Prefer: wait=30 until the answer with the finished flow"
          : `POST /v1/verify until a poll (every ${POLL_MS} ms) sees the flow finished`,
      },
      verify_flow_in_worker: { ...summary(samples.map((s) => s.flow_ms)), note: "flow created_at → updated_at (worker clock)" },
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
