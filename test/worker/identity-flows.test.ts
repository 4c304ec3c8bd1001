import { describe, expect, it } from "vitest";
import { exports } from "cloudflare:workers";
import type { PublicJob } from "../../worker/src/schemas.ts";
import {
  call as workerCall,
  createTenantKey,
  completeJob,
  detectedReading,
  PNG_1x1,
  pngOf,
  postImage,
  postJson,
  testEnv,
} from "./helpers.ts";
import { jobQueue } from "../../worker/src/durable/job-queue.ts";
import type { HonoEnv } from "../../worker/src/env.ts";
import { bitsToHex, hexToBits } from "../../worker/src/identity/bits.ts";
import calibrationFile from "../../models/identity/calibration.json";
import "../../worker/src/identity/flows.ts";

// Protect and verify refuse images under 32 px per side up front (watermark.embed's min_side): a real 64x64 PNG.
const IMAGE = await pngOf(64, 64);

/**
 * The identity routes mounted the way index.ts would mount them (behind the real API-key middleware),
 * with this test acting as the GPU runner through the real runner protocol (lease, upload, complete).
 */

const env = testEnv as unknown as HonoEnv["Bindings"];
// The decision uses the face engineer's bundled calibration (models/identity/calibration.json).
const radius = calibrationFile.hamming_radius;

/** A request to the deployed worker (worker/src/index.ts); an image body is sent as image/png unless told otherwise. */
function call(path: string, key: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${key}`);
  if (init.body instanceof Uint8Array && !headers.has("content-type")) headers.set("content-type", "image/png");
  return exports.default.fetch(new Request(`http://vigil.test${path}`, { ...init, headers }));
}

/** A protect or verify job as GET /v1/jobs/{id} serves it (worker/src/schemas.ts Job). */
type Flow = Omit<PublicJob, "output"> & { output: Record<string, any> | null };

const complete = completeJob;

const face = (code: string) => ({
  box: { x: 10, y: 10, width: 100, height: 120 },
  score: 0.99,
  landmarks: [],
  identity_code: code,
});

async function protect(key: string, code: string | null) {
  const res = await call("/v1/protect?owner=newsroom&external_ref=img-1", key, { method: "POST", body: IMAGE });
  expect(res.status).toBe(202);
  const flow = (await res.json()) as Flow;
  await complete(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
    faces: code ? [face(code)] : [],
    identity_code_bits: 32,
  });
  const after = (await (await call(`/v1/jobs/${flow.id}`, key)).json()) as Flow;
  const embedId = after.stages.find((s) => s.name === "watermark.embed")?.id!;
  const embedJob = await complete(embedId, "watermark.embed", {}, PNG_1x1);
  const done = (await (await call(`/v1/jobs/${flow.id}`, key)).json()) as Flow;
  return { done, bits: embedJob.params.bits as string };
}

async function verify(key: string, decodedBits: string, facesNow: string[], detected = true) {
  const res = await call("/v1/verify", key, { method: "POST", body: IMAGE });
  expect(res.status).toBe(202);
  const flow = (await res.json()) as Flow;
  await complete(flow.stages.find((s) => s.name === "watermark.decode")?.id!, "watermark.decode", {
    bits: decodedBits,
    corrected: detected,
    confidence: [],
    errors: detected ? 2 : null,
    p_value: detected ? 1e-15 : 1,
    detected,
  });
  await complete(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
    faces: facesNow.map(face),
    identity_code_bits: 32,
  });
  return (await (await call(`/v1/jobs/${flow.id}`, key)).json()) as Flow;
}

