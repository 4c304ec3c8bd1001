import type { InferenceSession } from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { OPERATIONS } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import { alphaOf, nchwToRaster } from "../image/tensor.ts";
import { blendInto, cropPlanar, cropRaster, planBlend, type Tile } from "./lowlight-tiles.ts";
import type { OperationContext, OperationPipeline, RasterImage } from "./types.ts";

/** Fixed working size of the gamma-map branch (the ONNX graph's `thumb` input). */
export const THUMB = 128;
export const TILE = 1024;
export const OVERLAP = 32;
export const MODEL_ID = "lowlight-iagc";

/**
 * Exact area-weighted resize of one axis (each output sample averages the source interval it covers), the
 * same definition as OpenCV's INTER_AREA used for the thumbnails at training time.
 */
function areaWeights(src: number, dst: number): { start: number; weights: number[] }[] {
  const scale = src / dst;
  return Array.from({ length: dst }, (_, o) => {
    const a = o * scale;
    const b = a + scale;
    const start = Math.floor(a);
    const weights: number[] = [];
    for (let i = start; i < Math.min(src, Math.ceil(b)); i++) weights.push((Math.min(b, i + 1) - Math.max(a, i)) / scale);
    return { start, weights };
  });
}

/** Second half of the separable area resize: 3*size rows of `width` samples -> 3 x size x size. */
function columnPass(rows: Float32Array, width: number, size: number): Float32Array {
  const wx = areaWeights(width, size);
  const out = new Float32Array(3 * size * size);
  for (let r = 0; r < 3 * size; r++)
    for (let ox = 0; ox < size; ox++) {
      const { start, weights } = wx[ox]!;
      let acc = 0;
      for (let k = 0; k < weights.length; k++) acc += weights[k]! * rows[r * width + start + k]!;
      out[r * size + ox] = acc;
    }
  return out;
}

/** Planar CHW (3 channels) -> 3 x size x size by area averaging; rows first, then columns. */
export function areaThumbnail(src: Float32Array, height: number, width: number, size = THUMB): Float32Array {
  const wy = areaWeights(height, size);
  const rows = new Float32Array(3 * size * width);
  for (let c = 0; c < 3; c++)
    for (let oy = 0; oy < size; oy++) {
      const { start, weights } = wy[oy]!;
      const dst = (c * size + oy) * width;
      for (let k = 0; k < weights.length; k++) {
        const from = (c * height + start + k) * width;
        const w = weights[k]!;
        for (let x = 0; x < width; x++) rows[dst + x]! += w * src[from + x]!;
      }
    }
  return columnPass(rows, width, size);
}

/**
 * The same area thumbnail straight from an interleaved 8/16-bit raster (grey replicated, alpha ignored), so the
 * serving path never builds a full-resolution float copy of the photo.
 */
export function areaThumbnailRaster(image: RasterImage, size = THUMB): Float32Array {
  const { width, height, data, channels } = image;
  const colour = channels >= 3;
  const scale = 1 / (image.bitDepth === 16 ? 65535 : 255);
  const wy = areaWeights(height, size);
  // Row pass: each source row adds into the (at most two) thumbnail rows whose interval covers it.
  const rows = new Float32Array(3 * size * width);
  for (let oy = 0; oy < size; oy++) {
    const { start, weights } = wy[oy]!;
    for (let k = 0; k < weights.length; k++) {
      const w = weights[k]! * scale;
      const from = (start + k) * width * channels;
      const r = oy * width;
      const g = (size + oy) * width;
      const b = (2 * size + oy) * width;
      for (let x = 0, i = from; x < width; x++, i += channels) {
        const red = data[i]!;
        rows[r + x]! += w * red;
        rows[g + x]! += w * (colour ? data[i + 1]! : red);
        rows[b + x]! += w * (colour ? data[i + 2]! : red);
      }
    }
  }
  return columnPass(rows, width, size);
}

/** Where tiles come from: a planar float image (tests, offline tools) or the decoded raster (serving). */
export interface TileSource {
  height: number;
  width: number;
  thumbnail(): Float32Array;
  crop(tile: Tile, into: Float32Array): Float32Array;
}

