import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import type { OperationContext, RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { restorePlanar, thumbnailFeed, tiledRestoration, type TiledModel } from "../../gpu-runner/src/restoration/tiled.ts";
import { definePipeline } from "../../gpu-runner/src/operations/types.ts";
import { cropPlanar, tileStarts } from "../../gpu-runner/src/restoration/tiles.ts";
import { ROOT } from "./helpers.ts";

/**
 * The shared tiled runner with graphs other than lowlight's: tiny-invert (x -> 1 - x, feeds `x` / `y`, no context)
 * and tiny-restore (image * gain + per-channel mean of an 8 x 8 thumbnail), so feed names, the thumbnail every
 * tile gets and scalar feeds are checked against what a real onnxruntime session computes.
 */
let invert: ort.InferenceSession;
let restore: ort.InferenceSession;
beforeAll(async () => {
  invert = await ort.InferenceSession.create(`${ROOT}/test/runner/fixtures/tiny-invert.onnx`);
  restore = await ort.InferenceSession.create(`${ROOT}/test/runner/fixtures/tiny-restore.onnx`);
});

const INVERT: TiledModel = { model: "tiny-invert", input: "x", output: "y", tile: 64, overlap: 16, edgeMargin: 2 };
const RESTORE: TiledModel = {
  model: "tiny-restore",
  input: "image",
  output: "restored",
  tile: 64,
  overlap: 16,
  edgeMargin: 2,
  thumbnail: { size: 8, feeds: thumbnailFeed("thumb") },
};

const source = { format: "png", bytes: 0, orientation: null, space: "srgb", icc: false, pages: 1 };

function ctx(session: ort.InferenceSession, inputs: RasterImage[], asked: string[], signal = new AbortController().signal) {
  return {
    params: { format: "webp" as const },
    inputs,
    encoded: [],
    session: async (id: string) => {
      asked.push(id);
      return session;
    },
    timeModel: (fn) => fn(),
    signal,
  } satisfies OperationContext;
}

/** A 8-bit grey + alpha image with structure in both directions. */
function greyAlpha(width: number, height: number): RasterImage {
  const data = new Uint8Array(width * height * 2);
  for (let p = 0; p < width * height; p++) {
    data[2 * p] = ((p % width) * 7 + Math.floor(p / width) * 3) % 256;
    data[2 * p + 1] = p % 251;
  }
  return { width, height, channels: 2, bitDepth: 8, hasAlpha: true, data, source };
}

describe("tiledRestoration()", () => {
  it("runs any graph by its feed and output names over overlapping tiles, into the output raster", async () => {
    const run = tiledRestoration({ operation: "enhance.lowlight", ...INVERT });
    expect(run.name).toBe("tiledRestoration");
    const asked: string[] = [];
    const image = greyAlpha(200, 150);
    const res = await run(ctx(invert, [image], asked));
    expect(asked).toEqual(["tiny-invert"]);
    // 4 x 3 tiles of 64 px with at least 16 shared.
    expect(res.result).toEqual({ width: 200, height: 150, model: "tiny-invert", tiles: 12, tile_size: 64, overlap: 16 });
    const out = res.images![0]!;
    expect(out).toMatchObject({ name: "image", format: "webp" });
    expect(out.image).toMatchObject({ width: 200, height: 150, channels: 4, bitDepth: 8, hasAlpha: true });
    let worst = 0;
    for (let p = 0; p < 200 * 150; p++) {
      for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(out.image.data[4 * p + c]! - (255 - image.data[2 * p]!)));
      expect(out.image.data[4 * p + 3]).toBe(image.data[2 * p + 1]);
    }
    // Every pixel is 1 - x whichever tiles cover it: the blend weights sum to 1 and leave no seam.
    expect(worst).toBe(0);
  });

  it("gives every tile the whole image's thumbnail and the scalar feeds from params", async () => {
    const height = 150;
    const width = 230;
    const rgb = new Float32Array(3 * height * width);
    // A left-to-right ramp plus noise: tiles differ in their means by up to about 0.4.
    for (let i = 0; i < rgb.length; i++) rgb[i] = (0.5 * (i % width)) / width + (0.5 * ((i * 2654435761) % 1000)) / 1000;
    const gain = new ort.Tensor("float32", Float32Array.of(0.5), [1]);
    const { data, stats } = await restorePlanar(restore, RESTORE, rgb, height, width, { feeds: { gain } });
    expect(stats.tiles).toBe(3 * 5);
    const plane = height * width;
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      let mean = 0;
      for (let p = 0; p < plane; p++) mean += rgb[c * plane + p]!;
      mean /= plane;
      for (let p = 0; p < plane; p++)
        worst = Math.max(worst, Math.abs(data[c * plane + p]! - (0.5 * rgb[c * plane + p]! + mean)));
    }
    // A thumbnail of the tile instead of the image would be off by the tile's mean minus the image's.
    expect(worst).toBeLessThan(1e-5);
  });

  it("turns params into scalar feeds through `scalars`", async () => {
    const run = tiledRestoration({
      operation: "enhance.lowlight",
      ...RESTORE,
      scalars: (p) => ({ gain: p.format === "webp" ? 0 : 1 }),
    });
    const image = greyAlpha(70, 40);
    const res = await run(ctx(restore, [image], []));
    // gain 0: every pixel is the thumbnail mean, one grey level over the whole image.
    const levels = new Set<number>();
    for (let p = 0; p < 70 * 40; p++) levels.add(res.images![0]!.image.data[4 * p]!);
    expect(levels.size).toBe(1);
  });

  it("writes several rasters per tile, each into its own output: graph outputs and values computed from the tile", async () => {
    const run = tiledRestoration({
      operation: "enhance.lowlight",
      ...RESTORE,
      scalars: () => ({ gain: 0.5 }),
      // A grey map from the tile's own input (its red plane) next to the graph's RGB output.
      rasters: () => ({
        image: { channels: 3, from: "restored" },
        red: { channels: 1, from: (r) => r.input.slice(0, r.height * r.width) },
      }),
    });
    const image = greyAlpha(200, 150);
    const res = await run(ctx(restore, [image], []));
    expect(res.images!.map((a) => [a.name, a.format])).toEqual([
      ["image", "webp"],
      ["red", "webp"],
    ]);
    expect(res.result.tiles).toBe(12);
    const red = res.images![1]!.image;
    expect(red).toMatchObject({ width: 200, height: 150, channels: 1, bitDepth: 8, hasAlpha: false });
    // Blended from up to four tiles with weights summing to 1, the map is the input's grey exactly.
    for (let p = 0; p < 200 * 150; p++) if (red.data[p] !== image.data[2 * p]) throw new Error(`map differs at ${p}`);
    expect(res.images![0]!.image).toMatchObject({ channels: 4, hasAlpha: true });
  });

  it("fails a job whose per-image output differs between tiles (a global estimate that saw tile content)", async () => {
    const leaky = tiledRestoration({
      operation: "enhance.lowlight",
      ...RESTORE,
      perImage: ["restored"],
      scalars: () => ({ gain: 1 }),
    });
    await expect(leaky(ctx(restore, [greyAlpha(200, 150)], []))).rejects.toMatchObject({ code: "model_output_invalid" });
    // One tile: nothing to disagree with, and the value comes back in the result.
    const one = await leaky(ctx(restore, [greyAlpha(4, 3)], []));
    expect(one.result.restored).toHaveLength(3 * 4 * 3);
  });

  it("fails a job whose model lacks the output, and stops on abort", async () => {
    const wrong = tiledRestoration({ operation: "enhance.lowlight", ...INVERT, output: "enhanced" });
    await expect(wrong(ctx(invert, [greyAlpha(20, 20)], []))).rejects.toMatchObject({ code: "model_output_missing" });
    const aborted = new AbortController();
    aborted.abort();
    const run = tiledRestoration({ operation: "enhance.lowlight", ...INVERT });
    await expect(run(ctx(invert, [greyAlpha(20, 20)], [], aborted.signal))).rejects.toMatchObject({ code: "aborted" });
    // Params are parsed once, by the pipeline definePipeline makes of the run function.
    const pipeline = definePipeline("enhance.lowlight", run);
    await expect(pipeline.run({ ...ctx(invert, [], []), params: { format: "gif" } })).rejects.toThrow(RunnerError);
  });

  it("aligns tile starts to a graph's stride: the last tile reaches past the border, which is cut off", async () => {
    for (const length of [1030, 2021, 3000, 4001]) {
      const starts = tileStarts(length, 1024, 160, 8);
      expect(starts.every((s) => s % 8 === 0)).toBe(true);
      expect(starts[0]).toBe(0);
      const end = starts.at(-1)! + 1024;
      expect(end).toBeGreaterThanOrEqual(length);
      expect(end - length).toBeLessThan(8);
      for (let i = 1; i < starts.length; i++) expect(starts[i - 1]! + 1024 - starts[i]!).toBeGreaterThanOrEqual(160);
    }
    expect(tileStarts(1000, 1024, 160, 8)).toEqual([0]);
    expect(() => tileStarts(3000, 1000, 160, 16)).toThrow(RangeError);
    // 203 x 149 is no multiple of 8 on either axis: the last tiles reach past both borders, and every pixel is still
    // 1 - x, with alpha kept.
    const run = tiledRestoration({ operation: "enhance.lowlight", ...INVERT, align: 8 });
    const image = greyAlpha(203, 149);
    const res = await run(ctx(invert, [image], []));
    const out = res.images![0]!.image;
    for (let p = 0; p < 203 * 149; p++) {
      for (let c = 0; c < 3; c++) expect(out.data[4 * p + c]).toBe(255 - image.data[2 * p]!);
      expect(out.data[4 * p + 3]).toBe(image.data[2 * p + 1]);
    }
    // The overhang is read as repeated edge pixels, the same in the raster and planar crops.
    const rgb = Float32Array.from({ length: 3 * 10 * 13 }, (_, i) => i / 390);
    const tile = { top: 8, left: 8, height: 8, width: 8 };
    const planar = cropPlanar(rgb, 10, 13, tile);
    expect(planar[7 * 8 + 7]).toBe(rgb[9 * 13 + 12]); // row 15 -> 9, column 15 -> 12
    expect(planar[2 * 64 + 3 * 8 + 6]).toBe(rgb[2 * 130 + 9 * 13 + 12]);
  });

  it("refuses an overlap the edge margin would use up", async () => {
    const run = tiledRestoration({ operation: "enhance.lowlight", ...INVERT, overlap: 4 });
    await expect(run(ctx(invert, [greyAlpha(200, 20)], []))).rejects.toThrow(RangeError);
  });
});
