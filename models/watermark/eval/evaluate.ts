/**
 * Real-codec evaluation of the watermark codec through the runner's own pipeline functions.
 *
 *   npx tsx models/watermark/eval/evaluate.ts [--limit N] [--fp-crops 20] [--strength 1] [--embedding informed|open] [--card]
 *   (or: /usr/bin/python3 models/common/evaluate.py --model watermark -- [same flags])
 *
 * Test images: every held-out photo of models/data/splits.json at full resolution, then (only with a --limit
 * above their count) the four disjoint quadrants of the large held-out photos (long side >= 2000 px) until
 * --limit images; different photos from training, never crops of training photos. Attacks use libvips (sharp) codecs and operations at full resolution.
 * False positives: every photo of the corpus (train and held-out) unmarked, plus --fp-crops random crops of each.
 * Writes models/watermark/eval/results.json and, with --card, the tables into models/watermark/CARD.md; --progress FILE
 * also appends one JSON line per finished image (name, PSNR, per-attack detections) as the run goes.
 */
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import sharp, { type Region, type Sharp } from "sharp";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";
import { sh, toRaster } from "./raster.ts";
import { decode, embed, readWatermark } from "../../../gpu-runner/src/operations/watermark.ts";
import { openEncoder } from "../../../gpu-runner/src/operations/watermark-encoder.ts";
import { CODE_BITS, channelBits, hexToBits } from "../../../gpu-runner/src/operations/watermark-code.ts";
import { uniform as rng } from "../../../contract/random.ts";

const root = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const { values: args } = parseArgs({
  options: {
    // Default: every held-out photo once; a larger limit adds full-resolution quadrants of the large ones.
    limit: { type: "string" },
    "fp-crops": { type: "string", default: "20" },
    strength: { type: "string", default: "1" },
    // "open" embeds with the encoder alone (the v1.0.0 runner), for the ablation in the card.
    embedding: { type: "string", default: "informed" },
    card: { type: "boolean", default: false },
    out: { type: "string", default: root("models/watermark/eval/results.json") },
    // Sharding lets the full-resolution run use several processes: "--shard 0/2 --only attacks", then --merge.
    shard: { type: "string", default: "0/1" },
    only: { type: "string", default: "all" },
    merge: { type: "string", multiple: true },
    // One JSON line per finished image (its per-attack detections), so that a run cut short still counts.
    progress: { type: "string" },
  },
});
const [SHARD, SHARDS] = args.shard!.split("/").map(Number) as [number, number];
const LIMIT = args.limit === undefined ? null : Number(args.limit);
const FP_CROPS = Number(args["fp-crops"]);
const STRENGTH = Number(args.strength);

const rand = rng(1234);

const codec = async (img: RasterImage, f: (s: Sharp) => Sharp) => toRaster(sharp(await f(sh(img)).toBuffer()));
const jpeg = (q: number) => (img: RasterImage) => codec(img, (s) => s.jpeg({ quality: q, chromaSubsampling: "4:2:0" }));
const webp = (q: number) => (img: RasterImage) => codec(img, (s) => s.webp({ quality: q }));
const scale = (k: number) => (img: RasterImage) =>
  toRaster(sh(img).resize(Math.max(1, Math.round(img.width * k)), Math.max(1, Math.round(img.height * k)), { fit: "fill" }));

function crop(img: RasterImage, keep: number): Promise<RasterImage> {
  const w = Math.round(img.width * Math.sqrt(keep));
  const h = Math.round(img.height * Math.sqrt(keep));
  const left = Math.floor(rand() * (img.width - w + 1));
  const top = Math.floor(rand() * (img.height - h + 1));
  return toRaster(sh(img).extract({ left, top, width: w, height: h }));
}

async function rotate(img: RasterImage, deg: number): Promise<RasterImage> {
  const r = await toRaster(sh(img).rotate(deg, { background: { r: 0, g: 0, b: 0 } }));
  const left = Math.floor((r.width - img.width) / 2);
  const top = Math.floor((r.height - img.height) / 2);
  return toRaster(sh(r).extract({ left, top, width: img.width, height: img.height }));
}

function noise(img: RasterImage, sigma: number): RasterImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const m = Math.sqrt(-2 * Math.log(u)) * sigma;
    out[i] = Math.min(255, Math.max(0, Math.round(img.data[i]! + m * Math.cos(2 * Math.PI * v))));
    if (i + 1 < out.length) out[i + 1] = Math.min(255, Math.max(0, Math.round(img.data[i + 1]! + m * Math.sin(2 * Math.PI * v))));
  }
  return { ...img, data: out };
}

