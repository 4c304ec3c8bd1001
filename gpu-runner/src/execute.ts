import { createHash } from "node:crypto";
import { geometryProblem } from "../../contract/geometry.ts";
import { getOperation, type OperationName } from "../../contract/operations.ts";
import { describe, runInJobScope } from "./crash-guard.ts";
import { RunnerError } from "./errors.ts";
import { decodeImage, readEncoded, type EncodedImage } from "./image/decode.ts";
import { CONTENT_TYPES, encodeImage } from "./image/encode.ts";
import type { ModelRefT, SessionCache } from "./models/session-cache.ts";
import {
  parseParams,
  type OperationContext,
  type OperationPipeline,
  type OperationResult,
  type RasterImage,
} from "./operations/types.ts";

export interface ExecuteRequest {
  pipeline: OperationPipeline;
  params: Record<string, unknown>;
  inputs: Uint8Array[];
  maxPixels: number;
  /** Models the ticket (or the manifest, for `exec`) names, with the sha256 each must have. */
  models: ModelRefT[];
  sessions: SessionCache;
  signal: AbortSignal;
  /** For the crash guard's log when an error escapes the pipeline (runInJobScope). */
  jobId?: string;
}

export interface EncodedArtifact {
  name: string;
  contentType: string;
  body: Buffer;
  sha256: string;
}

export interface ExecuteResult {
  result: Record<string, unknown>;
  artifacts: EncodedArtifact[];
  metrics: { model_ms: number; total_ms: number };
}

/**
 * Params are validated with the contract's schema on the runner too: the ticket is trusted, its contents are still
 * checked. For a pipeline that is not definePipeline's (a test's), by its name when the contract has it.
 */
export function validateParams(operation: string, params: unknown): Record<string, unknown> {
  const spec = getOperation(operation);
  if (!spec) return (params ?? {}) as Record<string, unknown>;
  return parseParams(spec.name as OperationName, params) as Record<string, unknown>;
}

/** The pipeline's run bound to the job's parsed params: parsed here, once, before any input is decoded. */
function prepared(
  pipeline: OperationPipeline,
  raw: unknown,
): (ctx: Omit<OperationContext, "params">) => Promise<OperationResult> {
  if (pipeline.prepare) return pipeline.prepare(raw);
  const params = validateParams(pipeline.name, raw);
  return (ctx) => pipeline.run({ ...ctx, params });
}

export function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new RunnerError("aborted", "job aborted", true);
}

/**
 * The operation's geometry limits (contract/operations.ts), checked in this one place for every pipeline, on the
 * decoded size (or the header's, for encoded inputs), before the pipeline runs: the same rule the worker applies
 * at job creation, for jobs that reach a runner another way (the CLI, or an upload the worker could not read).
 */
export function checkGeometry(operation: string, width: number, height: number): void {
  const spec = getOperation(operation);
  if (!spec) return;
  const problem = geometryProblem(spec.limits, width, height, operation);
  if (problem) throw new RunnerError(problem.code, problem.message);
}

/**
 * Whatever a pipeline throws ends as a RunnerError, so the job's fail report always has a stable type. Our own
 * codes and an abort (job.ts reads the signal's reason) pass through; anything else (a RangeError from tfjs, an
 * onnxruntime or sharp error, a thrown string) is `pipeline_error`, not retryable: a pipeline is a function of
 * the image and params, so another attempt on the same input fails the same way (the poison image of issue 12
 * would have crashed three runners in turn).
 */
export function pipelineFailure(operation: string, e: unknown, signal: AbortSignal): unknown {
  if (e instanceof RunnerError || signal.aborted) return e;
  return new RunnerError("pipeline_error", `${operation} failed: ${describe(e)}`.slice(0, 2000));
}

/** Decode inputs, run the pipeline, encode its images: the part of a job that does not talk to the worker. */
export async function executeOperation(req: ExecuteRequest): Promise<ExecuteResult> {
  const operation = req.pipeline.name;
  try {
    return await runInJobScope({ operation, jobId: req.jobId }, () => execute(req));
  } catch (e) {
    throw pipelineFailure(operation, e, req.signal);
  }
}

async function execute(req: ExecuteRequest): Promise<ExecuteResult> {
  const started = performance.now();
  let modelMs = 0;
  const run = prepared(req.pipeline, req.params);
  const spec = getOperation(req.pipeline.name);
  if (spec && (req.inputs.length < spec.inputs.min || req.inputs.length > spec.inputs.max)) {
    throw new RunnerError(
      "invalid_inputs",
      `${spec.name} takes ${spec.inputs.min}-${spec.inputs.max} inputs, got ${req.inputs.length}`,
    );
  }
  const images: RasterImage[] = [];
  const encoded: EncodedImage[] = [];
  const decodeOptions = { maxPixels: req.maxPixels, animated: req.pipeline.animated ?? "reject" } as const;
  for (const bytes of req.inputs) {
    checkAborted(req.signal);
    if (req.pipeline.input === "encoded") encoded.push(await readEncoded(bytes, decodeOptions));
    else images.push(await decodeImage(bytes, decodeOptions));
  }
  for (const { width, height } of [...images, ...encoded.map((e) => e.header)]) checkGeometry(req.pipeline.name, width, height);
  const output = await run({
    inputs: images,
    encoded,
    signal: req.signal,
    session: (modelId) => {
      const ref = req.models.find((m) => m.id === modelId);
      if (!ref) return Promise.reject(new RunnerError("model_unavailable", `model ${modelId} is not named by the job's ticket`));
      return req.sessions.get(ref);
    },
    timeModel: async (fn) => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        modelMs += performance.now() - t0;
      }
    },
  });
  checkAborted(req.signal);
  const artifacts: EncodedArtifact[] = [];
  for (const a of output.images ?? []) {
    const body = await encodeImage(a.image, a.format, a.quality);
    artifacts.push({
      name: a.name,
      contentType: CONTENT_TYPES[a.format],
      body,
      sha256: createHash("sha256").update(body).digest("hex"),
    });
  }
  return {
    result: output.result,
    artifacts,
    metrics: { model_ms: round(modelMs), total_ms: round(performance.now() - started) },
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
