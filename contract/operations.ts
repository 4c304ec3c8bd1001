import { z } from "zod";

/**
 * The face chips face.analyze can compute a descriptor on (gpu-runner/src/face/analyze.ts): "box" for the
 * identity code, the others for the asset record's comparison (RECORD_CHIPS there; only the ones records
 * use are offered here).
 */
export const DESCRIPTOR_CHIPS = ["box", "rotated", "rotated_jitter"] as const;
export type DescriptorChip = (typeof DESCRIPTOR_CHIPS)[number];
export const isDescriptorChip = (c: string): c is DescriptorChip => (DESCRIPTOR_CHIPS as readonly string[]).includes(c);

/**
 * The one table of operations. The worker validates requests and builds tickets from it; the runner
 * dispatches on `name` and checks params with the same schema. Adding an operation = one entry here,
 * one pipeline in gpu-runner/src/operations/, and (if public) it is routed at `POST /v1/<path>`.
 * A worker-run operation (`runs_on: "worker"`) has no pipeline: the worker runs it as a parent job whose
 * `stages` are runner operations, started as child jobs (worker/src/identity/flows.ts for protect and verify).
 */
export interface OperationSpec<P extends z.ZodType = z.ZodType> {
  name: string;
  /**
   * Who runs the job. "runner" (the default): a runner leases it, so it needs a pipeline and an autoscaler
   * trigger. "worker": never leased; the worker drives it through child jobs of the operations in `stages`.
   */
  runs_on?: "runner" | "worker";
  /** For a worker-run operation: the runner operations its child jobs run, all on the same input image. */
  stages?: readonly string[];
  /** Public route under /v1, or null for internal operations (run by other routes, e.g. protect). */
  path: string | null;
  summary: string;
  /** API key scope needed to create the job. */
  scope: "protect" | "verify" | "restore" | "inspect";
  params: P;
  inputs: { min: number; max: number };
  /** Model ids from models/manifest.json the pipeline loads; their sha256 travels in the ticket. */
  models: string[];
  limits: {
    max_input_bytes: number;
    max_pixels: number;
    /** Lease visibility timeout; the runner heartbeats well inside it. */
    lease_seconds: number;
    max_attempts: number;
    /**
     * Geometry the operation accepts, checked on the header's width and height (EXIF orientation swaps them, which
     * changes neither): the shorter side must be at least `min_side` px (`image_too_small`) and the longer side at
     * most `max_aspect_ratio` times the shorter (`unsupported_aspect_ratio`). The worker checks them when a job is
     * created (worker/src/lib/image-header.ts, 422) and the runner after decoding (gpu-runner/src/execute.ts).
     */
    min_side: number;
    max_aspect_ratio: number;
  };
  /**
   * Names of image artifacts the runner uploads (each gets a signed PUT URL in the ticket). One with `when` is
   * produced only when that boolean param is true (enhance.derain's maps).
   */
  artifacts: { name: string; content_type: string; when?: string }[];
}

const MB = 1024 * 1024;

/**
 * Limits of the tiled restorations (enhance.lowlight, enhance.derain: 1024 px tiles plus a 128 x 128 thumbnail of
 * the whole image): 12 MP photos with room, any size, panoramas up to 20:1.
 */
const TILED_RESTORATION_LIMITS = {
  max_input_bytes: 50 * MB,
  max_pixels: 13_000_000,
  lease_seconds: 120,
  max_attempts: 3,
  min_side: 1,
  max_aspect_ratio: 20,
};

/**
 * watermark.embed and .decode (gpu-runner/src/operations/watermark.ts): codec 2, the tiled mark on a grid of 128
 * chips along the short side, for images whose short side is at least 256 px; codec 1, the whole image squeezed to
 * 128 x 128, below that and for images marked before codec 2. At least 32 px per side, below which codec 1's
 * stretched residual loses the mark. At most 16:1: both codecs are tested at 16:1 (4096 x 256 in
 * test/runner/watermark-tiled.test.ts, 2048 x 128 in test/runner/fuzz.test.ts); beyond that codec 1's working
 * pixel spans 16x more of the image along one axis than the other, which nothing has measured. decode accepts what
 * embed does, so every protected image can be verified.
 */
