/**
 * End-to-end evaluation of face-swap detection through the real product, watermark in the loop:
 * protect -> (benign edit | face swap) -> verify, on the local stack (wrangler dev with the real worker, D1,
 * R2 and queues, plus one CPU runner with the real face-api nets and ONNX watermark models).
 *
 * 1. The 23 faces of the offline photos (face-api demo sample1-6.jpg, scikit-image astronaut.png) are found
 *    in-process with the runner's analyzeFaces, as collect.ts does.
 * 2. Each person is protected through POST /v1/protect. Protect seals every face (up to 10) and lists the largest
 *    first; group photos are cropped around the person (3x the face box, shrunk until no neighbour's visible part
 *    could be as large) so that the person is record face 0, and the sealed face is checked against the person's
 *    box; a person whose crop seals someone else first is dropped.
 * 3. Benign copies of each protected image (sharp; the edits of common.ts: JPEG q75 and q50, 0.5x resize,
 *    10 % crop of each side, brightness +-30 %; the reframes of issue 13, defined here: centre crop keeping 80 %
 *    of each side, the largest centred 1:1 crop, centre crop 85 % + resize to 720 px long side + JPEG q80; plus
 *    the protected image unedited as a control) and face swaps (models/identity/swap.py on the protected image,
 *    sources pose-paired as collect.ts does, each verified as is, re-shared as JPEG q75, and cropped after the
 *    swap with each of the three reframes) are verified with POST /v1/verify, `Prefer: wait=60`.
 * 4. Raw per-probe results go to models/identity/eval-e2e-raw.json, tables to models/identity/RESULTS-E2E.md
 *    (Wilson 95 % intervals for rates, a people-level bootstrap for the AUC of evidence.identity_distance).
 *
 * Run: npx tsx models/identity/scripts/eval-e2e.ts [--sources 4] [--people N] [--seed 20261126] [--port 38747] [--extra-edits]
 *      npx tsx models/identity/scripts/eval-e2e.ts --report-only   (re-writes RESULTS-E2E.md from the raw file)
 * --people N keeps a seeded random subset of N targets (sources are still drawn from all 23 people).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { analyzeFaces, type FaceBox } from "../../../gpu-runner/src/face/analyze.ts";
import { mulberry32 } from "../../../contract/random.ts";
import { LocalStack } from "../../../scripts/local-stack.ts";
import {
  BENIGN_EDITS,
  decodeRaster,
  FACE_API_SAMPLES,
  iou,
  loadRaster,
  type BenignEdit,
  type Rate,
  SKIMAGE_DATA,
  wilson,
} from "./common.ts";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";

/** A centred crop keeping `keepX` x `keepY` of the sides (pixels, rounded as the issue's OpenCV edits). */
function centred(img: { width: number; height: number }, keepX: number, keepY = keepX) {
  const [width, height] = [Math.round(img.width * keepX), Math.round(img.height * keepY)];
  return { left: Math.floor((img.width - width) / 2), top: Math.floor((img.height - height) / 2), width, height };
}

/** Sharp on an encoded image or a raster. */
const open = (img: Buffer | RasterImage) =>
  Buffer.isBuffer(img)
    ? sharp(img)
    : sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
        raw: { width: img.width, height: img.height, channels: img.channels as 3 },
      });

/**
 * The reframes of issue 13 (what platforms do at upload), for benign copies and for swaps after the swap:
 * codec 2 of the watermark finds the original's place in the copy and verify maps the protected face there.
 */
const CROP_EDITS: { name: string; apply(img: Buffer | RasterImage, size: { width: number; height: number }): Promise<Buffer> }[] =
  [
    {
      name: "crop_centre_80",
      apply: (img, size) => open(img).extract(centred(size, 0.8)).png({ compressionLevel: 1 }).toBuffer(),
    },
    {
      name: "crop_square",
      apply: (img, size) => {
        const s = Math.min(size.width, size.height);
        return open(img)
          .extract(centred(size, s / size.width, s / size.height))
          .png({ compressionLevel: 1 })
          .toBuffer();
      },
    },
    {
      name: "crop_85+720px+jpeg_q80",
      apply: (img, size) => {
        const c = centred(size, 0.85);
        const long = c.width >= c.height ? { width: 720 } : { height: 720 };
        return open(img)
          .extract(c)
          .resize({ ...long, kernel: "lanczos3" })
          .jpeg({ quality: 80 })
          .toBuffer();
      },
    },
  ];
const CROP_NAMES = CROP_EDITS.map((e) => e.name);
/** A benign edit by name: common.ts's, or one of the reframes. */
function benignEdit(name: string): BenignEdit["apply"] {
  const crop = CROP_EDITS.find((e) => e.name === name);
  if (crop) return async (img) => ({ bytes: await crop.apply(img, img), mapBox: (b) => b });
  return BENIGN_EDITS.find((e) => e.name === name)!.apply;
}

/**
 * --extra-edits adds the calibration's harsher edits (rotation +-5 deg, 0.5x + JPEG q75), which set the record
 * threshold's benign tail, and writes to its own files so the main run's tables stay as they are.
 */
