/**
 * Collects the raw identity distances for calibration and the face-swap evaluation, on every photo of
 * people available offline: @vladmandic/face-api demo/sample1-6.jpg and scikit-image's astronaut.png.
 * Every face is analysed by the runner's own analyzeFaces (real models), every edit is made with sharp
 * and every swap with models/identity/swap.py (OpenCV).
 *
 * Run: npx tsx models/identity/scripts/collect.ts [--sources N] [--seed S] [--random-pairs] [--chip box|rotated] [--out PATH]
 * (about 10 min on 2 idle cores). Writes models/identity/eval-raw-pose.json or eval-raw-random.json.
 * With --chip rotated, every face also gets every record-comparison descriptor variant (RECORD_CHIPS in
 * gpu-runner/src/face/analyze.ts: photometric normalisation and flip averaging of the eye-levelled chip) in
 * the same pass (detection, landmarks and the chip shared), and each probe stores its euclidean distance per
 * variant (`record`), so report.ts compares the variants on identical probes, pairs and swaps.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import {
  analyzeFaces,
  RECORD_CHIPS,
  type AnalyzedFace,
  type FaceBox,
  type RecordChip,
} from "../../../gpu-runner/src/face/analyze.ts";
import { identityBits } from "../../../gpu-runner/src/face/identity-code.ts";
import { mulberry32 } from "../../../contract/random.ts";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";
import { BENIGN_EDITS, decodeRaster, FACE_API_SAMPLES, loadRaster, matchFace, SKIMAGE_DATA } from "./common.ts";

export const KS = [16, 24, 32, 48, 64];

interface Person {
  id: string;
  photo: string;
  path: string;
  box: FaceBox;
  landmarks: [number, number][];
  descriptor: Float32Array;
  chipDescriptors: Partial<Record<RecordChip, Float32Array>>;
}

/** Distances between a probe face and a reference person: Hamming per K, cosine and euclidean on descriptors. */
export interface Distances {
  hamming: Record<number, number>;
  cosine: number;
  euclidean: number;
  /** With --chip rotated: euclidean distance per record-comparison variant (RECORD_CHIPS). */
  record?: Partial<Record<RecordChip, number>>;
}

/** Descriptors travel as base64 of their float32 little-endian bytes: exact and a third the size of decimals. */
function b64(d: Float32Array): string {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("base64");
}

function distances(a: ArrayLike<number>, b: ArrayLike<number>): Distances {
  const hamming: Record<number, number> = {};
  for (const k of KS) {
    const [x, y] = [identityBits(a, { bits: k }), identityBits(b, { bits: k })];
    hamming[k] = x.reduce((s, v, i) => s + (v ^ y[i]!), 0);
  }
  let [dot, na, nb, sq] = [0, 0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
    sq += (a[i]! - b[i]!) ** 2;
  }
  return { hamming, cosine: 1 - dot / Math.sqrt(na * nb), euclidean: Math.sqrt(sq) };
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/**
 * The face at `box` in an encoded image, analysed on a crop of 3x the box around it. The re-share edit has
 * already been applied to the whole photo; cropping only saves the detector and the other faces' nets
 * (the machine this ran on was shared and ~10x slower than idle). The detector box, and so the
 * descriptor, can differ slightly from a full-frame analysis; the benign probes are full-frame.
 */
async function analyzeAround(bytes: Buffer, box: FaceBox): Promise<AnalyzedFace | undefined> {
  const { width = 0, height = 0 } = await sharp(bytes).metadata();
  const left = Math.max(0, Math.floor(box.x - box.width));
  const top = Math.max(0, Math.floor(box.y - box.height));
  const right = Math.min(width, Math.ceil(box.x + 2 * box.width));
  const bottom = Math.min(height, Math.ceil(box.y + 2 * box.height));
  const crop = await sharp(bytes)
    .extract({ left, top, width: right - left, height: bottom - top })
    .png({ compressionLevel: 1 })
    .toBuffer();
  const faces = await analyzeBytes(crop);
  return matchFace(faces, { ...box, x: box.x - left, y: box.y - top });
}

/** --chip rotated: descriptors from eye-levelled face chips (an experiment; the shipped code uses "box"). */
const CHIP = process.argv.includes("--chip") ? (process.argv[process.argv.indexOf("--chip") + 1] as "box" | "rotated") : "box";

/** The record-comparison variants computed alongside (only for the rotated chip, whose variants they are). */
const RECORD_VARIANTS: readonly RecordChip[] = CHIP === "rotated" ? RECORD_CHIPS : [];

async function analyzeBytes(bytes: Buffer): Promise<AnalyzedFace[]> {
  return analyzeFaces(await decodeRaster(bytes), { chip: CHIP, recordChips: RECORD_VARIANTS });
}

/** Euclidean distance per record variant between two analysed faces (empty without --chip rotated). */
function recordDistances(
  a: Partial<Record<RecordChip, Float32Array>>,
  b: Partial<Record<RecordChip, Float32Array>> | undefined,
): Partial<Record<RecordChip, number>> {
  const out: Partial<Record<RecordChip, number>> = {};
  for (const c of RECORD_VARIANTS) {
    const [x, y] = [a[c]!, b![c]!];
    out[c] = Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0));
  }
  return out;
}