const WATERMARK_GEOMETRY = { min_side: 32, max_aspect_ratio: 16 } as const;
/** Embedding and decoding read the same images: one set of limits for both. */
const WATERMARK_LIMITS = {
  max_input_bytes: 50 * MB,
  max_pixels: 50_000_000,
  lease_seconds: 60,
  max_attempts: 3,
  ...WATERMARK_GEOMETRY,
} as const;
/** The face analysis limits (see the face.analyze entry for why each value). */
const FACE_ANALYZE_LIMITS = {
  max_input_bytes: 50 * MB,
  max_pixels: 50_000_000,
  lease_seconds: 60,
  max_attempts: 3,
  min_side: 32,
  max_aspect_ratio: 16,
} as const;

/**
 * A worker-run operation's limits: its stages all read the one input, so it admits only what every stage admits
 * (checked once, before anything is stored). It is never leased and never retried as a whole (each stage job
 * retries itself), so lease_seconds is 0 and max_attempts 1.
 */
function strictestOf(...stages: OperationSpec["limits"][]): OperationSpec["limits"] {
  return {
    max_input_bytes: Math.min(...stages.map((l) => l.max_input_bytes)),
    max_pixels: Math.min(...stages.map((l) => l.max_pixels)),
    lease_seconds: 0,
    max_attempts: 1,
    min_side: Math.max(...stages.map((l) => l.min_side)),
    max_aspect_ratio: Math.min(...stages.map((l) => l.max_aspect_ratio)),
  };
}

/**
 * enhance.derain's methods that have shipped weights, each with the model it runs (models/derain/README.md,
 * "Serving"). Adding a method with weights is one line here (plus its model entry in the runner's pipeline).
 */
export const DERAIN_METHODS = {
  "streak-vapor": "derain-streak-vapor",
  "heavy-two-branch": "derain-heavy-two-branch",
} as const;
export type DerainMethod = keyof typeof DERAIN_METHODS;
const DERAIN_METHOD_NAMES = Object.keys(DERAIN_METHODS) as [DerainMethod, ...DerainMethod[]];
/**
 * The method measured best on the held-out sets (models/derain/RESULTS.md): heavy-two-branch is ahead of streak-vapor
 * on all three (light 31.51 / 28.80, heavy + veil 18.48 / 16.94, held-out family 18.90 / 18.38 dB).
 */
const DERAIN_DEFAULT_METHOD: DerainMethod = "heavy-two-branch";

const hexBits = z.string().regex(/^[0-9a-fA-F]+$/, "hex string expected");

