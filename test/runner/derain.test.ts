import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATIONS } from "../../contract/operations.ts";
import { DERAIN, derainPipeline } from "../../gpu-runner/src/operations/derain.ts";
import type { OperationContext, OperationResult, RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { areaThumbnail } from "../../gpu-runner/src/restoration/thumbnail.ts";
import { restorePlanars, type TiledRaster } from "../../gpu-runner/src/restoration/tiled.ts";
import { tileStarts } from "../../gpu-runner/src/restoration/tiles.ts";
import { ROOT } from "./helpers.ts";
import { raster } from "./raster.ts";

/**
 * enhance.derain through the real streak-vapor ONNX session on a real rainy photo (test/fixtures/rainy-garden.jpg: a
 * held-out photo under rendered streaks and a vapour veil). The assertions hold for any weights of this graph: they
 * compare the pipeline with the graph's own outputs, with itself under other params and tilings, and with the input.
 */
const MODEL = `${ROOT}/models/derain_streak_vapor/weights/derain-streak-vapor.onnx`;
const STREAK_VAPOR = DERAIN["streak-vapor"];

let session: ort.InferenceSession;
let rainy: RasterImage;
/** The graph run once over the whole photo (it fits one serving tile), as the reference the pipeline must match. */
let direct: Record<string, Float32Array>;

beforeAll(async () => {
  session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
  rainy = await raster(`${ROOT}/test/fixtures/rainy-garden.jpg`);
  const { rgb, height, width } = planar(rainy);
  const out = await session.run({
    image: new ort.Tensor("float32", rgb, [1, 3, height, width]),
    thumb: new ort.Tensor("float32", areaThumbnail(rgb, height, width, 128), [1, 3, 128, 128]),
  });
  direct = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
});
afterAll(async () => {
  await session.release();
});

function planar(image: RasterImage): { rgb: Float32Array; height: number; width: number } {
  const plane = image.width * image.height;
  const rgb = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) rgb[c * plane + p] = image.data[p * image.channels + c]! / 255;
  return { rgb, height: image.height, width: image.width };
}

/** This suite's graph is streak-vapor's, so its method is named (the operation's default is another method). */
function ctx(params: Record<string, unknown>, inputs = [rainy], asked: string[] = []): OperationContext {
  return {
    params: { method: "streak-vapor", ...params },
    inputs,
    encoded: [],
    session: async (id) => {
      asked.push(id);
      return session;
    },
    timeModel: (fn) => fn(),
    signal: new AbortController().signal,
  };
}

const artifact = (res: OperationResult, name: string) => res.images!.find((a) => a.name === name)!.image;

/** Largest difference, in 8-bit levels, between an interleaved 8-bit raster's channel `c` and planar [0, 1] values. */
function levelsOff(image: RasterImage, c: number, plane: Float32Array): number {
  let worst = 0;
  for (let p = 0; p < plane.length; p++)
    worst = Math.max(
      worst,
      Math.abs(image.data[p * image.channels + c]! - Math.round(Math.min(1, Math.max(0, plane[p]!)) * 255)),
    );
  return worst;
}

/** Mean absolute difference from the input, in 8-bit levels over RGB. */
function meanChange(image: RasterImage): number {
  let sum = 0;
  for (let p = 0; p < rainy.width * rainy.height; p++)
    for (let c = 0; c < 3; c++) sum += Math.abs(image.data[p * image.channels + c]! - rainy.data[p * 3 + c]!);
  return sum / (3 * rainy.width * rainy.height);
}

