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
  /** With `rotatedDescriptor`: the same net on the eye-levelled chip (what asset records store and compare). */
  rotatedDescriptor?: Float32Array;
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
   * Also compute the descriptor of the rotated chip (one more recognition-net pass per face, ~25-50 ms on CPU).
   * Rotated chips cut the benign tail that sets the record comparison's threshold (in-plane rotation moves the
   * axis-aligned box's content; models/identity/CARD.md section 3), while `descriptor`, and so the payload
   * code, stays on face-api's box so that codes sealed in existing watermarks keep their meaning.
   */
  rotatedDescriptor?: boolean;
}

/** A detection must overlap the searched region at least this much to count as the face that was there. */
export const REGION_MIN_IOU = 0.3;

/** Detector cap before the size filter and the largest-first cut to maxFaces. */
const MAX_DETECTIONS = 100;

const DEFAULTS: Required<Omit<AnalyzeOptions, "region">> = {
  minScore: 0.5,
  minFaceSize: 32,
  maxFaces: 20,
  chip: "box",
  rotatedDescriptor: false,
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
 * the image reads as black). Integer side, like face-api's floored box, so the net resizes the same way.
 */
function rotatedChip(
  faceapi: FaceApi,
  rgb: Uint8Array,
  width: number,
  height: number,
  points: { x: number; y: number }[],
): Tensor3D | null {
  const [le, re, mouth] = [centre(points, 36, 42), centre(points, 42, 48), centre(points, 48, 68)];
  const c = { x: (le.x + re.x + mouth.x) / 3, y: (le.y + re.y + mouth.y) / 3 };
  const dist = (a: { x: number; y: number }) => Math.hypot(mouth.x - a.x, mouth.y - a.y);
  const side = Math.floor((dist(le) + dist(re)) / 2 / 0.45);
  if (!(side > 0)) return null;
  const theta = Math.atan2(re.y - le.y, re.x - le.x);
  const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
  const out = new Int32Array(side * side * 3);
  for (let v = 0; v < side; v++) {
    for (let u = 0; u < side; u++) {
      const [ox, oy] = [u - 0.5 * side, v - 0.43 * side];
      const x = c.x + cos * ox - sin * oy;
      const y = c.y + sin * ox + cos * oy;
      const [x0, y0] = [Math.floor(x), Math.floor(y)];
      const [fx, fy] = [x - x0, y - y0];
      for (let k = 0; k < 3; k++) {
        const at = (xi: number, yi: number) =>
          xi < 0 || yi < 0 || xi >= width || yi >= height ? 0 : rgb[(yi * width + xi) * 3 + k]!;
        const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
        const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
        out[(v * side + u) * 3 + k] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return faceapi.tf.tensor3d(out, [side, side, 3], "int32");
}

async function describeFace(
  faceapi: FaceApi,
  rgb: Uint8Array,
  width: number,
  height: number,
  detection: FaceDetection,
  chip: "box" | "rotated" = "box",
  alsoRotated = false,
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
  const aligned =
    chip === "rotated"
      ? rotatedChip(faceapi, rgb, width, height, withLandmarks.landmarks.positions)
      : crop(withLandmarks.landmarks.align(null, { useDlibAlignment: true }));
  if (!aligned) return null;
  let descriptor: Float32Array;
  try {
    descriptor = (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(aligned)) as Float32Array;
  } finally {
    aligned.dispose();
  }
  if (!alsoRotated || chip === "rotated") {
    return { landmarks: withLandmarks.landmarks, descriptor, ...(alsoRotated ? { rotatedDescriptor: descriptor } : {}) };
  }
  const rotated = rotatedChip(faceapi, rgb, width, height, withLandmarks.landmarks.positions);
  if (!rotated) return null;
  try {
    const rotatedDescriptor = (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(rotated)) as Float32Array;
    return { landmarks: withLandmarks.landmarks, descriptor, rotatedDescriptor };
  } finally {
    rotated.dispose();
  }
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

type Candidate = { detection: FaceDetection; box: FaceBox };

/** Detector at opts.minScore, size filter, then landmarks and descriptors for the candidates `choose` keeps. */
async function analyzeChosen(
  image: RasterImage,
  rgb: Uint8Array,
  opts: Required<Omit<AnalyzeOptions, "region">>,
  choose: (found: Candidate[]) => Candidate[],
): Promise<AnalyzedFace[]> {
  const faceapi = await loadFaceModels();
  // face-api bundles its own tfjs typings: build the tensor through its tf so the types line up (same runtime module).
  const input = faceapi.tf.tensor3d(rgb, [image.height, image.width, 3], "int32");
  let detections: FaceDetection[];
  try {
    const detectorOptions = new faceapi.SsdMobilenetv1Options({ minConfidence: opts.minScore, maxResults: MAX_DETECTIONS });
    detections = await faceapi.detectAllFaces(input, detectorOptions);
  } finally {
    input.dispose();
  }
  const chosen = choose(
    detections
      .map((detection) => ({ detection, box: clipBox(detection.box, image.width, image.height) }))
      .filter((d) => Math.min(d.box.width, d.box.height) >= opts.minFaceSize),
  );
  const faces: AnalyzedFace[] = [];
  for (const { detection, box } of chosen) {
    const described = await describeFace(faceapi, rgb, image.width, image.height, detection, opts.chip, opts.rotatedDescriptor);
    if (!described) continue;
    faces.push({
      box,
      score: detection.score,
      landmarks: described.landmarks.positions.map((p) => [p.x, p.y] as [number, number]),
      descriptor: described.descriptor,
      ...(described.rotatedDescriptor ? { rotatedDescriptor: described.rotatedDescriptor } : {}),
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
): Promise<AnalyzedFace[]> {
  const r = clipBox(region, image.width, image.height);
  if (!(r.width > 0 && r.height > 0)) return [];
  const left = Math.max(0, Math.floor(r.x - r.width));
  const top = Math.max(0, Math.floor(r.y - r.height));
  const right = Math.min(image.width, Math.ceil(r.x + 2 * r.width));
  const bottom = Math.min(image.height, Math.ceil(r.y + 2 * r.height));
  const rgb = toRgb8(image);
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