export const OPERATIONS = {
  inspect: {
    name: "inspect",
    path: "inspect",
    summary: "Image facts: dimensions, format, orientation, color space, bit depth, perceptual hash.",
    scope: "inspect",
    params: z.object({}).strict(),
    inputs: { min: 1, max: 1 },
    models: [],
    // Inspect reads a header and two small thumbnails, whose cost does not depend on the shape, and it is the tool
    // for finding out what an odd image is: any size, and up to 100:1, which takes in stitched scrolling
    // screenshots (1080 x 32000 is about 1:30) and strip panoramas; beyond that an "image" is a line.
    limits: {
      max_input_bytes: 25 * MB,
      max_pixels: 100_000_000,
      lease_seconds: 30,
      max_attempts: 3,
      min_side: 1,
      max_aspect_ratio: 100,
    },
    artifacts: [],
  },
  "watermark.embed": {
    name: "watermark.embed",
    path: null,
    summary: "Embed an invisible watermark payload into an image.",
    scope: "protect",
    params: z
      .object({
        bits: hexBits,
        strength: z.coerce.number().min(0.1).max(4).default(1),
        format: z.enum(["png", "jpeg", "webp"]).default("png"),
      })
      .strict(),
    inputs: { min: 1, max: 1 },
    // Codec 1's encoder as its two cuts (gain map once per image, message pattern once per round:
    // watermark-encoder.ts) and its decoder (its embedding reads the mark back to re-weight weak bits); codec 2
    // runs no model.
    models: ["watermark-encoder-gain", "watermark-encoder-message", "watermark-decoder"],
    limits: WATERMARK_LIMITS,
    artifacts: [{ name: "image", content_type: "image/png" }],
  },
  "watermark.decode": {
    name: "watermark.decode",
    path: null,
    summary: "Recover a watermark payload with soft bits, a presence p-value, and where the original sits in the copy.",
    scope: "verify",
    params: z.object({}).strict(),
    inputs: { min: 1, max: 1 },
    models: ["watermark-decoder"],
    limits: WATERMARK_LIMITS,
    artifacts: [],
  },
  "face.analyze": {
    name: "face.analyze",
    path: null,
    summary: "Faces largest first: box, score, 68 landmarks and a K-bit identity code (descriptor on request).",
    scope: "protect",
    params: z
      .object({
        include_descriptor: z.boolean().default(false),
        // Which chip the returned descriptor comes from: "box" = face-api's axis-aligned dlib box (the one the
        // identity code always uses), "rotated" = the eye-levelled chip that asset records sealed until the
        // jittered variant, "rotated_jitter" = the mean over the eye-levelled chips of seven jittered detection
        // boxes, what asset records seal now (models/identity/CARD.md section 3, "Record comparison").
        descriptor_chip: z.enum(DESCRIPTOR_CHIPS).default("box"),
        // More descriptors per face, in `extra_descriptors` keyed by chip: verify asks for the chips of older
        // records too, since it analyses the image before it knows which record (and chip) the watermark names.
        extra_descriptor_chips: z.array(z.enum(DESCRIPTOR_CHIPS)).max(2).default([]),
        max_faces: z.number().int().min(1).max(20).default(10),
        // Detector confidence cut. Below 0.5 only together with a region: a low cut over the whole image
        // would admit non-faces, while at a place where a face was protected it recovers swapped faces whose
        // blending lowered the score (models/identity/CARD.md section 4).
        min_score: z.number().min(0.05).max(1).default(0.5),
        // Look for one face at this box only, in fractions of the image's width and height (so it survives
        // resized copies); the answer has at most one face, the detection overlapping it most.
        region: z
          .object({
            x: z.number().min(0).max(1),
            y: z.number().min(0).max(1),
            width: z.number().gt(0).max(1),
            height: z.number().gt(0).max(1),
          })
          .strict()
          .optional(),
        // The same look at each of these boxes in one job (verify looks at every protected face the first
        // analysis missed): at most one face per box, each with `region_index`, its box's index here.
        regions: z
          .array(
            z
              .object({
                x: z.number().min(0).max(1),
                y: z.number().min(0).max(1),
                width: z.number().gt(0).max(1),
                height: z.number().gt(0).max(1),
              })
              .strict(),
          )
          .min(1)
          .max(20)
          .optional(),
      })
      .strict()
      .refine((p) => p.min_score >= 0.5 || p.region !== undefined || p.regions !== undefined, {
        message: "min_score below 0.5 needs a region",
        path: ["min_score"],
      })
      .refine((p) => p.region === undefined || p.regions === undefined, {
        message: "region and regions exclude each other",
        path: ["regions"],
      }),
    inputs: { min: 1, max: 1 },
    // TF.js models (not ONNX), pinned by sha256 in gpu-runner/src/face/models.ts; see models/identity/CARD.md.
    models: [],
    // At least 32 px: face analysis drops faces whose box is under 32 px on its shorter side (minFaceSize in
    // gpu-runner/src/face/analyze.ts), so a smaller image cannot hold one. At most 16:1: the detector sees the
    // image padded to a square and resized to 512 px, so at r:1 the shorter side gets 512/r px. Measured with the
    // astronaut photo on a grey canvas (2026-12-01): a face filling 70 % of the shorter side was found up to 16:1
    // (score 0.78) and not at 20:1; a face a quarter of it (portrait framing) up to 8:1 (0.53), not at 10:1.
    // Past 16:1 no face can be found, so the job is refused with a clear code rather than answered "no faces".
    limits: FACE_ANALYZE_LIMITS,
    artifacts: [],
  },
  protect: {
    name: "protect",
    path: "protect",
    runs_on: "worker",
    stages: ["face.analyze", "watermark.embed"],
    summary: "Watermark an image with its faces' encrypted identity. Output: the asset record and the marked image's URL.",
    scope: "protect",
    params: z
      .object({
        owner: z.string().max(200).nullable().default(null),
        external_ref: z.string().max(200).nullable().default(null),
        strength: z.coerce.number().min(0.1).max(4).default(1),
        format: z.enum(["png", "jpeg", "webp"]).default("png"),
      })
      .strict(),
    inputs: { min: 1, max: 1 },
    models: [],
    limits: strictestOf(FACE_ANALYZE_LIMITS, WATERMARK_LIMITS),
    artifacts: [],
  },
  verify: {
    name: "verify",
    path: "verify",
    runs_on: "worker",
    stages: ["face.analyze", "watermark.decode"],
    summary: "Verdict authentic | face_swapped | not_protected | inconclusive, with its evidence and the traced source.",
    scope: "verify",
    params: z.object({}).strict(),
    inputs: { min: 1, max: 1 },
    models: [],
    limits: strictestOf(FACE_ANALYZE_LIMITS, WATERMARK_LIMITS),
    artifacts: [],
  },
  "enhance.lowlight": {
    name: "enhance.lowlight",
    path: "enhance/lowlight",
    summary: "Low-light enhancement with illumination-aware gamma correction.",
    scope: "restore",
    params: z.object({ format: z.enum(["png", "jpeg", "webp"]).default("png") }).strict(),
    inputs: { min: 1, max: 1 },
    models: ["lowlight-iagc"],
    // The enhancement runs in 1024 px tiles plus a 128 x 128 area thumbnail of the whole image, so any size works;
    // panoramas (4:1 to 10:1) are ordinary low-light subjects, and 20:1 leaves them room. Beyond it the thumbnail
    // averages 20x more columns than rows into each sample, and the gamma map stops describing the scene.
    limits: TILED_RESTORATION_LIMITS,
    artifacts: [{ name: "image", content_type: "image/png" }],
  },
  "enhance.derain": {
    name: "enhance.derain",
    path: "enhance/derain",
    summary: "Rain removal (streaks and the vapour veil), with the estimated transmission and rain maps on request.",
    scope: "restore",
    params: z
      .object({
        method: z.enum(DERAIN_METHOD_NAMES).default(DERAIN_DEFAULT_METHOD),
        format: z.enum(["png", "jpeg", "webp"]).default("png"),
        // How much of the veil to remove, 0 (streaks only) to 1 (the model's full inversion); the formula is in
        // gpu-runner/src/operations/derain.ts.
        dehaze: z.coerce.number().min(0).max(1).default(1),
        // Query strings and form fields carry "true" / "false"; JSON (and the runner's ticket) a boolean.
        maps: z.union([z.boolean(), z.stringbool({ truthy: ["true", "1"], falsy: ["false", "0"] })]).default(false),
      })
      .strict(),
    inputs: { min: 1, max: 1 },
    models: Object.values(DERAIN_METHODS),
    // Tiled like lowlight (1024 px tiles and a 128 x 128 thumbnail for A), so the same size and shape limits: 12 MP
    // photos with room, panoramas up to 20:1. Any size runs (the graph takes odd tile sizes).
    limits: TILED_RESTORATION_LIMITS,
    artifacts: [
      { name: "image", content_type: "image/png" },
      { name: "transmission", content_type: "image/png", when: "maps" },
      { name: "rain", content_type: "image/png", when: "maps" },
    ],
  },
} as const satisfies Record<string, OperationSpec>;

export type OperationName = keyof typeof OPERATIONS;
export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[];

export function getOperation(name: string): OperationSpec | undefined {
  return (OPERATIONS as Record<string, OperationSpec>)[name];
}

/** Whether runners lease jobs of this operation (it has a pipeline), as opposed to the worker running it. */
export const runsOnRunner = (spec: OperationSpec): boolean => (spec.runs_on ?? "runner") === "runner";

/** The operations runners lease: the ones with a pipeline, a queue gauge and an autoscaler trigger. */
export const RUNNER_OPERATION_NAMES = OPERATION_NAMES.filter((n) => runsOnRunner(getOperation(n)!));