describe("enhance.derain (streak-vapor, real ONNX session)", () => {
  it("the default method is the one measured best (models/derain/RESULTS.md): heavy-two-branch", () => {
    expect(OPERATIONS["enhance.derain"].params.parse({}).method).toBe("heavy-two-branch");
  });

  it("method=streak-vapor: one RGB image, the graph's own inversion, A reported once per image", async () => {
    const asked: string[] = [];
    const res = await derainPipeline.run(ctx({}, [rainy], asked));
    expect(asked).toEqual(["derain-streak-vapor"]);
    expect(res.images!.map((a) => [a.name, a.format])).toEqual([["image", "png"]]);
    const image = artifact(res, "image");
    expect(image).toMatchObject({ width: 1024, height: 640, channels: 3, bitDepth: 8, hasAlpha: false });
    const plane = 1024 * 640;
    // dehaze 1 writes the graph's `derained` as it is (within one level: the serving path sums the thumbnail straight
    // from the raster, in another order than the planar reference, so A differs in its last bits).
    for (let c = 0; c < 3; c++)
      expect(levelsOff(image, c, direct.derained!.subarray(c * plane, (c + 1) * plane))).toBeLessThanOrEqual(1);
    expect(res.result).toMatchObject({ width: 1024, height: 640, model: "derain-streak-vapor", tiles: 1, tile_size: 1024 });
    const a = res.result.atmospheric_light as number[];
    expect(a).toHaveLength(3);
    a.forEach((v, c) => expect(Math.abs(v - direct.atmospheric_light![c]!)).toBeLessThanOrEqual(5e-5));
    // It restored something: the veil over this photo is heavy (its render transmits as little as 1 %).
    expect(meanChange(image)).toBeGreaterThan(2);
  });

  it("maps=true adds the transmission and the rain map as grey images, and leaves the image as it was", async () => {
    const [plain, withMaps, fromQuery] = await Promise.all([
      derainPipeline.run(ctx({})),
      derainPipeline.run(ctx({ maps: true, format: "webp" })),
      derainPipeline.run(ctx({ maps: "true" })),
    ]);
    expect(withMaps.images!.map((a) => [a.name, a.format])).toEqual([
      ["image", "webp"],
      ["transmission", "webp"],
      ["rain", "webp"],
    ]);
    expect(withMaps.images!.map((a) => a.name)).toEqual(OPERATIONS["enhance.derain"].artifacts.map((a) => a.name));
    expect(fromQuery.images!.map((a) => a.name)).toEqual(["image", "transmission", "rain"]);
    expect(Buffer.from(artifact(withMaps, "image").data).equals(Buffer.from(artifact(plain, "image").data))).toBe(true);
    const t = artifact(withMaps, "transmission");
    const rain = artifact(withMaps, "rain");
    for (const map of [t, rain])
      expect(map).toMatchObject({ width: 1024, height: 640, channels: 1, bitDepth: 8, hasAlpha: false });
    expect(levelsOff(t, 0, direct.transmission!)).toBeLessThanOrEqual(1);
    expect(
      levelsOff(
        rain,
        0,
        direct.t_streak!.map((s) => 1 - s),
      ),
    ).toBeLessThanOrEqual(1);
  });

  it("dehaze lifts only the veil: 1 is the graph's inversion, smaller values stay closer to the input", async () => {
    const runs = await Promise.all([0, 0.5, 0.999999, 1].map((dehaze) => derainPipeline.run(ctx({ dehaze, maps: true }))));
    const [none, half, almost, full] = runs.map((r) => artifact(r, "image"));
    // The formula at d -> 1 is the graph's own inversion (the same T, A and floor), within rounding. (Near the floor,
    // T = 0.1, J moves 0.05 per 0.001 of T, so d has to be this close to 1.)
    let worst = 0;
    for (let i = 0; i < full!.data.length; i++) worst = Math.max(worst, Math.abs(full!.data[i]! - almost!.data[i]!));
    expect(worst).toBeLessThanOrEqual(1);
    // |J - I| = |I - A| (1 / T_d - 1) grows as T_d falls, and T_d falls with d wherever the veil is estimated.
    const change = [none, half, full].map((image) => meanChange(image!));
    expect(change[0]).toBeLessThan(change[1]!);
    expect(change[1]).toBeLessThan(change[2]!);
    // The transmission map is the T_d that was inverted: lighter (more transparent) with less dehazing; the rain map
    // does not depend on d.
    const mean = (m: RasterImage) => Array.from(m.data).reduce((s, v) => s + v, 0) / m.data.length;
    expect(mean(artifact(runs[1]!, "transmission"))).toBeGreaterThan(mean(artifact(runs[3]!, "transmission")));
    expect(Buffer.from(artifact(runs[0]!, "rain").data).equals(Buffer.from(artifact(runs[3]!, "rain").data))).toBe(true);
  });

  it("keeps a 16-bit RGBA image's depth and alpha; the maps are grey at that depth, without alpha", async () => {
    const width = 160;
    const height = 120;
    const data = new Uint16Array(width * height * 4);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        for (let c = 0; c < 3; c++) data[p * 4 + c] = rainy.data[(y * rainy.width + x) * 3 + c]! * 257;
        data[p * 4 + 3] = (x * 409) % 65536;
      }
    const rgba16: RasterImage = { ...rainy, width, height, channels: 4, bitDepth: 16, hasAlpha: true, data };
    const res = await derainPipeline.run(ctx({ maps: true }, [rgba16]));
    const image = artifact(res, "image");
    expect(image).toMatchObject({ width, height, channels: 4, bitDepth: 16, hasAlpha: true });
    for (let p = 0; p < width * height; p++) if (image.data[p * 4 + 3] !== data[p * 4 + 3]) throw new Error(`alpha at ${p}`);
    expect(artifact(res, "rain")).toMatchObject({ channels: 1, bitDepth: 16, hasAlpha: false });
  });

  it("refuses params the contract does not allow, naming the param", async () => {
    for (const [params, name] of [
      [{ method: "demo-net" }, "method"], // a method of issue 14 without weights yet
      [{ dehaze: 1.5 }, "dehaze"],
      [{ dehaze: -0.1 }, "dehaze"],
      [{ maps: "maybe" }, "maps"],
      [{ format: "gif" }, "format"],
      [{ strength: 2 }, "params"],
    ] as const) {
      const run = derainPipeline.run(ctx(params));
      await expect(run, JSON.stringify(params)).rejects.toMatchObject({ code: "invalid_params" });
      await expect(run).rejects.toThrow(new RegExp(`enhance.derain: ${name}`));
    }
  });
});