export function planarSource(rgb: Float32Array, height: number, width: number): TileSource {
  return {
    height,
    width,
    thumbnail: () => areaThumbnail(rgb, height, width),
    crop: (tile, into) => cropPlanar(rgb, height, width, tile, into),
  };
}

export function rasterSource(image: RasterImage): TileSource {
  return {
    height: image.height,
    width: image.width,
    thumbnail: () => areaThumbnailRaster(image),
    crop: (tile, into) => cropRaster(image, tile, into),
  };
}

export interface EnhanceStats {
  tiles: number;
  model_ms: number;
}

/**
 * Runs the model over a planar RGB image in overlapping tiles; every tile sees the same whole-image thumbnail and
 * its own position (roi), so the gamma map is continuous across tiles.
 */
export async function enhance(
  session: InferenceSession,
  source: TileSource,
  opts: { tile?: number; overlap?: number; signal?: AbortSignal; timeModel?: OperationContext["timeModel"] } = {},
): Promise<{ data: Float32Array; stats: EnhanceStats }> {
  const { height, width } = source;
  const tileSize = opts.tile ?? TILE;
  const overlap = opts.overlap ?? OVERLAP;
  const thumb = new Tensor("float32", source.thumbnail(), [1, 3, THUMB, THUMB]);
  const acc = new Float32Array(3 * height * width);
  const tiles = planBlend(height, width, tileSize, overlap);
  // All tiles have the same size (tileStarts ends the last one at the border), so one input buffer serves them all.
  const buffer = new Float32Array(3 * tiles[0]!.height * tiles[0]!.width);
  let modelMs = 0;
  for (const tile of tiles) {
    if (opts.signal?.aborted) throw new RunnerError("aborted", "job aborted", true);
    const image = new Tensor("float32", source.crop(tile, buffer), [1, 3, tile.height, tile.width]);
    const roi = new Tensor("float32", Float32Array.from([tile.top, tile.left, height, width]), [1, 4]);
    const t0 = performance.now();
    const run = () => session.run({ image, thumb, roi });
    // Only the ONNX runs count as model time; cropping and blending are the pipeline's own overhead.
    const out = await (opts.timeModel ? opts.timeModel(run) : run());
    modelMs += performance.now() - t0;
    const enhanced = out["enhanced"];
    if (!enhanced) throw new RunnerError("model_output_missing", "lowlight model returned no 'enhanced' output");
    blendInto(acc, enhanced.data as Float32Array, tile, height, width);
  }
  return { data: acc, stats: { tiles: tiles.length, model_ms: Math.round(modelMs) } };
}

/**
 * Runs the model over a planar RGB image in overlapping tiles; every tile sees the same whole-image thumbnail and
 * its own position (roi), so the gamma map is continuous across tiles.
 */
export function enhancePlanar(
  session: InferenceSession,
  rgb: Float32Array,
  height: number,
  width: number,
  opts: Parameters<typeof enhance>[2] = {},
): Promise<{ data: Float32Array; stats: EnhanceStats }> {
  return enhance(session, planarSource(rgb, height, width), opts);
}

export const lowlightPipeline: OperationPipeline = {
  name: "enhance.lowlight",
  async run(ctx) {
    const parsed = OPERATIONS["enhance.lowlight"].params.safeParse(ctx.params);
    if (!parsed.success) throw new RunnerError("invalid_params", parsed.error.issues.map((i) => i.message).join("; "));
    const input = ctx.inputs[0];
    if (!input) throw new RunnerError("invalid_input", "enhance.lowlight needs one input image");
    const session = await ctx.session(MODEL_ID);
    const { data, stats } = await enhance(session, rasterSource(input), {
      signal: ctx.signal,
      timeModel: (fn) => ctx.timeModel(fn),
    });
    const image = nchwToRaster({ data, dims: [1, 3, input.height, input.width] }, input, alphaOf(input));
    return {
      result: {
        width: input.width,
        height: input.height,
        model: MODEL_ID,
        tiles: stats.tiles,
        tile_size: TILE,
        overlap: OVERLAP,
      },
      images: [{ name: "image", image, format: parsed.data.format }],
    };
  },
};
