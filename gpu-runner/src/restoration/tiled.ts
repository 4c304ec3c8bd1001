import type { InferenceSession } from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import type { z } from "zod";
import { OPERATIONS, type OperationName } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import { allocRaster, alphaOf, writeRasterRows } from "../image/tensor.ts";
import { modelOutput } from "../models/output.ts";
import type { ImageArtifact, OperationContext, OperationResult, RasterImage } from "../operations/types.ts";
import { areaThumbnail, areaThumbnailRaster } from "./thumbnail.ts";
import { blendInto, cropPlanar, cropRaster, planBlend, type BlendTile, type Tile } from "./tiles.ts";

/**
 * The tiled ONNX runner every full-resolution restoration model shares. A photo of any size runs as overlapping
 * tiles of one fixed size (so one session serves every image and memory stays bounded at 12 MP); each tile also
 * gets the feeds built once per image from a whole-image thumbnail, so image-wide estimates (a gamma map, an
 * atmospheric light) are the same in every tile, and its outputs are blended straight into the output raster.
 */

export type Feeds = Record<string, Tensor>;

/** How one restoration graph is fed: everything the tiling loop needs to know about the model. */
export interface TiledModel {
  /** Model id in models/manifest.json (and in the operation's contract entry). */
  model: string;
  /** Feed name of the tile: 1 x 3 x h x w, RGB in [0, 1]. */
  input: string;
  /** Output name: 1 x 3 x h x w, RGB in [0, 1], the tile's size. */
  output: string;
  /** Tile side in pixels; images up to this size run in one pass. */
  tile: number;
  /** Pixels neighbouring tiles share. */
  overlap: number;
  /**
   * Pixels along a shared tile edge that get no weight: at least the receptive-field radius of whatever the graph
   * computes per pixel, where zero padding makes a tile differ from a whole-image pass. Must be < overlap / 2.
   */
  edgeMargin: number;
  /**
   * Tile starts are multiples of this (the graph's total stride; 1 by default): see tileStarts. Must divide `tile`.
   */
  align?: number;
  /** Global context: a size x size area thumbnail of the whole image, turned into feeds once and given to every tile. */
  thumbnail?: { size: number; feeds(thumb: Float32Array, size: number): Feeds };
  /** Feed name of [tile top, tile left, image height, image width] (1 x 4, pixels), for graphs that place the tile. */
  position?: string;
  /**
   * Outputs computed from the thumbnail alone (an atmospheric light): the same for every tile of an image. Each tile's
   * values are checked against the first tile's, so a graph whose global estimate leaks tile content fails the job
   * instead of blending several estimates into one image; the values come back once per image.
   */
  perImage?: string[];
}

/** What one tile's run gives a raster's `from`; valid only during the call (the buffers are reused). */
export interface TileResult {
  /** The tile as fed: planar RGB in [0, 1], height x width. */
  input: Float32Array;
  /** Every graph output, by name. */
  outputs: Record<string, Float32Array>;
  height: number;
  width: number;
}

/** One raster a restoration writes, blended tile by tile into its own output. */
export interface TiledRaster {
  /** 3: RGB (the input's alpha kept); 1: a grey map (no alpha). */
  channels: 1 | 3;
  /** A graph output of 1 x channels x h x w as it is, or this tile's planar values computed from the run. */
  from: string | ((tile: TileResult) => Float32Array);
}

/** The thumbnail as one 1 x 3 x size x size feed, for graphs that take the thumbnail itself. */
export function thumbnailFeed(name: string): NonNullable<TiledModel["thumbnail"]>["feeds"] {
  return (thumb, size) => ({ [name]: new Tensor("float32", thumb, [1, 3, size, size]) });
}

/** Where tiles come from: a planar float image (tests, offline tools) or the decoded raster (serving). */
export interface TileSource {
  height: number;
  width: number;
  thumbnail(size: number): Float32Array;
  crop(tile: Tile, into: Float32Array): Float32Array;
}

export function planarSource(rgb: Float32Array, height: number, width: number): TileSource {
  return {
    height,
    width,
    thumbnail: (size) => areaThumbnail(rgb, height, width, size),
    crop: (tile, into) => cropPlanar(rgb, height, width, tile, into),
  };
}