describe("protect → verify through the routes and the runner protocol", () => {
  it("protect embeds only ciphertext and returns the asset record; verify traces it as authentic", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { done, bits } = await protect(key, "a1b2c3d4");
    expect(done.status).toBe("succeeded");
    expect(done.output).toMatchObject({ owner: "newsroom", external_ref: "img-1", faces: [{ score: 0.99 }] });
    expect(done.output!.image_url).toMatch(/^http:\/\/vigil\.test\/v1\/objects\/tenants\//);
    // What the embedding runner saw: 64 bits that do not contain the identity code in the clear.
    expect(bits).toMatch(/^[0-9a-f]{16}$/);
    expect(bits).not.toContain("a1b2c3d4");

    const same = await verify(key, bits, ["a1b2c3d5"]);
    expect(same.status).toBe("succeeded");
    expect(same.output).toMatchObject({ verdict: "authentic", source: { asset_id: done.output!.asset_id, owner: "newsroom" } });
    expect(same.output!.evidence).toMatchObject({
      identity_distance: 1,
      threshold: radius,
      p_value: 1e-15,
      false_alarm_rate: { rate: calibrationFile.out_of_sample.benign_false_alarm.rate },
      miss_rate: {
        ci95: [1 - calibrationFile.out_of_sample.swap_detection.high, 1 - calibrationFile.out_of_sample.swap_detection.low],
      },
      rates_basis: "leave_one_photo_out",
    });
  });

  it("a different face gives face_swapped with the source traced, and a verification.face_swap_detected webhook", async () => {
    const { key } = await createTenantKey(["protect", "verify", "admin"]);
    const ep = await postJson(
      "/v1/webhook_endpoints",
      { url: "https://hooks.example.com/swap", events: ["verification.face_swap_detected"] },
      { key },
    );
    expect(ep.status).toBe(201);
    const endpointId = ((await ep.json()) as { id: string }).id;
    const { done, bits } = await protect(key, "a1b2c3d4");
    const swapped = await verify(key, bits, ["5e4d3c2b"]);
    expect(swapped.output).toMatchObject({ verdict: "face_swapped", source: { asset_id: done.output!.asset_id } });
    let types: string[] = [];
    for (let i = 0; i < 100 && types.length === 0; i++) {
      const res = await workerCall(`/v1/webhook_endpoints/${endpointId}/deliveries`, { key });
      types = ((await res.json()) as { data: { event_type: string }[] }).data.map((d) => d.event_type);
      if (!types.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(types).toEqual(["verification.face_swap_detected"]);
    // The event names the verify job (GET /v1/jobs/{job_id}).
    const row = await env.DB.prepare("SELECT event FROM webhook_deliveries WHERE endpoint_id = ?")
      .bind(endpointId)
      .first<{ event: string }>();
    const data = (JSON.parse(row!.event) as { data: { job_id: string; verification_id: string } }).data;
    expect(data.job_id).toBe(swapped.id);
    expect(data.job_id).toMatch(/^job_/);
    expect(data.verification_id).toBe(swapped.id);
  });

  it("another tenant, a tampered payload or no watermark give not_protected", async () => {
    const a = await createTenantKey(["protect", "verify"]);
    const b = await createTenantKey(["protect", "verify"]);
    const { bits } = await protect(a.key, "a1b2c3d4");
    expect((await verify(b.key, bits, ["a1b2c3d4"])).output).toMatchObject({ verdict: "not_protected", source: null });
    const tampered = hexToBits(bits, 64);
    tampered[40]! ^= 1;
    tampered[41]! ^= 1;
    const t = await verify(a.key, bitsToHex(tampered), ["a1b2c3d4"]);
    expect(["not_protected", "face_swapped"]).toContain(t.output!.verdict); // face_swapped only at the tag's 2^-8
    expect((await verify(a.key, bits, ["a1b2c3d4"], false)).output).toMatchObject({ verdict: "not_protected" });
  });

  it("assets list and delete; a deleted asset still verifies with owner erased", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { done, bits } = await protect(key, null);
    const list = (await (await call("/v1/assets", key)).json()) as { data: { id: string }[] };
    expect(list.data.map((a) => a.id)).toEqual([done.output!.asset_id]);
    const del = await call(`/v1/assets/${done.output!.asset_id}`, key, { method: "DELETE" });
    expect(del.status).toBe(200);
    const v = await verify(key, bits, []);
    expect(v.output).toMatchObject({ verdict: "authentic", source: { asset_id: done.output!.asset_id, owner: null } });
    expect((await call(`/v1/assets/nope`, key, { method: "DELETE" })).status).toBe(404);
  });

  it("verify analyses as many faces as protect seals (each job's params as the runner gets them)", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const paramsOf = async (path: string) => {
      const flow = (await (await call(path, key, { method: "POST", body: IMAGE })).json()) as Flow;
      const id = flow.stages.find((s) => s.name === "face.analyze")?.id!;
      return (await jobQueue(env).get((await jobQueue(env).ownerOf(id))!, id))!.params;
    };
    // Both ask for descriptors: protect seals them in the asset record, verify compares against them.
    // Verify also asks for the plain eye-levelled chip, which records sealed before the jittered chip hold.
    // Every protected face is compared at its own place (test/worker/identity-faces.test.ts), so verify looks for
    // as many faces as protect seals.
    expect(await paramsOf("/v1/verify")).toMatchObject({
      max_faces: 10,
      include_descriptor: true,
      descriptor_chip: "rotated_jitter",
      extra_descriptor_chips: ["rotated"],
    });
    expect(await paramsOf("/v1/protect")).toMatchObject({
      max_faces: 10,
      include_descriptor: true,
      descriptor_chip: "rotated_jitter",
    });
  });

  it("rejects non-images, missing scopes and bad parameters with problem responses", async () => {
    const { key } = await createTenantKey(["verify"]);
    expect((await call("/v1/protect", key, { method: "POST", body: IMAGE })).status).toBe(403);
    expect((await call("/v1/verify", key, { method: "POST", body: "hello" })).status).toBe(415);
    expect((await call("/v1/verify", key, { method: "POST", headers: { "content-type": "image/png" } })).status).toBe(400);
    const p = await createTenantKey(["protect"]);
    expect((await call("/v1/protect?strength=9", p.key, { method: "POST", body: IMAGE })).status).toBe(422);
  });

  it("the deployed worker serves the same routes (mounted in worker/src/index.ts)", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const res = await postImage("/v1/verify", IMAGE, { key });
    expect(res.status).toBe(202);
    const flow = (await res.json()) as Flow;
    const polled = await workerCall(`/v1/jobs/${flow.id}`, { key });
    expect(((await polled.json()) as Flow).status).toBe("running");
    expect((await workerCall("/v1/assets", { key })).status).toBe(200);
    const doc = (await (await workerCall("/openapi.json", { key: null })).json()) as { paths: Record<string, unknown> };
    for (const p of ["/v1/protect", "/v1/verify", "/v1/identity/flows/{id}", "/v1/assets", "/v1/assets/{id}"]) {
      expect(doc.paths).toHaveProperty(p);
    }
  });

  it("a child result the identity layer cannot use fails the flow with a readable error", async () => {
    const { key } = await createTenantKey(["protect"]);
    const res = await call("/v1/protect", key, { method: "POST", body: IMAGE });
    const flow = (await res.json()) as Flow;
    // A 16-bit code where the payload layout expects 32 bits (e.g. a runner with another K).
    await complete(flow.stages.find((s) => s.name === "face.analyze")?.id!, "face.analyze", {
      faces: [face("abcd")],
      identity_code_bits: 16,
    });
    const after = (await (await call(`/v1/jobs/${flow.id}`, key)).json()) as Flow;
    expect(after.status).toBe("failed");
    expect(after.error).toMatchObject({ type: "identity_stage_failed" });
  });
});

