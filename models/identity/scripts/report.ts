/**
 * Turns models/identity/eval-raw-pose.json (from collect.ts) into the published calibration:
 * models/identity/calibration.json and the tables in models/identity/RESULTS.md. Every Hamming distance is
 * recomputed here from the stored descriptors, so the centring mean and K can be compared without
 * re-running the face nets.
 *
 * Decision rule: "different identity" when Hamming(code_protected, code_now) > radius. The radius is the
 * smallest one whose benign-edit false-alarm rate is <= 1 % on the calibration faces. Because the shipped
 * mean and radius come from the same 23 faces, a leave-one-photo-out run re-derives both without each
 * photo and scores that photo: those are the out-of-sample figures.
 *
 * The record comparison (euclidean distance to the descriptor sealed in the asset record) has its own
 * threshold per descriptor chip: the midpoint between the benign side (<= 1 % benign above) and the swap side
 * (<= 1 % of swaps at or below), see marginRule; its leave-one-photo-out folds re-derive both sides.
 *
 * Run: npx tsx models/identity/scripts/report.ts
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { IDENTITY_CODE_BITS, IDENTITY_CODE_SEED, identityBits } from "../../../gpu-runner/src/face/identity-code.ts";
import { mulberry32 } from "../../../contract/random.ts";
import { REFERENCE_MEAN } from "../../../gpu-runner/src/face/reference-mean.ts";
import type { RecordChip } from "../../../gpu-runner/src/face/analyze.ts";
import { type Rate, wilson } from "./common.ts";

/** Euclidean distance per record-comparison variant (collect.ts --chip rotated; RECORD_CHIPS). */
type RecordDistances = Partial<Record<RecordChip, number>>;

interface Raw {
  photos: string[];
  people: { id: string; descriptor: string; yaw: number }[];
  record_variants?: RecordChip[];
  edits: string[];
  sources_per_target: number;
  pairing: string;
  genuine: ({ person: string; edit: string } & (
    { found: true; descriptor: string; cosine: number; euclidean: number; record?: RecordDistances } | { found: false }
  ))[];
  impostor: { a: string; b: string; cosine: number; euclidean: number; record?: RecordDistances }[];
  swaps: ({ target: string; source: string; variant: string } & (
    | { found: true; descriptor: string; toTarget: { cosine: number; euclidean: number }; record?: RecordDistances }
    | { found: false }
  ))[];
}

const MAX_FALSE_ALARM = 0.01;
/**
 * The record-comparison descriptor protect seals and verify compares (worker/src/identity/flows.ts RECORD_CHIP;
 * keep the two equal): its numbers are calibration.json's record_descriptor; every variant's are in by_chip.
 */
const SHIPPED_RECORD_CHIP: RecordChip = "rotated_jitter";
const BOOTSTRAP = 2000;
const KS = [16, 24, 32, 48, 64];