export function rasterSource(image: RasterImage): TileSource {
  return {
    height: image.height,
    width: image.width,
    thumbnail: (size) => areaThumbnailRaster(image, size),
    crop: (tile, into) => cropRaster(image, tile, into),
  };
}

/** Where blended tile outputs go. Tiles arrive row of tiles by row of tiles (planBlend order). */
export interface TileSink {
  add(tile: BlendTile, output: Float32Array): void;
  /** Every row above `row` is final: no later tile covers it. */
  rowsFinal(row: number): void;
}

/** The whole image as planar floats (tests and offline tools compare these directly). */
function planarSink(height: number, width: number, channels: 1 | 3 = 3): TileSink & { data: Float32Array } {
  const data = new Float32Array(channels * height * width);
  return { data, add: (tile, output) => blendInto(data, output, tile, height, width, channels), rowsFinal() {} };
}

/**
 * Straight to the output raster through a band of one tile height: finished rows are converted and the rest of
 * the band moves up. A full-image float accumulator (144 MB at 12 MP) costs more in first-touch page faults than
 * the blending itself.
 */
function rasterSink(
  input: RasterImage,
  bandRows: number,
  channels: 1 | 3 = 3,
  alpha = alphaOf(input),
): TileSink & { raster: RasterImage } {
  const { height, width } = input;
  const raster = allocRaster(width, height, channels, input, alpha);
  const band = new Float32Array(channels * bandRows * width);
  const plane = bandRows * width;
  let bandTop = 0;
  return {
    raster,
    add(tile, output) {
      blendInto(band, output, { ...tile, top: tile.top - bandTop }, bandRows, width, channels);
    },
    rowsFinal(row) {
      const done = Math.min(row, height) - bandTop;
      if (done <= 0) return;
      writeRasterRows(band, bandRows, channels, raster, 0, bandTop, done, alpha);
      for (let c = 0; c < channels; c++) {
        const start = c * plane;
        band.copyWithin(start, start + done * width, start + plane);
        band.fill(0, start + plane - done * width, start + plane);
      }
      bandTop += done;
    },
  };
}

export interface TiledStats {
  tiles: number;
  model_ms: number;
}

export interface TiledRunOptions {
  /** Override the model's tile size and overlap (tests of seams, benches). */
  tile?: number;
  overlap?: number;
  /** Per-image feeds given to every tile as they are (scalars from the job's params). */
  feeds?: Feeds;
  signal?: AbortSignal;
  timeModel?: OperationContext["timeModel"];
}

/** A raster and where its blended tiles go. */
interface Target {
  raster: TiledRaster;
  sink: TileSink;
}

/** The model's one RGB output as the only raster: what a single-output restoration writes. */
const single = (model: TiledModel): Record<string, TiledRaster> => ({ image: { channels: 3, from: model.output } });

function checkPerImage(model: TiledModel, outputs: Record<string, Float32Array>, first: Record<string, Float32Array>) {
  for (const name of model.perImage ?? []) {
    const value = outputs[name];
    if (!value) throw new RunnerError("model_output_missing", `${model.model} returned no '${name}' output`);
    const seen = first[name];
    if (!seen) first[name] = value.slice();
    else if (seen.length !== value.length || seen.some((v, i) => v !== value[i]))
      throw new RunnerError("model_output_invalid", `${model.model}: '${name}' differs between tiles of one image`);
  }
}

