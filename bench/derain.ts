import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { DERAIN_METHODS, OPERATIONS, type DerainMethod } from "../contract/operations.ts";
import { decodeImage } from "../gpu-runner/src/image/decode.ts";
import { derainPipeline } from "../gpu-runner/src/operations/derain.ts";
import type { OperationContext } from "../gpu-runner/src/operations/types.ts";
import { percentile } from "./stats.ts";

/**
 * enhance.derain per method, the way issue 14 states its targets:
 * - a 0.4 MP photo (730 x 548) end to end through the runner CLI (`npm run runner -- exec enhance.derain ...`: Node
 *   start, model hashing, session creation, decode, tiles, PNG encode), wall and CPU time of the whole process tree
 *   from /usr/bin/time; target <= 2 s;
 * - 12 MP (4000 x 3000) in process through the pipeline (the tiled runtime at its serving overlap), wall and CPU.
 * The photo is test/fixtures/rainy-garden.jpg (a held-out photo under rendered rain), resized.
 *
 *   npx tsx bench/derain.ts [method ...]      (writes bench/results/derain.json)
 */
const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const CLI_REPEATS = 3;

interface CliRun {
  wall_s: number;
  cpu_s: number;
  max_rss_mb: number;
}

function timedCli(args: string[]): CliRun {
  const run = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "npm", "run", "-s", "runner", "--", ...args], {
    cwd: root("."),
    encoding: "utf8",
  });
  if (run.status !== 0) throw new Error(`runner CLI failed (exit ${run.status}): ${run.stderr.slice(-400)}`);
  const [wall, user, sys, rss] = run.stderr.trim().split("\n").at(-1)!.split(" ").map(Number) as number[];
  return { wall_s: wall!, cpu_s: Number((user! + sys!).toFixed(2)), max_rss_mb: Math.round(rss! / 1024) };
}

async function twelveMegapixels(method: DerainMethod, bytes: Buffer) {
  const session = await ort.InferenceSession.create(root(`models/${modelPath(method)}`), {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
  const image = await decodeImage(new Uint8Array(bytes), { maxPixels: OPERATIONS["enhance.derain"].limits.max_pixels });
  const ctx: OperationContext = {
    params: OPERATIONS["enhance.derain"].params.parse({ method }),
    inputs: [image],
    encoded: [],
    session: async () => session,
    timeModel: (fn) => fn(),
    signal: new AbortController().signal,
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await derainPipeline.run(ctx);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await session.release();
  return {
    tiles: res.result["tiles"],
    pipeline_s: Number((wall / 1000).toFixed(2)),
    process_cpu_s: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
  };
}

/** The ONNX file of a method's model, from the manifest the runner reads. */
function modelPath(method: DerainMethod): string {
  const manifest = JSON.parse(readFileSync(root("models/manifest.json"), "utf8")) as {
    models: { id: string; file: string }[];
  };
  return manifest.models.find((m) => m.id === DERAIN_METHODS[method])!.file;
}

export async function runDerainBench(only: string[] = []): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-derain-bench-"));
  const input = join(dir, "rainy-0.4mp.png");
  await sharp(root("test/fixtures/rainy-garden.jpg")).resize(730, 548, { fit: "fill" }).png().toFile(input);
  const big = await sharp(root("test/fixtures/rainy-garden.jpg"))
    .resize(4000, 3000, { fit: "fill" })
    .jpeg({ quality: 92 })
    .toBuffer();
  const methods = (Object.keys(DERAIN_METHODS) as DerainMethod[]).filter((m) => !only.length || only.includes(m));
  const results: Record<string, unknown> = {};
  try {
    for (const method of methods) {
      const load = loadavg()[0]!;
      const runs = Array.from({ length: CLI_REPEATS }, () =>
        timedCli(["exec", "enhance.derain", "--in", input, "--out", join(dir, "out.png"), "--param", `method=${method}`]),
      );
      const walls = runs.map((r) => r.wall_s).sort((a, b) => a - b);
      const cpuTimes = runs.map((r) => r.cpu_s).sort((a, b) => a - b);
      results[method] = {
        cli_0_4mp: { median_wall_s: percentile(walls, 50), median_cpu_s: percentile(cpuTimes, 50), runs, target_s: 2 },
        "12mp": await twelveMegapixels(method, big),
        load_average_1m_at_start: Number(load.toFixed(2)),
      };
      console.log(method, JSON.stringify(results[method]));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    load_average_at_end: loadavg().map((x) => Number(x.toFixed(2))),
    methods: results,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = { bench: "derain", measured_at: new Date().toISOString(), ...(await runDerainBench(process.argv.slice(2))) };
  mkdirSync(root("bench/results"), { recursive: true });
  writeFileSync(root("bench/results/derain.json"), JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
}