/** Area under the ROC curve as the Mann-Whitney probability P(pos > neg) + P(pos = neg) / 2. */
export function auc(pos: number[], neg: number[]): number {
  if (!pos.length || !neg.length) return NaN;
  let s = 0;
  for (const p of pos) for (const n of neg) s += p > n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

/** Percentile 95 % interval of a statistic over people resampled with replacement (cluster bootstrap). */
function bootstrap(people: string[], stat: (sample: string[]) => number, seed = 7): { low: number; high: number } {
  const next = mulberry32(seed);
  const values: number[] = [];
  for (let b = 0; b < BOOTSTRAP; b++) {
    const v = stat(people.map(() => people[next() % people.length]!));
    if (Number.isFinite(v)) values.push(v);
  }
  values.sort((a, b) => a - b);
  return {
    low: values[Math.floor(values.length * 0.025)]!,
    high: values[Math.min(values.length - 1, Math.floor(values.length * 0.975))]!,
  };
}

function decode(b64: string): Float32Array {
  const buf = Buffer.from(b64, "base64");
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function meanOf(ds: Float32Array[]): number[] {
  return Array.from({ length: 128 }, (_, i) => ds.reduce((s, d) => s + d[i]!, 0) / ds.length);
}

/**
 * The benign side (the record threshold rule until 2026-11-27, kept as a comparison row): the smallest t with
 * at most MAX_FALSE_ALARM of the benign distances above it, i.e. the (floor(1 % n) + 1)-th largest benign
 * distance, rounded up to 1e-3 so the published number keeps the same count above it.
 */
function pickEuclidean(genuine: number[]): number {
  const desc = [...genuine].sort((a, b) => b - a);
  const allowed = Math.floor(MAX_FALSE_ALARM * desc.length);
  return Math.ceil(desc[Math.min(allowed, desc.length - 1)]! * 1000) / 1000;
}

/**
 * The swap side, mirror of pickEuclidean: the largest t with at most MAX_FALSE_ALARM of the swap distances at
 * or below it, i.e. just below the (floor(1 % n) + 1)-th smallest swap distance, rounded down to 1e-3 (strictly
 * below it, so the published number keeps the same count at or below it).
 */
function pickSwapSide(swaps: number[]): number {
  const asc = [...swaps].sort((a, b) => a - b);
  const allowed = Math.floor(MAX_FALSE_ALARM * asc.length);
  return (Math.ceil(asc[Math.min(allowed, asc.length - 1)]! * 1000) - 1) / 1000;
}

/** A record threshold and the two one-sided values it came from. */
interface Threshold {
  threshold: number;
  t_benign: number;
  t_swap: number;
  /** False when the swap side is not above the benign side (no gap): the threshold is then t_benign. */
  gap: boolean;
}

/** How a record threshold is derived from benign and swap distances. */
type RecordRule = (benign: number[], swaps: number[]) => Threshold;

/**
 * The record comparison's threshold rule (since 2026-11-27): the midpoint of the benign side (pickEuclidean)
 * and the swap side (pickSwapSide), rounded up to 1e-3; when there is no gap (t_swap <= t_benign), t_benign.
 * The benign side alone targets exactly 1 % benign false alarms in sample, so out of sample it exceeds 1 %
 * about half the time; the midpoint puts the threshold in the gap between the benign and the swap tails.
 */
const marginRule: RecordRule = (benign, swaps) => {
  const [t_benign, t_swap] = [pickEuclidean(benign), pickSwapSide(swaps)];
  const gap = t_swap > t_benign;
  // In thousandths: both sides are multiples of 1e-3, so the midpoint is a multiple of 5e-4, rounded up.
  const threshold = gap ? Math.ceil((Math.round(t_benign * 1000) + Math.round(t_swap * 1000)) / 2) / 1000 : t_benign;
  return { threshold, t_benign, t_swap, gap };
};

/** The previous rule, benign side only; kept so the tables show what the change did. */
const quantileRule: RecordRule = (benign, swaps) => {
  const t_benign = pickEuclidean(benign);
  return { threshold: t_benign, t_benign, t_swap: pickSwapSide(swaps), gap: false };
};

interface EuclideanSummary {
  threshold: number;
  benign_false_alarm: Rate;
  impostor_false_match: Rate;
  swap_detection: Rate;
  auc_swap_vs_benign: { value: number; low: number; high: number };
}

function summariseEuclidean(
  g: { person: string; d: number }[],
  imp: number[],
  sw: { target: string; d: number }[],
  threshold: number,
): EuclideanSummary {
  const people = [...new Set([...g.map((x) => x.person), ...sw.map((x) => x.target)])];
  const interval = bootstrap(people, (sample) =>
    auc(
      sample.flatMap((p) => sw.filter((x) => x.target === p).map((x) => x.d)),
      sample.flatMap((p) => g.filter((x) => x.person === p).map((x) => x.d)),
    ),
  );
  return {
    threshold,
    benign_false_alarm: wilson(g.filter((x) => x.d > threshold).length, g.length),
    impostor_false_match: wilson(imp.filter((d) => d <= threshold).length, imp.length),
    swap_detection: wilson(sw.filter((x) => x.d > threshold).length, sw.length),
    auc_swap_vs_benign: {
      value: auc(
        sw.map((x) => x.d),
        g.map((x) => x.d),
      ),
      ...interval,
    },
  };
}

function pickRadius(genuine: number[], k: number): number {
  for (let t = 0; t <= k; t++) if (genuine.filter((d) => d > t).length <= MAX_FALSE_ALARM * genuine.length) return t;
  return k;
}

const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)} %` : "n/a");
const ci = (w: Rate): string => `${pct(w.rate)} (${w.k}/${w.n}; ${pct(w.low)} - ${pct(w.high)})`;
const avg = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const photoOf = (id: string): string => id.split("#")[0]!;

/** All probe distances for one code (K bits, centring mean), with the person each sample belongs to. */
interface Scored {
  genuine: { person: string; edit: string; d: number }[];
  impostor: { a: string; b: string; d: number }[];
  swaps: { target: string; variant: string; d: number }[];
}

function score(raw: Raw, k: number, mean: ArrayLike<number>): Scored {
  const code = (d: Float32Array): Uint8Array => identityBits(d, { bits: k, mean });
  const people = new Map(raw.people.map((p) => [p.id, code(decode(p.descriptor))]));
  const ham = (a: Uint8Array, b: Uint8Array): number => a.reduce((s, v, i) => s + (v ^ b[i]!), 0);
  const ids = [...people.keys()];
  return {
    genuine: raw.genuine.flatMap((g) =>
      g.found ? [{ person: g.person, edit: g.edit, d: ham(people.get(g.person)!, code(decode(g.descriptor))) }] : [],
    ),
    impostor: ids.flatMap((a, i) => ids.slice(i + 1).map((b) => ({ a, b, d: ham(people.get(a)!, people.get(b)!) }))),
    swaps: raw.swaps.flatMap((s) =>
      s.found ? [{ target: s.target, variant: s.variant, d: ham(people.get(s.target)!, code(decode(s.descriptor))) }] : [],
    ),
  };
}

interface Summary {
  radius: number;
  impostor_mean_hamming: number;
  benign_false_alarm: Rate;
  impostor_false_match: Rate;
  swap_detection: Rate;
  auc_swap_vs_benign: { value: number; low: number; high: number };
}

function summarise(
  s: Scored,
  k: number,
  radius = pickRadius(
    s.genuine.map((x) => x.d),
    k,
  ),
): Summary {
  const g = s.genuine.map((x) => x.d);
  const people = [...new Set([...s.genuine.map((x) => x.person), ...s.swaps.map((x) => x.target)])];
  const value = auc(
    s.swaps.map((x) => x.d),
    g,
  );
  const interval = bootstrap(people, (sample) =>
    auc(
      sample.flatMap((p) => s.swaps.filter((x) => x.target === p).map((x) => x.d)),
      sample.flatMap((p) => s.genuine.filter((x) => x.person === p).map((x) => x.d)),
    ),
  );
  return {
    radius,
    impostor_mean_hamming: avg(s.impostor.map((x) => x.d)),
    benign_false_alarm: wilson(g.filter((d) => d > radius).length, g.length),
    impostor_false_match: wilson(s.impostor.filter((x) => x.d <= radius).length, s.impostor.length),
    swap_detection: wilson(s.swaps.filter((x) => x.d > radius).length, s.swaps.length),
    auc_swap_vs_benign: { value, ...interval },
  };
}

/** Leave-one-photo-out: mean and radius from the other photos' people, scored on the held-out photo's. */
function leaveOnePhotoOut(raw: Raw, k: number): Summary & { radii: number[] } {
  const radii: number[] = [];
  const pooled: Scored = { genuine: [], impostor: [], swaps: [] };
  for (const photo of new Set(raw.people.map((p) => photoOf(p.id)))) {
    const mean = meanOf(raw.people.filter((p) => photoOf(p.id) !== photo).map((p) => decode(p.descriptor)));
    const s = score(raw, k, mean);
    const radius = pickRadius(
      s.genuine.filter((x) => photoOf(x.person) !== photo).map((x) => x.d),
      k,
    );
    radii.push(radius);
    // Distances are compared with each fold's own radius: store them relative to it (d - radius).
    pooled.genuine.push(...s.genuine.filter((x) => photoOf(x.person) === photo).map((x) => ({ ...x, d: x.d - radius })));
    pooled.swaps.push(...s.swaps.filter((x) => photoOf(x.target) === photo).map((x) => ({ ...x, d: x.d - radius })));
    pooled.impostor.push(
      ...s.impostor.filter((x) => photoOf(x.a) === photo || photoOf(x.b) === photo).map((x) => ({ ...x, d: x.d - radius })),
    );
  }
  const sum = summarise(pooled, k, 0);
  return { ...sum, impostor_mean_hamming: NaN, radii };
}

/**
 * One record-comparison descriptor's probe distances: benign (per person), impostor pairs, swaps (per target,
 * with the person whose face was pasted in).
 */
interface RecordProbes {
  g: { person: string; edit: string; d: number }[];
  i: { a: string; b: string; d: number }[];
  s: { target: string; source: string; variant: string; d: number }[];
}

function recordProbes(r: Raw, chip?: RecordChip): RecordProbes {
  // Without a chip: the file's main euclidean distance (the descriptor of collect.ts --chip).
  const pick = (x: { euclidean: number; record?: RecordDistances }) => (chip ? x.record![chip]! : x.euclidean);
  return {
    g: r.genuine.flatMap((x) => (x.found ? [{ person: x.person, edit: x.edit, d: chip ? x.record![chip]! : x.euclidean }] : [])),
    i: r.impostor.map((x) => ({ a: x.a, b: x.b, d: pick(x) })),
    s: r.swaps.flatMap((x) =>
      x.found
        ? [{ target: x.target, source: x.source, variant: x.variant, d: chip ? x.record![chip]! : x.toTarget.euclidean }]
        : [],
    ),
  };
}

/** In-sample threshold and rates, and leave-one-photo-out ones, of one record-comparison descriptor and rule. */
interface RuleEval {
  /** The in-sample threshold and its two sides. */
  fit: Threshold;
  rec: EuclideanSummary;
  lopo: EuclideanSummary;
  /** Each fold's threshold (and sides), in the order of the photos. */
  folds: ({ photo: string } & Threshold)[];
}

interface RecordEval {
  /** The shipped rule (marginRule). */
  margin: RuleEval;
  /** The previous rule (benign side only), for comparison. */
  quantile: RuleEval;
  /** The largest benign distances (the tail that sets the threshold) and the smallest swap distances. */
  benignTail: { person: string; edit: string; d: number }[];
  closestSwaps: { target: string; source: string; variant: string; d: number }[];
}

/** A rule's in-sample threshold on one descriptor's probes, and the rates at it. */
function fitInSample(p: RecordProbes, rule: RecordRule): { fit: Threshold; rec: EuclideanSummary } {
  const fit = rule(
    p.g.map((x) => x.d),
    p.s.map((x) => x.d),
  );
  const rec = summariseEuclidean(
    p.g,
    p.i.map((x) => x.d),
    p.s,
    fit.threshold,
  );
  return { fit, rec };
}

function evaluateRule(p: RecordProbes, photos: string[], rule: RecordRule): RuleEval {
  const { fit, rec } = fitInSample(p, rule);
  // Leave-one-photo-out: both sides of the threshold re-derived from the other photos only (the held-out
  // photo's benign probes and every swap with its target or its source face from that photo left out), then the
  // held-out photo's benign probes and the swaps onto its faces scored with it (distances stored relative to
  // each fold's threshold). The descriptor needs no centring mean.
  const fold = { g: [] as { person: string; d: number }[], i: [] as number[], s: [] as { target: string; d: number }[] };
  const folds: RuleEval["folds"] = [];
  for (const photo of photos) {
    const t = rule(
      p.g.filter((x) => photoOf(x.person) !== photo).map((x) => x.d),
      p.s.filter((x) => photoOf(x.target) !== photo && photoOf(x.source) !== photo).map((x) => x.d),
    );
    folds.push({ photo, ...t });
    fold.g.push(...p.g.filter((x) => photoOf(x.person) === photo).map((x) => ({ ...x, d: x.d - t.threshold })));
    fold.s.push(...p.s.filter((x) => photoOf(x.target) === photo).map((x) => ({ ...x, d: x.d - t.threshold })));
    fold.i.push(...p.i.filter((x) => photoOf(x.a) === photo || photoOf(x.b) === photo).map((x) => x.d - t.threshold));
  }
  return { fit, rec, lopo: summariseEuclidean(fold.g, fold.i, fold.s, 0), folds };
}

function evaluateRecord(p: RecordProbes, photos: string[]): RecordEval {
  return {
    margin: evaluateRule(p, photos, marginRule),
    quantile: evaluateRule(p, photos, quantileRule),
    benignTail: [...p.g].sort((a, b) => b.d - a.d).slice(0, 3),
    closestSwaps: [...p.s].sort((a, b) => a.d - b.d).slice(0, 3),
  };
}

/** "0.255-0.320": the range of the fold thresholds. */
const foldRange = (r: RuleEval): string =>
  `${Math.min(...r.folds.map((f) => f.threshold)).toFixed(3)}-${Math.max(...r.folds.map((f) => f.threshold)).toFixed(3)}`;

function row(label: string, s: Summary): string {
  const a = s.auc_swap_vs_benign;
  return `| ${label} | ${s.radius} | ${Number.isFinite(s.impostor_mean_hamming) ? s.impostor_mean_hamming.toFixed(1) : "-"} | ${ci(s.benign_false_alarm)} | ${ci(s.impostor_false_match)} | ${ci(s.swap_detection)} | ${a.value.toFixed(3)} (${a.low.toFixed(3)} - ${a.high.toFixed(3)}) |`;
}

const HEADER = [
  "| code | radius | impostor mean Hamming | benign false alarm | impostor false match | swap detection | AUC swap vs benign |",
  "|---|---|---|---|---|---|---|",
];

const THRESHOLD_RULE =
  `margin rule (since 2026-11-27): midpoint of t_benign (smallest threshold with benign false alarms <= ${MAX_FALSE_ALARM * 100} %) and t_swap ` +
  `(largest threshold with <= ${MAX_FALSE_ALARM * 100} % of the swaps at or below it), rounded up to 1e-3; t_benign when t_swap <= t_benign`;

/** calibration.json's leave-one-photo-out block of one descriptor under one rule. */
function outOfSample(r: RuleEval) {
  return {
    method:
      "leave-one-photo-out: t_benign and t_swap re-derived without the held-out photo (its benign probes and every swap whose target or source face is from it); that photo's benign probes and the swaps onto its faces scored with the fold's threshold",
    thresholds: r.folds.map((f) => f.threshold),
    folds: r.folds,
    benign_false_alarm: r.lopo.benign_false_alarm,
    impostor_false_match: r.lopo.impostor_false_match,
    swap_detection: r.lopo.swap_detection,
  };
}

/** The previous rule's numbers (t_benign alone), kept for comparison; verify does not read them. */
function previousRule(r: RuleEval) {
  return {
    rule: `until 2026-11-27: smallest threshold with benign false alarms <= ${MAX_FALSE_ALARM * 100} % on the calibration faces`,
    threshold: r.rec.threshold,
    false_alarm_rate: r.rec.benign_false_alarm,
    swap_detection_rate: r.rec.swap_detection,
    false_match_rate: r.rec.impostor_false_match,
    out_of_sample: {
      thresholds: r.folds.map((f) => f.threshold),
      benign_false_alarm: r.lopo.benign_false_alarm,
      impostor_false_match: r.lopo.impostor_false_match,
      swap_detection: r.lopo.swap_detection,
    },
  };
}

function main(): void {
  const raw = { pairing: "pose", ...JSON.parse(readFileSync("models/identity/eval-raw-pose.json", "utf8")) } as Raw;
  const lfwMean = (JSON.parse(readFileSync("models/identity/reference-mean-lfw.json", "utf8")) as { mean: number[] }).mean;
  const K = IDENTITY_CODE_BITS;
  const people = raw.people.map((p) => p.id);
  const genuineFound = raw.genuine.filter((g) => g.found).length;
  const swapsFound = raw.swaps.filter((s) => s.found).length;
  const lines: string[] = [
    "# Identity code: calibration and face-swap evaluation",
    "",
    "Generated by `models/identity/scripts/report.ts` from `eval-raw-pose.json`. Rates: Wilson 95 % intervals (k/n; low - high).",
    "AUC intervals: 95 % percentile intervals of a people-level bootstrap (2000 resamples).",
    "",
    `Data: ${people.length} people, one photo each (${raw.photos.length} photos). ${raw.edits.length} benign edits per photo -> ` +
      `${raw.genuine.length} genuine probes, ${genuineFound} with the face re-found. ${raw.genuine.length - genuineFound} lost faces are not false alarms (verify says inconclusive). ` +
      `${(people.length * (people.length - 1)) / 2} impostor pairs. ${raw.swaps.length / 3} swaps (${raw.sources_per_target} sources per target, ${raw.pairing} pairing) x 3 re-share variants -> ${swapsFound} of ${raw.swaps.length} swapped faces re-found.`,
    "",
  ];

  const shipped = score(raw, K, REFERENCE_MEAN);
  const main = summarise(shipped, K);
  const lopo = leaveOnePhotoOut(raw, K);
  const lfw = summarise(score(raw, K, lfwMean), K);
  lines.push(`## K = ${K} (shipped)`, "", ...HEADER);
  lines.push(row("centred on the 23 faces, in-sample (shipped)", main));
  lines.push(row(`leave-one-photo-out mean and radius (radii ${lopo.radii.join(", ")}; distances relative to radius)`, lopo));
  lines.push(row("centred on LFW (rejected)", lfw));

  // Operating points: the radius trades benign false alarms against missed swaps.
  lines.push(
    "",
    `## Operating points, K = ${K} (in-sample)`,
    "",
    "| radius | benign false alarm | impostor false match | swap detection |",
    "|---|---|---|---|",
  );
  const operatingPoints: Record<number, unknown> = {};
  for (let r = 4; r <= 13; r++) {
    const g = shipped.genuine.map((x) => x.d);
    const s = {
      benign_false_alarm: wilson(g.filter((d) => d > r).length, g.length),
      impostor_false_match: wilson(shipped.impostor.filter((x) => x.d <= r).length, shipped.impostor.length),
      swap_detection: wilson(shipped.swaps.filter((x) => x.d > r).length, shipped.swaps.length),
    };
    operatingPoints[r] = {
      benign_false_alarm: s.benign_false_alarm,
      impostor_false_match: s.impostor_false_match,
      swap_detection: s.swap_detection,
    };
    lines.push(`| ${r} | ${ci(s.benign_false_alarm)} | ${ci(s.impostor_false_match)} | ${ci(s.swap_detection)} |`);
  }

  lines.push("", "## Code length K (centred on the 23 faces, in-sample)", "", ...HEADER);
  const perK: Record<number, Summary> = {};
  for (const k of KS) lines.push(row(`K = ${k}`, (perK[k] = summarise(score(raw, k, REFERENCE_MEAN), k))));

  // Histograms at the shipped K.
  const hist = (vals: number[]): number[] => Array.from({ length: K + 1 }, (_, d) => vals.filter((v) => v === d).length);
  const hG = hist(shipped.genuine.map((x) => x.d));
  const hI = hist(shipped.impostor.map((x) => x.d));
  const hS = hist(shipped.swaps.map((x) => x.d));
  lines.push(
    "",
    `## Hamming distance histograms, K = ${K}, radius ${main.radius}`,
    "",
    "| distance | " + hG.map((_, d) => d).join(" | ") + " |",
    "|---|" + hG.map(() => "---").join("|") + "|",
    "| benign edit vs original (same person) | " + hG.join(" | ") + " |",
    "| different people | " + hI.join(" | ") + " |",
    "| swapped face vs target's protected code | " + hS.join(" | ") + " |",
  );

  lines.push(
    "",
    "## Benign edits",
    "",
    "| edit | mean Hamming | max | false alarms | face not re-found |",
    "|---|---|---|---|---|",
  );
  const perEdit: Record<string, unknown> = {};
  for (const edit of raw.edits) {
    const d = shipped.genuine.filter((x) => x.edit === edit).map((x) => x.d);
    const lost = raw.genuine.filter((x) => x.edit === edit && !x.found).length;
    const fa = wilson(d.filter((v) => v > main.radius).length, d.length);
    perEdit[edit] = { mean_hamming: avg(d), max_hamming: Math.max(...d), false_alarm: fa, not_refound: lost };
    lines.push(`| ${edit} | ${avg(d).toFixed(2)} | ${Math.max(...d)} | ${ci(fa)} | ${lost}/${lost + d.length} |`);
  }

  lines.push(
    "",
    "## Face swaps by re-share variant",
    "",
    "| variant | detected | swapped face not re-found | AUC vs benign |",
    "|---|---|---|---|",
  );
  const perVariant: Record<string, unknown> = {};
  for (const variant of [...new Set(raw.swaps.map((s) => s.variant))]) {
    const sub: Scored = { ...shipped, swaps: shipped.swaps.filter((x) => x.variant === variant) };
    const s = summarise(sub, K, main.radius);
    const lost = raw.swaps.filter((x) => x.variant === variant && !x.found).length;
    perVariant[variant] = { detection: s.swap_detection, not_refound: lost, auc: s.auc_swap_vs_benign };
    const a = s.auc_swap_vs_benign;
    lines.push(
      `| ${variant} | ${ci(s.swap_detection)} | ${lost}/${raw.swaps.length / 3} | ${a.value.toFixed(3)} (${a.low.toFixed(3)} - ${a.high.toFixed(3)}) |`,
    );
  }

  // The same swaps with sources paired uniformly at random (collect.ts --random-pairs), if collected:
  // scored against the primary run's benign probes, with the shipped mean and radius.
  let randomPairs: Summary | null = null;
  if (existsSync("models/identity/eval-raw-random.json")) {
    const other = { pairing: "random", ...JSON.parse(readFileSync("models/identity/eval-raw-random.json", "utf8")) } as Raw;
    const scored = score(other, K, REFERENCE_MEAN);
    randomPairs = summarise({ ...shipped, swaps: scored.swaps }, K, main.radius);
    const lost = other.swaps.filter((x) => !x.found).length;
    const a = randomPairs.auc_swap_vs_benign;
    lines.push(
      "",
      `Random pairing (${other.swaps.length / 3} swaps x 3 re-share variants, ${lost} swapped faces not re-found): detected ${ci(randomPairs.swap_detection)}, ` +
        `AUC vs benign ${a.value.toFixed(3)} (${a.low.toFixed(3)} - ${a.high.toFixed(3)}).`,
    );
  }

  // What the binarisation costs: the same separations on the raw descriptors.
  const gFound = raw.genuine.flatMap((g) => (g.found ? [g] : []));
  const sFound = raw.swaps.flatMap((s) => (s.found ? [s] : []));
  lines.push(
    "",
    "## Raw 128-d descriptor distances vs the code",
    "",
    "| distance | max benign | min impostor | AUC swap vs benign | AUC impostor vs benign |",
    "|---|---|---|---|---|",
  );
  for (const key of ["cosine", "euclidean"] as const) {
    const g = gFound.map((x) => x[key]);
    const i = raw.impostor.map((x) => x[key]);
    const s = sFound.map((x) => x.toTarget[key]);
    lines.push(
      `| ${key} | ${Math.max(...g).toFixed(3)} | ${Math.min(...i).toFixed(3)} | ${auc(s, g).toFixed(3)} | ${auc(i, g).toFixed(3)} |`,
    );
  }
  const gH = shipped.genuine.map((x) => x.d);
  lines.push(
    `| Hamming K=${K} | ${Math.max(...gH)} | ${Math.min(...shipped.impostor.map((x) => x.d))} | ${main.auc_swap_vs_benign.value.toFixed(3)} | ${auc(
      shipped.impostor.map((x) => x.d),
      gH,
    ).toFixed(3)} |`,
  );

  // The record comparison: euclidean distance between the descriptor sealed in the asset record at protect
  // and the descriptor of the face now (verify's primary path when the record is reachable).
  // Records store descriptors of the eye-levelled chip (collect.ts --chip rotated ->
  // eval-raw-pose-rotated.json); the box-chip descriptors of eval-raw-pose.json were the first version and
  // stay as a comparison row.
  const recPath = "models/identity/eval-raw-pose-rotated.json";
  const recRaw = existsSync(recPath) ? ({ pairing: "pose", ...JSON.parse(readFileSync(recPath, "utf8")) } as Raw) : raw;
  const recChip = recRaw === raw ? "box" : "rotated";
  const recPhotos = [...new Set(recRaw.people.map((p) => photoOf(p.id)))];
  // The shipped record descriptor: SHIPPED_RECORD_CHIP's distances when the file has that variant.
  const shippedChip =
    recChip === "rotated" && recRaw.record_variants?.includes(SHIPPED_RECORD_CHIP) ? SHIPPED_RECORD_CHIP : undefined;
  const mainProbes = recordProbes(recRaw, shippedChip);
  const { g: eG, s: eS } = mainProbes;
  const eI = mainProbes.i.map((x) => x.d);
  const mainEval = evaluateRecord(mainProbes, recPhotos);
  const { rec, lopo: recLopo, fit: recFit } = mainEval.margin;
  const old = mainEval.quantile;
  // The box chip (first version, not kept), in-sample only, under both rules.
  const boxE = recordProbes(raw);
  const { fit: boxFit, rec: recBox } = fitInSample(boxE, marginRule);
  const recBoxOld = fitInSample(boxE, quantileRule).rec;
  // The variants of the rotated chip (photometric normalisation, flip averaging), measured on the same probes.
  const variants = (recRaw.record_variants ?? []).map((chip) => ({
    chip,
    ...evaluateRecord(recordProbes(recRaw, chip), recPhotos),
  }));
  const recRow = (label: string, x: EuclideanSummary, t: string) =>
    `| ${label} | ${t} | ${ci(x.benign_false_alarm)} | ${ci(x.impostor_false_match)} | ${ci(x.swap_detection)} | ${x.auc_swap_vs_benign.value.toFixed(3)} (${x.auc_swap_vs_benign.low.toFixed(3)} - ${x.auc_swap_vs_benign.high.toFixed(3)}) |`;
  lines.push(
    "",
    "## Record comparison: euclidean distance between the sealed descriptor and the face now",
    "",
    'Verify\'s primary path when the asset record is reachable (worker/src/identity/verdict.ts, `identity_basis: "record"`). ' +
      (recChip === "rotated"
        ? `Descriptors of the eye-levelled face chip, variant \`${shippedChip ?? "rotated"}\` (the variants are compared below), from \`eval-raw-pose-rotated.json\` ` +
          "(`collect.ts --sources 4 --chip rotated --out models/identity/eval-raw-pose-rotated.json`). "
        : "Descriptors of face-api's box chip. ") +
      `Threshold rule (margin, since 2026-11-27): the midpoint of t_benign, the smallest threshold with benign false alarms <= ${MAX_FALSE_ALARM * 100} % ` +
      `(at most ${Math.floor(MAX_FALSE_ALARM * eG.length)} of ${eG.length} benign probes above it), and t_swap, the largest with <= ${MAX_FALSE_ALARM * 100} % of the swaps at or below it ` +
      `(at most ${Math.floor(MAX_FALSE_ALARM * eS.length)} of ${eS.length}), rounded up to 1e-3; t_benign when t_swap <= t_benign. ` +
      "The previous rule (t_benign alone) stays as a comparison row. Leave-one-photo-out re-derives both sides without the held-out photo " +
      "(its benign probes and every swap whose target or source face is from it) and scores that photo's benign probes and the swaps onto its faces. " +
      `${recRaw.genuine.length - eG.length} benign and ${recRaw.swaps.length - eS.length} swap probes lost the face (not scored).`,
    "",
    "| rule | threshold | benign false alarm | impostor false match | swap detection | AUC swap vs benign |",
    "|---|---|---|---|---|---|",
    recRow(
      `margin rule, in-sample (shipped; t_benign ${recFit.t_benign.toFixed(3)}, t_swap ${recFit.t_swap.toFixed(3)})`,
      rec,
      rec.threshold.toFixed(3),
    ),
    recRow("margin rule, leave-one-photo-out", recLopo, foldRange(mainEval.margin)),
    recRow("previous rule (t_benign alone), in-sample", old.rec, old.rec.threshold.toFixed(3)),
    recRow("previous rule (t_benign alone), leave-one-photo-out", old.lopo, foldRange(old)),
    ...(recChip === "rotated"
      ? [
          recRow(
            `box chip instead (first version, not kept), margin rule, in-sample (t_benign ${boxFit.t_benign.toFixed(3)}, t_swap ${boxFit.t_swap.toFixed(3)}${boxFit.gap ? "" : ": no gap, t_benign"})`,
            recBox,
            recBox.threshold.toFixed(3),
          ),
          recRow("box chip, previous rule, in-sample", recBoxOld, recBoxOld.threshold.toFixed(3)),
        ]
      : []),
    "",
    "Fold thresholds (held-out photo: t_benign / t_swap -> margin-rule threshold): " +
      mainEval.margin.folds
        .map(
          (f) =>
            `${f.photo} ${f.t_benign.toFixed(3)} / ${f.t_swap.toFixed(3)} -> ${f.threshold.toFixed(3)}${f.gap ? "" : " (no gap)"}`,
        )
        .join("; ") +
      ".",
  );
  if (variants.length) {
    const auc = (x: EuclideanSummary) =>
      `${x.auc_swap_vs_benign.value.toFixed(4)} (${x.auc_swap_vs_benign.low.toFixed(3)} - ${x.auc_swap_vs_benign.high.toFixed(3)})`;
    lines.push(
      "",
      "### Descriptor variants of the eye-levelled chip (same net, same probes)",
      "",
      "Each computed by `analyzeFaces(..., { recordChips })` (gpu-runner/src/face/analyze.ts RECORD_CHIPS) in the same collect pass: " +
        "`_gain` = one gain bringing the chip centre's luminance mean to the net's training mean; `_std` = luminance mean and standard deviation " +
        "standardised (one offset and gain for all channels); `_flip` = mean of the chip's and its mirror's descriptors. " +
        "Threshold rules as above, per variant (margin = shipped rule, previous = t_benign alone); the gap is the closest swap over the threshold " +
        "(scale-free, since normalisation changes the descriptors' scale a little).",
      "",
      "| descriptor | rule | threshold (t_benign / t_swap) | benign false alarm | swap detection | AUC swap vs benign | benign tail (3 largest) | closest swaps (3 smallest) | closest swap / threshold | LOO thresholds | LOO benign false alarm | LOO swap detection |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...variants.flatMap((v) =>
        (["margin", "quantile"] as const).map((which) => {
          const r = v[which];
          const name = `${v.chip}${v.chip === SHIPPED_RECORD_CHIP ? " (shipped)" : ""}`;
          return (
            `| ${which === "margin" ? name : ""} | ${which === "margin" ? "margin" : "previous"} | ${r.rec.threshold.toFixed(3)} (${r.fit.t_benign.toFixed(3)} / ${r.fit.t_swap.toFixed(3)}${r.fit.gap || which === "quantile" ? "" : ", no gap"}) | ` +
            `${ci(r.rec.benign_false_alarm)} | ${ci(r.rec.swap_detection)} | ${auc(r.rec)} | ` +
            (which === "margin" ? v.benignTail.map((x) => `${x.d.toFixed(3)} (${x.person}, ${x.edit})`).join(", ") : "") +
            ` | ${which === "margin" ? v.closestSwaps.map((x) => `${x.d.toFixed(3)} (${x.target} <- ${x.source}, ${x.variant})`).join(", ") : ""} | ` +
            `${(v.closestSwaps[0]!.d / r.rec.threshold).toFixed(3)} | ${foldRange(r)} | ${ci(r.lopo.benign_false_alarm)} | ${ci(r.lopo.swap_detection)} |`
          );
        }),
      ),
    );
  }
  lines.push("", "| threshold | benign false alarm | impostor false match | swap detection |", "|---|---|---|---|");
  const recOperating: Record<string, unknown> = {};
  for (const t of [...new Set([0.3, 0.35, 0.4, 0.45, rec.threshold, old.rec.threshold, 0.5, 0.55, 0.6])].sort((a, b) => a - b)) {
    const x = summariseEuclidean(eG, eI, eS, t);
    recOperating[t.toFixed(3)] = {
      benign_false_alarm: x.benign_false_alarm,
      impostor_false_match: x.impostor_false_match,
      swap_detection: x.swap_detection,
    };
    lines.push(
      `| ${t.toFixed(3)}${t === rec.threshold ? " (shipped, margin rule)" : t === old.rec.threshold ? " (previous rule)" : ""} | ${ci(x.benign_false_alarm)} | ${ci(x.impostor_false_match)} | ${ci(x.swap_detection)} |`,
    );
  }
  const BIN = 0.05;
  const bins = Array.from({ length: 28 }, (_, i) => i * BIN);
  const eHist = (vals: number[]) =>
    bins.map((b) => vals.filter((v) => v >= b && (v < b + BIN || b === bins[bins.length - 1])).length);
  const eHG = eHist(eG.map((x) => x.d));
  const eHI = eHist(eI);
  const eHS = eHist(eS.map((x) => x.d));
  lines.push(
    "",
    `Euclidean distance histograms (bins of ${BIN}, lower edge shown; the last bin is open):`,
    "",
    "| distance | " + bins.map((b) => b.toFixed(2)).join(" | ") + " |",
    "|---|" + bins.map(() => "---").join("|") + "|",
    "| benign edit vs original (same person) | " + eHG.join(" | ") + " |",
    "| different people | " + eHI.join(" | ") + " |",
    "| swapped face vs target's protected descriptor | " + eHS.join(" | ") + " |",
    "",
    "Largest benign distances (the tail that sets the threshold): " +
      [...eG]
        .sort((a, b) => b.d - a.d)
        .slice(0, 6)
        .map((x) => `${x.d.toFixed(3)} (${x.person}, ${x.edit})`)
        .join(", ") +
      ".",
  );

  const ones = new Array<number>(K).fill(0);
  for (const p of raw.people) identityBits(decode(p.descriptor), { bits: K }).forEach((b, i) => (ones[i]! += b));
  const balance = ones.map((o) => o / people.length);
  const lfwOnes = new Array<number>(K).fill(0);
  for (const p of raw.people)
    identityBits(decode(p.descriptor), { bits: K, mean: lfwMean }).forEach((b, i) => (lfwOnes[i]! += b));
  const constantLfw = lfwOnes.filter((o) => o === 0 || o === people.length).length;
  lines.push(
    "",
    `Bit balance over the ${people.length} people (fraction of ones per bit): min ${Math.min(...balance).toFixed(2)}, max ${Math.max(...balance).toFixed(2)}. ` +
      `With the LFW mean, ${constantLfw} of ${K} bits are the same for all ${people.length} people.`,
  );

  const calibration = {
    version: 1,
    generated_by: "models/identity/scripts/collect.ts then report.ts",
    code: {
      bits: K,
      seed: IDENTITY_CODE_SEED,
      projection:
        "sign of Rademacher (+-1) projections, entries from mulberry32(seed), row-major, +1 when the draw's top bit is 0",
      centring: "models/identity/reference-mean.json",
    },
    decision: `same identity when hamming <= ${main.radius}; face_swapped when hamming > ${main.radius}`,
    hamming_radius: main.radius,
    radius_rule: `smallest radius with benign false alarms <= ${MAX_FALSE_ALARM * 100} % on the calibration faces`,
    false_alarm_rate: main.benign_false_alarm,
    false_match_rate: main.impostor_false_match,
    swap_detection_rate: main.swap_detection,
    miss_rate: wilson(main.swap_detection.n - main.swap_detection.k, main.swap_detection.n),
    auc_swap_vs_benign: main.auc_swap_vs_benign,
    record_descriptor: {
      metric: "euclidean",
      what: "euclidean distance between the 128-d descriptor sealed in the asset record at protect and the face now at the protected place; verify's primary path when the record is reachable",
      chip: shippedChip ?? recChip,
      raw: recChip === "rotated" ? recPath : "models/identity/eval-raw-pose.json",
      box_chip_alternative: {
        threshold: recBox.threshold,
        threshold_benign_side: boxFit.t_benign,
        threshold_swap_side: boxFit.t_swap,
        benign_false_alarm: recBox.benign_false_alarm,
        swap_detection: recBox.swap_detection,
        auc_swap_vs_benign: recBox.auc_swap_vs_benign,
        previous_rule: {
          threshold: recBoxOld.threshold,
          benign_false_alarm: recBoxOld.benign_false_alarm,
          swap_detection: recBoxOld.swap_detection,
        },
      },
      threshold: rec.threshold,
      threshold_rule: THRESHOLD_RULE,
      threshold_benign_side: recFit.t_benign,
      threshold_swap_side: recFit.t_swap,
      decision: `same identity when euclidean <= ${rec.threshold}; face_swapped when > ${rec.threshold}`,
      false_alarm_rate: rec.benign_false_alarm,
      false_match_rate: rec.impostor_false_match,
      swap_detection_rate: rec.swap_detection,
      miss_rate: wilson(rec.swap_detection.n - rec.swap_detection.k, rec.swap_detection.n),
      auc_swap_vs_benign: rec.auc_swap_vs_benign,
      out_of_sample: outOfSample(mainEval.margin),
      previous_rule: previousRule(old),
      operating_points: recOperating,
      // Every measured variant of the eye-levelled chip, so verify can compare a record sealed with an older
      // variant against the same variant with that variant's own threshold (worker/src/identity/verdict.ts).
      by_chip: Object.fromEntries(
        variants.map((v) => [
          v.chip,
          {
            threshold: v.margin.rec.threshold,
            threshold_benign_side: v.margin.fit.t_benign,
            threshold_swap_side: v.margin.fit.t_swap,
            false_alarm_rate: v.margin.rec.benign_false_alarm,
            miss_rate: wilson(v.margin.rec.swap_detection.n - v.margin.rec.swap_detection.k, v.margin.rec.swap_detection.n),
            swap_detection_rate: v.margin.rec.swap_detection,
            false_match_rate: v.margin.rec.impostor_false_match,
            auc_swap_vs_benign: v.margin.rec.auc_swap_vs_benign,
            benign_tail: v.benignTail,
            closest_swaps: v.closestSwaps,
            out_of_sample: outOfSample(v.margin),
            previous_rule: previousRule(v.quantile),
          },
        ]),
      ),
      histograms: {
        bin_width: BIN,
        lower_edges: bins.map((b) => Number(b.toFixed(2))),
        benign: eHG,
        impostor: eHI,
        swap_vs_target: eHS,
      },
    },
    out_of_sample: { method: "leave-one-photo-out: centring mean and radius re-derived without the held-out photo", ...lopo },
    lfw_centring_rejected: lfw,
    operating_points: operatingPoints,
    per_k: perK,
    per_edit: perEdit,
    per_swap_variant: perVariant,
    random_pairing: randomPairs,
    histograms: { distance: hG.map((_, d) => d), benign: hG, impostor: hI, swap_vs_target: hS },
    bit_balance: balance.map((b) => Number(b.toFixed(3))),
    data: {
      people: people.length,
      photos_per_person: 1,
      photos: raw.photos,
      benign_edits: raw.edits,
      genuine_probes: raw.genuine.length,
      genuine_refound: genuineFound,
      impostor_pairs: (people.length * (people.length - 1)) / 2,
      swaps: raw.swaps.length,
      swaps_refound: swapsFound,
      pairing: raw.pairing,
      limits:
        "23 people (22 adult women in 6 group photos, 1 astronaut portrait), one photo each: 'same person' means the same photo after benign edits, never a new photo of the person. The shipped mean and radius are fitted on these same faces; out_of_sample holds leave-one-photo-out figures. Swaps are classical landmark-aligned cheap-fakes, not GAN/diffusion face swaps.",
    },
    ci_method: "Wilson score 95 % for rates; AUC: 95 % percentile interval of a people-level bootstrap, 2000 resamples",
  };
  writeFileSync("models/identity/calibration.json", JSON.stringify(calibration, null, 1) + "\n");
  writeFileSync("models/identity/RESULTS.md", lines.join("\n") + "\n");
  console.log(lines.join("\n"));
}

main();
