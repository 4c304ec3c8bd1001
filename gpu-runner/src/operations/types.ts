import type { InferenceSession } from "onnxruntime-node";
import type { z } from "zod";
import { OPERATIONS, type OperationName } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import type { EncodedImage } from "../image/decode.ts";

/**
 * A decoded image, interleaved HWC, as sharp produces it. EXIF orientation has already been applied.
 * 16-bit sources stay 16-bit (Uint16Array); alpha is kept as the last channel.
 */
export interface RasterImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  bitDepth: 8 | 16;
  hasAlpha: boolean;
  data: Uint8Array | Uint16Array;
  /** Facts about the source file (format, orientation tag, color space, ...). */
  source: {
    format: string;
    bytes: number;
    orientation: number | null;
    space: string | null;
    icc: boolean;
    pages: number;
  };
}

/** An image result the runner encodes and uploads to the ticket's output URL of the same name. */
export interface ImageArtifact {
  name: string;
  image: RasterImage;
  format: "png" | "jpeg" | "webp";
  quality?: number;
}

/** An operation's params after the contract's schema has parsed them (defaults filled in, types narrowed). */
export type ParamsOf<Op extends OperationName> = z.output<(typeof OPERATIONS)[Op]["params"]>;

export interface OperationContext<P = Record<string, unknown>> {
  params: P;
  /** The decoded inputs; empty for a pipeline with `input: "encoded"`. */
  inputs: RasterImage[];
  /** The inputs still encoded, header read and checked; only for a pipeline with `input: "encoded"`. */
  encoded: EncodedImage[];
  /** Cached, sha256-checked sessions for the models the ticket names. */
  session(modelId: string): Promise<InferenceSession>;
  /** Adds model-execution time to the job's metrics (for spine-overhead measurement). */
  timeModel<T>(fn: () => Promise<T>): Promise<T>;
  signal: AbortSignal;
}

export interface OperationResult {
  result: Record<string, unknown>;
  images?: ImageArtifact[];
}

export interface OperationPipeline {
  name: string;
  /**
   * How animated inputs are decoded: "reject" (default) fails with animated_image_unsupported;
   * "first_frame" decodes frame 0 (for read-only operations such as inspect).
   */
  animated?: "reject" | "first_frame";
  /**
   * "raster" (default): inputs arrive decoded at full resolution. "encoded": they arrive as checked headers and
   * bytes (`ctx.encoded`), for operations that read only the header and small thumbnails; decoding a whole
   * raster they never look at was most of inspect's time.
   */
  input?: "raster" | "encoded";
  /** Runs on the job's params as they arrived; a pipeline made by definePipeline parses them first. */
  run(ctx: OperationContext): Promise<OperationResult>;
  /**
   * definePipeline's pipelines: parses the params once (invalid_params otherwise) and returns the run bound to them,
   * so the runtime refuses bad params before it decodes any input, and the pipeline itself never re-checks them.
   */
  prepare?(params: unknown): (ctx: Omit<OperationContext, "params">) => Promise<OperationResult>;
}

/** The contract's params of `operation`, parsed; a failure is the job's `invalid_params` error, naming each field. */
export function parseParams<Op extends OperationName>(operation: Op, params: unknown): ParamsOf<Op> {
  const parsed = (OPERATIONS[operation].params as unknown as z.ZodType<ParamsOf<Op>>).safeParse(params ?? {});
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "params"}: ${i.message}`).join("; ");
    throw new RunnerError("invalid_params", `invalid params for ${operation}: ${detail}`);
  }
  return parsed.data;
}

export type PipelineOptions = Pick<OperationPipeline, "animated" | "input">;

/**
 * The pipeline of a contract operation: `run` gets its params typed from the contract's schema for `name`, parsed
 * by the runtime (`prepare`) before the pipeline runs; called directly (`pipeline.run`, as tests do), the same one
 * parse runs first.
 */
export function definePipeline<Op extends OperationName>(
  name: Op,
  run: (ctx: OperationContext<ParamsOf<Op>>) => Promise<OperationResult>,
  options: PipelineOptions = {},
): OperationPipeline {
  const prepare = (raw: unknown) => {
    const params = parseParams(name, raw);
    return (ctx: Omit<OperationContext, "params">) => run({ ...ctx, params });
  };
  return { name, ...options, prepare, run: async (ctx) => prepare(ctx.params)(ctx) };
}