/** Screenshot-like: shown on a 1440 px display (linear resample) and captured, then scaled back up. */
async function screenshot(img: RasterImage): Promise<RasterImage> {
  const k = Math.min(0.75, 1440 / Math.max(img.width, img.height));
  const small = await toRaster(
    sh(img).resize(Math.round(img.width * k), Math.round(img.height * k), { fit: "fill", kernel: "linear" }),
  );
  return toRaster(sh(small).resize(img.width, img.height, { fit: "fill", kernel: "cubic" }));
}

/**
 * Face-region replacement: a face-sized ellipse (semi-axes 0.18 and 0.225 of the short side; 7-13 % of the image)
 * from another photo, colour-matched (per-channel mean/std inside the ellipse) and feathered over 15 % of its radius.
 */
async function faceSwap(img: RasterImage, donorSrc: RasterImage): Promise<RasterImage> {
  const donor = await toRaster(sh(donorSrc).resize(img.width, img.height, { fit: "cover" }));
  const m = Math.min(img.width, img.height);
  const a = 0.18 * m;
  const b = 0.225 * m;
  const cx = a + rand() * (img.width - 2 * a);
  const cy = b + rand() * (img.height - 2 * b);
  const x0 = Math.max(0, Math.floor(cx - a)),
    x1 = Math.min(img.width, Math.ceil(cx + a));
  const y0 = Math.max(0, Math.floor(cy - b)),
    y1 = Math.min(img.height, Math.ceil(cy + b));
  const weight = (x: number, y: number) => {
    const d = Math.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2);
    const t = Math.min(1, Math.max(0, (1 - d) / 0.15));
    return t * t * (3 - 2 * t);
  };
  const stats = (src: Uint8Array | Uint16Array) => {
    const s = [0, 0, 0],
      s2 = [0, 0, 0];
    let n = 0;
    for (let y = y0; y < y1; y++)
      for (let x = x0; x < x1; x++) {
        if (weight(x, y) <= 0) continue;
        n++;
        for (let c = 0; c < 3; c++) {
          const v = src[(y * img.width + x) * 3 + c]!;
          s[c]! += v;
          s2[c]! += v * v;
        }
      }
    return s.map((v, c) => ({ mean: v / n, std: Math.sqrt(Math.max(1e-6, s2[c]! / n - (v / n) ** 2)) }));
  };
  const hs = stats(img.data);
  const ds = stats(donor.data);
  const out = Uint8Array.from(img.data);
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const w = weight(x, y);
      if (w <= 0) continue;
      for (let c = 0; c < 3; c++) {
        const i = (y * img.width + x) * 3 + c;
        const matched = ((donor.data[i]! - ds[c]!.mean) / ds[c]!.std) * hs[c]!.std + hs[c]!.mean;
        out[i] = Math.min(255, Math.max(0, Math.round(img.data[i]! * (1 - w) + matched * w)));
      }
    }
  return { ...img, data: out };
}

type Attack = (img: RasterImage, donor: RasterImage) => Promise<RasterImage> | RasterImage;

/** A crop of w x h at a position given as fractions of the free room (0 = left/top, 1 = right/bottom). */
function cropAt(img: RasterImage, w: number, h: number, fx: number, fy: number): Promise<RasterImage> {
  w = Math.min(img.width, Math.round(w));
  h = Math.min(img.height, Math.round(h));
  const left = Math.round((img.width - w) * fx);
  const top = Math.round((img.height - h) * fy);
  return toRaster(sh(img).extract({ left, top, width: w, height: h }));
}
const centreCrop = (keep: number) => (i: RasterImage) => cropAt(i, i.width * keep, i.height * keep, 0.5, 0.5);
/** The largest centred crop of aspect ratio a = width / height. */
const aspectCrop = (a: number) => (i: RasterImage) =>
  i.width / i.height > a ? cropAt(i, i.height * a, i.height, 0.5, 0.5) : cropAt(i, i.width, i.width / a, 0.5, 0.5);
const mirror = (i: RasterImage) => toRaster(sh(i).flop());

