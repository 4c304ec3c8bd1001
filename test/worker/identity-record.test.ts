import { describe, expect, it } from "vitest";
import { exports } from "cloudflare:workers";
import type { PublicJob } from "../../worker/src/schemas.ts";
import { createTenantKey, completeJob, detectedReading, PNG_1x1, pngOf, testEnv } from "./helpers.ts";
import { jobQueue } from "../../worker/src/durable/job-queue.ts";
import type { HonoEnv } from "../../worker/src/env.ts";
import calibrationFile from "../../models/identity/calibration.json";
import "../../worker/src/identity/flows.ts";

// Protect and verify refuse images under 32 px per side up front (watermark.embed's min_side): a real 64x64 PNG.
const IMAGE = await pngOf(64, 64);

/**
 * Verify's record comparison and region look, end to end through the routes and the runner protocol: this
 * test plays the runner (lease, complete) and sends face.analyze results the way the runner shapes them
 * (boxes in pixels, descriptors, the analysed image's size).
 */
const env = testEnv as unknown as HonoEnv["Bindings"];
const recordThreshold = calibrationFile.record_descriptor.threshold;

/** A protect or verify job as GET /v1/jobs/{id} serves it (worker/src/schemas.ts Job). */
type Flow = Omit<PublicJob, "output"> & { output: Record<string, any> | null };

/** A request to the deployed worker (worker/src/index.ts); an image body is sent as image/png unless told otherwise. */
function call(path: string, key: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${key}`);
  if (init.body instanceof Uint8Array && !headers.has("content-type")) headers.set("content-type", "image/png");
  return exports.default.fetch(new Request(`http://vigil.test${path}`, { ...init, headers }));
}

const complete = completeJob;

const flowOf = async (key: string, id: string) => (await (await call(`/v1/jobs/${id}`, key)).json()) as Flow;

/** A unit-length-ish descriptor; `shift` moves it by about shift * sqrt(128) * 0.01 in euclidean distance. */
const descriptor = (shift = 0) => Array.from({ length: 128 }, (_, i) => Math.sin(i) * 0.1 + (i % 2 ? shift : -shift) * 0.01);
const dist = (a: number[], b: number[]) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

/** A face as face.analyze reports it, in an image of `w` x `h` pixels. */
const face = (code: string, box: { x: number; y: number; width: number; height: number }, d: number[]) => ({
  box,
  score: 0.99,
  landmarks: [],
  identity_code: code,
  descriptor: d,
  descriptor_chip: "rotated_jitter",
});

/**
 * Protects a 1000x800 image whose largest face sits at (400, 200), 200x240 px, its descriptor sealed from `chip`
 * (what face.analyze reported it was computed on).
 */
async function protect(key: string, chip = "rotated_jitter") {
  const res = await call("/v1/protect", key, { method: "POST", body: IMAGE });
  const flow = (await res.json()) as Flow;
  await complete(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
    faces: [{ ...face("a1b2c3d4", { x: 400, y: 200, width: 200, height: 240 }, descriptor()), descriptor_chip: chip }],
    identity_code_bits: 32,
    image: { width: 1000, height: 800 },
  });
  const embedJob = await complete(
    (await flowOf(key, flow.id)).stages.find((s) => s.name === "watermark.embed")?.id!,
    "watermark.embed",
    {},
    PNG_1x1,
  );
  const done = await flowOf(key, flow.id);
  expect(done.status).toBe("succeeded");
  return {
    assetId: done.output!.asset_id as string,
    bits: embedJob.params.bits as string,
    analyzeJob: flow.stages.find((s) => s.name === "face.analyze")?.id!,
  };
}

async function startVerify(key: string, bits: string, analyzed: Record<string, unknown>) {
  const flow = (await (await call("/v1/verify", key, { method: "POST", body: IMAGE })).json()) as Flow;
  await complete(flow.stages.find((s) => s.name === "watermark.decode")?.id!, "watermark.decode", detectedReading(bits));
  await complete(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
    identity_code_bits: 32,
    ...analyzed,
  });
  return flowOf(key, flow.id);
}

