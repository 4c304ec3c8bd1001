import type { InferenceSession } from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { OPERATIONS } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import { allocRaster, alphaOf, writeRasterRows } from "../image/tensor.ts";
import { modelOutput } from "../models/output.ts";
import { blendInto, cropPlanar, cropRaster, planBlend, type BlendTile, type Tile } from "./lowlight-tiles.ts";
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

/** Where blended tile outputs go. Tiles arrive row of tiles by row of tiles (planBlend order). */
interface TileSink {
  add(tile: BlendTile, output: Float32Array): void;
  /** Every row above `row` is final: no later tile covers it. */
  rowsFinal(row: number): void;
}

/** The whole image as planar floats (tests and offline tools compare these directly). */
function planarSink(height: number, width: number) {
  const data = new Float32Array(3 * height * width);
  return { data, add: (tile: BlendTile, output: Float32Array) => blendInto(data, output, tile, height, width), rowsFinal() {} };
}

/**
 * Straight to the output raster through a band of one tile height: finished rows are converted and the rest of
 * the band moves up. A full-image float accumulator (144 MB at 12 MP) costs more in first-touch page faults than
 * the blending itself.
 */
function rasterSink(input: RasterImage, bandRows: number) {
  const { height, width } = input;
  const alpha = alphaOf(input);
  const raster = allocRaster(width, height, 3, input, alpha);
  const band = new Float32Array(3 * bandRows * width);
  const plane = bandRows * width;
  let bandTop = 0;
  return {
    raster,
    add(tile: BlendTile, output: Float32Array) {
      blendInto(band, output, { ...tile, top: tile.top - bandTop }, bandRows, width);
    },
    rowsFinal(row: number) {
      const done = Math.min(row, height) - bandTop;
      if (done <= 0) return;
      writeRasterRows(band, bandRows, 3, raster, 0, bandTop, done, alpha);
      for (let c = 0; c < 3; c++) {
        const start = c * plane;
        band.copyWithin(start, start + done * width, start + plane);
        band.fill(0, start + plane - done * width, start + plane);
      }
      bandTop += done;
    },
  };
}

/**
 * Runs the model over an image in overlapping tiles; every tile sees the same whole-image thumbnail and its own
 * position (roi), so the gamma map is continuous across tiles.
 */
export async function enhance(
  session: InferenceSession,
  source: TileSource,
  sink: TileSink,
  opts: { tile?: number; overlap?: number; signal?: AbortSignal; timeModel?: OperationContext["timeModel"] } = {},
): Promise<EnhanceStats> {
  const { height, width } = source;
  const tiles = planBlend(height, width, opts.tile ?? TILE, opts.overlap ?? OVERLAP);
  const thumb = new Tensor("float32", source.thumbnail(), [1, 3, THUMB, THUMB]);
  // All tiles have the same size (tileStarts ends the last one at the border), so one input buffer serves them all.
  const buffer = new Float32Array(3 * tiles[0]!.height * tiles[0]!.width);
  let modelMs = 0;
  for (const [i, tile] of tiles.entries()) {
    if (opts.signal?.aborted) throw new RunnerError("aborted", "job aborted", true);
    const image = new Tensor("float32", source.crop(tile, buffer), [1, 3, tile.height, tile.width]);
    const roi = new Tensor("float32", Float32Array.from([tile.top, tile.left, height, width]), [1, 4]);
    const t0 = performance.now();
    const run = () => session.run({ image, thumb, roi });
    // Only the ONNX runs count as model time; cropping and blending are the pipeline's own overhead.
    const out = await (opts.timeModel ? opts.timeModel(run) : run());
    modelMs += performance.now() - t0;
    sink.add(tile, modelOutput(out, "enhanced", MODEL_ID));
    const next = tiles[i + 1];
    if (!next) sink.rowsFinal(height);
    else if (next.top !== tile.top) sink.rowsFinal(next.top);
  }
  return { tiles: tiles.length, model_ms: Math.round(modelMs) };
}

/** The serving path: decoded raster in, enhanced raster out (same bit depth, alpha kept). */
export async function enhanceRaster(
  session: InferenceSession,
  input: RasterImage,
  opts: Parameters<typeof enhance>[3] = {},
): Promise<{ image: RasterImage; stats: EnhanceStats }> {
  const sink = rasterSink(input, Math.min(opts.tile ?? TILE, input.height));
  const stats = await enhance(session, rasterSource(input), sink, opts);
  return { image: sink.raster, stats };
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
  opts: Parameters<typeof enhance>[3] = {},
): Promise<{ data: Float32Array; stats: EnhanceStats }> {
  const sink = planarSink(height, width);
  return enhance(session, planarSource(rgb, height, width), sink, opts).then((stats) => ({ data: sink.data, stats }));
}

export const lowlightPipeline: OperationPipeline = {
  name: "enhance.lowlight",
  async run(ctx) {
    const parsed = OPERATIONS["enhance.lowlight"].params.safeParse(ctx.params);
    if (!parsed.success) throw new RunnerError("invalid_params", parsed.error.issues.map((i) => i.message).join("; "));
    const input = ctx.inputs[0];
    if (!input) throw new RunnerError("invalid_input", "enhance.lowlight needs one input image");
    const session = await ctx.session(MODEL_ID);
    const { image, stats } = await enhanceRaster(session, input, {
      signal: ctx.signal,
      timeModel: (fn) => ctx.timeModel(fn),
    });
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
