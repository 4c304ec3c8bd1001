/**
 * Protect and verify: worker-run operations of the contract (`runs_on: "worker"`), so each request is an ordinary
 * job (`job_…`, JobQueue) whose stages are child jobs (`parent_id`, listed in its `stages`). Runners only ever see
 * images, the encrypted payload (embed) and raw decoded bits (decode); keys and the decision stay here.
 *
 *   protect: face.analyze ──hook──▶ createAsset (encrypt) ──▶ watermark.embed ──hook──▶ output
 *   verify:  face.analyze ─┐
 *            watermark.decode ─┴─hook (when both are in)──▶ trace ──▶ [region look] ──▶ decide ──▶ output (+ webhook)
 *
 * Verify compares every protected face of the asset record that is in the copy with the face now at its own
 * place (places.ts): the record's boxes are mapped into the copy's frame with the geometry the decoder found, so
 * a cropped or resized copy is compared where its faces really are. The region look is a second face.analyze,
 * run only when the payload authenticates, the asset record holds boxes and descriptors, and the first analysis
 * found no face at the place of one or more protected faces in the copy: the detector then searches each of
 * those places alone with a lower cut (a blended-in swapped face often scores below 0.5), in one job.
 *
 * The job's status is the queue's: the last hook settles it (JobQueue.settle, whose state change and `job.*` event
 * commit together in the queue's outbox), a stage that fails fails it there with the stage's error, and cancel and
 * delete are the job routes'. The identity state between stages lives in D1 (identity_flows, one row per job, under
 * the job's id): each hook writes only its own column. settle() lets only the first call win, so the two verify
 * hooks racing each other finish once; the row's own status follows (it is what stops later hooks).
 *
 * Rows with `idf_` ids are flows started before protect and verify were jobs: they finish in D1 alone, and
 * GET /v1/identity/flows/{id} (deprecated) still serves them, in the job shape.
 */

