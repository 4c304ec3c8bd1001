import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { enhancePlanar, enhanceRaster, lowlightPipeline, THUMB } from "../../gpu-runner/src/operations/lowlight.ts";
import { areaThumbnail, areaThumbnailRaster } from "../../gpu-runner/src/restoration/thumbnail.ts";
import {
  axisWeights,
  cropPlanar,
  cropRaster,
  planTiles,
  rampWeight,
  tileStarts,
} from "../../gpu-runner/src/restoration/tiles.ts";
import { alphaOf, nchwToRaster, rasterToNchw } from "../../gpu-runner/src/image/tensor.ts";
import type { OperationContext, RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { maxAbsDiff, parityDiffs, readParityMeta, sha256File } from "./parity.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const MODEL = root("models/lowlight/weights/lowlight-iagc.onnx");
const FIXTURE = root("test/fixtures/lowlight-iagc-parity");

/** The astronaut fixture darkened to about 15% (in-domain for the model), as planar RGB floats. */
async function darkPhoto(): Promise<{ rgb: Float32Array; height: number; width: number }> {
  const { data, info } = await sharp(root("test/fixtures/photo.jpg")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const plane = info.width * info.height;
  const rgb = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) rgb[c * plane + p] = (data[p * 3 + c]! / 255) * 0.15;
  return { rgb, height: info.height, width: info.width };
}

let session: ort.InferenceSession;
beforeAll(async () => {
  session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
});

describe("lowlight ONNX parity with PyTorch", () => {
  it("fixture was made from the committed model", async () => {
    expect((await readParityMeta(FIXTURE)).onnx_sha256).toBe(await sha256File(MODEL));
  });

  it("onnxruntime-node matches PyTorch within 1e-4 on a real degraded photo tile", async () => {
    const meta = await readParityMeta(FIXTURE);
    expect(meta.tolerance).toBe(1e-4);
    // Float32 Taylor series + GridSample + convs in two runtimes: observed differences are ~1e-6.
    const { enhanced } = await parityDiffs(session, FIXTURE, meta);
    expect(enhanced).toBeLessThan(meta.tolerance);
  });
});

describe("lowlight tiling", () => {
  it("plans tiles that cover the image with the requested overlap", () => {
    expect(tileStarts(100, 128, 32)).toEqual([0]);
    const starts = tileStarts(3000, 1024, 32);
    expect(starts[0]).toBe(0);
    expect(starts.at(-1)! + 1024).toBe(3000);
    for (let i = 1; i < starts.length; i++) expect(starts[i - 1]! + 1024 - starts[i]!).toBeGreaterThanOrEqual(32);
    expect(planTiles(3000, 4000, 1024, 32)).toHaveLength(starts.length * tileStarts(4000, 1024, 32).length);
    expect(rampWeight(0, 1024, 0, 3000, 32, 4)).toBe(1); // image border keeps full weight
    expect(rampWeight(0, 1024, 500, 3000, 32, 4)).toBe(0); // shared edge: the neighbour's interior wins
    expect(rampWeight(20, 1024, 500, 3000, 32, 4)).toBeGreaterThan(0.5);
  });

  it("blend weights sum to exactly 1 everywhere, also where three tiles overlap", () => {
    for (const total of [1000, 1030, 2020, 3000, 4000]) {
      const starts = tileStarts(total, 1024, 32);
      const weights = axisWeights(starts, 1024, total, 32, 4);
      const sum = new Float64Array(total);
      starts.forEach((s, k) => weights[k]!.forEach((w, i) => (sum[s + i]! += w)));
      for (const v of sum) expect(Math.abs(v - 1)).toBeLessThan(1e-6);
    }
  });

  it("area thumbnail of a constant image is that constant", () => {
    const rgb = new Float32Array(3 * 300 * 457).fill(0.25);
    const t = areaThumbnail(rgb, 300, 457, THUMB);
    expect(t).toHaveLength(3 * THUMB * THUMB);
    expect(maxAbsDiff(t, new Float32Array(t.length).fill(0.25))).toBeLessThan(1e-5);
  });

  it("the raster path (serving) reads the same pixels as the planar path, for RGB, RGBA, grey and 16-bit", async () => {
    const { data, info } = await sharp(root("test/fixtures/photo.jpg"))
      .resize(301, 203)
      .raw()
      .toBuffer({ resolveWithObject: true });
    const base = {
      width: 301,
      height: 203,
      source: { format: "raw", bytes: 0, orientation: null, space: null, icc: false, pages: 1 },
    };
    const rgba = new Uint8Array(301 * 203 * 4);
    const grey = new Uint8Array(301 * 203);
    const deep = new Uint16Array(301 * 203 * 3);
    for (let p = 0; p < 301 * 203; p++) {
      for (let c = 0; c < 3; c++) rgba[p * 4 + c] = data[p * 3 + c]!;
      rgba[p * 4 + 3] = p % 256;
      grey[p] = data[p * 3 + 1]!;
      for (let c = 0; c < 3; c++) deep[p * 3 + c] = data[p * 3 + c]! * 257 + (p % 7);
    }
    const images: RasterImage[] = [
      { ...base, channels: 3, bitDepth: 8, hasAlpha: false, data: new Uint8Array(data) },
      { ...base, channels: 4, bitDepth: 8, hasAlpha: true, data: rgba },
      { ...base, channels: 1, bitDepth: 8, hasAlpha: false, data: grey },
      { ...base, channels: 3, bitDepth: 16, hasAlpha: false, data: deep },
    ];
    const tile = { top: 17, left: 40, height: 96, width: 128 };
    for (const image of images) {
      const planar = rasterToNchw(image, 3).data;
      expect(maxAbsDiff(cropRaster(image, tile), cropPlanar(planar, 203, 301, tile))).toBe(0);
      expect(maxAbsDiff(areaThumbnailRaster(image, THUMB), areaThumbnail(planar, 203, 301, THUMB))).toBeLessThan(1e-5);
    }
    // And the serving path (tiles blended through a one-tile band straight into the output raster) gives the same
    // pixels as blending into a full planar image and converting once: 2 x 3 tiles, so rows are handed over twice.
    for (const image of [images[1]!, images[3]!]) {
      const viaRaster = await enhanceRaster(session, image, { tile: 128, overlap: 32 });
      const viaPlanar = await enhancePlanar(session, rasterToNchw(image, 3).data, 203, 301, { tile: 128, overlap: 32 });
      expect(viaRaster.stats.tiles).toBe(6);
      const expected = nchwToRaster({ data: viaPlanar.data, dims: [1, 3, 203, 301] }, image, alphaOf(image));
      expect(viaRaster.image.channels).toBe(expected.channels);
      expect(viaRaster.image.bitDepth).toBe(image.bitDepth);
      let maxStep = 0;
      for (let i = 0; i < expected.data.length; i++)
        maxStep = Math.max(maxStep, Math.abs(viaRaster.image.data[i]! - expected.data[i]!));
      // Float summation order differs between the two paths only in the last bit: at most one rounding step.
      expect(maxStep).toBeLessThanOrEqual(1);
    }
  });

  it("tiled output equals the single-pass output: no seams", async () => {
    const { rgb, height, width } = await darkPhoto();
    const whole = await enhancePlanar(session, rgb, height, width, { tile: 4096 });
    const tiled = await enhancePlanar(session, rgb, height, width, { tile: 192, overlap: 32 });
    expect(whole.stats.tiles).toBe(1);
    expect(tiled.stats.tiles).toBe(9);
    // The gamma map is sampled in global coordinates and conv edges get zero weight: float rounding only.
    expect(maxAbsDiff(whole.data, tiled.data)).toBeLessThan(1e-4);
    // And the model does brighten a dark photo.
    const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(whole.data)).toBeGreaterThan(2 * mean(rgb));
  });
});