describe("Prefer: wait on protect and verify", () => {
  /** The id of the tenant's one queued job of `operation` (the flow's stage), once the flow has created it. */
  async function queuedStage(key: string, operation: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const res = await workerCall(`/v1/jobs?operation=${operation}&status=queued&include_children=true`, { key });
      const data = ((await res.json()) as { data: { id: string }[] }).data;
      if (data.length) return data[0]!.id;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no queued ${operation} job`);
  }

  it("answers 200 with the verdict when the stages finish within the wait, else 202 with Location", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const { done, bits } = await protect(key, "a1b2c3d4");
    const pending = call("/v1/verify", key, { method: "POST", body: IMAGE, headers: { prefer: "wait=20" } });
    const decodeJob = await queuedStage(key, "watermark.decode");
    const analyzeJob = await queuedStage(key, "face.analyze");
    await complete(decodeJob, "watermark.decode", detectedReading(bits));
    await complete(analyzeJob, "face.analyze", { faces: [face("a1b2c3d4")], identity_code_bits: 32 });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.headers.get("preference-applied")).toBe("wait=20");
    const flow = (await res.json()) as Flow;
    expect(flow.status).toBe("succeeded");
    expect(flow.output).toMatchObject({ verdict: "authentic", source: { asset_id: done.output!.asset_id } });

    // Nobody runs the stages this time: after the 1 s wait the flow is still running, 202 with where to poll.
    const short = await call("/v1/verify", key, { method: "POST", body: IMAGE, headers: { prefer: "wait=1" } });
    expect(short.status).toBe(202);
    const running = (await short.json()) as Flow;
    expect(running.status).toBe("running");
    expect(short.headers.get("location")).toBe(`/v1/jobs/${running.id}`);
    for (const id of Object.values(running.stages)) if (id) await workerCall(`/v1/jobs/${id}/cancel`, { key, method: "POST" });
  });
});