const EXTRA = process.argv.includes("--extra-edits");
const RAW_PATH = EXTRA ? "models/identity/eval-e2e-raw-extra-edits.json" : "models/identity/eval-e2e-raw.json";
const MD_PATH = EXTRA ? "models/identity/RESULTS-E2E-extra-edits.md" : "models/identity/RESULTS-E2E.md";
const EDITS = [
  "jpeg_q75",
  "jpeg_q50",
  "resize_0.5",
  "crop_10pct",
  "brightness_+30",
  "brightness_-30",
  ...CROP_NAMES,
  ...(EXTRA ? ["rotate_5deg", "rotate_-5deg", "resize_0.5+jpeg_q75"] : []),
];
const N_EDITS =
  ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][EDITS.length] ?? String(EDITS.length);
/** How each swap is re-shared: as swap.py wrote it, as JPEG q75, and each reframe applied after the swap. */
const SWAP_VARIANTS = ["none", "jpeg_q75", ...CROP_NAMES];
const VERDICTS = ["authentic", "face_swapped", "not_protected", "inconclusive"] as const;
const BOOTSTRAP = 2000;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

interface Person {
  id: string;
  photo: string;
  path: string;
  box: FaceBox;
  landmarks: [number, number][];
  yaw: number;
}

/** One verify call and what came back. */
export interface Probe {
  kind: "benign" | "swap";
  target: string;
  /** benign: the edit ("none" = the protected image itself); swap: the re-share ("none" | "jpeg_q75"). */
  variant: string;
  /** swap only: the person whose face was pasted in, and whether it was mirrored. */
  source_person?: string;
  mirrored?: boolean;
  expected_asset: string;
  flow_id: string | null;
  status: string;
  verdict: string | null;
  traced_asset: string | null;
  /** The deciding distance: euclidean when identity_basis is "record", Hamming when "payload". */
  identity_distance: number | null;
  /** Which comparison decided (evidence.identity_basis); null when none ran. */
  identity_basis?: "record" | "payload" | null;
  /** Hamming distance to the payload's 32-bit code, whichever comparison decided. */
  payload_identity_distance?: number | null;
  /** Whether verify looked a second time at the protected face's place. */
  region_search?: boolean | null;
  /** The codec that marked the copy (evidence.watermark_codec) and the decoded geometry's flip and scale. */
  watermark_codec?: 1 | 2 | null;
  geometry?: { flipped: boolean | null; scale: number | null; rotation_deg: number } | null;
  /** Each protected face's outcome (evidence.protected_faces), record order; swapped_faces as reported. */
  face_outcomes?: string[];
  swapped_faces?: number[];
  p_value: number | null;
  watermark_detected: boolean | null;
  payload_authenticated: boolean | null;
  faces_found: number | null;
  threshold: number | null;
  client_ms: number;
  error?: string;
}

// ---------- statistics ----------

/** Mann-Whitney AUC: P(pos > neg) + P(pos = neg) / 2. */
function auc(pos: number[], neg: number[]): number {
  if (!pos.length || !neg.length) return NaN;
  let s = 0;
  for (const p of pos) for (const n of neg) s += p > n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const fmt = (r: Rate) => (r.n ? `${pct(r.rate)} (${r.k}/${r.n}; ${pct(r.low)} - ${pct(r.high)})` : "- (0/0)");

// ---------- stack calls ----------

async function call(stack: LocalStack, path: string, init: RequestInit = {}): Promise<{ status: number; data: any }> {
  const res = await fetch(`${stack.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${stack.vars.VIGIL_DEV_KEY}`, ...(init.headers as Record<string, string>) },
  });
  return { status: res.status, data: await res.json() };
}

/** POST with `Prefer: wait=60`; polls the job (protect and verify are jobs) if the worker answered before it finished. */
async function runFlow(stack: LocalStack, path: string, image: Buffer): Promise<any> {
  const { format } = await sharp(image).metadata();
  const start = await call(stack, path, {
    method: "POST",
    headers: { "content-type": `image/${format}`, prefer: "wait=60" },
    body: new Uint8Array(image),
  });
  if (start.status !== 200 && start.status !== 202)
    throw new Error(`${path}: HTTP ${start.status} ${JSON.stringify(start.data)}`);
  let flow = start.data;
  const deadline = Date.now() + 120_000;
  while (flow.status === "queued" || flow.status === "running") {
    if (Date.now() > deadline) throw new Error(`job ${flow.id} still ${flow.status}`);
    await new Promise((r) => setTimeout(r, 200));
    flow = (await call(stack, `/v1/jobs/${flow.id}`)).data;
  }
  return flow;
}

// ---------- data ----------

function yaw(landmarks: [number, number][]): number {
  const [left, right, nose] = [landmarks[0]!, landmarks[16]!, landmarks[30]!];
  return (nose[0] - (left[0] + right[0]) / 2) / Math.max(1, right[0] - left[0]);
}