describe("enhance.lowlight pipeline", () => {
  const ctx = (inputs: RasterImage[], params: Record<string, unknown> = {}): OperationContext => ({
    params,
    inputs,
    encoded: [],
    session: async (id) => {
      expect(id).toBe("lowlight-iagc");
      return session;
    },
    timeModel: (fn) => fn(),
    signal: new AbortController().signal,
  });
  const source = { format: "png", bytes: 0, orientation: null, space: "b-w", icc: false, pages: 1 };

  it("keeps size, bit depth and alpha of a 16-bit grey+alpha image", async () => {
    const width = 40;
    const height = 30;
    const data = new Uint16Array(width * height * 2);
    for (let p = 0; p < width * height; p++) {
      data[2 * p] = (p % width) * 300;
      data[2 * p + 1] = 65535 - p;
    }
    const image: RasterImage = { width, height, channels: 2, bitDepth: 16, hasAlpha: true, data, source };
    const res = await lowlightPipeline.run(ctx([image], { format: "png" }));
    const out = res.images![0]!;
    expect(out.name).toBe("image");
    expect(out.format).toBe("png");
    expect(out.image).toMatchObject({ width, height, channels: 4, bitDepth: 16, hasAlpha: true });
    for (let p = 0; p < width * height; p++) expect(out.image.data[4 * p + 3]).toBe(65535 - p);
    expect(res.result).toMatchObject({ width, height, tiles: 1 });
  });

  it("rejects unknown params with a clear error", async () => {
    const image: RasterImage = {
      width: 2,
      height: 2,
      channels: 3,
      bitDepth: 8,
      hasAlpha: false,
      data: new Uint8Array(12),
      source,
    };
    await expect(lowlightPipeline.run(ctx([image], { format: "gif" }))).rejects.toThrow(RunnerError);
  });
});
