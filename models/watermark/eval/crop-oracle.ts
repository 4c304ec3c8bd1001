/**
 * Feasibility probe for a reframing-robust watermark (issue 13): can the v1 decoder read a crop when the crop is
 * put back where it came from? If an oracle placement recovers the payload, a decoder that *finds* the placement
 * (a synchronisation template or a search, paid for in the p-value) needs no retrained networks; if not, the
 * networks must change. It also measures how exact the placement must be, which sets the size of any search.
 *
 *   npx tsx models/watermark/eval/crop-oracle.ts [--photos a.jpg,b.jpg] [--out models/watermark/eval/crop-oracle.json]
 *
 * Default photos: the six face-api demo photos and test/fixtures/photo.jpg (none of them is a training photo; they
 * are few, so this is a direction, not a held-out measurement). Each is embedded with the runner's own embed(),
 * cropped with sharp, and decoded with the runner's readWatermark() in three ways: the crop as it is (what v1 does
 * today), the crop placed back on a canvas of the original size at its true place, and placed with an error.
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";
import { embed, readWatermark } from "../../../gpu-runner/src/operations/watermark.ts";
import { openEncoder } from "../../../gpu-runner/src/operations/watermark-encoder.ts";
import { hexToBits } from "../../../gpu-runner/src/operations/watermark-code.ts";
import { sh, toRaster } from "./raster.ts";

const root = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const { values: args } = parseArgs({
  options: {
    photos: { type: "string" },
    out: { type: "string", default: root("models/watermark/eval/crop-oracle.json") },
  },
});

const DEFAULT_PHOTOS = [
  ...[1, 2, 3, 4, 5, 6].map((i) => root(`node_modules/@vladmandic/face-api/demo/sample${i}.jpg`)),
  root("test/fixtures/photo.jpg"),
];

/** A crop as fractions of the original: left, top, width, height. */
type Rect = { x: number; y: number; w: number; h: number };

function centred(aspect: number, W: number, H: number): Rect {
  // The largest centred crop of this aspect (width / height).
  const w = Math.min(W, H * aspect);
  const h = w / aspect;
  return { x: (W - w) / 2 / W, y: (H - h) / 2 / H, w: w / W, h: h / H };
}

const CROPS: [string, (W: number, H: number) => Rect][] = [
  ["centre 80 %", () => ({ x: 0.1, y: 0.1, w: 0.8, h: 0.8 })],
  ["corner 90 %", () => ({ x: 0, y: 0, w: 0.9, h: 0.9 })],
  ["off-centre 70 x 85 %", () => ({ x: 0.2, y: 0.05, w: 0.7, h: 0.85 })],
  ["largest 1:1", (W, H) => centred(1, W, H)],
  ["largest 4:5", (W, H) => centred(4 / 5, W, H)],
  ["largest 16:9", (W, H) => centred(16 / 9, W, H)],
  ["50 % of the area", () => ({ x: 0.146, y: 0.146, w: 0.707, h: 0.707 })],
];

function px(r: Rect, W: number, H: number) {
  const left = Math.round(r.x * W);
  const top = Math.round(r.y * H);
  return {
    left,
    top,
    width: Math.min(W - left, Math.round(r.w * W)),
    height: Math.min(H - top, Math.round(r.h * H)),
  };
}

/**
 * The crop placed on a W x H canvas at `at` (pixels), the rest filled: "mean" = the crop's mean colour, "edge" =
 * the crop's border pixels extended outwards (sharp's extend with "copy").
 */
async function placed(
  crop: RasterImage,
  W: number,
  H: number,
  at: { left: number; top: number; width: number; height: number },
  fill: "mean" | "edge",
): Promise<RasterImage> {
  const fitted = await toRaster(sh(crop).resize(at.width, at.height, { fit: "fill" }));
  const left = Math.max(0, at.left);
  const top = Math.max(0, at.top);
  const right = Math.max(0, W - left - at.width);
  const bottom = Math.max(0, H - top - at.height);
  let s = sh(fitted);
  if (fill === "edge") s = s.extend({ left, top, right, bottom, extendWith: "copy" });
  else {
    const stats = await sh(fitted).stats();
    const [r, g, b] = stats.channels.map((c) => Math.round(c.mean));
    s = s.extend({ left, top, right, bottom, background: { r: r!, g: g!, b: b! } });
  }
  const out = await toRaster(sharp(await s.png({ compressionLevel: 0 }).toBuffer()));
  return out.width === W && out.height === H ? out : toRaster(sh(out).resize(W, H, { fit: "fill" }));
}

