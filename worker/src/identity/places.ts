/**
 * Where each protected face of an asset record is in the copy being verified, and which face now stands at
 * each place. Pure, so that the rule can be tested on its own (test/worker/identity-faces.test.ts).
 *
 * The record's boxes are fractions of the protected image; the decoded watermark geometry maps them into the
 * copy's frame (contract/watermark-geometry.ts mapBoxToCopy: 1:1 for the whole-frame codec 1, the recovered
 * crop, scale, rotation and mirror for the tiled codec 2). Each record face is then paired with at most one
 * face now, and each face now with at most one record face, by a rule that depends only on the boxes and faces
 * themselves: the pairs with the highest IoU first, ties broken by record index and then by a total order of
 * the faces (box, score, code, descriptor). So the same copy gives the same pairs whatever order face.analyze
 * lists its faces in, and a face is compared only with the record face at its own place.
 */

import type { DescriptorChip } from "../../../contract/operations.ts";
import {
  mapBoxToCopy,
  visibleShare,
  type NormBox,
  type Size,
  type WatermarkGeometry,
} from "../../../contract/watermark-geometry.ts";
import { normaliseBox, type RecordFace } from "./assets.ts";
import { WHOLE_FRAME, type AnalyzedFaces, type ProtectedFace, type RecordComparison } from "./verdict.ts";

/** A face now counts as "at the protected place" when its normalised box overlaps the mapped one this much. */
export const PLACE_MIN_IOU = 0.3;

/**
 * A protected face with less than this share of its mapped box inside the copy was cut away by the crop: it is
 * reported `not_in_copy` and not looked for. Half: a face cut in half still holds both eyes or the whole
 * profile half often enough for the detector, a face mostly outside does not.
 */
export const MIN_VISIBLE_SHARE = 0.5;

/**
 * Face analysis drops faces whose box is under 32 px on its shorter side (gpu-runner/src/face/analyze.ts
 * minFaceSize, also behind face.analyze's min_side in contract/operations.ts): a protected face that the copy
 * shows smaller than that cannot be found by any analysis, so it is `too_small`, not missing.
 */
export const MIN_FACE_PX = 32;

type Face = AnalyzedFaces["faces"][number];

/** A face now with its box in fractions of the copy (null without a box or without the image's size). */
export interface Candidate {
  face: Face;
  box: NormBox | null;
  found_by: "analysis" | "region";
}

/** One record face's place in the copy. */
export interface Place {
  record_index: number;
  /** The record's box mapped into the copy, not clipped. */
  box: NormBox;
  /** Its part inside the copy (what a detection of that face covers); null when none is. */
  visible: NormBox | null;
  visible_share: number;
  presence: ProtectedFace["presence"];
}

/** A box within this share of the frame's edge was cut by it (detector boxes of whole faces stop short of it). */
export const FRAME_CUT_MARGIN = 0.005;

/** Whether a box in fractions of its image reaches the image's border. */
export function cutByFrame(b: NormBox): boolean {
  const m = FRAME_CUT_MARGIN;
  return b.x <= m || b.y <= m || b.x + b.width >= 1 - m || b.y + b.height >= 1 - m;
}

export function boxIou(a: NormBox, b: NormBox): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / (a.width * a.height + b.width * b.height - w * h);
}

function clip(b: NormBox): NormBox | null {
  // Inside as it is (the usual case): the same numbers, without the arithmetic's rounding.
  if (b.x >= 0 && b.y >= 0 && b.x + b.width <= 1 && b.y + b.height <= 1) return b.width > 0 && b.height > 0 ? { ...b } : null;
  const x = Math.max(0, b.x);
  const y = Math.max(0, b.y);
  const width = Math.min(1, b.x + b.width) - x;
  const height = Math.min(1, b.y + b.height) - y;
  return width > 0 && height > 0 ? { x, y, width, height } : null;
}

/**
 * Each record face's place in the copy (null for a face stored without a box). A tiled geometry needs the
 * original's size; a record without it predates codec 2, whose images only a whole-frame reading can belong to,
 * so it maps 1:1.
 */