/** A caption band: the bottom 15 % of the frame replaced by a flat bar with dark text-like strokes. */
function captionBand(img: RasterImage): RasterImage {
  const out = Uint8Array.from(img.data);
  const top = Math.round(img.height * 0.85);
  const c = img.channels;
  for (let y = top; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      const stroke = ((x >> 3) + (y >> 4)) % 5 === 0 && y > top + 4 && y < img.height - 4;
      for (let k = 0; k < Math.min(3, c); k++) out[(y * img.width + x) * c + k] = stroke ? 30 : 235;
    }
  return { ...img, data: out };
}

const ATTACKS: [string, Attack][] = [
  ["none", (i) => i],
  ["jpeg q90", jpeg(90)],
  ["jpeg q75", jpeg(75)],
  ["jpeg q50", jpeg(50)],
  ["jpeg q30", jpeg(30)],
  ["webp q75", webp(75)],
  ["webp q50", webp(50)],
  ["resize 0.5", scale(0.5)],
  ["resize 0.25", scale(0.25)],
  ["crop 60 %", (i) => crop(i, 0.6)],
  ["blur sigma 1", (i) => toRaster(sh(i).blur(1))],
  ["blur sigma 1.5", (i) => toRaster(sh(i).blur(1.5))],
  ["noise sigma 5/255", (i) => noise(i, 5)],
  ["brightness x1.2", (i) => toRaster(sh(i).linear(1.2, 0))],
  ["brightness +30 %", (i) => toRaster(sh(i).linear(1.3, 0))],
  ["brightness -30 %", (i) => toRaster(sh(i).linear(0.7, 0))],
  ["rotate +2 deg", (i) => rotate(i, 2)],
  ["rotate -2 deg", (i) => rotate(i, -2)],
  ["rotate +5 deg", (i) => rotate(i, 5)],
  ["rotate -3 deg, enlarged canvas", async (i) => toRaster(sh(i).rotate(-3, { background: "#808080" }))],
  ["screenshot rescale", screenshot],
  [
    "screenshot-like 0.6x",
    async (i) => toRaster(sh(await scale(0.6)(i)).resize(i.width, i.height, { fit: "fill", kernel: "cubic" })),
  ],
  ["caption band 15 %", captionBand],
  ["face-region replacement", faceSwap],
  ["resize 0.5 + jpeg q75", async (i) => jpeg(75)(await scale(0.5)(i))],
  // Reframing (issue 13): what platforms' upload pipelines and users' own re-shares do.
  ["centre crop 80 %", centreCrop(0.8)],
  ["corner crop 90 %", (i) => cropAt(i, i.width * 0.9, i.height * 0.9, rand() < 0.5 ? 0 : 1, rand() < 0.5 ? 0 : 1)],
  ["off-centre crop 70 % x 85 %", (i) => cropAt(i, i.width * 0.7, i.height * 0.85, rand(), rand())],
  ["largest centred 1:1", aspectCrop(1)],
  ["largest centred 4:5", aspectCrop(4 / 5)],
  ["largest centred 16:9", aspectCrop(16 / 9)],
  [
    "crop 85 % + 720 px + jpeg q80",
    async (i) => {
      const c = await centreCrop(0.85)(i);
      return jpeg(80)(await toRaster(sh(c).resize(720, 720, { fit: "inside" })));
    },
  ],
  ["mirror", mirror],
  ["mirror + centre crop 80 %", async (i) => mirror(await centreCrop(0.8)(i))],
  ["crop 50 % area", (i) => cropAt(i, i.width * Math.SQRT1_2, i.height * Math.SQRT1_2, rand(), rand())],
  ["centre crop 80 % + rotate 2 deg", async (i) => rotate(await centreCrop(0.8)(i), 2)],
  ["centre crop 80 % + jpeg q60", async (i) => jpeg(60)(await centreCrop(0.8)(i))],
  ["avatar: 400 px centred square", async (i) => toRaster(sh(await aspectCrop(1)(i)).resize(400, 400, { fit: "fill" }))],
];

