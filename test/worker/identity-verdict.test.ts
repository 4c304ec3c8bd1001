import { describe, expect, it } from "vitest";
import { testEnv } from "./helpers.ts";
import { bitsToHex, hexToBits } from "../../worker/src/identity/bits.ts";
import { createAsset, tracePayload } from "../../worker/src/identity/assets.ts";
import calibrationFile from "../../models/identity/calibration.json";
import {
  Calibration,
  calibrationFromFile,
  DecodeResult,
  decideVerdict,
  type RecordComparison,
} from "../../worker/src/identity/verdict.ts";

const env = testEnv;
const tenant = () => `ten_${crypto.randomUUID().replaceAll("-", "")}`;
/** Shape of models/identity/calibration.json; the numbers here are test inputs, not measurements. */
const calibration = Calibration.parse({
  code_bits: 32,
  threshold: 8,
  false_alarm: { rate: 0.01, ci95: [0.004, 0.02] },
  miss: { rate: 0.03, ci95: [0.01, 0.06] },
});
/** A calibration.json rate as the evidence reports it; a miss rate from a detection rate, interval mirrored. */
const fromFile = (r: { rate: number; low: number; high: number }) => ({ rate: r.rate, ci95: [r.low, r.high] });
const missFromDetection = (d: { rate: number; low: number; high: number }) => ({
  rate: 1 - d.rate,
  ci95: [1 - d.high, 1 - d.low],
});
const decoded = (bits: string, detected = true): DecodeResult =>
  DecodeResult.parse({ bits, detected, p_value: detected ? 1e-12 : 0.4, errors: detected ? 3 : null, corrected: detected });

/**
 * A one-face record comparison as the flow assembles it: the sealed descriptor and, when a face was found at its
 * place in the copy, that face's descriptor.
 */
const oneFace = (chip: "rotated" | "rotated_jitter" | "box", descriptor: number[], now: number[] | null): RecordComparison => ({
  faces: [
    {
      record_index: 0,
      chip,
      descriptor,
      box: { x: 0.1, y: 0.1, width: 0.2, height: 0.3 },
      visible_share: 1,
      presence: "in_copy",
      now: now ? { descriptor: now, found_by: "analysis" } : null,
    },
  ],
});

/** Flips `n` distinct bits of a hex code. */
function perturb(hex: string, n: number): string {
  const bits = hexToBits(hex, hex.length * 4);
  for (let i = 0; i < n; i++) bits[(i * 7) % bits.length]! ^= 1;
  return bitsToHex(bits);
}

async function protectedAsset(code: string | null) {
  const t = tenant();
  const faces = code ? [{ box: { x: 0, y: 0, width: 100, height: 100 }, score: 0.99, identity_code: code }] : [];
  const made = await createAsset(env, { tenantId: t, faces, owner: "studio" });
  return { t, ...made };
}