/** collect.ts's pose pairing: the `count` other people whose (possibly mirrored) yaw is closest to the target's. */
function poseSources(t: Person, people: Person[], count: number): { s: Person; mirror: boolean }[] {
  return people
    .filter((p) => p.id !== t.id)
    .map((s) => {
      const mirror = Math.abs(-s.yaw - t.yaw) < Math.abs(s.yaw - t.yaw);
      return { s, mirror, gap: Math.abs((mirror ? -s.yaw : s.yaw) - t.yaw) };
    })
    .sort((a, b) => a.gap - b.gap)
    .slice(0, count)
    .map(({ s, mirror }) => ({ s, mirror }));
}

/**
 * Crops of the photo in which `p` should be the largest face, in the order to try: m x the face box on each
 * side (m = 1 first, i.e. 3x the box), skipping any crop where another face's visible part would cover more
 * than 60 % of p's box area (a cut face is detected smaller, but not reliably so). The caller protects the
 * first crop whose sealed face is p's (the detector can miss a face in one framing and find it in another).
 */
function cropsFor(p: Person, all: Person[], width: number, height: number) {
  const out: { left: number; top: number; width: number; height: number; margin: number }[] = [];
  for (const m of [1, 1.5, 0.75, 2, 0.5, 0.35]) {
    const left = Math.max(0, Math.floor(p.box.x - m * p.box.width));
    const top = Math.max(0, Math.floor(p.box.y - m * p.box.height));
    const right = Math.min(width, Math.ceil(p.box.x + (1 + m) * p.box.width));
    const bottom = Math.min(height, Math.ceil(p.box.y + (1 + m) * p.box.height));
    const area = p.box.width * p.box.height;
    const crowded = all.some((o) => {
      if (o.id === p.id || o.photo !== p.photo) return false;
      const w = Math.min(o.box.x + o.box.width, right) - Math.max(o.box.x, left);
      const h = Math.min(o.box.y + o.box.height, bottom) - Math.max(o.box.y, top);
      return w > 0 && h > 0 && w * h > 0.6 * area;
    });
    if (!crowded) out.push({ left, top, width: right - left, height: bottom - top, margin: m });
  }
  return out;
}

