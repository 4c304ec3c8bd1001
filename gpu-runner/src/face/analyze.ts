import sharp from "sharp";
import type { RasterImage } from "../operations/types.ts";
import { loadFaceModels, type FaceApi } from "./models.ts";

type FaceDetection = InstanceType<FaceApi["FaceDetection"]>;
type Tensor3D = ReturnType<FaceApi["tf"]["tensor3d"]>;

export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface AnalyzedFace {
  /** Pixel box in the input image, clipped to it. */
  box: FaceBox;
  /** SSD-MobileNet detection confidence in [0, 1]. */
  score: number;
  /** The 68 iBUG-300W landmarks, [x, y] in input pixels. */
  landmarks: [number, number][];
  /** The 128-d face-api (dlib-style ResNet) identity descriptor, unit-free; euclidean 0.6 is its usual same-person cut. */
  descriptor: Float32Array;
  /** With `recordChips`: the same net on the eye-levelled chip, per requested variant (what asset records seal and compare). */
  chipDescriptors?: Partial<Record<RecordChip, Float32Array>>;
}

export interface AnalyzeOptions {
  /** Detections below this confidence are dropped. */
  minScore?: number;
  /** Faces whose shorter box side is below this many pixels are dropped: their descriptors are noise. */
  minFaceSize?: number;
  /** Only the largest this many faces get landmarks and descriptors. */
  maxFaces?: number;
  /**
   * Look for one face at this pixel box only (verify's second look at the protected face's place, see
   * analyzeRegion): the detector runs on a crop of 3x the box and the detection that overlaps the box most
   * (IoU >= REGION_MIN_IOU) is returned, with box and landmarks in the whole image's pixels.
   */
  region?: FaceBox;
  /**
   * How the recognition net's input is cut: "box" = face-api's dlib alignment (an axis-aligned square from the
   * eye and mouth centres; what the payload code and its calibration use), "rotated" = the same square turned
   * so the eyes are level (dlib's face chip), sampled bilinearly. collect.ts --chip rotated measures codes on it.
   */
  chip?: "box" | "rotated";
  /**
   * Also compute these record-comparison descriptors (RECORD_CHIPS; one more recognition-net pass per face
   * per distinct chip, ~25-50 ms on CPU each). Rotated chips cut the benign tail that sets the record
   * comparison's threshold (in-plane rotation moves the axis-aligned box's content; models/identity/CARD.md
   * section 3), while `descriptor`, and so the payload code, stays on face-api's box so that codes sealed in
   * existing watermarks keep their meaning.
   */
  recordChips?: readonly RecordChip[];
  /**
   * "rotated_jitter" only: run its 6 extra landmark crops as one batched landmark-net call and its chips as
   * one batched recognition-net call (default), or each crop and chip as its own call (false: how the
   * calibration's descriptors were computed; kept so the runner test can check that batching gives the
   * same descriptors).
   */
  batchJitter?: boolean;
}

/** A detection must overlap the searched region at least this much to count as the face that was there. */
export const REGION_MIN_IOU = 0.3;

/** Detector cap before the size filter and the largest-first cut to maxFaces. */
const MAX_DETECTIONS = 100;

/**
 * Longest side of the image the face detector is given; a larger image is detected on a copy downscaled to it
 * (detectorInput), and the detections, which face-api keeps relative to the image, are mapped back to the
 * original's size. Landmarks and descriptors are still computed on the original pixels.
 *
 * Why the cap loses nothing: face-api pads the detector's input to a square and SSD-MobileNet resizes that
 * square to 512 x 512 (ssdMobilenetv1.forwardInput: toBatchTensor(512)), so the net never reads more than 512
 * px along the longest side; a 2048 px copy still holds 4x that along each axis, and only the resampling path to
 * the 512 px input changes (libvips' anti-aliased shrink first, instead of one bilinear step from the full size,
 * which skips pixels). Images at or under the cap take exactly the old path (bit-identical results,
 * test/runner/face.test.ts).
 *
 * Why it is needed: the padded square is allocated at full size. For issue 12's 20000x50 PNG that is a
 * 20000 x 20000 x 3 float32 tensor (4.8 GB; `RangeError: Invalid typed array length: 1197000000`), and for a
 * 50 MP 4:3 photo 8165^2 x 3 x 4 B = 800 MB of wasm heap, which never shrinks. Capped, the detector's tensors are
 * at most 2048^2 x 3 (50 MB as float32).
 */