interface Tally {
  exact: number;
  bits: number;
  n: number;
}
const tally = (): Tally => ({ exact: 0, bits: 0, n: 0 });

async function main() {
  const files = args.photos ? args.photos.split(",") : DEFAULT_PHOTOS;
  const opts = { intraOpNumThreads: 1 };
  const enc = await openEncoder(root("models/watermark/weights"), opts);
  const dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), opts);
  // ways of reading each crop: as received, oracle placement (two fills), and placement errors in working pixels
  // (1 working px = 1/128 of the side) or in scale.
  const ways = [
    "as received",
    "placed, mean fill",
    "placed, edge fill",
    "shift 1/128",
    "shift 2/128",
    "shift 4/128",
    "scale +2 %",
    "scale +5 %",
  ];
  const rows = new Map<string, Map<string, Tally>>(CROPS.map(([n]) => [n, new Map(ways.map((w) => [w, tally()]))]));
  let seed = 7;
  for (const file of files) {
    const img = await toRaster(sharp(await readFile(file)).rotate());
    const { width: W, height: H } = img;
    const hex =
      ((seed++ * 0x9e3779b1) >>> 0).toString(16).padStart(8, "0") + ((seed * 0x85ebca6b) >>> 0).toString(16).padStart(8, "0");
    const sent = hexToBits(hex);
    const { image: marked } = await embed(enc, img, hex, 1, dec);
    for (const [name, rectOf] of CROPS) {
      const at = px(rectOf(W, H), W, H);
      const crop = await toRaster(sh(marked).extract(at));
      const dx = (k: number) => Math.round((k / 128) * W);
      const candidates: [string, () => Promise<RasterImage>][] = [
        ["as received", async () => crop],
        ["placed, mean fill", () => placed(crop, W, H, at, "mean")],
        ["placed, edge fill", () => placed(crop, W, H, at, "edge")],
        ["shift 1/128", () => placed(crop, W, H, { ...at, left: at.left + dx(1) }, "edge")],
        ["shift 2/128", () => placed(crop, W, H, { ...at, left: at.left + dx(2) }, "edge")],
        ["shift 4/128", () => placed(crop, W, H, { ...at, left: at.left + dx(4) }, "edge")],
        ["scale +2 %", () => placed(crop, W, H, { ...at, width: Math.round(at.width * 1.02) }, "edge")],
        ["scale +5 %", () => placed(crop, W, H, { ...at, width: Math.round(at.width * 1.05) }, "edge")],
      ];
      for (const [way, make] of candidates) {
        const { reading } = await readWatermark(dec, await make());
        const got = hexToBits(reading.bits);
        let ok = 0;
        for (let i = 0; i < sent.length; i++) ok += got[i] === sent[i] ? 1 : 0;
        const t = rows.get(name)!.get(way)!;
        t.n++;
        t.bits += ok / sent.length;
        t.exact += reading.detected && ok === sent.length ? 1 : 0;
      }
    }
    console.error(`${file}: ${W}x${H} done`);
  }
  const table = [...rows].map(([crop, m]) => ({
    crop,
    ...Object.fromEntries(
      [...m].map(([way, t]) => [way, { exact: `${t.exact}/${t.n}`, data_bit_accuracy: Number((t.bits / t.n).toFixed(3)) }]),
    ),
  }));
  const result = { measured_at: new Date().toISOString(), photos: files.map((f) => f.split("/").pop()), table };
  await writeFile(args.out!, JSON.stringify(result, null, 2) + "\n");
  console.log("| crop | " + ways.join(" | ") + " |");
  console.log("|---|" + ways.map(() => "---").join("|") + "|");
  for (const [crop, m] of rows)
    console.log(
      `| ${crop} | ${[...m].map(([, t]) => `${t.exact}/${t.n} (${((100 * t.bits) / t.n).toFixed(0)} %)`).join(" | ")} |`,
    );
}

await main();
