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
}

export interface AnalyzeOptions {
  /** Detections below this confidence are dropped. */
  minScore?: number;
  /** Faces whose shorter box side is below this many pixels are dropped: their descriptors are noise. */
  minFaceSize?: number;
  /** Only the largest this many faces get landmarks and descriptors. */
  maxFaces?: number;
}

/** Detector cap before the size filter and the largest-first cut to maxFaces. */
const MAX_DETECTIONS = 100;

const DEFAULTS: Required<AnalyzeOptions> = { minScore: 0.5, minFaceSize: 32, maxFaces: 20 };

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
async function describeFace(faceapi: FaceApi, rgb: Uint8Array, width: number, height: number, detection: FaceDetection) {
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
  const aligned = crop(withLandmarks.landmarks.align(null, { useDlibAlignment: true }));
  if (!aligned) return null;
  try {
    const descriptor = (await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(aligned)) as Float32Array;
    return { landmarks: withLandmarks.landmarks, descriptor };
  } finally {
    aligned.dispose();
  }
}

/**
 * Detects faces, their landmarks and identity descriptors. Faces come back largest first, because the
 * largest face is the one the identity code protects when there are several (see models/identity/CARD.md).
 */
export async function analyzeFaces(image: RasterImage, options: AnalyzeOptions = {}): Promise<AnalyzedFace[]> {
  const opts = { ...DEFAULTS, ...options };
  if (image.width < 1 || image.height < 1) throw new RangeError("image has no pixels");
  const faceapi = await loadFaceModels();
  const rgb = toRgb8(image);
  // face-api bundles its own tfjs typings: build the tensor through its tf so the types line up (same runtime module).
  const input = faceapi.tf.tensor3d(rgb, [image.height, image.width, 3], "int32");
  let detections: FaceDetection[];
  try {
    const detectorOptions = new faceapi.SsdMobilenetv1Options({ minConfidence: opts.minScore, maxResults: MAX_DETECTIONS });
    detections = await faceapi.detectAllFaces(input, detectorOptions);
  } finally {
    input.dispose();
  }
  const area = (b: FaceBox): number => b.width * b.height;
  // Pick the faces before the landmark and recognition nets, which cost as much per face as the detector
  // does per image: verify asking for the main face only pays for one.
  const chosen = detections
    .map((detection) => ({ detection, box: clipBox(detection.box, image.width, image.height) }))
    .filter((d) => Math.min(d.box.width, d.box.height) >= opts.minFaceSize)
    .sort((a, b) => area(b.box) - area(a.box))
    .slice(0, opts.maxFaces);
  const faces: AnalyzedFace[] = [];
  for (const { detection, box } of chosen) {
    const described = await describeFace(faceapi, rgb, image.width, image.height, detection);
    if (!described) continue;
    faces.push({
      box,
      score: detection.score,
      landmarks: described.landmarks.positions.map((p) => [p.x, p.y] as [number, number]),
      descriptor: described.descriptor,
    });
  }
  return faces;
}