/** PSNR over RGB and SSIM on luma (mean over non-overlapping 8x8 windows; C1, C2 of Wang et al. 2004). */
function quality(a: RasterImage, b: RasterImage): { psnr: number; ssim: number } {
  let sq = 0;
  for (let i = 0; i < a.data.length; i++) sq += (a.data[i]! - b.data[i]!) ** 2;
  const psnr = 10 * Math.log10((255 * 255) / Math.max(1e-12, sq / a.data.length));
  const C1 = (0.01 * 255) ** 2,
    C2 = (0.03 * 255) ** 2;
  const luma = (d: Uint8Array | Uint16Array, p: number) => 0.299 * d[p * 3]! + 0.587 * d[p * 3 + 1]! + 0.114 * d[p * 3 + 2]!;
  let total = 0,
    windows = 0;
  for (let y = 0; y + 8 <= a.height; y += 8)
    for (let x = 0; x + 8 <= a.width; x += 8) {
      let sa = 0,
        sb = 0,
        saa = 0,
        sbb = 0,
        sab = 0;
      for (let dy = 0; dy < 8; dy++)
        for (let dx = 0; dx < 8; dx++) {
          const p = (y + dy) * a.width + x + dx;
          const u = luma(a.data, p),
            v = luma(b.data, p);
          sa += u;
          sb += v;
          saa += u * u;
          sbb += v * v;
          sab += u * v;
        }
      const ma = sa / 64,
        mb = sb / 64;
      const va = saa / 64 - ma * ma,
        vb = sbb / 64 - mb * mb,
        cov = sab / 64 - ma * mb;
      total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
      windows++;
    }
  return { psnr, ssim: total / windows };
}

interface Photo {
  file: string;
  sha256: string;
  split: "train" | "heldout";
}

async function loadPhoto(file: string): Promise<RasterImage> {
  return toRaster(sharp(await readFile(root(`models/data/photos/${file}`))).rotate());
}

async function testImages(photos: Photo[]): Promise<{ name: string; file: string; region: Region | null }[]> {
  const held = photos.filter((p) => p.split === "heldout");
  const jobs: { name: string; file: string; region: Region | null }[] = held.map((p) => ({
    name: p.file,
    file: p.file,
    region: null,
  }));
  for (const p of held) {
    const meta = await sharp(root(`models/data/photos/${p.file}`)).metadata();
    const [w, h] = [meta.width!, meta.height!];
    if (Math.max(w, h) < 2000) continue;
    const hw = Math.floor(w / 2),
      hh = Math.floor(h / 2);
    for (const [left, top] of [
      [0, 0],
      [hw, 0],
      [0, hh],
      [hw, hh],
    ] as const)
      jobs.push({ name: `${p.file}#${left},${top}`, file: p.file, region: { left, top, width: hw, height: hh } });
  }
  return jobs.slice(0, LIMIT ?? held.length);
}

function randomHex(): string {
  return Array.from({ length: 16 }, () => Math.floor(rand() * 16).toString(16)).join("");
}

