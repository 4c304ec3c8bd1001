/**
 * The verify decision, from three facts the worker has once the child jobs are done: what
 * `watermark.decode` recovered, what `face.analyze` found in the image now, and whether the payload
 * authenticates under the tenant's keys (assets.ts tracePayload). Pure, so every branch is testable.
 */

import { z } from "zod";
import { DESCRIPTOR_CHIPS, isDescriptorChip, type DescriptorChip } from "../../../contract/operations.ts";
import { hamming, hexToBits } from "./bits.ts";
import type { TracedPayload } from "./assets.ts";

/** `watermark.decode`'s result (gpu-runner/src/operations/watermark-code.ts DecodedPayload). */
export const DecodeResult = z.object({
  bits: z.string().regex(/^[0-9a-fA-F]+$/),
  corrected: z.boolean().optional(),
  confidence: z.array(z.number()).optional(),
  errors: z.number().nullable().optional(),
  p_value: z.number().min(0).max(1),
  detected: z.boolean(),
});
export type DecodeResult = z.infer<typeof DecodeResult>;

const Box = z.object({ x: z.number(), y: z.number(), width: z.number().nonnegative(), height: z.number().nonnegative() });
export const AnalyzedFaces = z.object({
  faces: z.array(
    z
      .object({
        identity_code: z.string().regex(/^[0-9a-fA-F]+$/),
        score: z.number().optional(),
        box: Box.optional(),
        descriptor: z.array(z.number().finite()).optional(),
        descriptor_chip: z.enum(DESCRIPTOR_CHIPS).optional(),
        /** Descriptors of further chips (face.analyze extra_descriptor_chips), for records sealed with them. */
        extra_descriptors: z.partialRecord(z.enum(DESCRIPTOR_CHIPS), z.array(z.number().finite())).optional(),
      })
      .passthrough(),
  ),
  /** The analysed image's size (face.analyze reports it), to put boxes in fractions of it. */
  image: z.object({ width: z.number().int().positive(), height: z.number().int().positive() }).optional(),
});
export type AnalyzedFaces = z.infer<typeof AnalyzedFaces>;

const Rate = z.object({ rate: z.number().min(0).max(1), ci95: z.tuple([z.number(), z.number()]) });
/**
 * Where a comparison's reported rates come from: "leave_one_photo_out" = the calibration file's out-of-sample
 * figures (the rule re-fitted without each held-out photo, that photo scored with the fold's threshold);
 * "in_sample" = scored on the same faces the threshold was fitted on (optimistic). Absent: "in_sample".
 */
export const RatesBasis = z.enum(["leave_one_photo_out", "in_sample"]);
export type RatesBasis = z.infer<typeof RatesBasis>;
/** The face engineer's models/identity/calibration.json, as far as verify needs it. */
export const Calibration = z
  .object({
    code_bits: z.number().int().positive(),
    /** Hamming radius for the payload's code. */
    threshold: z.number().int().nonnegative(),
    /** The rates verify reports for this comparison; `rates_basis` says whether they are out of sample. */
    false_alarm: Rate,
    miss: Rate,
    rates_basis: RatesBasis.optional(),
    /**
     * Euclidean threshold for the descriptor sealed in the asset record, for records of `chip`; `by_chip` holds
     * the thresholds of other chips (older records), each calibrated on its own descriptors. A record whose
     * chip has no threshold here is not compared: the payload code decides. Absent: the payload code decides.
     */
    record: z
      .object({
        metric: z.literal("euclidean"),
        chip: z.enum(DESCRIPTOR_CHIPS).default("rotated"),
        threshold: z.number().positive(),
        false_alarm: Rate,
        miss: Rate,
        rates_basis: RatesBasis.optional(),
        by_chip: z
          .partialRecord(
            z.enum(DESCRIPTOR_CHIPS),
            z.object({ threshold: z.number().positive(), false_alarm: Rate, miss: Rate, rates_basis: RatesBasis.optional() }),
          )
          .default({}),
      })
      .optional(),
  })
  .passthrough();
export type Calibration = z.infer<typeof Calibration>;

const FileRate = z.object({ rate: z.number().min(0).max(1), low: z.number(), high: z.number() }).passthrough();
/**
 * A comparison's leave-one-photo-out figures (models/identity/scripts/report.ts outOfSample, and the payload
 * code's top-level `out_of_sample`): benign false alarms and swap detection, each with its Wilson interval.
 */