import type { JobRecord } from "../durable/job-queue.ts";
import { jobQueue } from "../durable/job-queue.ts";
import type { AppEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import type { JobStatus } from "../../../contract/protocol.ts";
import { createJob, registerCompletionHook, registerWorkerOperation } from "../lib/jobs-api.ts";
import { publicJob, type PublicJob } from "../lib/job-view.ts";
import { objectUrlSigner } from "../lib/object-urls.ts";
import { emitEvent } from "../lib/webhooks.ts";
import { z } from "zod";
import {
  assetFaceRecords,
  createAsset,
  discardUnissuedAsset,
  FaceInput,
  publicAsset,
  setAssetImage,
  tracePayload,
  type AssetRow,
  type NormBox,
  type TracedPayload,
} from "./assets.ts";
import calibrationFile from "../../../models/identity/calibration.json";
import { planComparison, type VerifyPlan } from "./places.ts";
import {
  AnalyzedFaces,
  Calibration,
  calibrationFromFile,
  DecodeResult,
  decideVerdict,
  decodedGeometry,
  recordCalibration,
  WatermarkCodec,
} from "./verdict.ts";
import { OPERATIONS, type DescriptorChip } from "../../../contract/operations.ts";

export type FlowKind = "protect" | "verify";

export interface FlowRow {
  id: string;
  tenant_id: string;
  kind: FlowKind;
  status: "running" | "succeeded" | "failed";
  input_key: string;
  params: string;
  origin: string;
  analyze_job: string | null;
  mark_job: string | null;
  /** verify's region look (face.analyze on the protected face's box); null when it was not needed. */
  region_job: string | null;
  analyze_result: string | null;
  decode_result: string | null;
  region_result: string | null;
  asset_id: string | null;
  output: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
}

/** A protect job's params as the contract's schema leaves them (defaults filled in). */
export type ProtectParams = z.output<(typeof OPERATIONS)["protect"]["params"]>;

/**
 * How many faces protect seals and verify analyses: face.analyze's default, stated here so that both flows
 * keep asking for the same number.
 */
export const MAX_PROTECTED_FACES = 10;

/**
 * What verify asks face.analyze for: as many faces as protect seals, so that every protected face in the copy
 * is compared with its own record. Each record face is compared only with the face at its own place in the copy
 * (places.ts: best IoU with the mapped record box, one face per record face), so a bystander whose code or
 * descriptor happens to lie within the radius (5 % of pairs of different people for the code,
 * models/identity/CARD.md section 3) cannot stand in for a protected face, nor hide a swap of another one: the
 * swapped face fails at its own place whatever the others do. Comparing the largest face only would make the
 * verdict depend on which face is the largest, which the protected original, the copy and whoever edited it each
 * decide on their own: with near-equal faces in a group photo, that ranking flips with a pixel of box size.
 * Cost: the landmark and recognition nets run once per face (0.05-0.1 s per face on CPU, CARD.md section 5).
 */
export const VERIFY_ANALYZE_PARAMS = {
  max_faces: MAX_PROTECTED_FACES,
  include_descriptor: true,
  descriptor_chip: "rotated_jitter",
  // Records sealed before the jittered chip hold the plain eye-levelled chip's descriptor; the runner computes
  // it anyway for the jittered mean (its centre box), so asking for it costs no extra net pass.
  extra_descriptor_chips: ["rotated"],
} as const;

/**
 * The face chip whose descriptor asset records seal and verify compares: the mean of the eye-levelled chips
 * of seven jittered detection boxes. Its calibration has a lower benign tail and a wider gap to the closest
 * swap than the plain eye-levelled chip ("rotated", sealed before), which still verifies with its own
 * threshold (models/identity/CARD.md section 3, "Record comparison"). The payload code stays on the box chip.
 */
export const RECORD_CHIP = VERIFY_ANALYZE_PARAMS.descriptor_chip;

/**
 * What protect asks face.analyze for: every face (the default max), with descriptors, which the worker seals
 * into the asset record (never into the payload) for verify's record comparison.
 */
export const PROTECT_ANALYZE_PARAMS = {
  max_faces: MAX_PROTECTED_FACES,
  include_descriptor: true,
  descriptor_chip: RECORD_CHIP,
} as const;

/**
 * The region look's detector cut. The inconclusive swaps of the end-to-end evaluation scored 0.07-0.54 at
 * the protected place (models/identity/CARD.md section 4), so the cut sits at the contract's floor; the
 * region, the IoU requirement (the runner's REGION_MIN_IOU) and the authenticated watermark stand in for
 * the confidence the cut would otherwise give.
 */
export const REGION_MIN_SCORE = 0.05;

/** Signed image URLs in protect outputs stay valid this long. */
const IMAGE_URL_TTL_S = 24 * 3600;

/**
 * The face engineer's measured radius and rates (models/identity/calibration.json), bundled at build
 * time. If the file stops parsing, face comparisons end `inconclusive` rather than use a guessed threshold.
 */
let calibration: Calibration | null = loadBundledCalibration();

function loadBundledCalibration(): Calibration | null {
  try {
    return calibrationFromFile(calibrationFile);
  } catch (e) {
    console.error(JSON.stringify({ msg: "identity_calibration_invalid", error: String(e) }));
    return null;
  }
}

/** Replaces the calibration (a re-calibration shipped as config, or tests). */
export function configureCalibration(json: unknown): void {
  calibration = Calibration.parse(json);
}

/**
 * Starts a protect or verify job the queue has just created (running, its input stored): the identity row under
 * the job's id, then the first stages. Stage job ids are chosen and saved before the jobs exist: a stage that
 * finishes at once must find its row (its completion hook looks the row up by job id), or the job would never end.
 */
async function startIdentityJob(env: AppEnv, job: JobRecord): Promise<void> {
  const kind = job.operation as FlowKind;
  const input = job.inputs[0]!;
  const analyzeId = newId("job");
  const markId = kind === "verify" ? newId("job") : null;
  const now = Date.now();
  await env.DB.prepare(
    `INSERT INTO identity_flows (id, tenant_id, kind, status, input_key, params, origin, analyze_job, mark_job, created_at, updated_at)
     VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
  )
    .bind(job.id, job.tenant_id, kind, input.key, JSON.stringify(job.params), job.origin, analyzeId, markId, now, now)
    .run();
  try {
    await createJob(env, {
      tenantId: job.tenant_id,
      operation: "face.analyze",
      inputs: [input],
      params: { ...(kind === "verify" ? VERIFY_ANALYZE_PARAMS : PROTECT_ANALYZE_PARAMS) },
      origin: job.origin,
      jobId: analyzeId,
      parent: { id: job.id, stage: "face.analyze" },
    });
    if (markId) {
      await createJob(env, {
        tenantId: job.tenant_id,
        operation: "watermark.decode",
        inputs: [input],
        origin: job.origin,
        jobId: markId,
        parent: { id: job.id, stage: "watermark.decode" },
      });
    }
  } catch (e) {
    // The job route fails the job (stage_not_created); the row must stop naming jobs that will never finish.
    await env.DB.prepare(`UPDATE identity_flows SET status = 'failed', error = ?, updated_at = ? WHERE id = ?`)
      .bind(JSON.stringify({ type: "stage_not_created", message: String(e) }), Date.now(), job.id)
      .run();
    throw e;
  }
}

export async function getFlow(env: AppEnv, tenantId: string, id: string): Promise<FlowRow | null> {
  return env.DB.prepare(`SELECT * FROM identity_flows WHERE tenant_id = ? AND id = ?`).bind(tenantId, id).first<FlowRow>();
}

type ChildColumn = "analyze_job" | "mark_job" | "region_job";

async function flowOfChild(env: AppEnv, job: JobRecord, column: ChildColumn): Promise<FlowRow | null> {
  return env.DB.prepare(`SELECT * FROM identity_flows WHERE ${column} = ? AND tenant_id = ? AND status = 'running'`)
    .bind(job.id, job.tenant_id)
    .first<FlowRow>();
}

/** Whether the row belongs to a job (the current model) rather than a pre-job `idf_` flow. */
const isJobFlow = (flow: FlowRow) => flow.id.startsWith("job_");

/**
 * Ends the flow once: for a job, the queue's settle() decides who wins and writes the job's event, and `event` (the
 * outcome's own, e.g. a face swap alert) in the same transaction; the row's own status then follows, so that no
 * later hook moves it on. Returns whether this call ended it.
 */
async function finish(
  env: AppEnv,
  flow: FlowRow,
  output: Record<string, unknown> | null,
  error: { type: string; message: string } | null = null,
  event?: { type: string; data: Record<string, unknown> },
): Promise<boolean> {
  // A protect that fails after face analysis leaves a record that never became an asset.
  if (error && flow.kind === "protect" && flow.asset_id) await discardUnissuedAsset(env, flow.tenant_id, flow.asset_id);
  if (isJobFlow(flow)) {
    const settled = await jobQueue(env).settle(
      flow.tenant_id,
      flow.id,
      error
        ? { status: "failed", error: { type: error.type, message: error.message }, event }
        : { status: "succeeded", result: output ?? {}, event },
    );
    await mirror(env, flow, settled?.job ?? null, output, error);
    return settled?.won === true;
  }
  const res = await env.DB.prepare(
    `UPDATE identity_flows SET status = ?, output = ?, error = ?, updated_at = ? WHERE id = ? AND status = 'running'`,
  )
    .bind(
      error ? "failed" : "succeeded",
      output ? JSON.stringify(output) : null,
      error ? JSON.stringify(error) : null,
      Date.now(),
      flow.id,
    )
    .run();
  const won = res.meta.changes === 1;
  if (won && event) await emitEvent(env, flow.tenant_id, event.type, event.data);
  return won;
}

/** The row's status after its job ended: what the queue holds (a job canceled or failed by a stage ends `failed` here). */
async function mirror(
  env: AppEnv,
  flow: FlowRow,
  job: JobRecord | null,
  output: Record<string, unknown> | null,
  error: { type: string; message: string } | null,
): Promise<void> {
  // No job: it was deleted before the row caught up, and the row keeps what its own step decided.
  const status = job ? (job.status === "succeeded" ? "succeeded" : "failed") : error ? "failed" : "succeeded";
  const stored = job ? (job.status === "succeeded" ? null : job.error) : error;
  await env.DB.prepare(
    `UPDATE identity_flows SET status = ?, output = ?, error = ?, updated_at = ? WHERE id = ? AND status = 'running'`,
  )
    .bind(
      status,
      status === "succeeded" ? JSON.stringify(job?.result ?? output) : null,
      stored ? JSON.stringify(stored) : null,
      Date.now(),
      flow.id,
    )
    .run();
}

async function onAnalyzed(env: AppEnv, job: JobRecord): Promise<void> {
  const flow = await flowOfChild(env, job, "analyze_job");
  if (!flow) return onRegionAnalyzed(env, job);
  const parsed = AnalyzedFaces.safeParse(job.result);
  if (!parsed.success) {
    await finish(env, flow, null, { type: "bad_child_result", message: "face.analyze returned an unexpected result" });
    return;
  }
  if (flow.kind === "verify") {
    await env.DB.prepare(`UPDATE identity_flows SET analyze_result = ?, updated_at = ? WHERE id = ?`)
      .bind(JSON.stringify(parsed.data), Date.now(), flow.id)
      .run();
    await redactChildDescriptors(env, job);
    await maybeDecide(env, flow.id);
    return;
  }
  const params = JSON.parse(flow.params) as ProtectParams;
  const faces = parsed.data.faces.map((f) => FaceInput.parse(f));
  const { row, payloadHex } = await createAsset(env, {
    tenantId: flow.tenant_id,
    faces,
    image: parsed.data.image ?? null,
    owner: params.owner,
    externalRef: params.external_ref,
    jobId: flow.id,
  });
  await redactChildDescriptors(env, job);
  // As in startFlow: the flow names the embed job before it exists, so its hook always finds the flow.
  const embedId = newId("job");
  await env.DB.prepare(`UPDATE identity_flows SET asset_id = ?, mark_job = ?, updated_at = ? WHERE id = ?`)
    .bind(row.id, embedId, Date.now(), flow.id)
    .run();
  await createJob(env, {
    tenantId: flow.tenant_id,
    operation: "watermark.embed",
    inputs: job.inputs,
    params: { bits: payloadHex, strength: params.strength, format: params.format },
    origin: flow.origin,
    jobId: embedId,
    ...(isJobFlow(flow) ? { parent: { id: flow.id, stage: "watermark.embed" } } : {}),
  });
}

async function onRegionAnalyzed(env: AppEnv, job: JobRecord): Promise<void> {
  const flow = await flowOfChild(env, job, "region_job");
  if (!flow) return;
  const parsed = AnalyzedFaces.safeParse(job.result);
  if (!parsed.success) {
    await finish(env, flow, null, { type: "bad_child_result", message: "face.analyze (region) returned an unexpected result" });
    return;
  }
  await env.DB.prepare(`UPDATE identity_flows SET region_result = ?, updated_at = ? WHERE id = ?`)
    .bind(JSON.stringify(parsed.data), Date.now(), flow.id)
    .run();
  await redactChildDescriptors(env, job);
  await maybeDecide(env, flow.id);
}

async function onEmbedded(env: AppEnv, job: JobRecord): Promise<void> {
  const flow = await flowOfChild(env, job, "mark_job");
  if (!flow || flow.kind !== "protect" || !flow.asset_id) return;
  const image = job.artifacts.find((a) => a.name === "image");
  if (!image) {
    await finish(env, flow, null, { type: "bad_child_result", message: "watermark.embed returned no image" });
    return;
  }
  const mark = EmbedResult.safeParse(job.result ?? {});
  if (!mark.success) {
    await finish(env, flow, null, { type: "bad_child_result", message: "watermark.embed returned an unexpected result" });
    return;
  }
  await setAssetImage(env, flow.tenant_id, flow.asset_id, image.key, mark.data);
  const asset = await env.DB.prepare(`SELECT * FROM identity_assets WHERE id = ?`).bind(flow.asset_id).first<AssetRow>();
  if (!asset) {
    await finish(env, flow, null, {
      type: "asset_not_found",
      message: "the asset record was removed before its image was marked",
    });
    return;
  }
  const pub = publicAsset(asset);
  const expires = Math.floor(Date.now() / 1000) + IMAGE_URL_TTL_S;
  await finish(env, flow, {
    asset_id: pub.id,
    image_url: await objectUrlSigner(env, flow.origin).sign("GET", image.key, expires),
    faces: pub.faces,
    owner: pub.owner,
    external_ref: pub.external_ref,
    protected_at: pub.protected_at,
  });
}

/**
 * What protect reads from watermark.embed's result: the codec that marked the image and the marked image's
 * size (a codec-1 embedder reports neither: codec 1, the analysed size).
 */
const EmbedResult = z
  .object({
    codec: WatermarkCodec.optional(),
    width: z.number().int().positive().optional(),
    height: z.number().int().positive().optional(),
  })
  .passthrough();

async function onDecoded(env: AppEnv, job: JobRecord): Promise<void> {
  const flow = await flowOfChild(env, job, "mark_job");
  if (!flow || flow.kind !== "verify") return;
  const parsed = DecodeResult.safeParse(job.result);
  if (!parsed.success) {
    await finish(env, flow, null, { type: "bad_child_result", message: "watermark.decode returned an unexpected result" });
    return;
  }
  await env.DB.prepare(`UPDATE identity_flows SET decode_result = ?, updated_at = ? WHERE id = ?`)
    .bind(JSON.stringify(parsed.data), Date.now(), flow.id)
    .run();
  await maybeDecide(env, flow.id);
}

/** The chips verify's face.analyze returns, so the only record chips it can compare like with like. */
const COMPARED_CHIPS: ReadonlySet<DescriptorChip> = new Set([
  VERIFY_ANALYZE_PARAMS.descriptor_chip,
  ...VERIFY_ANALYZE_PARAMS.extra_descriptor_chips,
]);

/**
 * The record side of the decision: every protected face's place in the copy and the face now there.
 * Records sealed with a chip verify does not compute, or without a calibrated threshold for it (the box chip,
 * or none), are not compared: the payload decides.
 */
async function planVerify(
  env: AppEnv,
  traced: TracedPayload | null,
  decode: DecodeResult,
  analyzed: AnalyzedFaces,
  region: AnalyzedFaces | null,
): Promise<VerifyPlan> {
  const cal = calibration;
  const face = traced?.opened.mode === "face" && cal?.record !== undefined;
  const asset = traced?.asset;
  return planComparison({
    records: face && asset ? await assetFaceRecords(env, asset) : [],
    comparable: (chip) => COMPARED_CHIPS.has(chip) && cal !== null && recordCalibration(cal, chip) !== null,
    geometry: decodedGeometry(decode),
    original: asset?.width && asset.height ? { width: asset.width, height: asset.height } : null,
    analyzed,
    region,
  });
}

/**
 * Starts the region look once per flow (the two verify hooks can both get here), at every place in `places`:
 * one face.analyze job, with `region` for one place (what every runner understands) and `regions` for several.
 * False when it already ran.
 */
async function startRegionLook(env: AppEnv, flow: FlowRow, places: NormBox[]): Promise<boolean> {
  const regionId = newId("job");
  const claimed = await env.DB.prepare(
    `UPDATE identity_flows SET region_job = ?, updated_at = ? WHERE id = ? AND status = 'running' AND region_job IS NULL`,
  )
    .bind(regionId, Date.now(), flow.id)
    .run();
  if (claimed.meta.changes !== 1) return false;
  try {
    const input = await env.OBJECTS.head(flow.input_key);
    if (!input) throw new Error("the verify input is gone");
    const boxes = places.map(clampBox);
    await createJob(env, {
      tenantId: flow.tenant_id,
      operation: "face.analyze",
      inputs: [
        { key: flow.input_key, content_type: input.httpMetadata?.contentType ?? "application/octet-stream", bytes: input.size },
      ],
      params: {
        ...VERIFY_ANALYZE_PARAMS,
        min_score: REGION_MIN_SCORE,
        ...(boxes.length === 1 ? { region: boxes[0] } : { regions: boxes }),
      },
      origin: flow.origin,
      jobId: regionId,
      ...(isJobFlow(flow) ? { parent: { id: flow.id, stage: "face.analyze.region" } } : {}),
    });
  } catch (e) {
    // The flow names a job that does not exist and would never finish: end it with the reason instead.
    await finish(env, flow, null, { type: "stage_not_created", message: String(e) });
  }
  return true;
}

/** A stored box can reach past the image edge by rounding; the contract wants fractions in [0, 1]. */
function clampBox(b: NormBox): NormBox {
  const x = Math.min(Math.max(b.x, 0), 1);
  const y = Math.min(Math.max(b.y, 0), 1);
  return { x, y, width: Math.max(1e-4, Math.min(b.width, 1 - x)), height: Math.max(1e-4, Math.min(b.height, 1 - y)) };
}

async function maybeDecide(env: AppEnv, flowId: string): Promise<void> {
  const flow = await env.DB.prepare(`SELECT * FROM identity_flows WHERE id = ?`).bind(flowId).first<FlowRow>();
  if (!flow || flow.status !== "running" || !flow.analyze_result || !flow.decode_result) return;
  // The region look was started and is not in yet: its hook decides.
  if (flow.region_job && !flow.region_result) return;
  const decode = DecodeResult.parse(JSON.parse(flow.decode_result));
  const analyzed = AnalyzedFaces.parse(JSON.parse(flow.analyze_result));
  const region = flow.region_result ? AnalyzedFaces.parse(JSON.parse(flow.region_result)) : null;
  const traced = decode.detected ? await tracePayload(env, flow.tenant_id, decode.bits) : null;
  const plan = await planVerify(env, traced, decode, analyzed, region);
  if (traced && plan.regionLook.length > 0 && !flow.region_job) {
    await startRegionLook(
      env,
      flow,
      plan.regionLook.map((r) => r.box),
    );
    return;
  }
  const faces = plan.facesNow.map((f) => f.identity_code);
  const cal = calibration ?? { code_bits: 32, threshold: -1, false_alarm: NO_RATE, miss: NO_RATE };
  const outcome = decideVerdict(decode, faces, traced, cal, plan.record, plan.payloadFaces);
  outcome.evidence.region_search = flow.region_job !== null;
  if (!calibration && outcome.evidence.payload_mode === "face" && faces.length > 0) {
    outcome.verdict = "inconclusive";
    outcome.reason = "identity calibration (models/identity/calibration.json) is not installed";
  }
  const alert =
    outcome.verdict === "face_swapped"
      ? {
          type: "verification.face_swap_detected",
          data: {
            // The verify job (GET /v1/jobs/{job_id}); verification_id is the same id, kept for receivers written before.
            job_id: flow.id,
            verification_id: flow.id,
            source: outcome.source,
            evidence: outcome.evidence,
          },
        }
      : undefined;
  const won = await finish(env, flow, outcome as unknown as Record<string, unknown>, null, alert);
  if (won) await forgetDescriptors(env, flow.id, analyzed, region);
}

const NO_RATE = { rate: 1, ci95: [0, 1] as [number, number] };

/**
 * Once decided, the flow row keeps the analysis without the descriptors: they were needed only for the
 * comparison, and a 128-d face descriptor is more of a biometric than the 32-bit code that stays. (The
 * face.analyze job records drop theirs as soon as the flow has copied them: redactChildDescriptors.)
 */
async function forgetDescriptors(env: AppEnv, flowId: string, analyzed: AnalyzedFaces, region: AnalyzedFaces | null) {
  await env.DB.prepare(`UPDATE identity_flows SET analyze_result = ?, region_result = ? WHERE id = ?`)
    .bind(JSON.stringify(withoutDescriptors(analyzed)), region ? JSON.stringify(withoutDescriptors(region)) : null, flowId)
    .run();
}

function withoutDescriptors(a: AnalyzedFaces): AnalyzedFaces {
  return { ...a, faces: a.faces.map(({ descriptor: _d, extra_descriptors: _e, ...rest }) => rest) };
}

/**
 * A face.analyze child job keeps its result (GET /v1/jobs/:id) until retention; once the flow has copied or
 * sealed what it needs, the stored result drops the descriptors, as the flow row does after the verdict.
 */
async function redactChildDescriptors(env: AppEnv, job: JobRecord): Promise<void> {
  // Callers have parsed job.result as AnalyzedFaces; the raw object keeps any fields the schema does not list.
  const result = job.result as unknown as AnalyzedFaces;
  if (!result.faces.some((f) => f.descriptor || f.extra_descriptors)) return;
  await jobQueue(env).redactResult(job.tenant_id, job.id, withoutDescriptors(result) as unknown as Record<string, unknown>);
}

/**
 * Stages have no failure hook: a stage that fails or is canceled ends its job in the queue (or, for an `idf_` flow,
 * is noticed here), and the row catches up when the job is read. A protect that failed after face analysis
 * discards the record it wrote, which never became an asset.
 */
export async function refreshFlow(env: AppEnv, flow: FlowRow): Promise<FlowRow> {
  if (flow.status !== "running") return flow;
  if (isJobFlow(flow)) {
    const job = await jobQueue(env).get(flow.tenant_id, flow.id);
    if (!job || job.status === "running" || job.status === "queued") return flow;
    if (job.status !== "succeeded" && flow.kind === "protect" && flow.asset_id)
      await discardUnissuedAsset(env, flow.tenant_id, flow.asset_id);
    await mirror(env, flow, job, null, null);
    return (await getFlow(env, flow.tenant_id, flow.id))!;
  }
  for (const id of [flow.analyze_job, flow.mark_job, flow.region_job]) {
    if (!id) continue;
    const child = await jobQueue(env).get(flow.tenant_id, id);
    if (child && (child.status === "failed" || child.status === "canceled")) {
      if (flow.kind === "protect" && flow.asset_id) await discardUnissuedAsset(env, flow.tenant_id, flow.asset_id);
      const cause = child.error ?? { type: child.status, message: child.status };
      await finish(env, flow, null, { type: cause.type, message: `stage ${child.operation} (${child.id}): ${cause.message}` });
      return (await getFlow(env, flow.tenant_id, flow.id))!;
    }
  }
  return flow;
}

/** The read step of protect and verify jobs (GET, cancel, wait in the job routes): the row catches up. */
async function onIdentityJobRead(env: AppEnv, job: JobRecord): Promise<void> {
  if (job.status === "queued" || job.status === "running") return;
  const flow = await getFlow(env, job.tenant_id, job.id);
  if (flow) await refreshFlow(env, flow);
}

/**
 * A protect or verify as GET /v1/identity/flows/{id} (deprecated) serves it: the job itself for a `job_` id, and for
 * an `idf_` flow started before protect and verify were jobs, the same job shape built from its row.
 */
export async function flowAsJob(env: AppEnv, tenantId: string, id: string, origin: string): Promise<PublicJob | null> {
  if (id.startsWith("job_")) {
    const job = await jobQueue(env).get(tenantId, id);
    if (!job || (job.operation !== "protect" && job.operation !== "verify")) return null;
    await onIdentityJobRead(env, job);
    return publicJob(env, job, origin);
  }
  const row = await getFlow(env, tenantId, id);
  if (!row) return null;
  const flow = await refreshFlow(env, row);
  const stageIds: [string, string | null][] = [
    ["face.analyze", flow.analyze_job],
    [flow.kind === "protect" ? "watermark.embed" : "watermark.decode", flow.mark_job],
    ["face.analyze.region", flow.region_job],
  ];
  const stages: PublicJob["stages"] = [];
  for (const [name, stageId] of stageIds) {
    if (!stageId) continue;
    const child = await jobQueue(env).get(tenantId, stageId);
    const status: JobStatus = child?.status ?? "failed";
    stages.push({ name, id: stageId, operation: child?.operation ?? name.replace(/\.region$/, ""), status });
  }
  const error = flow.error ? (JSON.parse(flow.error) as { type?: string; message?: string }) : null;
  const ended = flow.status !== "running";
  return {
    id: flow.id,
    object: "job",
    operation: flow.kind,
    status: flow.status,
    created_at: new Date(flow.created_at).toISOString(),
    started_at: new Date(flow.created_at).toISOString(),
    completed_at: ended ? new Date(flow.updated_at).toISOString() : null,
    output: flow.status === "succeeded" && flow.output ? (JSON.parse(flow.output) as Record<string, unknown>) : null,
    error: error ? { type: error.type ?? "failed", message: error.message ?? "" } : null,
    attempts: 1,
    params: JSON.parse(flow.params) as Record<string, unknown>,
    metrics: null,
    parent_id: null,
    stages,
  };
}

/**
 * A hook that throws would otherwise leave its flow running forever (the job API only logs hook errors),
 * so any failure ends the flow with a problem the client can read.
 */
function guarded(step: (env: AppEnv, job: JobRecord) => Promise<void>, columns: ChildColumn[]) {
  return async ({ env, job }: { env: AppEnv; job: JobRecord }) => {
    try {
      await step(env, job);
    } catch (e) {
      let flow: FlowRow | null = null;
      for (const column of columns) flow ??= await flowOfChild(env, job, column);
      const message = e instanceof Error ? e.message : String(e);
      if (flow) await finish(env, flow, null, { type: "identity_stage_failed", message: `stage job ${job.id}: ${message}` });
      throw e;
    }
  };
}

registerCompletionHook("face.analyze", guarded(onAnalyzed, ["analyze_job", "region_job"]));
registerCompletionHook("watermark.embed", guarded(onEmbedded, ["mark_job"]));
registerCompletionHook("watermark.decode", guarded(onDecoded, ["mark_job"]));

registerWorkerOperation("protect", { start: startIdentityJob, onRead: onIdentityJobRead });
registerWorkerOperation("verify", { start: startIdentityJob, onRead: onIdentityJobRead });