export const DETECTOR_MAX_SIDE = 2048;

/**
 * The RGB bytes the detector runs on: the image itself up to DETECTOR_MAX_SIDE, otherwise a copy whose longest
 * side is DETECTOR_MAX_SIDE (libvips resize, default lanczos3 kernel after its box pre-shrink).
 */
async function detectorInput(
  rgb: Uint8Array,
  width: number,
  height: number,
): Promise<{ rgb: Uint8Array; width: number; height: number; scaled: boolean }> {
  const longest = Math.max(width, height);
  if (longest <= DETECTOR_MAX_SIDE) return { rgb, width, height, scaled: false };
  const scale = DETECTOR_MAX_SIDE / longest;
  const [w, h] = [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
  const data = await sharp(rgb, { raw: { width, height, channels: 3 }, limitInputPixels: false })
    .resize(w, h, { fit: "fill" })
    .raw()
    .toBuffer();
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: w, height: h, scaled: true };
}

const DEFAULTS: Required<Omit<AnalyzeOptions, "region">> = {
  minScore: 0.5,
  minFaceSize: 32,
  maxFaces: 20,
  chip: "box",
  recordChips: [],
  batchJitter: true,
};

/** Interleaved RGB bytes, whatever the raster's channels and depth (alpha is dropped, grey is replicated). */
export function toRgb8(image: RasterImage): Uint8Array {
  const { width, height, channels, data } = image;
  const pixels = width * height;
  if (data.length !== pixels * channels)
    throw new RangeError(`raster data has ${data.length} samples, expected ${pixels * channels}`);
  const shift = image.bitDepth === 16 ? 8 : 0;
  const colour = channels >= 3;
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const i = p * channels;
    const r = data[i]! >> shift;
    out[p * 3] = r;
    out[p * 3 + 1] = colour ? data[i + 1]! >> shift : r;
    out[p * 3 + 2] = colour ? data[i + 2]! >> shift : r;
  }
  return out;
}

function clipBox(b: FaceBox, width: number, height: number): FaceBox {
  const x = Math.max(0, b.x);
  const y = Math.max(0, b.y);
  return { x, y, width: Math.min(width, b.x + b.width) - x, height: Math.min(height, b.y + b.height) - y };
}

/** A face-api box (integer pixels after clipAtImageBorders) of the RGB bytes as an int32 HWC tensor. */
function cropTensor(faceapi: FaceApi, rgb: Uint8Array, width: number, box: FaceBox): Tensor3D {
  const row = box.width * 3;
  const out = new Int32Array(row * box.height);
  for (let r = 0; r < box.height; r++) {
    const start = ((box.y + r) * width + box.x) * 3;
    out.set(rgb.subarray(start, start + row), r * row);
  }
  return faceapi.tf.tensor3d(out, [box.height, box.width, 3], "int32");
}

/**
 * Landmarks and descriptor of one detected face, the way face-api's
 * `DetectAllFaceLandmarksTask(...).withFaceDescriptors()` computes them on an image tensor: landmarks on the
 * detection box, then the descriptor on the dlib-aligned box of those landmarks, each box clipped and floored
 * by face-api's own Box methods. Only the crop differs: face-api slices it out of the whole-image tensor, and
 * the wasm backend's slice first copies the whole image out of wasm memory (24 MB at 2 MP, ~0.1 s with GC,
 * twice per face); here the same pixels are copied from the RGB bytes, so the nets get identical tensors
 * and the descriptors stay bit-identical (tested against face-api's chain and the calibration run).
 */
