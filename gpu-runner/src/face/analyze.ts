import type { RasterImage } from "../operations/types.ts";
import { loadFaceModels } from "./models.ts";

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

/**
 * Detects faces, their landmarks and identity descriptors. Faces come back largest first, because the
 * largest face is the one the identity code protects when there are several (see models/identity/CARD.md).
 */
export async function analyzeFaces(image: RasterImage, options: AnalyzeOptions = {}): Promise<AnalyzedFace[]> {
  const opts = { ...DEFAULTS, ...options };
  if (image.width < 1 || image.height < 1) throw new RangeError("image has no pixels");
  const faceapi = await loadFaceModels();
  // face-api bundles its own tfjs typings: build the tensor through its tf so the types line up (same runtime module).
  const input = faceapi.tf.tensor3d(toRgb8(image), [image.height, image.width, 3], "int32");
  try {
    const detectorOptions = new faceapi.SsdMobilenetv1Options({ minConfidence: opts.minScore, maxResults: MAX_DETECTIONS });
    const area = (b: FaceBox): number => b.width * b.height;
    // Pick the faces before the landmark and recognition nets, which cost as much per face as the detector
    // does per image: verify asking for the main face only pays for one. Same face-api task chain as
    // detectAllFaces().withFaceLandmarks().withFaceDescriptors(), so descriptors do not change.
    const chosen = (await faceapi.detectAllFaces(input, detectorOptions))
      .map((detection) => ({ detection, box: clipBox(detection.box, image.width, image.height) }))
      .filter((d) => Math.min(d.box.width, d.box.height) >= opts.minFaceSize)
      .sort((a, b) => area(b.box) - area(a.box))
      .slice(0, opts.maxFaces);
    if (chosen.length === 0) return [];
    const parent = Promise.resolve(chosen.map(({ detection }) => ({ detection })));
    const found = await new faceapi.DetectAllFaceLandmarksTask(parent, input, false).withFaceDescriptors();
    return found.map((f, i) => ({
      box: chosen[i]!.box,
      score: f.detection.score,
      landmarks: f.landmarks.positions.map((p) => [p.x, p.y] as [number, number]),
      descriptor: f.descriptor,
    }));
  } finally {
    input.dispose();
  }
}