async function main(): Promise<void> {
  const photos = (JSON.parse(await readFile(root("models/data/splits.json"), "utf8")) as { photos: Photo[] }).photos;
  const opts = { intraOpNumThreads: 1 };
  const enc = await openEncoder(root("models/watermark/weights"), opts);
  const dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), opts);
  const jobs = args.only === "fp" ? [] : (await testImages(photos)).filter((_, i) => i % SHARDS === SHARD);
  const rows = new Map(ATTACKS.map(([n]) => [n, { raw: 0, payload: 0, detected: 0, n: 0 }]));
  const quality_: { psnr: number; ssim: number; mp: number }[] = [];
  const started = Date.now();
  // Per image and attack: detected (1) or not (0), so any subset of the photos can be re-scored later.
  const perImage: { name: string; psnr: number; detected: Record<string, number> }[] = [];
  let donor: RasterImage | null = null;
  for (const [k, job] of jobs.entries()) {
    let img = await loadPhoto(job.file);
    if (job.region) img = await toRaster(sh(img).extract(job.region));
    const hex = randomHex();
    const sent = channelBits(hex);
    const dataBits = hexToBits(hex);
    const { image: marked } = await embed(enc, img, hex, STRENGTH, args.embedding === "open" ? null : dec);
    const q = quality(img, marked);
    quality_.push({ ...q, mp: (img.width * img.height) / 1e6 });
    const record = { name: job.name, psnr: Number(q.psnr.toFixed(3)), detected: {} as Record<string, number> };
    perImage.push(record);
    for (const [name, attack] of ATTACKS) {
      const attacked = await attack(marked, donor ?? img);
      const { r, hard } = await decodeBoth(dec, attacked);
      const row = rows.get(name)!;
      let rawOk = 0;
      for (let i = 0; i < CODE_BITS; i++) rawOk += hard[i] === sent[i] ? 1 : 0;
      const got = hexToBits(r.bits);
      let payOk = 0;
      for (let i = 0; i < 64; i++) payOk += got[i] === dataBits[i] ? 1 : 0;
      row.raw += rawOk / CODE_BITS;
      row.payload += payOk / 64;
      row.detected += r.detected && r.bits === hex ? 1 : 0;
      record.detected[name] = r.detected && r.bits === hex ? 1 : 0;
      row.n++;
    }
    donor = img;
    if (args.progress) await appendFile(args.progress, JSON.stringify(record) + "\n");
    const s = ((Date.now() - started) / 1000).toFixed(0);
    console.error(
      `[${k + 1}/${jobs.length}] ${job.name} ${img.width}x${img.height} psnr ${q.psnr.toFixed(2)} ssim ${q.ssim.toFixed(4)} (${s}s)`,
    );
  }
  // The false-positive pass is sharded by photo too ("--only fp --shard k/n"; the shards' counts add up in --merge).
  const fp =
    args.only === "attacks"
      ? null
      : await falsePositives(
          dec,
          photos.filter((_, i) => i % SHARDS === SHARD),
        );
  const attacks = [...rows].map(([name, r]) => ({
    attack: name,
    raw_bit_acc: r.raw / r.n,
    payload_bit_acc: r.payload / r.n,
    detection_rate: r.detected / r.n,
    images: r.n,
  }));
  const mean = (f: (q: { psnr: number; ssim: number }) => number) => quality_.reduce((s, q) => s + f(q), 0) / quality_.length;
  const results = {
    measured_at: new Date().toISOString(),
    strength: STRENGTH,
    embedding: args.embedding,
    images: jobs.length,
    distinct_photos: new Set(jobs.map((j) => j.file)).size,
    files: [...new Set(jobs.map((j) => j.file))],
    megapixels: { min: Math.min(...quality_.map((q) => q.mp)), max: Math.max(...quality_.map((q) => q.mp)) },
    psnr_db: { mean: mean((q) => q.psnr), min: Math.min(...quality_.map((q) => q.psnr)) },
    ssim: { mean: mean((q) => q.ssim), min: Math.min(...quality_.map((q) => q.ssim)) },
    attacks,
    false_positives: fp,
    per_image: perImage,
  };
  await writeFile(args.out!, JSON.stringify(results, null, 1) + "\n");
  console.log(JSON.stringify({ psnr: results.psnr_db, ssim: results.ssim, fp }));
  if (args.card) await writeCard(results);
}

/**
 * The runner's own decoding (with its derotation search and the p-value that accounts for it), plus the raw hard
 * channel bits (before error correction) of the reading it kept.
 */
async function decodeBoth(dec: ort.InferenceSession, img: RasterImage) {
  const { reading: r, probs } = await readWatermark(dec, img);
  return { r, hard: Uint8Array.from(probs, (p) => (p > 0.5 ? 1 : 0)) };
}

/** Unmarked photos and random crops (128 px up to the whole photo, aspect 1:3 to 3:1) of every corpus photo. */
async function falsePositives(dec: ort.InferenceSession, photos: Photo[]) {
  let tested = 0,
    detected = 0,
    corrected = 0,
    minErrors = Infinity;
  for (const p of photos) {
    const img = await loadPhoto(p.file);
    const views: RasterImage[] = [img];
    for (let k = 0; k < FP_CROPS; k++) {
      const side = 128 + rand() * (Math.min(img.width, img.height) - 128);
      const aspect = Math.exp((rand() * 2 - 1) * Math.log(3));
      const w = Math.max(128, Math.min(img.width, Math.round(side * Math.sqrt(aspect))));
      const h = Math.max(128, Math.min(img.height, Math.round(side / Math.sqrt(aspect))));
      const left = Math.floor(rand() * (img.width - w + 1)),
        top = Math.floor(rand() * (img.height - h + 1));
      views.push(await toRaster(sh(img).extract({ left, top, width: w, height: h })));
    }
    for (const v of views) {
      const r = await decode(dec, v);
      tested++;
      if (r.detected) detected++;
      if (r.corrected) {
        corrected++;
        minErrors = Math.min(minErrors, r.errors!);
      }
    }
  }
  return {
    tested,
    detected,
    decodable_within_t: corrected,
    min_errors_when_decodable: Number.isFinite(minErrors) ? minErrors : null,
    threshold_p: 1e-6,
  };
}

