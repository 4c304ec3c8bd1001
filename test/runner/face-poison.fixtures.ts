import sharp from "sharp";

/**
 * The image from issue 12 defect 1: 20000x50 (1 MP, under every pixel and byte limit), noise so that it is about
 * 3 MB of PNG like the probe's. face-api padded it to a 20000x20000 square for the detector.
 */
export async function poisonPng(width = 20_000, height = 50): Promise<Buffer> {
  return sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: 128, g: 128, b: 128 },
      noise: { type: "gaussian", mean: 128, sigma: 40 },
    },
  })
    .png()
    .toBuffer();
}

/**
 * face.analyze's params as the two flows send them: worker/src/identity/flows.ts VERIFY_ANALYZE_PARAMS and
 * PROTECT_ANALYZE_PARAMS, both with MAX_PROTECTED_FACES (10) since verify compares every protected face (copied:
 * flows.ts imports cloudflare:workers and cannot load in Node; keep the two in step).
 */
export const POISON_PARAMS = {
  verify: { max_faces: 10, include_descriptor: true, descriptor_chip: "rotated_jitter", extra_descriptor_chips: ["rotated"] },
  protect: { max_faces: 10, include_descriptor: true, descriptor_chip: "rotated_jitter" },
} as const;