/** Runs `model` over `source` tile by tile into each target's sink; returns the per-image outputs too. */
async function runTiledTargets(
  session: InferenceSession,
  model: TiledModel,
  source: TileSource,
  targets: Target[],
  opts: TiledRunOptions,
): Promise<{ stats: TiledStats; perImage: Record<string, Float32Array> }> {
  const { height, width } = source;
  const tiles = planBlend(height, width, opts.tile ?? model.tile, opts.overlap ?? model.overlap, model.edgeMargin, model.align);
  const shared: Feeds = { ...opts.feeds };
  if (model.thumbnail) Object.assign(shared, model.thumbnail.feeds(source.thumbnail(model.thumbnail.size), model.thumbnail.size));
  // All tiles have the same size (tileStarts ends the last one at the border, or past it when aligned), so one input
  // buffer serves them all.
  const buffer = new Float32Array(3 * tiles[0]!.height * tiles[0]!.width);
  const perImage: Record<string, Float32Array> = {};
  let modelMs = 0;
  for (const [i, tile] of tiles.entries()) {
    if (opts.signal?.aborted) throw new RunnerError("aborted", "job aborted", true);
    const input = source.crop(tile, buffer);
    const feeds: Feeds = { ...shared, [model.input]: new Tensor("float32", input, [1, 3, tile.height, tile.width]) };
    if (model.position)
      feeds[model.position] = new Tensor("float32", Float32Array.from([tile.top, tile.left, height, width]), [1, 4]);
    const t0 = performance.now();
    const run = () => session.run(feeds);
    // Only the ONNX runs count as model time; cropping and blending are the pipeline's own overhead.
    const out = await (opts.timeModel ? opts.timeModel(run) : run());
    modelMs += performance.now() - t0;
    const outputs: Record<string, Float32Array> = {};
    for (const name of Object.keys(out)) outputs[name] = out[name]!.data as Float32Array;
    checkPerImage(model, outputs, perImage);
    const result: TileResult = { input, outputs, height: tile.height, width: tile.width };
    for (const { raster, sink } of targets) {
      const data = typeof raster.from === "string" ? modelOutput(out, raster.from, model.model) : raster.from(result);
      if (data.length !== raster.channels * tile.height * tile.width)
        throw new RunnerError(
          "model_output_invalid",
          `${model.model} returned ${data.length} values for a ${raster.channels} x ${tile.height} x ${tile.width} tile`,
        );
      sink.add(tile, data);
    }
    const next = tiles[i + 1];
    for (const { sink } of targets) {
      if (!next) sink.rowsFinal(height);
      else if (next.top !== tile.top) sink.rowsFinal(next.top);
    }
  }
  return { stats: { tiles: tiles.length, model_ms: Math.round(modelMs) }, perImage };
}

/** Runs `model` over `source` tile by tile into `sink` (its one RGB output). */
export async function runTiled(
  session: InferenceSession,
  model: TiledModel,
  source: TileSource,
  sink: TileSink,
  opts: TiledRunOptions = {},
): Promise<TiledStats> {
  return (await runTiledTargets(session, model, source, [{ raster: single(model).image!, sink }], opts)).stats;
}

/**
 * The serving path with several outputs: decoded raster in, one raster per entry of `rasters` out, each blended
 * straight into its own band (RGB rasters keep the input's bit depth and alpha; maps are grey at that depth).
 */
export async function restoreRasters(
  session: InferenceSession,
  model: TiledModel,
  input: RasterImage,
  rasters: Record<string, TiledRaster>,
  opts: TiledRunOptions = {},
): Promise<{ images: Record<string, RasterImage>; perImage: Record<string, Float32Array>; stats: TiledStats }> {
  const bandRows = Math.min(opts.tile ?? model.tile, input.height);
  const alpha = alphaOf(input);
  const sinks = Object.entries(rasters).map(
    ([name, raster]) =>
      [name, raster, rasterSink(input, bandRows, raster.channels, raster.channels === 3 ? alpha : null)] as const,
  );
  const targets = sinks.map(([, raster, sink]) => ({ raster, sink }));
  const { stats, perImage } = await runTiledTargets(session, model, rasterSource(input), targets, opts);
  return { images: Object.fromEntries(sinks.map(([name, , sink]) => [name, sink.raster])), perImage, stats };
}

/** The serving path: decoded raster in, restored raster out (same bit depth, alpha kept). */
export async function restoreRaster(
  session: InferenceSession,
  model: TiledModel,
  input: RasterImage,
  opts: TiledRunOptions = {},
): Promise<{ image: RasterImage; stats: TiledStats }> {
  const { images, stats } = await restoreRasters(session, model, input, single(model), opts);
  return { image: images.image!, stats };
}

