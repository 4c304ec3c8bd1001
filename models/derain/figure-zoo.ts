/**
 * The zoo's side-by-side picture (models/derain/RESULTS.md): for one held-out photo per evaluation set, the rainy
 * input, every enhance.derain method's output, and the ground truth; under each method its estimated maps
 * (transmission, rain). Every method runs through the runner's own pipeline (gpu-runner/src/operations/derain.ts:
 * the shipped ONNX files, tiled, maps=true), so the picture shows what the API returns. New methods appear as they
 * are added to DERAIN.
 *
 *   /usr/bin/python3 -m models.derain.prepare_data --skip-train     (the evaluation pairs, once)
 *   npx tsx models/derain/figure-zoo.ts [--photo NAME] [--out models/derain/zoo.jpg]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { DERAIN_METHODS, OPERATIONS, type DerainMethod } from "../../contract/operations.ts";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { derainPipeline } from "../../gpu-runner/src/operations/derain.ts";
import type { RasterImage } from "../../gpu-runner/src/operations/types.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const { values: args } = parseArgs({
  options: {
    // A held-out photo whose renderings show streaks and a veil clearly (models/derain/families.jpg uses it too).
    photo: { type: "string", default: "palapeli_castle-maintenon" },
    sets: { type: "string", default: "light,heavy,heldout" },
    width: { type: "string", default: "320" },
    out: { type: "string", default: root("models/derain/zoo.jpg") },
  },
});
const W = Number(args.width);
const SET_TITLES: Record<string, string> = { light: "light rain", heavy: "heavy rain + veil", heldout: "held-out family" };

/** A PNG of the evaluation set, decoded as the runner decodes an upload. */
const raster = (path: string): Promise<RasterImage> =>
  decodeImage(new Uint8Array(readFileSync(path)), { maxPixels: OPERATIONS["enhance.derain"].limits.max_pixels });

function psnr(a: RasterImage, b: RasterImage): number {
  let se = 0;
  for (let p = 0; p < a.width * a.height; p++)
    for (let c = 0; c < 3; c++) se += (a.data[p * a.channels + c]! - b.data[p * b.channels + c]!) ** 2;
  return 10 * Math.log10((255 * 255) / (se / (3 * a.width * a.height)));
}

/** A cell of the grid: the raster scaled to the column width, with a caption band above it. */
async function cell(image: RasterImage | null, caption: string, height: number): Promise<Buffer> {
  const band = 22;
  const escaped = caption.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const text = Buffer.from(
    `<svg width="${W}" height="${band}"><rect width="100%" height="100%" fill="#111"/>` +
      `<text x="4" y="15" font-family="sans-serif" font-size="13" fill="#fff">${escaped}</text></svg>`,
  );
  const body = image
    ? await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: image.channels } })
        .resize(W, height, { fit: "fill" })
        .png()
        .toBuffer()
    : await sharp({ create: { width: W, height, channels: 3, background: "#222" } })
        .png()
        .toBuffer();
  return sharp({ create: { width: W, height: height + band, channels: 3, background: "#111" } })
    .composite([
      { input: text, top: 0, left: 0 },
      { input: body, top: band, left: 0 },
    ])
    .png()
    .toBuffer();
}

const manifest = JSON.parse(readFileSync(root("models/manifest.json"), "utf8")) as { models: { id: string; file: string }[] };
const methods = Object.keys(DERAIN_METHODS) as DerainMethod[];
const sessions = new Map<DerainMethod, ort.InferenceSession>();
for (const m of methods) {
  const file = manifest.models.find((e) => e.id === DERAIN_METHODS[m])!.file;
  sessions.set(m, await ort.InferenceSession.create(root(`models/${file}`), { intraOpNumThreads: 1 }));
}

const rows: Buffer[] = [];
let rowWidth = 0;
for (const set of args.sets!.split(",")) {
  const rainy = await raster(root(`models/derain/data/eval/${set}/${args.photo}.png`));
  const clean = await raster(root(`models/derain/data/eval/clean/${args.photo}.png`));
  const H = Math.round((W * rainy.height) / rainy.width);
  const top = [await cell(rainy, `${SET_TITLES[set] ?? set}: input ${psnr(rainy, clean).toFixed(2)} dB`, H)];
  const bottom = [await cell(null, "maps: transmission | rain", H)];
  for (const method of methods) {
    const res = await derainPipeline.run({
      params: OPERATIONS["enhance.derain"].params.parse({ method, maps: true }),
      inputs: [rainy],
      encoded: [],
      session: async () => sessions.get(method)!,
      timeModel: (fn) => fn(),
      signal: new AbortController().signal,
    });
    const art = (name: string) => res.images!.find((a) => a.name === name)?.image ?? null;
    top.push(await cell(art("image"), `${method}: ${psnr(art("image")!, clean).toFixed(2)} dB`, H));
    // The two maps side by side in one cell's space, each at half size (aspect kept).
    const maps = ["transmission", "rain"].map(art);
    const half = await Promise.all(
      maps.map((m) =>
        m
          ? sharp(Buffer.from(m.data), { raw: { width: m.width, height: m.height, channels: m.channels } })
              .resize(W / 2, Math.round(H / 2), { fit: "fill" })
              .removeAlpha()
              .toColourspace("srgb")
              .png()
              .toBuffer()
          : sharp({ create: { width: W / 2, height: Math.round(H / 2), channels: 3, background: "#222" } })
              .png()
              .toBuffer(),
      ),
    );
    const pair = await sharp({ create: { width: W, height: H, channels: 3, background: "#000" } })
      .composite([
        { input: half[0]!, left: 0, top: Math.round(H / 4) },
        { input: half[1]!, left: W / 2, top: Math.round(H / 4) },
      ])
      .removeAlpha()
      .raw()
      .toBuffer();
    bottom.push(
      await cell(
        { ...rainy, width: W, height: H, data: new Uint8Array(pair.buffer, pair.byteOffset, pair.length) },
        `${method}: T | rain`,
        H,
      ),
    );
  }
  top.push(await cell(clean, "ground truth", H));
  bottom.push(await cell(null, "", H));
  for (const line of [top, bottom]) {
    rowWidth = W * line.length;
    rows.push(
      await sharp({ create: { width: rowWidth, height: H + 22, channels: 3, background: "#000" } })
        .composite(line.map((input, i) => ({ input, left: i * W, top: 0 })))
        .png()
        .toBuffer(),
    );
  }
}
const heights = await Promise.all(rows.map(async (r) => (await sharp(r).metadata()).height!));
let y = 0;
await sharp({ create: { width: rowWidth, height: heights.reduce((a, b) => a + b, 0), channels: 3, background: "#000" } })
  .composite(rows.map((input, i) => ({ input, left: 0, top: (y += heights[i - 1] ?? 0) })))
  .jpeg({ quality: 85 })
  .toFile(args.out!);
for (const s of sessions.values()) await s.release();
console.log(`wrote ${args.out} (${methods.length} methods, sets ${args.sets})`);
