import { cpus } from "node:os";
import { GEOMETRY_ERROR_CODES } from "../contract/geometry.ts";
import { getOperation, RUNNER_OPERATION_NAMES } from "../contract/operations.ts";
import { RunnerError } from "../gpu-runner/src/errors.ts";
import { executeOperation } from "../gpu-runner/src/execute.ts";
import { IMAGE_ERROR_CODES } from "../gpu-runner/src/image/decode.ts";
import { SessionCache } from "../gpu-runner/src/models/session-cache.ts";
import { REGISTRY } from "../gpu-runner/src/operations/registry.ts";
import type { OperationPipeline } from "../gpu-runner/src/operations/types.ts";
import { corpus, makeSeeds, type FuzzCase } from "./fuzz-corpus.ts";

/**
 * The fuzzing campaign of issue 12: every corpus image (bench/fuzz-corpus.ts) through the runner's input path for
 * every runner operation in contract/operations.ts (RUNNER_OPERATION_NAMES: protect and verify have no pipeline to
 * fuzz; the worker runs them as child jobs of face.analyze and watermark.embed/decode, which are in the list), in
 * process: executeOperation, i.e. params check, decodeImage or readEncoded with the operation's max_pixels and
 * animation policy, then the geometry check. inspect runs its real pipeline (its thumbnails are decodes too); the
 * model pipelines are replaced by one that returns at once, since their input checks are all before `run`
 * (test/runner/fuzz.test.ts runs the real face and watermark pipelines on the worst geometric cases). Each image
 * either decodes or is rejected with a code from KNOWN_CODES; anything else is a crash, a call that does not settle
 * within the time limit a hang.
 *
 *   npm run bench -- fuzz                 (10,000 images; writes bench/results/fuzz.json)
 *   FUZZ_COUNT=2000 FUZZ_SEED=7 npm run bench -- fuzz
 */

export const KNOWN_CODES: readonly string[] = [...IMAGE_ERROR_CODES, ...GEOMETRY_ERROR_CODES];

/** Params each operation accepts (watermark.embed needs a payload); the rest take their defaults. */
const PARAMS: Record<string, Record<string, unknown>> = { "watermark.embed": { bits: "0123456789abcdef" } };

/** The operation's pipeline with its input settings, but a `run` that does nothing: only the input path is fuzzed. */
function inputPathOnly(name: string): OperationPipeline {
  const real = REGISTRY.get(name);
  if (!real) throw new Error(`no pipeline for ${name}`);
  if (name === "inspect") return real;
  return { name, input: real.input, animated: real.animated, run: async () => ({ result: {} }) };
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Per operation call; a call that takes longer is counted as a hang. */
  timeoutMs: number;
  /** The operations to run (default: every runner operation, RUNNER_OPERATION_NAMES). */
  operations?: string[];
  onCase?: (c: FuzzCase, outcomes: Record<string, string>, ms: number) => void;
}

export interface FuzzReport {
  seed: number;
  images: number;
  operations: string[];
  calls: number;
  crashes: number;
  hangs: number;
  /**
   * Images for which operations with the same input settings (max_pixels, geometry limits, input mode, animation
   * policy: watermark.embed, watermark.decode and face.analyze) gave different outcomes: a code that changes from
   * call to call is not a stable code.
   */
  unstable: number;
  /** Images that at least one operation accepted (decoded and within its limits). */
  images_accepted_by_some_operation: number;
  outcomes_by_operation: Record<string, Record<string, number>>;
  /** Counts over (image, operation) pairs, so each row sums to images x operations. */
  outcomes_by_format: Record<string, Record<string, number>>;
  outcomes_by_mutation: Record<string, Record<string, number>>;
  images_by_format: Record<string, number>;
  images_by_mutation: Record<string, number>;
  max_ms_per_image: number;
  p99_ms_per_image: number;
  total_s: number;
  slowest: { index: number; seed: string; mutation: string; bytes: number; ms: number }[];
  /** Up to 20 crashes or hangs, enough to reproduce each (index in the corpus of this seed). */
  failures: { index: number; seed: string; mutation: string; operation: string; outcome: string; error: string }[];
}