interface Job {
  target: string;
  target_landmarks: number[][];
  source: string;
  source_landmarks: number[][];
  mirror_source: boolean;
  out: string;
  t: Person;
  s: Person;
}

/** Head yaw proxy from the 68 landmarks: nose tip (30) offset from the jaw ends' midpoint (0, 16), in jaw widths. */
export function yaw(landmarks: [number, number][]): number {
  const [left, right, nose] = [landmarks[0]!, landmarks[16]!, landmarks[30]!];
  return (nose[0] - (left[0] + right[0]) / 2) / Math.max(1, right[0] - left[0]);
}

function randomSources(t: Person, people: Person[]): { s: Person; mirror: boolean }[] {
  return people.filter((p) => p.id !== t.id).map((s) => ({ s, mirror: false }));
}

/** The `count` other people whose (possibly mirrored) yaw is closest to the target's. */
function poseSources(t: Person, people: Person[], count: number): { s: Person; mirror: boolean }[] {
  const target = yaw(t.landmarks);
  return people
    .filter((p) => p.id !== t.id)
    .map((s) => {
      const y = yaw(s.landmarks);
      const mirror = Math.abs(-y - target) < Math.abs(y - target);
      return { s, mirror, gap: Math.abs((mirror ? -y : y) - target) };
    })
    .sort((a, b) => a.gap - b.gap)
    .slice(0, count)
    .map(({ s, mirror }) => ({ s, mirror }));
}

