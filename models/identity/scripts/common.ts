import { readFile } from "node:fs/promises";
import sharp, { type Sharp } from "sharp";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";
import type { FaceBox } from "../../../gpu-runner/src/face/analyze.ts";

/** Decodes an encoded image (any sharp format) into the runner's RasterImage, orientation applied. */
export async function decodeRaster(bytes: Buffer, format = "unknown"): Promise<RasterImage> {
  const { data, info } = await sharp(bytes)
    .rotate()
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    channels: 3,
    bitDepth: 8,
    hasAlpha: false,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    source: { format, bytes: bytes.length, orientation: null, space: "srgb", icc: false, pages: 1 },
  };
}

export async function loadRaster(path: string): Promise<RasterImage> {
  return decodeRaster(await readFile(path), path.split(".").pop());
}

export function rasterToSharp(img: RasterImage): Sharp {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: img.channels as 3 },
  });
}

/** A benign edit: what an honest re-share does to a photo. Boxes map original coordinates into the edit's. */
export interface BenignEdit {
  name: string;
  apply(img: RasterImage): Promise<{ bytes: Buffer; mapBox(b: FaceBox): FaceBox }>;
}

const identity = (b: FaceBox): FaceBox => b;

function jpeg(q: number): BenignEdit {
  return {
    name: `jpeg_q${q}`,
    apply: async (img) => ({ bytes: await rasterToSharp(img).jpeg({ quality: q }).toBuffer(), mapBox: identity }),
  };
}

function resize(f: number): BenignEdit {
  return {
    name: `resize_${f}`,
    apply: async (img) => ({
      bytes: await rasterToSharp(img)
        .resize(Math.round(img.width * f), Math.round(img.height * f), { kernel: "lanczos3" })
        .png({ compressionLevel: 1 })
        .toBuffer(),
      mapBox: (b) => ({ x: b.x * f, y: b.y * f, width: b.width * f, height: b.height * f }),
    }),
  };
}

function brightness(f: number): BenignEdit {
  return {
    name: `brightness_${f > 1 ? "+" : "-"}${Math.round(Math.abs(f - 1) * 100)}`,
    apply: async (img) => ({
      bytes: await rasterToSharp(img).linear(f, 0).png({ compressionLevel: 1 }).toBuffer(),
      mapBox: identity,
    }),
  };
}

/** Crops 10 % off each side (the faces in these photos are away from the borders). */
const crop: BenignEdit = {
  name: "crop_10pct",
  apply: async (img) => {
    const left = Math.round(img.width * 0.1);
    const top = Math.round(img.height * 0.1);
    const bytes = await rasterToSharp(img)
      .extract({ left, top, width: img.width - 2 * left, height: img.height - 2 * top })
      .png({ compressionLevel: 1 })
      .toBuffer();
    return { bytes, mapBox: (b) => ({ ...b, x: b.x - left, y: b.y - top }) };
  },
};

/** Rotation by a small angle about the centre; sharp enlarges the canvas, so boxes move by the rotated centre. */
function rotate(deg: number): BenignEdit {
  return {
    name: `rotate_${deg}deg`,
    apply: async (img) => {
      const { data, info } = await rasterToSharp(img)
        .rotate(deg, { background: "#808080" })
        .png({ compressionLevel: 1 })
        .toBuffer({ resolveWithObject: true });
      const a = (deg * Math.PI) / 180;
      const [cx, cy, ncx, ncy] = [img.width / 2, img.height / 2, info.width / 2, info.height / 2];
      const mapBox = (b: FaceBox): FaceBox => {
        const [px, py] = [b.x + b.width / 2 - cx, b.y + b.height / 2 - cy];
        const [qx, qy] = [px * Math.cos(a) - py * Math.sin(a), px * Math.sin(a) + py * Math.cos(a)];
        return { x: ncx + qx - b.width / 2, y: ncy + qy - b.height / 2, width: b.width, height: b.height };
      };
      return { bytes: data, mapBox };
    },
  };
}

/** Resize then JPEG, the usual messaging-app pipeline. */
const resizeJpeg: BenignEdit = {
  name: "resize_0.5+jpeg_q75",
  apply: async (img) => {
    const r = await resize(0.5).apply(img);
    return { bytes: await sharp(r.bytes).jpeg({ quality: 75 }).toBuffer(), mapBox: r.mapBox };
  },
};

export const BENIGN_EDITS: BenignEdit[] = [
  jpeg(90),
  jpeg(75),
  jpeg(50),
  resize(0.5),
  crop,
  brightness(1.3),
  brightness(0.7),
  rotate(5),
  rotate(-5),
  resizeJpeg,
];

export function iou(a: FaceBox, b: FaceBox): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
}

/** The face in `faces` that overlaps `box` most, if it overlaps at least `minIou`. */
export function matchFace<F extends { box: FaceBox }>(faces: F[], box: FaceBox, minIou = 0.3): F | undefined {
  let best: F | undefined;
  let bestIou = minIou;
  for (const f of faces) {
    const v = iou(f.box, box);
    if (v >= bestIou) [best, bestIou] = [f, v];
  }
  return best;
}

/** Reads a little-endian float64 C-order .npy array (what skimage's lfw_subset.npy is). */
export async function readNpyFloat64(path: string): Promise<{ shape: number[]; data: Float64Array }> {
  const buf = await readFile(path);
  if (buf.toString("latin1", 1, 6) !== "NUMPY") throw new Error(`${path} is not a .npy file`);
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString("latin1", major === 1 ? 10 : 12, start);
  if (!header.includes("'<f8'") || header.includes("'fortran_order': True"))
    throw new Error(`${path}: only little-endian C-order float64 is supported`);
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? "")
    .split(",")
    .filter((s) => s.trim())
    .map(Number);
  const copy = buf.subarray(start);
  const data = new Float64Array(copy.buffer.slice(copy.byteOffset, copy.byteOffset + copy.byteLength));
  return { shape, data };
}

export const SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data";
export const FACE_API_SAMPLES = [1, 2, 3, 4, 5, 6].map((k) => `node_modules/@vladmandic/face-api/demo/sample${k}.jpg`);

/** A rate with its 95 % interval and the counts behind it. */
export type Rate = { rate: number; low: number; high: number; k: number; n: number };

/** Wilson score interval (Wilson 1927) for k successes in n trials, 95 %. */
export function wilson(k: number, n: number, z = 1.959964): Rate {
  if (n === 0) return { rate: NaN, low: 0, high: 1, k, n };
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { rate: p, low: Math.max(0, c - h), high: Math.min(1, c + h), k, n };
}