async function collect(): Promise<void> {
  const sourcesPerTarget = arg("sources", 4);
  const seed = arg("seed", 20261126);
  const port = arg("port", 38747);
  const rng = mulberry32(seed);
  const photos = [...FACE_API_SAMPLES, `${SKIMAGE_DATA}/astronaut.png`];
  const work = mkdtempSync(join(tmpdir(), "vigil-identity-e2e-eval-"));
  const t0 = performance.now();
  const elapsed = () => `${Math.round((performance.now() - t0) / 1000)} s`;

  // 1. People, found in-process (before the stack starts, so the two do not share the 2 cores).
  const people: Person[] = [];
  const sizes = new Map<string, { width: number; height: number }>();
  for (const path of photos) {
    const photo = path
      .split("/")
      .pop()!
      .replace(/\.\w+$/, "");
    const img = await loadRaster(path);
    sizes.set(photo, { width: img.width, height: img.height });
    (await analyzeFaces(img)).forEach((f, i) =>
      people.push({ id: `${photo}#${i}`, photo, path, box: f.box, landmarks: f.landmarks, yaw: yaw(f.landmarks) }),
    );
  }
  console.log(`${people.length} people in ${photos.length} photos (${elapsed()})`);

  // Targets: everybody, or a seeded subset (--people N). The swap sources are drawn from everybody.
  let targets = [...people];
  const keep = arg("people", people.length);
  if (keep < people.length) {
    const pick = mulberry32(seed ^ 0x5eed);
    for (let i = targets.length - 1; i > 0; i--) {
      const j = pick() % (i + 1);
      [targets[i], targets[j]] = [targets[j]!, targets[i]!];
    }
    targets = targets.slice(0, keep).sort((a, b) => people.indexOf(a) - people.indexOf(b));
  }

  const stack = new LocalStack({
    port,
    persistTo: join(work, "state"),
    envFile: join(work, "dev.vars"),
    runners: 1,
    runnerConcurrency: 1,
    vars: { RATE_LIMIT_PER_MINUTE: "1000000", RATE_LIMIT_BURST: "100000" },
  });
  const probes: Probe[] = [];
  const protectedPeople: {
    person: string;
    asset_id: string;
    crop: { left: number; top: number; width: number; height: number; margin: number } | null;
    sealed_iou: number;
    protect_ms: number;
    attempts: string[];
  }[] = [];
  const dropped: { person: string; why: string }[] = [];
  try {
    await stack.start();
    console.log(`stack up on ${stack.url} (${elapsed()})`);

    const verifyProbe = async (bytes: Buffer, p: Omit<Probe, keyof Awaited<ReturnType<typeof outcome>>>) => {
      const c0 = performance.now();
      let o: Awaited<ReturnType<typeof outcome>>;
      try {
        o = await outcome(await runFlow(stack, "/v1/verify", bytes), c0);
      } catch (e) {
        o = { ...empty, status: "error", client_ms: performance.now() - c0, error: String(e) };
      }
      const probe = { ...p, ...o } as Probe;
      probes.push(probe);
      return probe;
    };

    // 2. Protect, 3. benign copies.
    const protectedImages = new Map<string, { bytes: Buffer; asset: string; landmarks: [number, number][] }>();
    for (const t of targets) {
      const size = sizes.get(t.photo)!;
      const group = people.filter((o) => o.photo === t.photo).length > 1;
      const crops = group ? cropsFor(t, people, size.width, size.height) : [null];
      let flow: any;
      let crop: (typeof crops)[number] = null;
      let sealed = 0;
      let protect_ms = 0;
      const attempts: string[] = [];
      for (crop of crops) {
        const src = sharp(t.path).rotate().removeAlpha();
        const input = await (crop ? src.extract(crop) : src).png({ compressionLevel: 1 }).toBuffer();
        const expected = crop ? { ...t.box, x: t.box.x - crop.left, y: t.box.y - crop.top } : t.box;
        const p0 = performance.now();
        flow = await runFlow(stack, `/v1/protect?owner=eval&external_ref=${encodeURIComponent(t.id)}`, input);
        protect_ms = performance.now() - p0;
        const faces = flow.status === "succeeded" ? (flow.output?.faces ?? []) : [];
        sealed = faces.length ? iou(faces[0].box, expected) : 0;
        if (sealed >= 0.5) break;
        attempts.push(
          `margin ${crop?.margin ?? "whole photo"}: ` +
            (flow.status !== "succeeded"
              ? `protect ${flow.status} ${JSON.stringify(flow.error)}`
              : faces.length
                ? `sealed another face (IoU ${sealed.toFixed(2)})`
                : "protect found no face"),
        );
      }
      if (sealed < 0.5) {
        dropped.push({ person: t.id, why: attempts.join("; ") || "no crop makes this face the largest" });
        continue;
      }
      if (attempts.length) console.log(`${t.id}: protected at crop margin ${crop?.margin} after ${attempts.join("; ")}`);
      const analyze = await call(
        stack,
        `/v1/jobs/${flow.stages.find((s: { operation: string }) => s.operation === "face.analyze").id}`,
      );
      const landmarks = analyze.data.output.faces[0].landmarks as [number, number][];
      const bytes = Buffer.from(await (await fetch(flow.output.image_url)).arrayBuffer());
      protectedImages.set(t.id, { bytes, asset: flow.output.asset_id, landmarks });
      protectedPeople.push({ person: t.id, asset_id: flow.output.asset_id, crop, sealed_iou: sealed, protect_ms, attempts });

      const raster = await decodeRaster(bytes);
      const base = { kind: "benign" as const, target: t.id, expected_asset: flow.output.asset_id };
      const v = await verifyProbe(bytes, { ...base, variant: "none" });
      for (const name of EDITS) await verifyProbe((await benignEdit(name)(raster)).bytes, { ...base, variant: name });
      console.log(
        `${t.id}: protected ${Math.round(protect_ms)} ms (${raster.width}x${raster.height}), ` +
          `unedited verify ${v.verdict} d=${v.identity_distance} ${Math.round(v.client_ms)} ms (${elapsed()})`,
      );
    }

    // 4. Swaps on the protected images: pose-paired sources (collect.ts's rule), one swap.py batch.
    const jobs: { job: Record<string, unknown>; t: Person; s: Person; mirror: boolean }[] = [];
    for (const t of targets) {
      const prot = protectedImages.get(t.id);
      if (!prot) continue;
      const target = join(work, `${t.id.replace("#", "_")}.png`);
      writeFileSync(target, prot.bytes);
      const candidates = poseSources(t, people, 2 * sourcesPerTarget);
      for (let n = 0; n < sourcesPerTarget && candidates.length; n++) {
        const { s, mirror } = candidates.splice(rng() % candidates.length, 1)[0]!;
        const out = join(work, `${t.id}__${s.id}${mirror ? "_m" : ""}.png`.replace(/#/g, "_"));
        jobs.push({
          job: {
            target,
            target_landmarks: prot.landmarks,
            source: s.path,
            source_landmarks: s.landmarks,
            mirror_source: mirror,
            blend: "seamless",
            out,
          },
          t,
          s,
          mirror,
        });
      }
    }
    writeFileSync(join(work, "jobs.json"), JSON.stringify(jobs.map((j) => j.job)));
    console.log(
      execFileSync("/usr/bin/python3", ["models/identity/swap.py", join(work, "jobs.json")], { encoding: "utf8" }).trim(),
    );
    for (const { job, t, s, mirror } of jobs) {
      if (!existsSync(job.out as string)) {
        dropped.push({ person: `${t.id} <- ${s.id}`, why: "swap.py could not make this swap" });
        continue;
      }
      const swapped = readFileSync(job.out as string);
      const size = (await sharp(swapped).metadata()) as { width: number; height: number };
      const base = { kind: "swap" as const, target: t.id, source_person: s.id, mirrored: mirror };
      for (const variant of SWAP_VARIANTS) {
        const crop = CROP_EDITS.find((e) => e.name === variant);
        const bytes =
          variant === "none"
            ? swapped
            : crop
              ? await crop.apply(swapped, size)
              : await sharp(swapped).jpeg({ quality: 75 }).toBuffer();
        const pr = await verifyProbe(bytes, { ...base, variant, expected_asset: protectedImages.get(t.id)!.asset });
        if (variant === "none") console.log(`swap ${t.id} <- ${s.id}: ${pr.verdict} d=${pr.identity_distance} (${elapsed()})`);
      }
    }
  } catch (err) {
    console.error(stack.outputTails());
    throw err;
  } finally {
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }

  const raw = {
    generated_by: "models/identity/scripts/eval-e2e.ts",
    command: process.argv.slice(2).join(" "),
    seed,
    sources_per_target: sourcesPerTarget,
    pairing: "pose (collect.ts: 4 of the 8 people closest in yaw, mirrored when closer)",
    photos,
    people: people.map((p) => ({ id: p.id, box: p.box, yaw: p.yaw })),
    targets: targets.map((t) => t.id),
    protected: protectedPeople,
    dropped,
    benign_edits: ["none", ...EDITS],
    swap_variants: SWAP_VARIANTS,
    machine: { cpus: cpus().length, node: process.version, load_avg_1m_end: Math.round(loadavg()[0]! * 10) / 10 },
    wall_s: Math.round((performance.now() - t0) / 1000),
    probes,
  };
  writeFileSync(RAW_PATH, JSON.stringify(raw, null, 1) + "\n");
  console.log(`wrote ${RAW_PATH} (${probes.length} probes, ${elapsed()})`);
  report(raw);
}

const empty = {
  flow_id: null,
  status: "error",
  verdict: null,
  traced_asset: null,
  identity_distance: null,
  identity_basis: null,
  payload_identity_distance: null,
  region_search: null,
  watermark_codec: null,
  geometry: null,
  face_outcomes: [],
  swapped_faces: [],
  p_value: null,
  watermark_detected: null,
  payload_authenticated: null,
  faces_found: null,
  threshold: null,
  client_ms: 0,
};

async function outcome(flow: any, c0: number) {
  const ev = flow.output?.evidence ?? {};
  return {
    flow_id: flow.id ?? null,
    status: String(flow.status),
    verdict: flow.output?.verdict ?? null,
    traced_asset: flow.output?.source?.asset_id ?? null,
    identity_distance: ev.identity_distance ?? null,
    identity_basis: ev.identity_basis ?? null,
    payload_identity_distance: ev.payload_identity_distance ?? null,
    region_search: ev.region_search ?? null,
    watermark_codec: ev.watermark_codec ?? null,
    geometry: ev.geometry
      ? { flipped: ev.geometry.flipped ?? null, scale: ev.geometry.scale ?? null, rotation_deg: ev.geometry.rotation_deg }
      : null,
    face_outcomes: (ev.protected_faces ?? []).map((f: { outcome: string }) => f.outcome),
    swapped_faces: ev.swapped_faces ?? [],
    p_value: ev.p_value ?? null,
    watermark_detected: ev.watermark_detected ?? null,
    payload_authenticated: ev.payload_authenticated ?? null,
    faces_found: ev.faces_found ?? null,
    threshold: ev.threshold ?? null,
    client_ms: Math.round(performance.now() - c0),
    ...(flow.status !== "succeeded" ? { error: JSON.stringify(flow.error) } : {}),
  };
}

// ---------- report ----------

interface Raw {
  command: string;
  seed: number;
  sources_per_target: number;
  people: { id: string }[];
  targets: string[];
  protected: { person: string; crop: unknown; protect_ms: number; attempts: string[] }[];
  dropped: { person: string; why: string }[];
  machine: { cpus: number; load_avg_1m_end: number };
  wall_s: number;
  probes: Probe[];
}

function report(raw: Raw): void {
  const probes = raw.probes;
  const benign = probes.filter((p) => p.kind === "benign");
  const swaps = probes.filter((p) => p.kind === "swap");
  const count = (ps: Probe[], f: (p: Probe) => boolean) => wilson(ps.filter(f).length, ps.length);
  // Runs before the record comparison existed carry only Hamming distances: read them as the payload basis.
  for (const p of probes) {
    if (p.identity_basis === undefined) p.identity_basis = p.identity_distance === null ? null : "payload";
    if (p.payload_identity_distance === undefined || p.payload_identity_distance === null)
      p.payload_identity_distance = p.identity_basis === "payload" ? p.identity_distance : null;
  }
  const threshold = probes.find((p) => p.identity_basis === "payload")?.threshold ?? NaN;
  const recordThreshold = probes.find((p) => p.identity_basis === "record")?.threshold ?? null;
  const lines: string[] = [];
  const L = (s = "") => lines.push(s);
  const split = (ps: Probe[]) => [
    ...VERDICTS.map((v) => fmt(count(ps, (p) => p.verdict === v))),
    String(ps.filter((p) => p.verdict === null).length),
  ];

  L("# Identity: end-to-end evaluation through the watermark");
  L();
  L(
    "Generated by `models/identity/scripts/eval-e2e.ts` from `eval-e2e-raw.json`: protect -> benign edit or face swap -> " +
      "verify on the real local stack (wrangler dev + one CPU runner, real face nets and watermark models), every verify " +
      "with `Prefer: wait=60`. Rates: Wilson 95 % intervals (k/n; low - high). AUC: 95 % percentile interval of a " +
      `bootstrap over target people (${BOOTSTRAP} resamples).`,
  );
  L();
  L(
    `Command: \`npx tsx models/identity/scripts/eval-e2e.ts${raw.command ? ` ${raw.command}` : ""}\`. Seed ${raw.seed}; ` +
      `${raw.targets.length} of ${raw.people.length} people targeted, ${raw.protected.length} protected ` +
      `(${raw.protected.filter((p) => p.crop).length} from a crop of their group photo); ` +
      `${raw.sources_per_target} pose-paired swap sources per target; ${probes.length} verifies in ${Math.round(raw.wall_s / 60)} min ` +
      `on ${raw.machine.cpus} cores (load ${raw.machine.load_avg_1m_end} at the end). Verdict thresholds: ` +
      (recordThreshold !== null ? `record comparison (euclidean on the sealed descriptor) ${recordThreshold}; ` : "") +
      `payload code (Hamming radius) ${Number.isNaN(threshold) ? "not used" : threshold}.`,
  );
  const retried = raw.protected.filter((p) => p.attempts?.length);
  if (retried.length) {
    L();
    L("Protected only after another crop: " + retried.map((p) => `${p.person} (${p.attempts.join("; ")})`).join("; ") + ".");
  }
  if (raw.dropped.length) {
    L();
    L("Dropped: " + raw.dropped.map((d) => `${d.person} (${d.why})`).join("; ") + ".");
  }
  const errors = probes.filter((p) => p.status !== "succeeded");
  if (errors.length) {
    L();
    L(
      `Flows that did not succeed (no verdict): ${errors.length}: ${errors.map((e) => `${e.target} ${e.variant} ${e.status}`).join(", ")}.`,
    );
  }
  L();

  L("## Verdicts");
  L();
  L("| probes | n | authentic | face_swapped | not_protected | inconclusive | no verdict |");
  L("|---|---|---|---|---|---|---|");
  L(`| face swaps, all | ${swaps.length} | ${split(swaps).join(" | ")} |`);
  const swapsCropped = swaps.filter((p) => CROP_NAMES.includes(p.variant));
  if (swapsCropped.length)
    L(
      `| face swaps, cropped after the swap (${CROP_NAMES.length} reframes) | ${swapsCropped.length} | ${split(swapsCropped).join(" | ")} |`,
    );
  for (const v of SWAP_VARIANTS) {
    const ps = swaps.filter((p) => p.variant === v);
    L(`| face swaps, re-share ${v} | ${ps.length} | ${split(ps).join(" | ")} |`);
  }
  const edited = benign.filter((p) => p.variant !== "none");
  L(`| benign edits, all ${N_EDITS} | ${edited.length} | ${split(edited).join(" | ")} |`);
  const reframed = edited.filter((p) => CROP_NAMES.includes(p.variant));
  if (reframed.length) {
    const others = edited.filter((p) => !CROP_NAMES.includes(p.variant));
    L(`| benign edits other than the reframes | ${others.length} | ${split(others).join(" | ")} |`);
    L(`| benign reframes (${CROP_NAMES.length}) | ${reframed.length} | ${split(reframed).join(" | ")} |`);
  }
  for (const v of ["none", ...EDITS]) {
    const ps = benign.filter((p) => p.variant === v);
    L(`| benign: ${v === "none" ? "protected image, unedited (control)" : v} | ${ps.length} | ${split(ps).join(" | ")} |`);
  }
  L();
  L(
    "Swap detection rate = face_swapped among swaps. False-alarm rate = face_swapped among benign copies. " +
      "not_protected on a benign copy means the watermark did not survive the edit (or did not authenticate); " +
      "inconclusive means a watermark with a face payload authenticated but verify found no face.",
  );
  L();

  const crops = probes.filter((p) => CROP_NAMES.includes(p.variant));
  if (crops.length) {
    L("## Reframes: the watermark's geometry");
    L();
    L(
      "Per reframe (benign copies and swaps cropped after the swap): the copies whose watermark was detected, marked by " +
        "codec 2 (evidence.watermark_codec), with the decoded geometry's scale (copy pixels per original pixel; 1 for the " +
        "crops, 720 / the 85 % crop's long side for the resized one), and the protected face's outcome at its mapped place " +
        "(evidence.protected_faces: match, swapped, not_found, not_in_copy, too_small).",
    );
    L();
    L("| reframe | kind | n | watermark detected | codec 2 | scale (median, min - max) | face outcomes |");
    L("|---|---|---|---|---|---|---|");
    for (const name of CROP_NAMES)
      for (const kind of ["benign", "swap"] as const) {
        const ps = crops.filter((p) => p.variant === name && p.kind === kind);
        if (!ps.length) continue;
        const sc = ps
          .map((p) => p.geometry?.scale)
          .filter((v): v is number => typeof v === "number")
          .sort((a, b) => a - b);
        const outcomes = new Map<string, number>();
        for (const p of ps) for (const o of p.face_outcomes ?? []) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
        L(
          `| ${name} | ${kind} | ${ps.length} | ${fmt(count(ps, (p) => p.watermark_detected === true))} | ` +
            `${ps.filter((p) => p.watermark_codec === 2).length} | ` +
            (sc.length
              ? `${sc[Math.floor(sc.length / 2)]!.toFixed(3)} (${sc[0]!.toFixed(3)} - ${sc[sc.length - 1]!.toFixed(3)})`
              : "-") +
            ` | ${[...outcomes].map(([o, n]) => `${o} ${n}`).join(", ") || "-"} |`,
        );
      }
    L();
  }

  L("## Which comparison decided");
  L();
  L(
    "evidence.identity_basis: `record` = euclidean distance between the descriptor sealed in the asset record and the face " +
      "at the protected place; `payload` = Hamming distance to the watermark's 32-bit code. evidence.region_search: verify " +
      "looked again at the protected face's box with a lower detector cut because the first analysis found no face there.",
  );
  L();
  L("| probes | n | basis record | basis payload | no comparison | region look | region look -> a face compared |");
  L("|---|---|---|---|---|---|---|");
  for (const [name, ps] of [
    ["face swaps", swaps],
    [`benign, ${N_EDITS} edits`, edited],
    ["benign, unedited", benign.filter((p) => p.variant === "none")],
  ] as const) {
    const rs = ps.filter((p) => p.region_search);
    L(
      `| ${name} | ${ps.length} | ${ps.filter((p) => p.identity_basis === "record").length} | ${ps.filter((p) => p.identity_basis === "payload").length} | ` +
        `${ps.filter((p) => !p.identity_basis).length} | ${rs.length} | ${rs.filter((p) => p.identity_basis).length} |`,
    );
  }
  L();

  L("## Source tracing");
  L();
  const detected = swaps.filter((p) => p.verdict === "face_swapped");
  const withSource = probes.filter((p) => p.traced_asset !== null);
  const right = (p: Probe) => p.traced_asset === p.expected_asset;
  L("| of | traced to the right protected asset |");
  L("|---|---|");
  L(`| detected swaps (verdict face_swapped) | ${fmt(count(detected, right))} |`);
  L(
    `| every swap verify that returned a source | ${fmt(
      count(
        swaps.filter((p) => p.traced_asset !== null),
        right,
      ),
    )} |`,
  );
  L(
    `| every benign verify that returned a source | ${fmt(
      count(
        benign.filter((p) => p.traced_asset !== null),
        right,
      ),
    )} |`,
  );
  L(`| every verify that returned a source | ${fmt(count(withSource, right))} |`);
  L(`| all swaps (a source returned and right) | ${fmt(count(swaps, right))} |`);
  L();

  const targets = [...new Set(probes.map((p) => p.target))];
  const recordScored = (ps: Probe[]) => ps.filter((p) => p.identity_basis === "record").map((p) => p.identity_distance!);
  if (recordScored(probes).length) {
    L("## Record comparison: euclidean distance as a score");
    L();
    const rs = recordScored(swaps);
    const rb = recordScored(edited);
    L(
      `Swaps with a record distance: ${rs.length}/${swaps.length}; benign (${N_EDITS} edits): ${rb.length}/${edited.length}; ` +
        `AUC ${auc(rs, rb).toFixed(3)}. Benign max ${rb.length ? Math.max(...rb).toFixed(3) : "-"}, swap min ${rs.length ? Math.min(...rs).toFixed(3) : "-"}.`,
    );
    L();
    L(
      "Re-scoring the same measured record distances at other thresholds (probes decided by the payload code or without a " +
        `comparison keep their verdict; rates over all swaps and all ${N_EDITS}-edit benign copies):`,
    );
    L();
    L("| threshold | swap detection | benign false alarm |");
    L("|---|---|---|");
    const keep = (p: Probe) => p.identity_basis !== "record" && p.verdict === "face_swapped";
    for (const t of [0.3, 0.35, 0.4, 0.45, recordThreshold ?? 0.473, 0.5, 0.55, 0.6].sort((a, b) => a - b)) {
      const fs = (p: Probe) => (p.identity_basis === "record" ? p.identity_distance! > t : keep(p));
      L(`| ${t.toFixed(3)}${t === recordThreshold ? " (shipped)" : ""} | ${fmt(count(swaps, fs))} | ${fmt(count(edited, fs))} |`);
    }
    L();
    const BIN = 0.05;
    const edges = Array.from({ length: 20 }, (_, i) => i * BIN);
    const eh = (v: number[]) => edges.map((e, i) => v.filter((x) => x >= e && (x < e + BIN || i === edges.length - 1)).length);
    L(`| euclidean (bin lower edge) | ${edges.map((e) => e.toFixed(2)).join(" | ")} |`);
    L(`|---|${"---|".repeat(edges.length)}`);
    L(`| benign (${N_EDITS} edits) | ${eh(rb).join(" | ")} |`);
    L(`| benign unedited | ${eh(recordScored(benign.filter((p) => p.variant === "none"))).join(" | ")} |`);
    L(`| swaps | ${eh(rs).join(" | ")} |`);
    L();
  }

  L("## Payload code: Hamming distance as a score");
  L();
  const scored = (ps: Probe[]) => ps.filter((p) => p.payload_identity_distance !== null).map((p) => p.payload_identity_distance!);
  const aucOf = (pos: Probe[], neg: Probe[]) => auc(scored(pos), scored(neg));
  const boot = (pos: Probe[], neg: Probe[]) => {
    const next = mulberry32(7);
    const values: number[] = [];
    for (let b = 0; b < BOOTSTRAP; b++) {
      const sample = targets.map(() => targets[next() % targets.length]!);
      const take = (ps: Probe[]) => sample.flatMap((t) => ps.filter((p) => p.target === t));
      const v = aucOf(take(pos), take(neg));
      if (!Number.isNaN(v)) values.push(v);
    }
    values.sort((a, b) => a - b);
    if (!values.length) return { low: NaN, high: NaN };
    return { low: values[Math.floor(0.025 * values.length)]!, high: values[Math.ceil(0.975 * values.length) - 1]! };
  };
  L(
    "evidence.payload_identity_distance (Hamming distance between the code sealed in the watermark and the face now, reported " +
      "whichever comparison decided) exists only when the payload authenticated and a face was found; the AUC is over those " +
      "probes (swaps positive, benign negative).",
  );
  L();
  L("| swaps | benign | swaps with a distance | benign with a distance | AUC (95 % CI) |");
  L("|---|---|---|---|---|");
  const row = (name: string, pos: Probe[], neg: Probe[]) => {
    const b = boot(pos, neg);
    L(
      `| ${name} | ${neg === edited ? `${N_EDITS} edits` : `${N_EDITS} edits + unedited`} | ${scored(pos).length}/${pos.length} | ` +
        `${scored(neg).length}/${neg.length} | ${aucOf(pos, neg).toFixed(3)} (${b.low.toFixed(3)} - ${b.high.toFixed(3)}) |`,
    );
  };
  row("all", swaps, edited);
  for (const v of SWAP_VARIANTS)
    row(
      `re-share ${v}`,
      swaps.filter((p) => p.variant === v),
      edited,
    );
  L();
  if (aucOf(swaps, edited) === 1)
    L(
      "\nAn AUC of 1 means every scored swap is farther from the sealed code than every scored benign copy in this sample; " +
        "the people bootstrap cannot widen a perfect separation, so its interval says nothing about the population. " +
        "The benign copies whose watermark was lost (not_protected) carry no distance and are not in the AUC.",
    );
  L();
  L(
    "Re-scoring with the payload code alone, as if no record were reachable, at other radii (a probe without a distance " +
      `keeps its verdict; detection counts face_swapped among all swaps, false alarms face_swapped among all ${N_EDITS}-edit benign copies):`,
  );
  L();
  L("| radius | swap detection | benign false alarm |");
  L("|---|---|---|");
  for (let r = 5; r <= 13; r++) {
    const fs = (p: Probe) => p.payload_identity_distance !== null && p.payload_identity_distance! > r;
    L(`| ${r}${r === threshold ? " (shipped)" : ""} | ${fmt(count(swaps, fs))} | ${fmt(count(edited, fs))} |`);
  }
  L();
  const hist = (ps: Probe[]) => {
    const h = new Array(33).fill(0);
    for (const d of scored(ps)) h[d]++;
    return h;
  };
  const top = Math.max(...scored(probes), 0);
  L(`| distance | ${Array.from({ length: top + 1 }, (_, i) => i).join(" | ")} |`);
  L(`|---|${"---|".repeat(top + 1)}`);
  L(
    `| benign (${N_EDITS} edits) | ${hist(edited)
      .slice(0, top + 1)
      .join(" | ")} |`,
  );
  L(
    `| benign unedited | ${hist(benign.filter((p) => p.variant === "none"))
      .slice(0, top + 1)
      .join(" | ")} |`,
  );
  L(
    `| swaps | ${hist(swaps)
      .slice(0, top + 1)
      .join(" | ")} |`,
  );
  L();

  L("## Latency of the verifies (client, `Prefer: wait=60`)");
  L();
  const ms = probes.map((p) => p.client_ms).sort((a, b) => a - b);
  const q = (f: number) => ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(f * ms.length) - 1))];
  L(
    `p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${ms[ms.length - 1]} ms over ${ms.length} verifies (crops of the group photos and the 512 px astronaut, not 2 MP photos).`,
  );
  writeFileSync(MD_PATH, lines.join("\n") + "\n");
  console.log(lines.join("\n"));
}

if (process.argv.includes("--report-only")) report(JSON.parse(readFileSync(RAW_PATH, "utf8")) as Raw);
else await collect();
