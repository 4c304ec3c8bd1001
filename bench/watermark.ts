/**
 * CPU cost of watermarking vs plain JPEG decode + encode of the same image, measured in the same run.
 *
 *   npx tsx bench/watermark.ts        (writes bench/results/watermark.json)
 *
 * Per size (1 MP and 12 MP, from a real photo of the corpus, or the astronaut fixture when the corpus is not
 * built): plain = decode JPEG + encode JPEG q90; embed = decode + watermark.embed + encode JPEG q90;
 * decode = decode JPEG + watermark.decode. Median of 5 runs after one warm-up; onnxruntime on 1 thread.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { decodeImage } from "../gpu-runner/src/image/decode.ts";
import { encodeImage } from "../gpu-runner/src/image/encode.ts";
import { decode, embed } from "../gpu-runner/src/operations/watermark.ts";

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const PHOTO = root("models/data/photos/lomiri_Bridge_by_Sander_Klootwijk.jpg");
const SIZES = { "1MP": [1155, 866], "12MP": [4000, 3000] } as const;
const RUNS = 5;

async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(RUNS / 2)]! * 10) / 10;
}

export async function runWatermarkBench(): Promise<Record<string, unknown>> {
  const source = existsSync(PHOTO) ? PHOTO : root("test/fixtures/photo.jpg");
  const opts = { intraOpNumThreads: 1 };
  const enc = await ort.InferenceSession.create(root("models/watermark/weights/encoder.onnx"), opts);
  const dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), opts);
  const limits = { maxPixels: 50_000_000 };
  const out: Record<string, unknown> = { source: source.replace(root(""), ""), runs: RUNS, jpeg_quality: 90 };
  for (const [label, [w, h]] of Object.entries(SIZES)) {
    const jpeg = await sharp(source).resize(w, h, { fit: "cover" }).jpeg({ quality: 90 }).toBuffer();
    const plain = await median(async () => encodeImage(await decodeImage(jpeg, limits), "jpeg", 90));
    const embedMs = await median(async () => {
      const { image } = await embed(enc, await decodeImage(jpeg, limits), "0123456789abcdef", 1, dec);
      return encodeImage(image, "jpeg", 90);
    });
    const decodeMs = await median(async () => decode(dec, await decodeImage(jpeg, limits)));
    const decodeOnly = await median(async () => decodeImage(jpeg, limits));
    out[label] = {
      width: w,
      height: h,
      plain_decode_encode_ms: plain,
      embed_with_decode_encode_ms: embedMs,
      embed_ratio: Math.round((embedMs / plain) * 100) / 100,
      jpeg_decode_only_ms: decodeOnly,
      watermark_decode_with_jpeg_decode_ms: decodeMs,
    };
    console.error(label, JSON.stringify(out[label]));
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = { bench: "watermark", measured_at: new Date().toISOString(), ...(await runWatermarkBench()) };
  mkdirSync(root("bench/results"), { recursive: true });
  writeFileSync(root("bench/results/watermark.json"), JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
}