/** Planar floats in and out for several rasters, for tests and offline tools. */
export async function restorePlanars(
  session: InferenceSession,
  model: TiledModel,
  rgb: Float32Array,
  height: number,
  width: number,
  rasters: Record<string, TiledRaster>,
  opts: TiledRunOptions = {},
): Promise<{ planes: Record<string, Float32Array>; perImage: Record<string, Float32Array>; stats: TiledStats }> {
  const sinks = Object.entries(rasters).map(
    ([name, raster]) => [name, raster, planarSink(height, width, raster.channels)] as const,
  );
  const targets = sinks.map(([, raster, sink]) => ({ raster, sink }));
  const { stats, perImage } = await runTiledTargets(session, model, planarSource(rgb, height, width), targets, opts);
  return { planes: Object.fromEntries(sinks.map(([name, , sink]) => [name, sink.data])), perImage, stats };
}

/** Planar RGB floats in and out, for tests and offline tools. */
export async function restorePlanar(
  session: InferenceSession,
  model: TiledModel,
  rgb: Float32Array,
  height: number,
  width: number,
  opts: TiledRunOptions = {},
): Promise<{ data: Float32Array; stats: TiledStats }> {
  const { planes, stats } = await restorePlanars(session, model, rgb, height, width, single(model), opts);
  return { data: planes.image!, stats };
}

type ParamsOf<Op extends OperationName> = z.output<(typeof OPERATIONS)[Op]["params"]>;

/** Operations whose params choose an output image format: the ones a restoration pipeline can serve. */
export type RestorationOperation = {
  [Op in OperationName]: ParamsOf<Op> extends { format: ImageArtifact["format"] } ? Op : never;
}[OperationName];

export interface TiledRestorationOptions<Op extends RestorationOperation> extends TiledModel {
  /** The contract entry whose params the job carries (parsed by definePipeline before the run). */
  operation: Op;
  /** Scalar feeds (shape [1]) computed from the job's params, the same for every tile. */
  scalars?: (params: ParamsOf<Op>) => Record<string, number>;
  /**
   * The rasters to write for a job's params, by artifact name, each encoded in the params' format (default: the
   * model's `output` as `image`).
   */
  rasters?: (params: ParamsOf<Op>) => Record<string, TiledRaster>;
}

/** The part of a restoration's options that a job's params may choose (everything but the operation). */
export type TiledRestorationModel<Op extends RestorationOperation> = Omit<TiledRestorationOptions<Op>, "operation">;

/**
 * A restoration pipeline's run function: one input image, the model run tiled over it at full resolution, one
 * artifact per raster (`image` by default) in the format the params ask for.
 */
export const tiledRestoration = <Op extends RestorationOperation>(options: TiledRestorationOptions<Op>) =>
  tiledRestorationBy(options.operation, () => options);

/**
 * The same for an operation whose params choose the model (a `method` param): `choose` gives the model entry, its
 * scalars and rasters for the job's params. Only the chosen model's session is loaded.
 */
export const tiledRestorationBy = <Op extends RestorationOperation>(
  operation: Op,
  choose: (params: ParamsOf<Op>) => TiledRestorationModel<Op>,
) => {
  // The params arrive parsed and typed (definePipeline parses them once, before any input is decoded).
  return async function tiledRestoration(ctx: OperationContext<ParamsOf<Op>>): Promise<OperationResult> {
    const params = ctx.params;
    const input = ctx.inputs[0];
    if (!input) throw new RunnerError("invalid_input", `${operation} needs one input image`);
    const { scalars, rasters, ...model } = choose(params);
    const feeds: Feeds = {};
    for (const [name, value] of Object.entries(scalars?.(params) ?? {}))
      feeds[name] = new Tensor("float32", Float32Array.of(value), [1]);
    const session = await ctx.session(model.model);
    const { images, perImage, stats } = await restoreRasters(session, model, input, rasters?.(params) ?? single(model), {
      feeds,
      signal: ctx.signal,
      timeModel: (fn) => ctx.timeModel(fn),
    });
    const format = (params as { format: ImageArtifact["format"] }).format;
    return {
      result: {
        width: input.width,
        height: input.height,
        model: model.model,
        tiles: stats.tiles,
        tile_size: model.tile,
        overlap: model.overlap,
        // Per-image estimates (an atmospheric light); 4 decimals are 40x finer than one 8-bit level.
        ...Object.fromEntries(Object.entries(perImage).map(([k, v]) => [k, Array.from(v, (x) => Math.round(x * 1e4) / 1e4)])),
      },
      images: Object.entries(images).map(([name, image]) => ({ name, image, format })),
    };
  };
};