async function writeCard(r: Awaited<ReturnType<typeof JSON.parse>>): Promise<void> {
  const path = root("models/watermark/CARD.md");
  const card = await readFile(path, "utf8");
  const pct = (v: number) => (100 * v).toFixed(2);
  const lines = [
    `Measured ${r.measured_at} at strength ${r.strength}: ${r.images} test images (${r.distinct_photos} distinct held-out photos, ${r.megapixels.min.toFixed(2)}-${r.megapixels.max.toFixed(1)} MP).`,
    "",
    `- PSNR: mean ${r.psnr_db.mean.toFixed(2)} dB, min ${r.psnr_db.min.toFixed(2)} dB. SSIM (luma, 8x8 windows): mean ${r.ssim.mean.toFixed(4)}, min ${r.ssim.min.toFixed(4)}.`,
    `- False positives: ${r.false_positives.detected} of ${r.false_positives.tested} unmarked photos and crops detected at p <= 1e-6 (${r.false_positives.decodable_within_t} decoded within t = 10 at all).`,
    "",
    "| attack | raw bit acc (128 coded bits) | payload bit acc after BCH (64 bits) | detection rate (p <= 1e-6, payload exact) |",
    "|---|---|---|---|",
    ...r.attacks.map(
      (a: { attack: string; raw_bit_acc: number; payload_bit_acc: number; detection_rate: number }) =>
        `| ${a.attack} | ${pct(a.raw_bit_acc)} % | ${pct(a.payload_bit_acc)} % | ${pct(a.detection_rate)} % |`,
    ),
  ];
  const start = "<!-- eval:start -->",
    end = "<!-- eval:end -->";
  const i = card.indexOf(start),
    j = card.indexOf(end);
  if (i < 0 || j < 0) throw new Error("CARD.md lacks the eval markers");
  await writeFile(path, card.slice(0, i + start.length) + "\n" + lines.join("\n") + "\n" + card.slice(j));
}

async function mergeShards(files: string[]): Promise<void> {
  const parts = await Promise.all(files.map(async (f) => JSON.parse(await readFile(f, "utf8"))));
  const withAttacks = parts.filter((p) => p.images > 0);
  const images = withAttacks.reduce((s, p) => s + p.images, 0);
  const wavg = (f: (p: any) => number) => withAttacks.reduce((s, p) => s + f(p) * p.images, 0) / images;
  const attacks = withAttacks[0].attacks.map((a: any, i: number) => ({
    attack: a.attack,
    raw_bit_acc: wavg((p) => p.attacks[i].raw_bit_acc),
    payload_bit_acc: wavg((p) => p.attacks[i].payload_bit_acc),
    detection_rate: wavg((p) => p.attacks[i].detection_rate),
    images,
  }));
  const fps = parts.map((p) => p.false_positives).filter(Boolean);
  const minErrors = fps.map((f) => f.min_errors_when_decodable).filter((e) => e !== null);
  const fp = fps.length
    ? {
        tested: fps.reduce((s, f) => s + f.tested, 0),
        detected: fps.reduce((s, f) => s + f.detected, 0),
        decodable_within_t: fps.reduce((s, f) => s + f.decodable_within_t, 0),
        min_errors_when_decodable: minErrors.length ? Math.min(...minErrors) : null,
        threshold_p: fps[0].threshold_p,
      }
    : undefined;
  const results = {
    measured_at: new Date().toISOString(),
    strength: withAttacks[0].strength,
    images,
    distinct_photos: new Set(withAttacks.flatMap((p) => p.files)).size,
    files: [...new Set(withAttacks.flatMap((p) => p.files))],
    megapixels: {
      min: Math.min(...withAttacks.map((p) => p.megapixels.min)),
      max: Math.max(...withAttacks.map((p) => p.megapixels.max)),
    },
    psnr_db: { mean: wavg((p) => p.psnr_db.mean), min: Math.min(...withAttacks.map((p) => p.psnr_db.min)) },
    ssim: { mean: wavg((p) => p.ssim.mean), min: Math.min(...withAttacks.map((p) => p.ssim.min)) },
    attacks,
    false_positives: fp,
    per_image: withAttacks.flatMap((p) => p.per_image ?? []),
  };
  await writeFile(args.out!, JSON.stringify(results, null, 1) + "\n");
  console.log(JSON.stringify({ images, psnr: results.psnr_db, fp }));
  if (args.card) await writeCard(results);
}

if (args.merge?.length) await mergeShards(args.merge);
else await main();