describe("verify against the asset record (sealed descriptor, region look)", () => {
  it("the same face in a 0.5x copy is compared with the record's descriptor: authentic, basis record", async () => {
    const { key, tenantId } = await createTenantKey(["protect", "verify"]);
    const { assetId, bits, analyzeJob: protectAnalyzeJob } = await protect(key);
    const now = descriptor(0.5);
    // A resized copy: the same place in fractions of the image, half the pixels; the code drifted by 2 bits.
    const out = await startVerify(key, bits, {
      faces: [face("a1b2c3d7", { x: 201, y: 99, width: 100, height: 121 }, now)],
      image: { width: 500, height: 400 },
    });
    expect(out.status).toBe("succeeded");
    expect(out.stages.find((s) => s.name === "face.analyze.region")?.id).toBeUndefined();
    expect(out.output).toMatchObject({ verdict: "authentic", source: { asset_id: assetId } });
    const d = dist(descriptor(), now);
    expect(d).toBeLessThan(recordThreshold);
    expect(out.output!.evidence).toMatchObject({
      identity_basis: "record",
      identity_metric: "euclidean",
      threshold: recordThreshold,
      payload_identity_distance: 2,
      region_search: false,
      false_alarm_rate: { rate: calibrationFile.record_descriptor.out_of_sample.benign_false_alarm.rate },
      rates_basis: "leave_one_photo_out",
    });
    expect(out.output!.evidence.identity_distance).toBeCloseTo(d, 3);
    // Decided: the flow row keeps the analysis without the descriptor.
    const row = await env.DB.prepare(`SELECT analyze_result FROM identity_flows WHERE id = ?`)
      .bind(out.id)
      .first<{ analyze_result: string }>();
    const kept = JSON.parse(row!.analyze_result) as { faces: Record<string, unknown>[] };
    expect(kept.faces[0]).toMatchObject({ identity_code: "a1b2c3d7", descriptor_chip: "rotated_jitter" });
    expect(kept.faces[0]).not.toHaveProperty("descriptor");
    // So do the face.analyze job records of both flows (GET /v1/jobs/:id), once their flows have used them.
    for (const jobId of [out.stages.find((s) => s.name === "face.analyze")?.id!, protectAnalyzeJob]) {
      const job = (await jobQueue(env).get(tenantId, jobId))!;
      const faces = (job.result as { faces: Record<string, unknown>[]; image?: unknown }).faces;
      expect(faces[0]).toHaveProperty("identity_code");
      expect(faces[0]).not.toHaveProperty("descriptor");
      expect(job.result).toHaveProperty("image");
    }
  });

  it("a face whose code is within the radius but whose descriptor is far from the record's → face_swapped", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { assetId, bits } = await protect(key);
    const now = descriptor(8);
    expect(dist(descriptor(), now)).toBeGreaterThan(recordThreshold);
    const out = await startVerify(key, bits, {
      faces: [face("a1b2c3d4", { x: 405, y: 198, width: 196, height: 238 }, now)],
      image: { width: 1000, height: 800 },
    });
    expect(out.output).toMatchObject({ verdict: "face_swapped", source: { asset_id: assetId } });
    expect(out.output!.evidence).toMatchObject({ identity_basis: "record", payload_identity_distance: 0 });
  });

  it("no face found: verify looks again at the stored box with a lower cut, then decides on what it finds", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { bits } = await protect(key);
    const first = await startVerify(key, bits, { faces: [], image: { width: 1000, height: 800 } });
    expect(first.status).toBe("running");
    const regionId = first.stages.find((s) => s.name === "face.analyze.region")?.id!;
    expect(regionId).toMatch(/^job_/);
    const regionJob = (await jobQueue(env).get((await jobQueue(env).ownerOf(regionId))!, regionId))!;
    // The runner gets the protected box in fractions of the image and no key, code or descriptor.
    expect(regionJob.params).toEqual({
      max_faces: 10,
      include_descriptor: true,
      descriptor_chip: "rotated_jitter",
      extra_descriptor_chips: ["rotated"],
      min_score: 0.05,
      region: { x: 0.4, y: 0.25, width: 0.2, height: 0.3 },
    });
    await complete(regionId, "face.analyze", {
      faces: [{ ...face("5e4d3c2b", { x: 402, y: 204, width: 190, height: 230 }, descriptor(8)), score: 0.12 }],
      identity_code_bits: 32,
      image: { width: 1000, height: 800 },
    });
    const done = await flowOf(key, first.id);
    expect(done.output).toMatchObject({
      verdict: "face_swapped",
      evidence: { identity_basis: "record", region_search: true, faces_found: 1 },
    });
  });

  it("the region look finds nothing either → inconclusive, never a guessed verdict", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { bits } = await protect(key);
    const first = await startVerify(key, bits, { faces: [], image: { width: 1000, height: 800 } });
    await complete(first.stages.find((s) => s.name === "face.analyze.region")?.id!, "face.analyze", {
      faces: [],
      identity_code_bits: 32,
      image: { width: 1000, height: 800 },
    });
    const done = await flowOf(key, first.id);
    expect(done.output).toMatchObject({
      verdict: "inconclusive",
      evidence: { identity_basis: null, identity_distance: null, region_search: true, faces_found: 0 },
    });
  });

  it("a deleted record leaves the payload code: basis payload, Hamming radius, no region look", async () => {
    const { key } = await createTenantKey(["protect", "verify", "admin"]);
    const { assetId, bits } = await protect(key);
    expect((await call(`/v1/assets/${assetId}`, key, { method: "DELETE" })).status).toBeLessThan(300);
    const out = await startVerify(key, bits, {
      faces: [face("a1b2c3d5", { x: 400, y: 200, width: 200, height: 240 }, descriptor(8))],
      image: { width: 1000, height: 800 },
    });
    expect(out.output).toMatchObject({
      verdict: "authentic",
      evidence: {
        identity_basis: "payload",
        identity_metric: "hamming",
        identity_distance: 1,
        threshold: calibrationFile.hamming_radius,
      },
    });
    const none = await startVerify(key, bits, { faces: [], image: { width: 1000, height: 800 } });
    expect(none.stages.find((s) => s.name === "face.analyze.region")?.id).toBeUndefined();
    expect(none.output).toMatchObject({ verdict: "inconclusive" });
  });

  it("a record sealed with the older eye-levelled chip is compared with that chip's descriptor and threshold", async () => {
    const { key, tenantId } = await createTenantKey(["protect", "verify"]);
    const { bits } = await protect(key, "rotated");
    const rotatedThreshold = calibrationFile.record_descriptor.by_chip.rotated.threshold;
    // The jittered descriptor now is far from the sealed one, the plain one close: only like with like counts.
    const near = descriptor(0.5);
    expect(dist(descriptor(), near)).toBeLessThan(rotatedThreshold);
    const out = await startVerify(key, bits, {
      faces: [
        {
          ...face("a1b2c3d4", { x: 400, y: 200, width: 200, height: 240 }, descriptor(8)),
          extra_descriptors: { rotated: near },
        },
      ],
      image: { width: 1000, height: 800 },
    });
    expect(out.output).toMatchObject({
      verdict: "authentic",
      evidence: { identity_basis: "record", identity_descriptor_chip: "rotated", threshold: rotatedThreshold },
    });
    expect(out.output!.evidence.identity_distance).toBeCloseTo(dist(descriptor(), near), 3);
    // The extra descriptors are forgotten with the main one, in the flow row and the job record.
    const row = await env.DB.prepare(`SELECT analyze_result FROM identity_flows WHERE id = ?`)
      .bind(out.id)
      .first<{ analyze_result: string }>();
    const kept = JSON.parse(row!.analyze_result) as { faces: Record<string, unknown>[] };
    expect(kept.faces[0]).not.toHaveProperty("extra_descriptors");
    const job = (await jobQueue(env).get(tenantId, out.stages.find((s) => s.name === "face.analyze")?.id!))!;
    expect((job.result as { faces: Record<string, unknown>[] }).faces[0]).not.toHaveProperty("extra_descriptors");
  });

  it("a record sealed with box-chip descriptors is not compared with rotated-chip ones: the payload decides", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { bits } = await protect(key, "box");
    const out = await startVerify(key, bits, {
      faces: [face("a1b2c3d4", { x: 400, y: 200, width: 200, height: 240 }, descriptor(8))],
      image: { width: 1000, height: 800 },
    });
    expect(out.output).toMatchObject({ verdict: "authentic", evidence: { identity_basis: "payload", identity_distance: 0 } });
  });
});