/** Every raster the pipeline can write, the formula's (dehaze 0.5) as well as the graph's outputs. */
function allRasters(): Record<string, TiledRaster> {
  const full = STREAK_VAPOR.rasters!({ method: "streak-vapor", format: "png", dehaze: 1, maps: true });
  const half = STREAK_VAPOR.rasters!({ method: "streak-vapor", format: "png", dehaze: 0.5, maps: true });
  return { ...full, image_half: half.image!, transmission_half: half.transmission! };
}

/**
 * Largest and mean difference, in 8-bit levels, between two runs over the bands around a tile grid's borders (where
 * two tiles' outputs meet, from one tile's zero-weight margin to the other's), per raster.
 */
function alongBorders(
  a: Record<string, Float32Array>,
  b: Record<string, Float32Array>,
  height: number,
  width: number,
  tile: number,
) {
  const rows = tileStarts(height, tile, STREAK_VAPOR.overlap, STREAK_VAPOR.align);
  const cols = tileStarts(width, tile, STREAK_VAPOR.overlap, STREAK_VAPOR.align);
  const inBand = (v: number, starts: number[]) => starts.slice(1).some((s, k) => v >= s && v < starts[k]! + tile);
  return Object.keys(a).map((name) => {
    const planes = a[name]!.length / (height * width);
    let max = 0;
    let sum = 0;
    let n = 0;
    for (let c = 0; c < planes; c++)
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
          if (!inBand(y, rows) && !inBand(x, cols)) continue;
          const i = (c * height + y) * width + x;
          const d = Math.abs(a[name]![i]! - b[name]![i]!) * 255;
          max = Math.max(max, d);
          sum += d;
          n++;
        }
    return { name, max, mean: sum / n, tiles: rows.length * cols.length };
  });
}