describe("verify decision", () => {
  it("same face (within the threshold) → authentic, with the source traced", async () => {
    const { t, row, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    const out = decideVerdict(decoded(payloadHex), [perturb("a1b2c3d4", 3)], traced, calibration);
    expect(out.verdict).toBe("authentic");
    expect(out.evidence.identity_distance).toBe(3);
    expect(out.source).toEqual({ asset_id: row.id, owner: "studio", protected_at: new Date(row.protected_at).toISOString() });
    expect(out.evidence.false_alarm_rate.ci95).toEqual([0.004, 0.02]);
  });

  it("different face → face_swapped, source still traced", async () => {
    const { t, row, payloadHex } = await protectedAsset("a1b2c3d4");
    const out = decideVerdict(
      decoded(payloadHex),
      [perturb("a1b2c3d4", 15)],
      await tracePayload(env, t, payloadHex),
      calibration,
    );
    expect(out.verdict).toBe("face_swapped");
    expect(out.evidence.identity_distance).toBe(15);
    expect(out.source?.asset_id).toBe(row.id);
  });

  it("the protected face among several faces now → authentic (minimum distance)", async () => {
    const { t, payloadHex } = await protectedAsset("0f0f0f0f");
    const out = decideVerdict(decoded(payloadHex), ["f0f0f0f0", "0f0f0f0e"], await tracePayload(env, t, payloadHex), calibration);
    expect(out.verdict).toBe("authentic");
    expect(out.evidence.identity_distances).toEqual([32, 1]);
  });

  it("no watermark → not_protected, no source", async () => {
    const out = decideVerdict(decoded("0000000000000000", false), ["a1b2c3d4"], null, calibration);
    expect(out).toMatchObject({ verdict: "not_protected", source: null });
  });

  it("another tenant's watermark → not_protected", async () => {
    const { payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, tenant(), payloadHex);
    expect(traced).toBeNull();
    expect(decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, calibration).verdict).toBe("not_protected");
  });

  it("provenance-only assets: authentic without faces, inconclusive when a face appeared", async () => {
    const { t, payloadHex } = await protectedAsset(null);
    const traced = await tracePayload(env, t, payloadHex);
    expect(decideVerdict(decoded(payloadHex), [], traced, calibration).verdict).toBe("authentic");
    expect(decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, calibration).verdict).toBe("inconclusive");
  });

  it("face protected but none found now → inconclusive; malformed face codes count as maximally distant", async () => {
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    expect(decideVerdict(decoded(payloadHex), [], traced, calibration).verdict).toBe("inconclusive");
    const out = decideVerdict(decoded(payloadHex), ["abc"], traced, calibration);
    expect(out.verdict).toBe("face_swapped");
    expect(out.evidence.identity_distance).toBe(32);
  });

  it("rejects a calibration file without thresholds or rates", () => {
    expect(Calibration.safeParse({ code_bits: 32 }).success).toBe(false);
    expect(() => calibrationFromFile({ version: 1, code: { bits: 32 } })).toThrow();
  });

  it("reads the face engineer's calibration file: radius, and the payload code's leave-one-photo-out rates", () => {
    const c = calibrationFromFile(calibrationFile);
    expect(c.code_bits).toBe(32);
    expect(c.threshold).toBe(calibrationFile.hamming_radius);
    expect(c.false_alarm.ci95[0]).toBeLessThanOrEqual(c.false_alarm.rate);
    expect(c.false_alarm.ci95[1]).toBeGreaterThanOrEqual(c.false_alarm.rate);
    expect(c.false_alarm).toEqual(fromFile(calibrationFile.out_of_sample.benign_false_alarm));
    expect(c.miss).toEqual(missFromDetection(calibrationFile.out_of_sample.swap_detection));
    expect(c.rates_basis).toBe("leave_one_photo_out");
  });

  it("reads the record comparison's euclidean threshold and its leave-one-photo-out rates from the calibration file", () => {
    const c = calibrationFromFile(calibrationFile);
    const rec = calibrationFile.record_descriptor;
    expect(c.record).toMatchObject({
      metric: "euclidean",
      chip: rec.chip,
      threshold: rec.threshold,
      false_alarm: fromFile(rec.out_of_sample.benign_false_alarm),
      miss: missFromDetection(rec.out_of_sample.swap_detection),
      rates_basis: "leave_one_photo_out",
    });
    // Not the in-sample figures: the threshold was fitted on these faces (0/224 benign false alarms in sample).
    expect(c.record!.false_alarm.rate).not.toBe(rec.false_alarm_rate.rate);
    // Older records' chip keeps its own threshold and rates; chips the worker cannot compute are left out.
    const byChip = rec.by_chip;
    expect(c.record!.by_chip.rotated).toEqual({
      threshold: byChip.rotated.threshold,
      false_alarm: fromFile(byChip.rotated.out_of_sample.benign_false_alarm),
      miss: missFromDetection(byChip.rotated.out_of_sample.swap_detection),
      rates_basis: "leave_one_photo_out",
    });
    expect(c.record!.by_chip.rotated_jitter).toEqual({
      threshold: byChip.rotated_jitter.threshold,
      false_alarm: fromFile(byChip.rotated_jitter.out_of_sample.benign_false_alarm),
      miss: missFromDetection(byChip.rotated_jitter.out_of_sample.swap_detection),
      rates_basis: "leave_one_photo_out",
    });
    expect(Object.keys(c.record!.by_chip).sort()).toEqual(["rotated", "rotated_jitter"]);
    // A file without the section still parses: verify then decides on the payload code alone.
    const { record_descriptor: _dropped, ...older } = calibrationFile;
    expect(calibrationFromFile(older).record).toBeUndefined();
  });

  it("falls back to the in-sample rates, and says so, where the file has no out-of-sample figures", () => {
    const { out_of_sample: _top, record_descriptor, ...rest } = calibrationFile;
    const { out_of_sample: _rec, by_chip, ...recRest } = record_descriptor;
    const { out_of_sample: _rot, ...rotated } = by_chip.rotated;
    // The shipped chip keeps its out-of-sample block: each comparison falls back on its own.
    const older = { ...rest, record_descriptor: { ...recRest, by_chip: { ...by_chip, rotated } } };
    const c = calibrationFromFile(older);
    expect(c).toMatchObject({
      false_alarm: fromFile(calibrationFile.false_alarm_rate),
      miss: fromFile(calibrationFile.miss_rate),
      rates_basis: "in_sample",
      record: {
        false_alarm: fromFile(record_descriptor.false_alarm_rate),
        miss: fromFile(record_descriptor.miss_rate),
        rates_basis: "in_sample",
      },
    });
    expect(c.record!.by_chip.rotated).toMatchObject({
      false_alarm: fromFile(by_chip.rotated.false_alarm_rate),
      miss: fromFile(by_chip.rotated.miss_rate),
      rates_basis: "in_sample",
    });
    expect(c.record!.by_chip.rotated_jitter).toMatchObject({
      false_alarm: fromFile(by_chip.rotated_jitter.out_of_sample.benign_false_alarm),
      rates_basis: "leave_one_photo_out",
    });
    // A hand-written calibration without rates_basis reports in-sample.
    expect(decideVerdict(decoded("00", false), [], null, calibration).evidence.rates_basis).toBe("in_sample");
  });

  it("verify's evidence carries the record comparison's leave-one-photo-out rates from calibration.json", async () => {
    const c = calibrationFromFile(calibrationFile);
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    const base = Array.from({ length: 128 }, (_, i) => Math.sin(i) * 0.1);
    const evidenceFor = (chip: "rotated" | "rotated_jitter") =>
      decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, c, oneFace(chip, base, base)).evidence;
    for (const chip of ["rotated_jitter", "rotated"] as const) {
      const oos = calibrationFile.record_descriptor.by_chip[chip].out_of_sample;
      expect(evidenceFor(chip)).toMatchObject({
        identity_basis: "record",
        identity_descriptor_chip: chip,
        false_alarm_rate: fromFile(oos.benign_false_alarm),
        miss_rate: missFromDetection(oos.swap_detection),
        rates_basis: "leave_one_photo_out",
      });
    }
    const shipped = calibrationFile.record_descriptor.out_of_sample;
    expect(evidenceFor("rotated_jitter").false_alarm_rate).toEqual(fromFile(shipped.benign_false_alarm));
    // The payload code's path reports its own leave-one-photo-out rates.
    const payload = decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, c).evidence;
    expect(payload).toMatchObject({
      identity_basis: "payload",
      false_alarm_rate: fromFile(calibrationFile.out_of_sample.benign_false_alarm),
      miss_rate: missFromDetection(calibrationFile.out_of_sample.swap_detection),
      rates_basis: "leave_one_photo_out",
    });
  });

  // models/identity/scripts/report.ts marginRule (CARD.md section 3): the record threshold sits midway between
  // the benign side (<= 1 % benign above) and the swap side (<= 1 % of swaps at or below), not at the benign
  // tail; every leave-one-photo-out fold re-derives both sides.
  it("the record thresholds it reads sit midway between the benign and the swap side, for the shipped and the older chip", () => {
    const rec = calibrationFile.record_descriptor;
    const midway = (t: { threshold: number; threshold_benign_side: number; threshold_swap_side: number }) => {
      expect(t.threshold_swap_side).toBeGreaterThan(t.threshold_benign_side);
      expect(t.threshold).toBe(
        Math.ceil((Math.round(t.threshold_benign_side * 1000) + Math.round(t.threshold_swap_side * 1000)) / 2) / 1000,
      );
      expect(t.threshold).toBeGreaterThan(t.threshold_benign_side);
      expect(t.threshold).toBeLessThan(t.threshold_swap_side);
    };
    midway(rec);
    expect(rec.by_chip[rec.chip as "rotated_jitter"].threshold).toBe(rec.threshold);
    midway(rec.by_chip.rotated);
    for (const f of rec.out_of_sample.folds)
      midway({ threshold: f.threshold, threshold_benign_side: f.t_benign, threshold_swap_side: f.t_swap });
    // What verify compares with is that threshold, not the previous rule's benign-tail one.
    const c = calibrationFromFile(calibrationFile);
    expect(c.record!.threshold).toBe(rec.threshold);
    expect(c.record!.threshold).toBeGreaterThan(rec.previous_rule.threshold);
    expect(c.record!.by_chip.rotated!.threshold).toBe(rec.by_chip.rotated.threshold);
    expect(c.record!.by_chip.rotated!.threshold).toBeGreaterThan(rec.by_chip.rotated.previous_rule.threshold);
  });
});