const FileOutOfSample = z.object({ benign_false_alarm: FileRate, swap_detection: FileRate }).passthrough();
/** models/identity/calibration.json as the face engineer writes it (version 1). */
export const CalibrationFile = z
  .object({
    version: z.literal(1),
    code: z.object({ bits: z.number().int().positive() }).passthrough(),
    hamming_radius: z.number().int().nonnegative(),
    false_alarm_rate: FileRate,
    miss_rate: FileRate,
    out_of_sample: FileOutOfSample.optional(),
    record_descriptor: z
      .object({
        metric: z.literal("euclidean"),
        chip: z.string().optional(),
        threshold: z.number().positive(),
        false_alarm_rate: FileRate,
        miss_rate: FileRate,
        out_of_sample: FileOutOfSample.optional(),
        by_chip: z
          .record(
            z.string(),
            z
              .object({
                threshold: z.number().positive(),
                false_alarm_rate: FileRate,
                miss_rate: FileRate,
                out_of_sample: FileOutOfSample.optional(),
              })
              .passthrough(),
          )
          .optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

function knownChip(c: string): DescriptorChip {
  if (!isDescriptorChip(c)) throw new RangeError(`calibration for unknown descriptor chip ${c}`);
  return c;
}

/** The record threshold and rates for descriptors of `chip`, or null when the calibration has none. */
export function recordCalibration(
  calibration: Calibration,
  chip: DescriptorChip,
): { threshold: number; false_alarm: Calibration["false_alarm"]; miss: Calibration["miss"]; rates_basis?: RatesBasis } | null {
  const rec = calibration.record;
  if (!rec) return null;
  if (rec.chip === chip) return rec;
  return rec.by_chip[chip] ?? null;
}

type FileRate = z.infer<typeof FileRate>;
const rate = (r: FileRate) => ({ rate: r.rate, ci95: [r.low, r.high] as [number, number] });

/**
 * The rates verify reports for one comparison. Leave-one-photo-out when the file has them: every threshold
 * was fitted on the same 23 faces it is scored on, so the in-sample rates are optimistic (the shipped record
 * chip shows 0/224 benign false alarms in sample, 1/224 out of sample); in sample otherwise (older files).
 * Miss = 1 - swap detection, its interval mirrored.
 */
function reportedRates(
  inSample: { false_alarm_rate: FileRate; miss_rate: FileRate },
  outOfSample: z.infer<typeof FileOutOfSample> | undefined,
): { false_alarm: Calibration["false_alarm"]; miss: Calibration["miss"]; rates_basis: RatesBasis } {
  if (!outOfSample)
    return { false_alarm: rate(inSample.false_alarm_rate), miss: rate(inSample.miss_rate), rates_basis: "in_sample" };
  const d = outOfSample.swap_detection;
  return {
    false_alarm: rate(outOfSample.benign_false_alarm),
    miss: { rate: 1 - d.rate, ci95: [1 - d.high, 1 - d.low] },
    rates_basis: "leave_one_photo_out",
  };
}

export function calibrationFromFile(json: unknown): Calibration {
  const f = CalibrationFile.parse(json);
  const rec = f.record_descriptor;
  return {
    code_bits: f.code.bits,
    threshold: f.hamming_radius,
    ...reportedRates(f, f.out_of_sample),
    ...(rec
      ? {
          record: {
            metric: rec.metric,
            // Files before the chip was written calibrated the eye-levelled chip.
            chip: knownChip(rec.chip ?? "rotated"),
            threshold: rec.threshold,
            ...reportedRates(rec, rec.out_of_sample),
            // Chips this worker cannot ask the runner for are left out (their records fall back to the payload).
            by_chip: Object.fromEntries(
              Object.entries(rec.by_chip ?? {})
                .filter(([c]) => isDescriptorChip(c))
                .map(([c, v]) => [c, { threshold: v.threshold, ...reportedRates(v, v.out_of_sample) }]),
            ),
          },
        }
      : {}),
  };
}

/** What the asset record lets verify compare, assembled by the flow (assets.ts assetFaceRecords). */
export interface RecordComparison {
  /** The chip the record's descriptor was computed on; the faces now are described on the same chip. */
  chip: DescriptorChip;
  /** The protected main face's descriptor, decrypted from the record. */
  descriptor: ArrayLike<number>;
  /** Descriptors of the faces now at the protected face's place (normalised box IoU >= PLACE_MIN_IOU). */
  facesAtPlace: ArrayLike<number>[];
}

export function euclidean(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError("descriptors differ in length");
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

export type Verdict = "authentic" | "face_swapped" | "not_protected" | "inconclusive";

export interface VerifyOutcome {
  verdict: Verdict;
  /** Why, in one sentence, for people reading the API response. */
  reason: string;
  evidence: {
    watermark_detected: boolean;
    p_value: number;
    bits_recovered: number;
    bit_errors_corrected: number | null;
    payload_authenticated: boolean;
    payload_mode: "face" | "provenance" | null;
    faces_found: number;
    /**
     * Which comparison decided: "record" = euclidean distance between the descriptor sealed in the asset
     * record and the face now at its place; "payload" = Hamming distance to the watermark's 32-bit code
     * (when the record is deleted, predates stored descriptors, or no face is at the protected place).
     */
    identity_basis: "record" | "payload" | null;
    identity_metric: "euclidean" | "hamming" | null;
    /** With basis "record": the face chip both descriptors were computed on (the record's). */
    identity_descriptor_chip?: DescriptorChip;
    /** The deciding distance (see identity_basis) and its threshold. */
    identity_distance: number | null;
    /** Hamming distances of each face now to the payload's code (always, when there is a face and a code). */
    identity_distances: number[];
    payload_identity_distance: number | null;
    /** Whether verify looked a second time at the protected face's place (flows.ts, region look). */
    region_search: boolean;
    threshold: number;
    code_bits: number;
    /** Benign false alarms and missed swaps of the deciding comparison at its threshold, with 95 % intervals. */
    false_alarm_rate: { rate: number; ci95: [number, number] };
    miss_rate: { rate: number; ci95: [number, number] };
    /**
     * Where those two rates come from: "leave_one_photo_out" (out of sample; what calibration.json holds today
     * for both comparisons) or "in_sample" (a calibration without out-of-sample figures). Added after the
     * rates themselves; clients that do not know it can ignore it.
     */
    rates_basis: RatesBasis;
  };
  source: { asset_id: string; owner: string | null; protected_at: string } | null;
}

/**
 * Decision rule:
 *  - no watermark (decoder not detected) → not_protected;
 *  - watermark present but not authenticated by this tenant's keys (another tenant, tampered) → not_protected;
 *  - provenance payload: no face now → authentic; a face now where none was protected → inconclusive;
 *  - face payload: no face now → inconclusive (occluded, cropped out or removed: cannot compare);
 *    with the asset record's descriptor and a face now at the protected place (and a record threshold in
 *    the calibration): d = euclidean(descriptor sealed at protect, descriptor now), the record's threshold;
 *    otherwise d = min over faces now of Hamming(code in watermark, face code), the Hamming radius;
 *    d ≤ threshold → authentic, else face_swapped.
 * The record comparison uses 128 floats instead of 32 bits (AUC and the detection at <= 1 % benign false
 * alarms are higher, models/identity/CARD.md section 3) and matches the face by place, not by size rank.
 * The payload minimum over faces means "the protected main face is still in the picture"; a swap of a
 * secondary face is not seen, because the payload carries only the largest face's code.
 */
export function decideVerdict(
  decode: DecodeResult,
  facesNow: string[],
  traced: TracedPayload | null,
  calibration: Calibration,
  record: RecordComparison | null = null,
): VerifyOutcome {
  const evidence: VerifyOutcome["evidence"] = {
    watermark_detected: decode.detected,
    p_value: decode.p_value,
    bits_recovered: decode.bits.length * 4,
    bit_errors_corrected: decode.errors ?? null,
    payload_authenticated: traced !== null,
    payload_mode: traced?.opened.mode ?? null,
    faces_found: facesNow.length,
    identity_basis: null,
    identity_metric: null,
    identity_distance: null,
    identity_distances: [],
    payload_identity_distance: null,
    region_search: false,
    threshold: calibration.threshold,
    code_bits: calibration.code_bits,
    false_alarm_rate: calibration.false_alarm,
    miss_rate: calibration.miss,
    rates_basis: calibration.rates_basis ?? "in_sample",
  };
  const source = traced
    ? {
        asset_id: traced.asset.id,
        owner: traced.asset.owner,
        protected_at: new Date(traced.asset.protected_at).toISOString(),
      }
    : null;
  const out = (verdict: Verdict, reason: string): VerifyOutcome => ({ verdict, reason, evidence, source });

  if (!decode.detected) return out("not_protected", "no Vigil watermark was detected");
  if (!traced) return out("not_protected", "a watermark is present but it does not authenticate under this tenant's keys");
  if (traced.opened.mode === "provenance") {
    return facesNow.length === 0
      ? out("authentic", "provenance watermark intact; the image was protected without faces")
      : out("inconclusive", "the image was protected without a face but now shows one; identities cannot be compared");
  }
  if (facesNow.length === 0) return out("inconclusive", "the protected face is no longer detectable in the image");
  const code = traced.opened.code!;
  const distances = facesNow.map((hex) => {
    try {
      return hamming(code, hexToBits(hex, code.length));
    } catch {
      return code.length;
    }
  });
  evidence.identity_distances = distances;
  evidence.payload_identity_distance = Math.min(...distances);
  // Like with like: the threshold calibrated on the record's own chip (records of an older chip keep theirs).
  const rec = record ? recordCalibration(calibration, record.chip) : null;
  if (record && rec && record.facesAtPlace.length > 0) {
    const d = Math.min(...record.facesAtPlace.map((f) => euclidean(record.descriptor, f)));
    Object.assign(evidence, {
      identity_basis: "record",
      identity_metric: "euclidean",
      identity_distance: Math.round(d * 1e4) / 1e4,
      identity_descriptor_chip: record.chip,
      threshold: rec.threshold,
      false_alarm_rate: rec.false_alarm,
      miss_rate: rec.miss,
      rates_basis: rec.rates_basis ?? "in_sample",
    });
    return d <= rec.threshold
      ? out("authentic", "the face matches the protected face's descriptor in the asset record")
      : out("face_swapped", "the face differs from the protected face's descriptor in the asset record");
  }
  evidence.identity_basis = "payload";
  evidence.identity_metric = "hamming";
  evidence.identity_distance = evidence.payload_identity_distance;
  return evidence.identity_distance <= calibration.threshold
    ? out("authentic", "the face matches the identity sealed in the watermark")
    : out("face_swapped", "the face differs from the identity sealed in the watermark");
}
