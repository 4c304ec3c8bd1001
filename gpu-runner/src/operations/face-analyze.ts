import type { DescriptorChip } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import { analyzeFaces, analyzeRegions, type AnalyzedFace } from "../face/analyze.ts";
import { FaceModelError } from "../face/models.ts";
import { IDENTITY_CODE_BITS, identityCode } from "../face/identity-code.ts";
import { definePipeline } from "./types.ts";

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

function describeFace(
  face: AnalyzedFace,
  includeDescriptor: boolean,
  chip: DescriptorChip,
  extraChips: readonly DescriptorChip[],
): Record<string, unknown> {
  const { x, y, width, height } = face.box;
  const values = (c: DescriptorChip) => Array.from(c === "box" ? face.descriptor : face.chipDescriptors![c]!, (v) => round(v, 6));
  const extra = extraChips.filter((c) => c !== chip);
  return {
    box: { x: round(x, 1), y: round(y, 1), width: round(width, 1), height: round(height, 1) },
    score: round(face.score, 4),
    landmarks: face.landmarks.map(([lx, ly]) => [round(lx, 1), round(ly, 1)]),
    identity_code: identityCode(face.descriptor),
    // The raw descriptor is biometric data: only sent when a caller asks (calibration, debugging).
    ...(includeDescriptor
      ? {
          descriptor: values(chip),
          descriptor_chip: chip,
          ...(extra.length ? { extra_descriptors: Object.fromEntries(extra.map((c) => [c, values(c)])) } : {}),
        }
      : {}),
  };
}

/**
 * face.analyze: faces largest first, each with its identity code. Zero faces is a normal result (the
 * caller then protects provenance only); the first face is the one a single-code payload carries.
 */
export const faceAnalyzePipeline = definePipeline("face.analyze", async (ctx) => {
  const { params } = ctx;
  const image = ctx.inputs[0];
  if (!image) throw new RunnerError("input_unavailable", "face.analyze needs one input image");
  const toPixels = (r: { x: number; y: number; width: number; height: number }) => ({
    x: r.x * image.width,
    y: r.y * image.height,
    width: r.width * image.width,
    height: r.height * image.height,
  });
  const region = params.region ? toPixels(params.region) : undefined;
  const options = {
    maxFaces: params.max_faces,
    minScore: params.min_score,
    // One analysis serves every requested chip: the record chips share the landmarks and the plain chip.
    recordChips: params.include_descriptor
      ? [...new Set([params.descriptor_chip, ...params.extra_descriptor_chips])].filter((c) => c !== "box")
      : [],
  };
  // With `regions`, each face says which region it was found at (regionIndex), in the regions' order.
  const faces: (AnalyzedFace & { regionIndex?: number })[] = await ctx.timeModel(() =>
    (params.regions
      ? analyzeRegions(image, params.regions.map(toPixels), options).then((perRegion) =>
          perRegion.flatMap((found, regionIndex) => found.map((f) => ({ ...f, regionIndex }))),
        )
      : analyzeFaces(image, { ...options, ...(region ? { region } : {}) })
    ).catch((e: unknown) => {
      // A model file that fails its sha256 check will fail again: not retryable.
      throw e instanceof FaceModelError ? new RunnerError("model_unavailable", e.message) : e;
    }),
  );
  return {
    result: {
      faces: faces.map((f) => ({
        ...describeFace(f, params.include_descriptor, params.descriptor_chip, params.extra_descriptor_chips),
        ...(f.regionIndex !== undefined ? { region_index: f.regionIndex } : {}),
      })),
      identity_code_bits: IDENTITY_CODE_BITS,
      // The worker stores and compares boxes as fractions of the image size, so resized copies line up.
      image: { width: image.width, height: image.height },
    },
  };
});