describe("enhance.derain tiles leave no seams", () => {
  // A visible seam is a step of several levels along a border; these bounds are a third of that.
  const MAX_LEVELS = 1;
  const MEAN_LEVELS = 0.05;

  it("tiles with the serving overlap, margin and alignment agree with one whole-image pass along every border", async () => {
    const { rgb, height, width } = planar(rainy);
    const rasters = allRasters();
    const whole = await restorePlanars(session, STREAK_VAPOR, rgb, height, width, rasters);
    expect(whole.stats.tiles).toBe(1);
    // 384 px tiles put 2 x 3 borders (and their crossings) into this photo; the borders' overlap, margin and alignment
    // are the serving ones, which are what decides a seam (at 12 MP the tiles are 1024 px, with the same borders:
    // test/runner/derain-seams.test.ts).
    const tiled = await restorePlanars(session, STREAK_VAPOR, rgb, height, width, rasters, { tile: 384 });
    // Every tile saw the same A (the run checks it tile by tile), the whole-image pass's.
    expect(Array.from(tiled.perImage.atmospheric_light!)).toEqual(Array.from(whole.perImage.atmospheric_light!));
    // Measured with the step-1000 weights: 0.00 levels (the margin covers the receptive field, and aligned tiles
    // sample the strided layers as the whole image does); unaligned 1.46 at most, and a 32 px overlap left 13.
    for (const { name, max, mean, tiles } of alongBorders(whole.planes, tiled.planes, height, width, 384)) {
      expect(tiles).toBe(tiled.stats.tiles);
      expect(max, `${name}: largest difference along tile borders, in 8-bit levels`).toBeLessThan(MAX_LEVELS);
      expect(mean, `${name}: mean difference along tile borders, in 8-bit levels`).toBeLessThan(MEAN_LEVELS);
    }
  });

  it("on a size that is no multiple of 8 (the last tiles reach past the border), two tile grids agree", async () => {
    // 1021 x 637: a whole-image pass is no reference here (its strided layers resample by 511/1021 instead of 1/2),
    // so two aligned grids are compared, each at the other's borders.
    const crop = await raster(
      await sharp(`${ROOT}/test/fixtures/rainy-garden.jpg`).extract({ left: 3, top: 3, width: 1021, height: 637 }).toBuffer(),
    );
    const { rgb, height, width } = planar(crop);
    const rasters = allRasters();
    const [a, b] = await Promise.all(
      [384, 512].map((tile) => restorePlanars(session, STREAK_VAPOR, rgb, height, width, rasters, { tile })),
    );
    for (const [tile, other] of [
      [384, 512],
      [512, 384],
    ])
      for (const { name, max, mean } of alongBorders(a!.planes, b!.planes, height, width, tile!)) {
        expect(max, `${name}: largest difference along the ${tile} px grid's borders (vs ${other})`).toBeLessThan(MAX_LEVELS);
        expect(mean, `${name}: mean difference along the ${tile} px grid's borders`).toBeLessThan(MEAN_LEVELS);
      }
  });

  /**
   * At 12 MP with the serving tiles: the serving grid (20 tiles of 1024 px on 4000 x 3000) against a 1280 px grid (12
   * tiles), each at the other's borders. About two and a half minutes of the shared 2-core CPU, so on request:
   *
   *     VIGIL_SEAMS_12MP=photo.png npx vitest run --project runner test/runner/derain.test.ts -t "12 MP"
   *
   * (models/derain/README.md, "Serving", has the run on a real 12 MP photo under rendered rain.)
   */
  it.runIf(process.env.VIGIL_SEAMS_12MP)(
    "at 12 MP, the serving grid and a 1280 px grid agree",
    { timeout: 900_000 },
    async () => {
      const big = await raster(process.env.VIGIL_SEAMS_12MP!);
      expect(big.width * big.height).toBeGreaterThanOrEqual(11_000_000);
      const { rgb, height, width } = planar(big);
      const rasters = allRasters();
      const t0 = performance.now();
      const serving = await restorePlanars(session, STREAK_VAPOR, rgb, height, width, rasters);
      const t1 = performance.now();
      const other = await restorePlanars(session, STREAK_VAPOR, rgb, height, width, rasters, { tile: 1280 });
      console.log(
        `${width} x ${height}: ${serving.stats.tiles} tiles ${Math.round(t1 - t0)} ms, ${other.stats.tiles} tiles ${Math.round(performance.now() - t1)} ms`,
      );
      expect(Array.from(other.perImage.atmospheric_light!)).toEqual(Array.from(serving.perImage.atmospheric_light!));
      for (const [tile, a, b] of [
        [STREAK_VAPOR.tile, serving, other],
        [1280, other, serving],
      ] as const)
        for (const { name, max, mean } of alongBorders(a.planes, b.planes, height, width, tile)) {
          console.log(`${tile} px grid's borders, ${name}: max ${max.toFixed(3)}, mean ${mean.toFixed(5)} levels`);
          expect(max, `${name} along the ${tile} px grid's borders`).toBeLessThan(MAX_LEVELS);
          expect(mean, `${name} along the ${tile} px grid's borders`).toBeLessThan(MEAN_LEVELS);
        }
    },
  );
});