describe("verify decision against the asset record", () => {
  const withRecord = Calibration.parse({
    ...calibration,
    record: {
      metric: "euclidean",
      threshold: 0.45,
      false_alarm: { rate: 0.009, ci95: [0.002, 0.03] },
      miss: { rate: 0.15, ci95: [0.1, 0.2] },
    },
  });
  const base = Array.from({ length: 128 }, (_, i) => Math.cos(i) * 0.1);
  const moved = (by: number) => base.map((v, i) => (i === 0 ? v + by : v));

  it("a face at the protected place within the euclidean threshold → authentic, basis record, its own rates", async () => {
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    // The payload code alone would call this a swap (15 bits > radius 8): the record decides.
    const out = decideVerdict(
      decoded(payloadHex),
      [perturb("a1b2c3d4", 15)],
      traced,
      withRecord,
      oneFace("rotated", base, moved(0.3)),
    );
    expect(out.verdict).toBe("authentic");
    expect(out.evidence).toMatchObject({
      identity_basis: "record",
      identity_metric: "euclidean",
      identity_distance: 0.3,
      payload_identity_distance: 15,
      threshold: 0.45,
      false_alarm_rate: { rate: 0.009 },
      miss_rate: { ci95: [0.1, 0.2] },
    });
  });

  it("beyond the euclidean threshold → face_swapped even when the 32-bit code still matches", async () => {
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    const out = decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, withRecord, oneFace("rotated", base, moved(0.5)));
    expect(out.verdict).toBe("face_swapped");
    expect(out.evidence).toMatchObject({ identity_basis: "record", identity_distance: 0.5, payload_identity_distance: 0 });
  });

  it("a record of an older chip is compared with that chip's own threshold and rates; an uncalibrated chip falls back", async () => {
    const twoChips = Calibration.parse({
      ...calibration,
      record: {
        metric: "euclidean",
        chip: "rotated_jitter",
        threshold: 0.3,
        false_alarm: { rate: 0.009, ci95: [0.002, 0.03] },
        miss: { rate: 0.01, ci95: [0.0, 0.02] },
        by_chip: {
          rotated: { threshold: 0.45, false_alarm: { rate: 0.02, ci95: [0.01, 0.05] }, miss: { rate: 0.03, ci95: [0.01, 0.06] } },
        },
      },
    });
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    const at = (chip: "rotated" | "rotated_jitter" | "box") =>
      decideVerdict(decoded(payloadHex), ["a1b2c3d4"], traced, twoChips, oneFace(chip, base, moved(0.4)));
    // 0.4: within the older chip's 0.45, beyond the current chip's 0.3.
    expect(at("rotated")).toMatchObject({
      verdict: "authentic",
      evidence: {
        identity_basis: "record",
        identity_descriptor_chip: "rotated",
        threshold: 0.45,
        false_alarm_rate: { rate: 0.02 },
      },
    });
    expect(at("rotated_jitter")).toMatchObject({
      verdict: "face_swapped",
      evidence: {
        identity_basis: "record",
        identity_descriptor_chip: "rotated_jitter",
        threshold: 0.3,
        miss_rate: { rate: 0.01 },
      },
    });
    // No threshold for box-chip descriptors: the payload code (0 bits off) decides.
    expect(at("box")).toMatchObject({ verdict: "authentic", evidence: { identity_basis: "payload", threshold: 8 } });
  });

  it("no face at the protected place, or no record threshold → the payload code decides", async () => {
    const { t, payloadHex } = await protectedAsset("a1b2c3d4");
    const traced = await tracePayload(env, t, payloadHex);
    const elsewhere = decideVerdict(
      decoded(payloadHex),
      [perturb("a1b2c3d4", 2)],
      traced,
      withRecord,
      oneFace("rotated", base, null),
    );
    expect(elsewhere).toMatchObject({
      verdict: "authentic",
      evidence: { identity_basis: "payload", identity_metric: "hamming", threshold: 8 },
    });
    const noThreshold = decideVerdict(
      decoded(payloadHex),
      [perturb("a1b2c3d4", 2)],
      traced,
      calibration,
      oneFace("rotated", base, moved(0.9)),
    );
    expect(noThreshold.evidence).toMatchObject({ identity_basis: "payload", identity_distance: 2 });
    // And with no face at all it stays inconclusive, record or not.
    expect(decideVerdict(decoded(payloadHex), [], traced, withRecord, oneFace("rotated", base, null)).verdict).toBe(
      "inconclusive",
    );
  });
});