export function placeRecordFaces(
  records: readonly RecordFace[],
  geometry: WatermarkGeometry,
  original: Size | null,
  copy: Size,
): (Place | null)[] {
  const g = geometry.codec === 2 && !original ? WHOLE_FRAME : geometry;
  return records.map((r, record_index) => {
    if (!r.box_norm) return null;
    const box = mapBoxToCopy(g, original ?? copy, copy, r.box_norm);
    const visible = clip(box);
    const visible_share = visibleShare(box);
    const presence: Place["presence"] =
      !visible || visible_share < MIN_VISIBLE_SHARE
        ? "not_in_copy"
        : Math.min(visible.width * copy.width, visible.height * copy.height) < MIN_FACE_PX
          ? "too_small"
          : "in_copy";
    return { record_index, box, visible, visible_share, presence };
  });
}

/** The faces of one analysis with their boxes in fractions of its image. */
export function candidatesOf(analyzed: AnalyzedFaces, found_by: Candidate["found_by"]): Candidate[] {
  const image = analyzed.image;
  return analyzed.faces.map((face) => ({
    face,
    box: face.box && image ? normaliseBox(face.box, image) : null,
    found_by,
  }));
}

function compareNumbers(a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined): number {
  if (!a || !b) return (a ? 0 : 1) - (b ? 0 : 1);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** A total order of faces that depends on nothing but the faces: box, score, identity code, descriptor. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  const box = (c: Candidate) => (c.face.box ? [c.face.box.x, c.face.box.y, c.face.box.width, c.face.box.height] : undefined);
  return (
    compareNumbers(box(a), box(b)) ||
    (b.face.score ?? -1) - (a.face.score ?? -1) ||
    (a.face.identity_code < b.face.identity_code ? -1 : a.face.identity_code > b.face.identity_code ? 1 : 0) ||
    compareNumbers(a.face.descriptor, b.face.descriptor)
  );
}

/** Largest first (as face.analyze lists them), ties in compareCandidates order: the same list for any input order. */
export function canonicalOrder(cs: readonly Candidate[]): Candidate[] {
  const area = (c: Candidate) => (c.face.box ? c.face.box.width * c.face.box.height : -1);
  return [...cs].sort((a, b) => area(b) - area(a) || compareCandidates(a, b));
}

/**
 * Pairs places with faces one to one: among the pairs with IoU >= PLACE_MIN_IOU that `eligible` allows, the
 * highest IoU first, ties by record index and then compareCandidates.
 */
export function matchFaces(
  places: readonly Place[],
  faces: readonly Candidate[],
  eligible: (p: Place, c: Candidate) => boolean,
): Map<number, Candidate> {
  const pairs: { p: Place; c: Candidate; iou: number }[] = [];
  for (const p of places) {
    if (!p.visible || p.presence === "not_in_copy") continue;
    for (const c of faces) {
      if (!c.box || !eligible(p, c)) continue;
      const iou = boxIou(c.box, p.visible);
      if (iou >= PLACE_MIN_IOU) pairs.push({ p, c, iou });
    }
  }
  pairs.sort((a, b) => b.iou - a.iou || a.p.record_index - b.p.record_index || compareCandidates(a.c, b.c));
  const out = new Map<number, Candidate>();
  const used = new Set<Candidate>();
  for (const { p, c } of pairs) {
    if (out.has(p.record_index) || used.has(c)) continue;
    out.set(p.record_index, c);
    used.add(c);
  }
  return out;
}

export function descriptorOf(face: Face, chip: DescriptorChip): number[] | undefined {
  return face.descriptor_chip === chip ? face.descriptor : face.extra_descriptors?.[chip];
}

