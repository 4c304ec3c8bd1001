import type { InferenceSession } from "onnxruntime-node";
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

export interface OperationContext {
  params: Record<string, unknown>;
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
  run(ctx: OperationContext): Promise<OperationResult>;
}
