/**
 * The verify decision, from three facts the worker has once the child jobs are done: what
 * `watermark.decode` recovered, what `face.analyze` found in the image now, and whether the payload
 * authenticates under the tenant's keys (assets.ts tracePayload). Pure, so every branch is testable.
 */

import { z } from "zod";
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

export const AnalyzedFaces = z.object({
  faces: z.array(z.object({ identity_code: z.string().regex(/^[0-9a-fA-F]+$/), score: z.number().optional() }).passthrough()),
});

const Rate = z.object({ rate: z.number().min(0).max(1), ci95: z.tuple([z.number(), z.number()]) });
/** The face engineer's models/identity/calibration.json, as far as verify needs it. */
export const Calibration = z
  .object({
    code_bits: z.number().int().positive(),
    threshold: z.number().int().nonnegative(),
    false_alarm: Rate,
    miss: Rate,
  })
  .passthrough();
export type Calibration = z.infer<typeof Calibration>;

const FileRate = z.object({ rate: z.number().min(0).max(1), low: z.number(), high: z.number() }).passthrough();
/** models/identity/calibration.json as the face engineer writes it (version 1). */
export const CalibrationFile = z
  .object({
    version: z.literal(1),
    code: z.object({ bits: z.number().int().positive() }).passthrough(),
    hamming_radius: z.number().int().nonnegative(),
    false_alarm_rate: FileRate,
    miss_rate: FileRate,
  })
  .passthrough();

export function calibrationFromFile(json: unknown): Calibration {
  const f = CalibrationFile.parse(json);
  return {
    code_bits: f.code.bits,
    threshold: f.hamming_radius,
    false_alarm: { rate: f.false_alarm_rate.rate, ci95: [f.false_alarm_rate.low, f.false_alarm_rate.high] },
    miss: { rate: f.miss_rate.rate, ci95: [f.miss_rate.low, f.miss_rate.high] },
  };
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
    identity_distance: number | null;
    identity_distances: number[];
    threshold: number;
    code_bits: number;
    false_alarm_rate: { rate: number; ci95: [number, number] };
    miss_rate: { rate: number; ci95: [number, number] };
  };
  source: { asset_id: string; owner: string | null; protected_at: string } | null;
}

/**
 * Decision rule:
 *  - no watermark (decoder not detected) → not_protected;
 *  - watermark present but not authenticated by this tenant's keys (another tenant, tampered) → not_protected;
 *  - provenance payload: no face now → authentic; a face now where none was protected → inconclusive;
 *  - face payload: no face now → inconclusive (occluded, cropped out or removed: cannot compare);
 *    otherwise d = min over faces now of Hamming(code in watermark, face code);
 *    d ≤ threshold → authentic, else face_swapped.
 * The minimum over faces means "the protected main face is still in the picture"; a swap of a secondary
 * face is not seen, because the payload carries only the largest face's code.
 */
export function decideVerdict(
  decode: DecodeResult,
  facesNow: string[],
  traced: TracedPayload | null,
  calibration: Calibration,
): VerifyOutcome {
  const evidence: VerifyOutcome["evidence"] = {
    watermark_detected: decode.detected,
    p_value: decode.p_value,
    bits_recovered: decode.bits.length * 4,
    bit_errors_corrected: decode.errors ?? null,
    payload_authenticated: traced !== null,
    payload_mode: traced?.opened.mode ?? null,
    faces_found: facesNow.length,
    identity_distance: null,
    identity_distances: [],
    threshold: calibration.threshold,
    code_bits: calibration.code_bits,
    false_alarm_rate: calibration.false_alarm,
    miss_rate: calibration.miss,
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
  evidence.identity_distance = Math.min(...distances);
  return evidence.identity_distance <= calibration.threshold
    ? out("authentic", "the face matches the identity sealed in the watermark")
    : out("face_swapped", "the face differs from the identity sealed in the watermark");
}