export interface VerifyPlan {
  /** Every face now: the analysis's in canonicalOrder, then the region look's. Their codes are decideVerdict's facesNow. */
  facesNow: Face[];
  /** The record faces verify can compare, each with the face now at its own place; null when none can be. */
  record: RecordComparison | null;
  /**
   * Indices into facesNow the payload's code is compared with, should the payload decide: the face at record
   * face 0's place when one is there, else the largest face now.
   */
  payloadFaces: number[];
  /**
   * The places a region look should search, in record order: comparable record faces in the copy that the
   * first analysis found no face at. Only computed before the region look has run (empty after).
   */
  regionLook: { record_index: number; box: NormBox }[];
}

export interface PlanInput {
  /** The record's faces, decrypted (assets.ts assetFaceRecords); empty without a face record. */
  records: readonly RecordFace[];
  /** Whether descriptors of `chip` are computed by verify's analysis and have a calibrated threshold. */
  comparable: (chip: DescriptorChip) => boolean;
  geometry: WatermarkGeometry;
  /** The protected image's size from the asset record; null in rows from before it was stored. */
  original: Size | null;
  analyzed: AnalyzedFaces;
  /** The region look's result once it has run. */
  region: AnalyzedFaces | null;
}

/**
 * Places the record's faces in the copy and pairs them with the faces now: first with the whole-image analysis,
 * then the places still unpaired with the region look's faces (each region's face only with its own place).
 */
export function planComparison(input: PlanInput): VerifyPlan {
  const analysis = canonicalOrder(candidatesOf(input.analyzed, "analysis"));
  const regionFaces = input.region ? canonicalOrder(candidatesOf(input.region, "region")) : [];
  const all = [...analysis, ...regionFaces];
  const facesNow = all.map((c) => c.face);
  const copy = input.analyzed.image;
  const largest = facesNow.length ? [0] : [];
  if (!copy || input.records.length === 0) return { facesNow, record: null, payloadFaces: largest, regionLook: [] };

  const places = placeRecordFaces(input.records, input.geometry, input.original, copy);
  const chipOf = (i: number): DescriptorChip | null => {
    const r = input.records[i]!;
    return r.descriptor && r.descriptor_chip && input.comparable(r.descriptor_chip) ? r.descriptor_chip : null;
  };
  // A face can stand at a comparable record face's place only with a descriptor of that record's chip.
  const eligible = (p: Place, c: Candidate) => {
    const chip = chipOf(p.record_index);
    return !chip || descriptorOf(c.face, chip) !== undefined;
  };
  const placed = places.filter((p): p is Place => p !== null);
  const first = matchFaces(placed, analysis, eligible);
  // Deterministic from the stored first analysis and the record, so the list is the same when the look is
  // started and when its result is read back (its faces carry their region's index into this list).
  const targets = placed.filter((p) => p.presence === "in_copy" && chipOf(p.record_index) && !first.has(p.record_index));
  const regionOf = (c: Candidate) => targets[c.face.region_index ?? (targets.length === 1 ? 0 : -1)]?.record_index;
  const second = input.region
    ? matchFaces(targets, regionFaces, (p, c) => regionOf(c) === p.record_index && eligible(p, c))
    : new Map<number, Candidate>();
  const matchOf = (i: number) => first.get(i) ?? second.get(i);

  const faces: ProtectedFace[] = placed.flatMap((p): ProtectedFace[] => {
    const chip = chipOf(p.record_index);
    if (!chip) return [];
    const m = matchOf(p.record_index);
    return [
      {
        record_index: p.record_index,
        chip,
        descriptor: input.records[p.record_index]!.descriptor!,
        box: p.box,
        visible_share: p.visible_share,
        // A face found where the record's box maps below the analysable size is compared all the same.
        presence: m && p.presence === "too_small" ? "in_copy" : p.presence,
        now: m ? { descriptor: descriptorOf(m.face, chip)!, found_by: m.found_by } : null,
        cut_at_protect: cutByFrame(input.records[p.record_index]!.box_norm!),
      },
    ];
  });
  const main = matchOf(0);
  return {
    facesNow,
    record: faces.length ? { faces } : null,
    payloadFaces: main ? [all.indexOf(main)] : largest,
    regionLook: input.region ? [] : targets.map((p) => ({ record_index: p.record_index, box: p.visible! })),
  };
}
