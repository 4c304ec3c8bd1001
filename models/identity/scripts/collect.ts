/**
 * Collects the raw identity distances for calibration and the face-swap evaluation, on every photo of
 * people available offline: @vladmandic/face-api demo/sample1-6.jpg and scikit-image's astronaut.png.
 * Every face is analysed by the runner's own analyzeFaces (real models), every edit is made with sharp
 * and every swap with models/identity/swap.py (OpenCV). Writes models/identity/eval-raw.json.
 *
 * Run: npx tsx models/identity/scripts/collect.ts [--sources N] [--seed S]   (about 10 min on 2 cores)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { analyzeFaces, type AnalyzedFace, type FaceBox } from "../../../gpu-runner/src/face/analyze.ts";
import { identityBits, mulberry32 } from "../../../gpu-runner/src/face/identity-code.ts";
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
}

/** Distances between a probe face and a reference person: Hamming per K, cosine and euclidean on descriptors. */
export interface Distances {
  hamming: Record<number, number>;
  cosine: number;
  euclidean: number;
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

async function analyzeBytes(bytes: Buffer): Promise<AnalyzedFace[]> {
  return analyzeFaces(await decodeRaster(bytes));
}

async function main(): Promise<void> {
  const sourcesPerTarget = arg("sources", 5);
  const rng = mulberry32(arg("seed", 20261126));
  const work = join(tmpdir(), "vigil-identity-eval");
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
    const faces = await analyzeFaces(img);
    console.log(`${photo}: ${img.width}x${img.height}, ${faces.length} faces, ${Math.round(performance.now() - t0)} ms`);
    faces.forEach((f, i) =>
      people.push({ id: `${photo}#${i}`, photo, path, box: f.box, landmarks: f.landmarks, descriptor: f.descriptor }),
    );
  }

  // 2. Genuine pairs: the same face after each benign edit of its photo.
  const genuine: ({ person: string; edit: string } & (({ found: true } & Distances) | { found: false }))[] = [];
  for (const [photo, img] of rasters) {
    const mine = people.filter((p) => p.photo === photo);
    for (const edit of BENIGN_EDITS) {
      const { bytes, mapBox } = await edit.apply(img);
      const faces = await analyzeBytes(bytes);
      for (const p of mine) {
        const f = matchFace(faces, mapBox(p.box));
        genuine.push(
          f
            ? { person: p.id, edit: edit.name, found: true, ...distances(p.descriptor, f.descriptor) }
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
      impostor.push({ a: people[i]!.id, b: people[j]!.id, ...distances(people[i]!.descriptor, people[j]!.descriptor) });
  }

  // 4. Face swaps: each person's face replaced by `sourcesPerTarget` others, drawn at random, then
  //    re-shared as is, as JPEG q75, and resized 0.5x + JPEG q75.
  const jobs: {
    target: string;
    target_landmarks: number[][];
    source: string;
    source_landmarks: number[][];
    out: string;
    t: Person;
    s: Person;
  }[] = [];
  for (const t of people) {
    const others = people.filter((p) => p.id !== t.id);
    for (let n = 0; n < sourcesPerTarget && others.length; n++) {
      const s = others.splice(rng() % others.length, 1)[0]!;
      jobs.push({
        target: t.path,
        target_landmarks: t.landmarks,
        source: s.path,
        source_landmarks: s.landmarks,
        out: join(work, `${t.id}__${s.id}.png`.replace(/#/g, "_")),
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
    { found: true; toTarget: Distances; toSource: Distances } | { found: false }
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
      const f = matchFace(await analyzeBytes(bytes), {
        x: b.x * scale,
        y: b.y * scale,
        width: b.width * scale,
        height: b.height * scale,
      });
      swaps.push(
        f
          ? {
              target: job.t.id,
              source: job.s.id,
              variant: v.name,
              found: true,
              toTarget: distances(job.t.descriptor, f.descriptor),
              toSource: distances(job.s.descriptor, f.descriptor),
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
    people: people.map((p) => ({ id: p.id, box: p.box, descriptor: Array.from(p.descriptor, (v) => Number(v.toFixed(6))) })),
    ks: KS,
    edits: BENIGN_EDITS.map((e) => e.name),
    sources_per_target: sourcesPerTarget,
    genuine,
    impostor,
    swaps,
  };
  writeFileSync("models/identity/eval-raw.json", JSON.stringify(raw) + "\n");
  console.log("wrote models/identity/eval-raw.json");
}

await main();