const bump = (m: Record<string, Record<string, number>>, k: string, v: string) => {
  (m[k] ??= {})[v] = (m[k]![v] ?? 0) + 1;
};

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const seeds = await makeSeeds(opts.seed);
  const operations = opts.operations ?? [...RUNNER_OPERATION_NAMES];
  const pipelines = new Map(operations.map((n) => [n, inputPathOnly(n)]));
  const inputSettings = (n: string) => {
    const { max_pixels, min_side, max_aspect_ratio } = getOperation(n)!.limits;
    const p = pipelines.get(n)!;
    return JSON.stringify([max_pixels, min_side, max_aspect_ratio, p.input ?? "raster", p.animated ?? "reject"]);
  };
  const sessions = new SessionCache({ modelsDir: "/nonexistent", executionProviders: ["cpu"] });
  const report: FuzzReport = {
    seed: opts.seed,
    images: 0,
    operations,
    calls: 0,
    crashes: 0,
    hangs: 0,
    unstable: 0,
    images_accepted_by_some_operation: 0,
    outcomes_by_operation: {},
    outcomes_by_format: {},
    outcomes_by_mutation: {},
    images_by_format: {},
    images_by_mutation: {},
    max_ms_per_image: 0,
    p99_ms_per_image: 0,
    total_s: 0,
    slowest: [],
    failures: [],
  };
  // Errors that escape every promise chain count as crashes too (vitest reports them as well).
  let escaped = 0;
  const onEscape = () => void escaped++;
  process.on("unhandledRejection", onEscape);
  const times: number[] = [];
  const started = performance.now();
  try {
    for (const c of corpus(seeds, opts.seed, opts.count)) {
      const t0 = performance.now();
      const outcomes: Record<string, string> = {};
      for (const name of operations) {
        const spec = getOperation(name)!;
        const abort = new AbortController();
        let timer: NodeJS.Timeout | undefined;
        let outcome: string;
        let error = "";
        try {
          await Promise.race([
            executeOperation({
              pipeline: pipelines.get(name)!,
              params: PARAMS[name] ?? {},
              inputs: [c.bytes],
              maxPixels: spec.limits.max_pixels,
              models: [],
              sessions,
              signal: abort.signal,
            }),
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("hang")), opts.timeoutMs))),
          ]);
          outcome = "ok";
        } catch (e) {
          if (e instanceof Error && e.message === "hang") outcome = "hang";
          else if (e instanceof RunnerError && KNOWN_CODES.includes(e.code)) outcome = e.code;
          else outcome = `crash:${e instanceof RunnerError ? e.code : e instanceof Error ? e.name : typeof e}`;
          error = e instanceof Error ? e.message.slice(0, 300) : String(e);
        } finally {
          clearTimeout(timer);
          abort.abort();
        }
        report.calls++;
        if (outcome === "hang") report.hangs++;
        if (outcome.startsWith("crash:")) report.crashes++;
        if ((outcome === "hang" || outcome.startsWith("crash:")) && report.failures.length < 20)
          report.failures.push({ index: c.index, seed: c.seed, mutation: c.mutation, operation: name, outcome, error });
        outcomes[name] = outcome;
        bump(report.outcomes_by_operation, name, outcome);
        bump(report.outcomes_by_format, c.format, outcome);
        bump(report.outcomes_by_mutation, c.mutation, outcome);
      }
      const byInput = new Map<string, Set<string>>();
      for (const n of operations) byInput.set(inputSettings(n), (byInput.get(inputSettings(n)) ?? new Set()).add(outcomes[n]!));
      if ([...byInput.values()].some((set) => set.size > 1)) {
        report.unstable++;
        if (report.failures.length < 20)
          report.failures.push({
            index: c.index,
            seed: c.seed,
            mutation: c.mutation,
            operation: "*",
            outcome: "unstable",
            error: JSON.stringify(outcomes),
          });
      }
      const ms = performance.now() - t0;
      times.push(ms);
      report.images++;
      report.images_by_format[c.format] = (report.images_by_format[c.format] ?? 0) + 1;
      report.images_by_mutation[c.mutation] = (report.images_by_mutation[c.mutation] ?? 0) + 1;
      if (Object.values(outcomes).includes("ok")) report.images_accepted_by_some_operation++;
      report.slowest.push({ index: c.index, seed: c.seed, mutation: c.mutation, bytes: c.bytes.length, ms: Math.round(ms) });
      report.slowest = report.slowest.sort((a, b) => b.ms - a.ms).slice(0, 5);
      opts.onCase?.(c, outcomes, ms);
    }
  } finally {
    process.removeListener("unhandledRejection", onEscape);
  }
  report.crashes += escaped;
  times.sort((a, b) => a - b);
  report.max_ms_per_image = Math.round(times[times.length - 1] ?? 0);
  report.p99_ms_per_image = Math.round(times[Math.floor(times.length * 0.99)] ?? 0);
  report.total_s = Math.round((performance.now() - started) / 100) / 10;
  return report;
}

/** `npm run bench -- fuzz`: the full campaign, at least 10,000 images. */
export async function runFuzzBench(): Promise<object> {
  const seed = Number(process.env.FUZZ_SEED ?? 12);
  const count = Number(process.env.FUZZ_COUNT ?? 10_000);
  let last = performance.now();
  const report = await runFuzz({
    seed,
    count,
    timeoutMs: 20_000,
    onCase: (c) => {
      if (performance.now() - last > 15_000) {
        last = performance.now();
        console.log(`  ${c.index + 1}/${count}`);
      }
    },
  });
  return {
    command: "npm run bench -- fuzz",
    machine: { cpus: cpus().length, node: process.version },
    target: "0 crashes, 0 hangs, 0 unstable; every image decoded or rejected with a code in known_codes",
    known_codes: KNOWN_CODES,
    per_call_time_limit_ms: 20_000,
    ...report,
  };
}