/** Mean of landmarks [from, to). */
function centre(points: { x: number; y: number }[], from: number, to: number): { x: number; y: number } {
  let [x, y] = [0, 0];
  for (let i = from; i < to; i++) [x, y] = [x + points[i]!.x, y + points[i]!.y];
  return { x: x / (to - from), y: y / (to - from) };
}

/**
 * dlib's face chip: face-api's dlib square (side = mean eye-to-mouth distance / 0.45, the eye-mouth centroid
 * at (0.5, 0.43) of the side) rotated by the eye line's angle, sampled bilinearly from the RGB bytes (outside
 * the image reads as black), rounded to integers. Integer side, like face-api's floored box, so the net
 * resizes the same way. Interleaved RGB, side x side.
 */
export function rotatedChipPixels(
  rgb: Uint8Array,
  width: number,
  height: number,
  points: { x: number; y: number }[],
): { side: number; data: Int32Array } | null {
  const [le, re, mouth] = [centre(points, 36, 42), centre(points, 42, 48), centre(points, 48, 68)];
  const c = { x: (le.x + re.x + mouth.x) / 3, y: (le.y + re.y + mouth.y) / 3 };
  const dist = (a: { x: number; y: number }) => Math.hypot(mouth.x - a.x, mouth.y - a.y);
  const side = Math.floor((dist(le) + dist(re)) / 2 / 0.45);
  if (!(side > 0)) return null;
  const theta = Math.atan2(re.y - le.y, re.x - le.x);
  const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
  const out = new Int32Array(side * side * 3);
  // Plain loops and index arithmetic, no closure or array destructuring per sample: the first version
  // allocated a closure per pixel and channel and took ~40 ms per 200 px chip (the jittered descriptor cuts 7
  // chips, measured 240 ms of verify's analysis). The float expressions are the same ones in the same order,
  // so the chips stay bit-identical (test/runner/face.test.ts compares with a straightforward reference).
  const inX = (xi: number) => xi >= 0 && xi < width;
  const inY = (yi: number) => yi >= 0 && yi < height;
  for (let v = 0; v < side; v++) {
    for (let u = 0; u < side; u++) {
      const ox = u - 0.5 * side;
      const oy = v - 0.43 * side;
      const x = c.x + cos * ox - sin * oy;
      const y = c.y + sin * ox + cos * oy;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const fx = x - x0;
      const fy = y - y0;
      // Sample offsets of the 4 neighbours, -1 outside the image (reads as black).
      const l = inX(x0);
      const r = inX(x0 + 1);
      const t = inY(y0);
      const b = inY(y0 + 1);
      const i00 = l && t ? (y0 * width + x0) * 3 : -1;
      const i10 = r && t ? (y0 * width + x0 + 1) * 3 : -1;
      const i01 = l && b ? ((y0 + 1) * width + x0) * 3 : -1;
      const i11 = r && b ? ((y0 + 1) * width + x0 + 1) * 3 : -1;
      const o = (v * side + u) * 3;
      for (let k = 0; k < 3; k++) {
        const p00 = i00 < 0 ? 0 : rgb[i00 + k]!;
        const p10 = i10 < 0 ? 0 : rgb[i10 + k]!;
        const p01 = i01 < 0 ? 0 : rgb[i01 + k]!;
        const p11 = i11 < 0 ? 0 : rgb[i11 + k]!;
        const top = p00 * (1 - fx) + p10 * fx;
        const bottom = p01 * (1 - fx) + p11 * fx;
        out[o + k] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return { side, data: out };
}

/**
 * Descriptors for the record comparison (what asset records seal and verify compares), all from the same
 * recognition net on the eye-levelled chip:
 * - "rotated": the chip as is;
 * - "rotated_gain": the chip times one gain that brings the luminance mean of its central half to the net's
 *   training mean, so a global brightness change (a gain) cancels;
 * - "rotated_std": the chip's luminance standardised (one offset and one gain for all three channels) to the
 *   net's training mean and a fixed contrast, so a gain and an offset cancel;
 * - "*_flip": the mean of the descriptors of the chip and of its mirror image (flip test-time augmentation),
 *   which averages out part of what a small pose or crop change does to one side of the face;
 * - "rotated_jitter": the mean of the descriptors of the chips cut from landmarks found on the detection box
 *   and on six jittered copies of it (JITTER_BOXES). face-api's landmarks can move a lot with the detection
 *   box (measured: a 1 px different box moved one face's descriptor by 0.09), and a benign edit moves the
 *   box; averaging over nearby boxes makes the descriptor a smoother function of where the box lands.
 * models/identity/CARD.md, "Record comparison", measures each one.
 */
export const RECORD_CHIPS = [
  "rotated",
  "rotated_gain",
  "rotated_std",
  "rotated_flip",
  "rotated_gain_flip",
  "rotated_std_flip",
  "rotated_jitter",
] as const;
export type RecordChip = (typeof RECORD_CHIPS)[number];

/**
 * The "rotated_jitter" boxes as (dx, dy, scale) of the detection box: itself, shifted by 5 % of its size
 * left, right, up and down, and 10 % larger and smaller about its centre. 5 % was the first and only amount
 * tried (chosen before measuring: about the box movement seen under the benign edits).
 */
const JITTER_BOXES: readonly (readonly [number, number, number])[] = [
  [0, 0, 1],
  [0.05, 0, 1],
  [-0.05, 0, 1],
  [0, 0.05, 1],
  [0, -0.05, 1],
  [0, 0, 1.1],
  [0, 0, 0.9],
];

/** face-api's recognition net subtracts this mean RGB (dlib's training set) before its first convolution. */
const NET_MEAN_RGB = [122.782, 117.001, 104.298] as const;
/** Rec. 601 luminance of NET_MEAN_RGB: the level a normalised chip's face centre is brought to. */
export const NET_MEAN_LUMA = 0.299 * NET_MEAN_RGB[0] + 0.587 * NET_MEAN_RGB[1] + 0.114 * NET_MEAN_RGB[2];
/**
 * Luminance standard deviation a "rotated_std" chip's centre is brought to: a round value at the median of
 * the 23 calibration faces' unedited chips (35.6, range 25.2-59.7; their centre means: median 135.9, range
 * 67.2-174.7), so a typical face keeps about its contrast and only outliers are rescaled. A fixed input
 * statistic, chosen once from the unedited faces, not from the distances it is evaluated on.
 */
export const CHIP_TARGET_STD = 36;

/**
 * Luminance mean and standard deviation over the chip's central half (u, v in [0.25, 0.75)): mostly skin,
 * eyes and nose, so background, hair and the black fill outside the image barely move the normalisation.
 */
export function centreLuma(data: Int32Array, side: number): { mean: number; std: number } {
  const [u0, u1] = [Math.floor(side * 0.25), Math.max(Math.floor(side * 0.25) + 1, Math.floor(side * 0.75))];
  let [sum, sq, n] = [0, 0, 0];
  for (let v = u0; v < u1; v++) {
    for (let u = u0; u < u1; u++) {
      const i = (v * side + u) * 3;
      const y = 0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!;
      [sum, sq, n] = [sum + y, sq + y * y, n + 1];
    }
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
}

/** The chip photometrically normalised for `mode`, as float RGB (the net casts to float32 anyway; no clipping). */
function normaliseChip(data: Int32Array, side: number, mode: "gain" | "std"): Float32Array {
  const { mean, std } = centreLuma(data, side);
  const out = new Float32Array(data.length);
  if (mode === "gain") {
    // A black or nearly black centre has no level to normalise: leave it as it is.
    const g = mean >= 1 ? NET_MEAN_LUMA / mean : 1;
    for (let i = 0; i < data.length; i++) out[i] = data[i]! * g;
  } else {
    const g = std >= 1 ? CHIP_TARGET_STD / std : 1;
    for (let i = 0; i < data.length; i++) out[i] = (data[i]! - mean) * g + NET_MEAN_LUMA;
  }
  return out;
}

function mirrored(data: Int32Array | Float32Array, side: number): Int32Array | Float32Array {
  const out = data instanceof Int32Array ? new Int32Array(data.length) : new Float32Array(data.length);
  for (let v = 0; v < side; v++)
    for (let u = 0; u < side; u++)
      for (let k = 0; k < 3; k++) out[(v * side + u) * 3 + k] = data[(v * side + side - 1 - u) * 3 + k]!;
  return out;
}

/**
 * The mean of descriptors, rescaled to their mean norm so that distances stay on the scale of one
 * descriptor's (the net's descriptors are not unit vectors; averaging alone would shrink them).
 */
function meanOf(ds: Float32Array[]): Float32Array {
  const norm = (d: Float32Array) => Math.sqrt(d.reduce((s, x) => s + x * x, 0));
  const m = new Float32Array(ds[0]!.length);
  for (const d of ds) for (let i = 0; i < m.length; i++) m[i]! += d[i]! / ds.length;
  const scale = ds.reduce((s, d) => s + norm(d), 0) / ds.length / (norm(m) || 1);
  for (let i = 0; i < m.length; i++) m[i]! *= scale;
  return m;
}

function chipTensor(faceapi: FaceApi, data: Int32Array | Float32Array, side: number): Tensor3D {
  return data instanceof Int32Array
    ? faceapi.tf.tensor3d(data, [side, side, 3], "int32")
    : faceapi.tf.tensor3d(data, [side, side, 3], "float32");
}

/** The recognition net's descriptor of one interleaved RGB chip. */
async function netDescriptor(faceapi: FaceApi, data: Int32Array | Float32Array, side: number): Promise<Float32Array> {
  const t = chipTensor(faceapi, data, side);
  try {
    return (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t)) as Float32Array;
  } finally {
    t.dispose();
  }
}

/**
 * The recognition net's descriptors of several chips in one call (`batch`) or one call each. face-api's
 * NetInput pads and resizes each tensor of an array input to 150x150 on its own, exactly as for a single
 * input, then stacks them, so the sizes may differ; one batched call saves the per-call overhead of the
 * net's ~30 kernels per chip.
 */
async function netDescriptors(
  faceapi: FaceApi,
  chips: { data: Int32Array | Float32Array; side: number }[],
  batch: boolean,
): Promise<Float32Array[]> {
  if (!batch || chips.length < 2) {
    const out: Float32Array[] = [];
    for (const c of chips) out.push(await netDescriptor(faceapi, c.data, c.side));
    return out;
  }
  const ts: Tensor3D[] = [];
  try {
    for (const c of chips) ts.push(chipTensor(faceapi, c.data, c.side));
    return (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(ts)) as Float32Array[];
  } finally {
    for (const t of ts) t.dispose();
  }
}

/** Every requested record-chip descriptor of one face, each net pass run once and shared between variants. */
async function recordDescriptors(
  faceapi: FaceApi,
  rgb: Uint8Array,
  width: number,
  height: number,
  points: { x: number; y: number }[],
  chips: readonly RecordChip[],
  jitteredPoints: () => Promise<{ x: number; y: number }[][]>,
  batchJitter: boolean,
): Promise<Partial<Record<RecordChip, Float32Array>> | null> {
  const chip = rotatedChipPixels(rgb, width, height, points);
  if (!chip) return null;
  const { side, data } = chip;
  const pixels: Record<"plain" | "gain" | "std", Int32Array | Float32Array | undefined> = {
    plain: data,
    gain: undefined,
    std: undefined,
  };
  const cache = new Map<string, Float32Array>();
  const pass = async (mode: "plain" | "gain" | "std", mirror: boolean): Promise<Float32Array> => {
    const key = `${mode}${mirror ? "_m" : ""}`;
    let d = cache.get(key);
    if (!d) {
      const px = (pixels[mode] ??= normaliseChip(data, side, mode as "gain" | "std"));
      d = await netDescriptor(faceapi, mirror ? mirrored(px, side) : px, side);
      cache.set(key, d);
    }
    return d;
  };
  const out: Partial<Record<RecordChip, Float32Array>> = {};
  for (const c of chips) {
    if (c === "rotated_jitter") {
      // The detection box's own chip (shared with "rotated") and one chip per jittered box's landmarks. The
      // plain chip rides in the same batch unless another variant already computed it; its descriptor from
      // the batch is bit-identical to a single pass's (measured on face-api's sample1-6, 22 faces, and
      // checked in test/runner/face.test.ts), so "rotated" keeps its value either way.
      const plain = cache.get("plain");
      const jittered: { data: Int32Array; side: number }[] = plain ? [] : [{ data, side }];
      for (const pts of await jitteredPoints()) {
        const j = rotatedChipPixels(rgb, width, height, pts);
        if (j) jittered.push(j);
      }
      const ds = await netDescriptors(faceapi, jittered, batchJitter);
      if (!plain) cache.set("plain", ds[0]!);
      out[c] = meanOf(plain ? [plain, ...ds] : ds);
      continue;
    }
    const mode = c.includes("gain") ? "gain" : c.includes("std") ? "std" : "plain";
    out[c] = c.endsWith("_flip") ? meanOf([await pass(mode, false), await pass(mode, true)]) : await pass(mode, false);
  }
  return out;
}

async function describeFace(
  faceapi: FaceApi,
  rgb: Uint8Array,
  width: number,
  height: number,
  detection: FaceDetection,
  chip: "box" | "rotated" = "box",
  recordChips: readonly RecordChip[] = [],
  batchJitter = true,
) {
  const crop = (box: InstanceType<FaceApi["Box"]>): Tensor3D | null => {
    const b = box.clipAtImageBorders(width, height);
    return b.width > 0 && b.height > 0 ? cropTensor(faceapi, rgb, width, b) : null;
  };
  const face = crop(detection.forSize(width, height).box);
  if (!face) return null;
  let landmarks;
  try {
    landmarks = (await faceapi.nets.faceLandmark68Net.detectLandmarks(face)) as InstanceType<FaceApi["FaceLandmarks68"]>;
  } finally {
    face.dispose();
  }
  const withLandmarks = faceapi.extendWithFaceLandmarks({ detection }, landmarks);
  const points = withLandmarks.landmarks.positions;
  // The rotated chip's plain descriptor is shared when it is both the main descriptor and a record chip.
  const wanted = chip === "rotated" && !recordChips.includes("rotated") ? [...recordChips, "rotated" as const] : recordChips;
  // Landmarks on the jittered detection boxes, only computed for "rotated_jitter" (6 more landmark passes,
  // one batched call unless batchJitter is off: NetInput pads and resizes each crop to the net's input on
  // its own, as for a single crop, and the landmarks come back per crop in its own pixels).
  const jitteredPoints = async () => {
    const d = detection.forSize(width, height).box;
    const crops: { t: Tensor3D; x: number; y: number }[] = [];
    const out: { x: number; y: number }[][] = [];
    try {
      for (const [dx, dy, scale] of JITTER_BOXES.slice(1)) {
        const [w, h] = [d.width * scale, d.height * scale];
        const box = new faceapi.Box({
          x: d.x + dx * d.width + (d.width - w) / 2,
          y: d.y + dy * d.height + (d.height - h) / 2,
          width: w,
          height: h,
        });
        const b = box.clipAtImageBorders(width, height);
        if (b.width > 0 && b.height > 0) crops.push({ t: cropTensor(faceapi, rgb, width, b), x: b.x, y: b.y });
      }
      type Landmarks = InstanceType<FaceApi["FaceLandmarks68"]>;
      const lms: Landmarks[] = [];
      if (batchJitter && crops.length > 1) {
        lms.push(...((await faceapi.nets.faceLandmark68Net.detectLandmarks(crops.map((c) => c.t))) as Landmarks[]));
      } else {
        for (const c of crops) lms.push((await faceapi.nets.faceLandmark68Net.detectLandmarks(c.t)) as Landmarks);
      }
      lms.forEach((lm, i) => out.push(lm.positions.map((q) => ({ x: q.x + crops[i]!.x, y: q.y + crops[i]!.y }))));
    } finally {
      for (const c of crops) c.t.dispose();
    }
    return out;
  };
  const records = wanted.length
    ? await recordDescriptors(faceapi, rgb, width, height, points, wanted, jitteredPoints, batchJitter)
    : {};
  if (!records) return null;
  let descriptor: Float32Array;
  if (chip === "rotated") {
    descriptor = records.rotated!;
  } else {
    const aligned = crop(withLandmarks.landmarks.align(null, { useDlibAlignment: true }));
    if (!aligned) return null;
    try {
      descriptor = (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(aligned)) as Float32Array;
    } finally {
      aligned.dispose();
    }
  }
  const chipDescriptors: Partial<Record<RecordChip, Float32Array>> = {};
  for (const c of recordChips) chipDescriptors[c] = records[c]!;
  return { landmarks: withLandmarks.landmarks, descriptor, chipDescriptors };
}

/**
 * Detects faces, their landmarks and identity descriptors. Faces come back largest first, because the
 * largest face is the one the identity code protects when there are several (see models/identity/CARD.md).
 */
export async function analyzeFaces(image: RasterImage, options: AnalyzeOptions = {}): Promise<AnalyzedFace[]> {
  const opts = { ...DEFAULTS, ...options };
  if (image.width < 1 || image.height < 1) throw new RangeError("image has no pixels");
  if (options.region) return analyzeRegion(image, options.region, opts);
  const area = (b: FaceBox): number => b.width * b.height;
  // Largest first, cut to maxFaces before the landmark and recognition nets, which cost as much per face
  // as the detector does per image: verify asking for the main face only pays for one.
  return analyzeChosen(image, toRgb8(image), opts, (found) =>
    found.sort((a, b) => area(b.box) - area(a.box)).slice(0, opts.maxFaces),
  );
}

/**
 * The region look at each of several pixel boxes of one image (face.analyze `regions`): zero or one face per
 * box, as analyzeFaces with `region` finds it, the image's RGB conversion shared between them.
 */
export async function analyzeRegions(
  image: RasterImage,
  regions: readonly FaceBox[],
  options: Omit<AnalyzeOptions, "region"> = {},
): Promise<AnalyzedFace[][]> {
  const opts = { ...DEFAULTS, ...options };
  if (image.width < 1 || image.height < 1) throw new RangeError("image has no pixels");
  const rgb = toRgb8(image);
  const out: AnalyzedFace[][] = [];
  for (const r of regions) out.push(await analyzeRegion(image, r, opts, rgb));
  return out;
}

type Candidate = { detection: FaceDetection; box: FaceBox };

/** Detector at opts.minScore, size filter, then landmarks and descriptors for the candidates `choose` keeps. */
async function analyzeChosen(
  image: RasterImage,
  rgb: Uint8Array,
  opts: Required<Omit<AnalyzeOptions, "region">>,
  choose: (found: Candidate[]) => Candidate[],
): Promise<AnalyzedFace[]> {
  const faceapi = await loadFaceModels();
  const det = await detectorInput(rgb, image.width, image.height);
  // face-api bundles its own tfjs typings: build the tensor through its tf so the types line up (same runtime module).
  const input = faceapi.tf.tensor3d(det.rgb, [det.height, det.width, 3], "int32");
  let detections: FaceDetection[];
  try {
    const detectorOptions = new faceapi.SsdMobilenetv1Options({ minConfidence: opts.minScore, maxResults: MAX_DETECTIONS });
    // The net's locateFaces, which is all `faceapi.detectAllFaces(...)` runs, called as a plain promise: that task
    // is a thenable whose `then(onfulfilled)` drops the rejection callback, so awaiting it turned a detector error
    // into an unhandled rejection and an await that never settled (issue 12, test/runner/face-poison.test.ts).
    detections = await faceapi.nets.ssdMobilenetv1.locateFaces(input, detectorOptions);
  } finally {
    input.dispose();
  }
  // Relative boxes rescaled to the original: every later step (clip, size filter, landmark crop) sees what it did.
  if (det.scaled) detections = detections.map((d) => d.forSize(image.width, image.height));
  const chosen = choose(
    detections
      .map((detection) => ({ detection, box: clipBox(detection.box, image.width, image.height) }))
      .filter((d) => Math.min(d.box.width, d.box.height) >= opts.minFaceSize),
  );
  const faces: AnalyzedFace[] = [];
  for (const { detection, box } of chosen) {
    const described = await describeFace(
      faceapi,
      rgb,
      image.width,
      image.height,
      detection,
      opts.chip,
      opts.recordChips,
      opts.batchJitter,
    );
    if (!described) continue;
    faces.push({
      box,
      score: detection.score,
      landmarks: described.landmarks.positions.map((p) => [p.x, p.y] as [number, number]),
      descriptor: described.descriptor,
      ...(opts.recordChips.length ? { chipDescriptors: described.chipDescriptors } : {}),
    });
  }
  return faces;
}

function iou(a: FaceBox, b: FaceBox): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / (a.width * a.height + b.width * b.height - w * h);
}

/**
 * The face at `region` (pixels), looked for on a crop of 3x the region around it, so that faces and false
 * detections elsewhere in the image play no part. A swapped face pasted with seamless cloning often scores
 * 0.07-0.54 (models/identity/CARD.md section 4) and is dropped by the usual 0.5 cut. The caller (verify)
 * lowers `minScore` for this look, because it already knows from the authenticated watermark and the asset
 * record that a face was protected here; the IoU requirement keeps a low-score detection elsewhere in the
 * crop from standing in for it. Returns zero
 * or one face; landmarks and descriptor come from the same nets and the same box arithmetic as a
 * whole-image analysis, on the same pixels (the crop contains every box the nets read, unless the face
 * reaches the crop's border, in which case the boxes are clipped there as they would be at an image border).
 */
async function analyzeRegion(
  image: RasterImage,
  region: FaceBox,
  opts: Required<Omit<AnalyzeOptions, "region">>,
  rgb: Uint8Array = toRgb8(image),
): Promise<AnalyzedFace[]> {
  const r = clipBox(region, image.width, image.height);
  if (!(r.width > 0 && r.height > 0)) return [];
  const left = Math.max(0, Math.floor(r.x - r.width));
  const top = Math.max(0, Math.floor(r.y - r.height));
  const right = Math.min(image.width, Math.ceil(r.x + 2 * r.width));
  const bottom = Math.min(image.height, Math.ceil(r.y + 2 * r.height));
  const [cw, ch] = [right - left, bottom - top];
  const data = new Uint8Array(cw * ch * 3);
  for (let y = 0; y < ch; y++)
    data.set(rgb.subarray(((top + y) * image.width + left) * 3, ((top + y) * image.width + right) * 3), y * cw * 3);
  const crop: RasterImage = { ...image, width: cw, height: ch, channels: 3, bitDepth: 8, hasAlpha: false, data };
  const local = { ...r, x: r.x - left, y: r.y - top };
  // Only the best-overlapping detection gets the landmark and recognition nets.
  const [best] = await analyzeChosen(crop, data, opts, (found) => {
    let pick: Candidate | undefined;
    let bestIou = REGION_MIN_IOU;
    for (const c of found) {
      const v = iou(c.box, local);
      if (v >= bestIou) [pick, bestIou] = [c, v];
    }
    return pick ? [pick] : [];
  });
  if (!best) return [];
  return [
    {
      ...best,
      box: { ...best.box, x: best.box.x + left, y: best.box.y + top },
      landmarks: best.landmarks.map(([x, y]) => [x + left, y + top] as [number, number]),
    },
  ];
}