async function main(): Promise<void> {
  const sourcesPerTarget = arg("sources", 5);
  const rng = mulberry32(arg("seed", 20261126));
  const pairing = process.argv.includes("--random-pairs") ? "random" : "pose";
  const rawPath = process.argv.includes("--out")
    ? process.argv[process.argv.indexOf("--out") + 1]!
    : `models/identity/eval-raw-${pairing}.json`;
  const work = join(tmpdir(), `vigil-identity-eval-${pairing}`);
  mkdirSync(work, { recursive: true });
  const photos = [...FACE_API_SAMPLES, `${SKIMAGE_DATA}/astronaut.png`];

  // 1. Every face in the original photos is one person (each person appears in one photo only).
  const people: Person[] = [];
  const rasters = new Map<string, RasterImage>();
  for (const path of photos) {
    const photo = path
      .split("/")
      .pop()!
      .replace(/\.\w+$/, "");
    const img = await loadRaster(path);
    rasters.set(photo, img);
    const t0 = performance.now();
    const faces = await analyzeFaces(img, { chip: CHIP, recordChips: RECORD_VARIANTS });
    console.log(`${photo}: ${img.width}x${img.height}, ${faces.length} faces, ${Math.round(performance.now() - t0)} ms`);
    faces.forEach((f, i) =>
      people.push({
        id: `${photo}#${i}`,
        photo,
        path,
        box: f.box,
        landmarks: f.landmarks,
        descriptor: f.descriptor,
        chipDescriptors: f.chipDescriptors ?? {},
      }),
    );
  }

  // 2. Genuine pairs: the same face after each benign edit of its photo.
  const genuine: ({ person: string; edit: string } & (({ found: true; descriptor: string } & Distances) | { found: false }))[] =
    [];
  for (const [photo, img] of rasters) {
    const mine = people.filter((p) => p.photo === photo);
    for (const edit of BENIGN_EDITS) {
      const { bytes, mapBox } = await edit.apply(img);
      const faces = await analyzeBytes(bytes);
      for (const p of mine) {
        const f = matchFace(faces, mapBox(p.box));
        genuine.push(
          f
            ? {
                person: p.id,
                edit: edit.name,
                found: true,
                ...distances(p.descriptor, f.descriptor),
                record: recordDistances(p.chipDescriptors, f.chipDescriptors),
                descriptor: b64(f.descriptor),
              }
            : { person: p.id, edit: edit.name, found: false },
        );
      }
    }
    console.log(`${photo}: benign edits done`);
  }

  // 3. Impostor pairs: every pair of different people, original photos.
  const impostor: ({ a: string; b: string } & Distances)[] = [];
  for (let i = 0; i < people.length; i++) {
    for (let j = i + 1; j < people.length; j++)
      impostor.push({
        a: people[i]!.id,
        b: people[j]!.id,
        ...distances(people[i]!.descriptor, people[j]!.descriptor),
        record: recordDistances(people[i]!.chipDescriptors, people[j]!.chipDescriptors),
      });
  }

  // 4. Face swaps: each person's face replaced by `sourcesPerTarget` others, then re-shared as is, as
  //    JPEG q75, and resized 0.5x + JPEG q75. "random" pairs any two people; "pose" (the default, and the
  //    harder test) draws sources among the people whose head yaw is closest to the target's, mirroring a
  //    source when that brings it closer, as a face-swap tool would only be used on compatible poses.
  const jobs: Job[] = [];
  for (const t of people) {
    const candidates = pairing === "random" ? randomSources(t, people) : poseSources(t, people, 2 * sourcesPerTarget);
    for (let n = 0; n < sourcesPerTarget && candidates.length; n++) {
      const { s, mirror } = candidates.splice(rng() % candidates.length, 1)[0]!;
      jobs.push({
        target: t.path,
        target_landmarks: t.landmarks,
        source: s.path,
        source_landmarks: s.landmarks,
        mirror_source: mirror,
        out: join(work, `${t.id}__${s.id}${mirror ? "_m" : ""}.png`.replace(/#/g, "_")),
        t,
        s,
      });
    }
  }
  const jobFile = join(work, "jobs.json");
  writeFileSync(jobFile, JSON.stringify(jobs.map(({ t, s, ...j }) => j)));
  const t0 = performance.now();
  console.log(
    execFileSync("/usr/bin/python3", ["models/identity/swap.py", jobFile], { encoding: "utf8" }).trim(),
    `in ${Math.round(performance.now() - t0)} ms`,
  );

  const variants: { name: string; apply(b: Buffer, w: number, h: number): Promise<{ bytes: Buffer; scale: number }> }[] = [
    { name: "none", apply: async (b) => ({ bytes: b, scale: 1 }) },
    { name: "jpeg_q75", apply: async (b) => ({ bytes: await sharp(b).jpeg({ quality: 75 }).toBuffer(), scale: 1 }) },
    {
      name: "resize_0.5+jpeg_q75",
      apply: async (b, w, h) => ({
        bytes: await sharp(b)
          .resize(Math.round(w / 2), Math.round(h / 2), { kernel: "lanczos3" })
          .jpeg({ quality: 75 })
          .toBuffer(),
        scale: 0.5,
      }),
    },
  ];
  const swaps: ({ target: string; source: string; variant: string } & (
    { found: true; toTarget: Distances; toSource: Distances; record: Distances["record"]; descriptor: string } | { found: false }
  ))[] = [];
  for (const job of jobs) {
    let swapped: Buffer;
    try {
      swapped = readFileSync(job.out);
    } catch {
      continue; // the simulator skipped it (reported on stderr)
    }
    const { width, height } = rasters.get(job.t.photo)!;
    for (const v of variants) {
      const { bytes, scale } = await v.apply(swapped, width, height);
      const b = job.t.box;
      const f = await analyzeAround(bytes, { x: b.x * scale, y: b.y * scale, width: b.width * scale, height: b.height * scale });
      swaps.push(
        f
          ? {
              target: job.t.id,
              source: job.s.id,
              variant: v.name,
              found: true,
              toTarget: distances(job.t.descriptor, f.descriptor),
              toSource: distances(job.s.descriptor, f.descriptor),
              record: recordDistances(job.t.chipDescriptors, f.chipDescriptors),
              descriptor: b64(f.descriptor),
            }
          : { target: job.t.id, source: job.s.id, variant: v.name, found: false },
      );
    }
  }
  console.log(`${swaps.length} swap analyses`);

  const raw = {
    generated_by: "models/identity/scripts/collect.ts",
    photos,
    // Descriptors of the original faces, so the report can check bit balance and the code is re-derivable.
    people: people.map((p) => ({
      id: p.id,
      box: p.box,
      yaw: yaw(p.landmarks),
      descriptor: b64(p.descriptor),
      ...(RECORD_VARIANTS.length
        ? { chip_descriptors: Object.fromEntries(RECORD_VARIANTS.map((c) => [c, b64(p.chipDescriptors[c]!)])) }
        : {}),
    })),
    record_variants: RECORD_VARIANTS,
    ks: KS,
    edits: BENIGN_EDITS.map((e) => e.name),
    sources_per_target: sourcesPerTarget,
    pairing,
    genuine,
    impostor,
    swaps,
  };
  writeFileSync(rawPath, JSON.stringify(raw) + "\n");
  console.log(`wrote ${rawPath}`);
}

await main();
