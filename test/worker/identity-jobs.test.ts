import { describe, expect, it } from "vitest";
import {
  call,
  completeJob,
  createTenantKey,
  detectedReading,
  expectProblem,
  lease,
  leaseJob,
  OPERATOR_KEY,
  pngOf,
  postJson,
  runnerCall,
  testEnv,
} from "./helpers.ts";
import { jobQueue } from "../../worker/src/durable/job-queue.ts";
import type { AppEnv } from "../../worker/src/env.ts";
import { createJob } from "../../worker/src/lib/jobs-api.ts";
import type { PublicJob } from "../../worker/src/schemas.ts";
import "../../worker/src/identity/flows.ts";

/**
 * Issue 19 item 1: protect and verify are jobs like every other operation. Everything goes through the deployed
 * worker (worker/src/index.ts); this test plays the runner through the real runner protocol (lease, complete, fail).
 */
const IMAGE = await pngOf(64, 64);
const OTHER_IMAGE = await pngOf(64, 72);

type Job = Omit<PublicJob, "output"> & { output: Record<string, any> | null };

const stageId = (job: Job, name: string) => job.stages.find((s) => s.name === name)?.id;

function post(path: string, key: string, body: BodyInit, headers: Record<string, string> = {}) {
  return call(path, { key, method: "POST", body, headers: { "content-type": "image/png", ...headers } });
}
const getJob = async (key: string, id: string) => (await (await call(`/v1/jobs/${id}`, { key })).json()) as Job;

const analyzed = { faces: [], identity_code_bits: 32 };

/** Waits until the webhook consumer has recorded deliveries to the endpoint, and returns them with their bodies. */
async function deliveries(endpointId: string, expected: number) {
  let rows: { event_type: string; event: string }[] = [];
  for (let i = 0; i < 100; i++) {
    ({ results: rows } = await testEnv.DB.prepare(
      "SELECT event_type, event FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY created_at",
    )
      .bind(endpointId)
      .all<{ event_type: string; event: string }>());
    if (rows.length >= expected) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return rows.map((r) => ({ type: r.event_type, data: (JSON.parse(r.event) as { data: any }).data }));
}

async function endpoint(key: string, events: string[]) {
  const res = await postJson("/v1/webhook_endpoints", { url: "https://hooks.example.com/jobs", events }, { key });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

describe("protect and verify are jobs", () => {
  it("POST /v1/protect returns a job_ id that GET /v1/jobs/{id} serves, with its stages as child jobs", async () => {
    const { key } = await createTenantKey(["protect", "verify", "admin"]);
    const ep = await endpoint(key, ["job.succeeded", "job.failed", "job.canceled"]);
    const res = await post("/v1/protect?owner=desk&strength=2", key, IMAGE);
    expect(res.status).toBe(202);
    const created = (await res.json()) as Job;
    expect(created.id).toMatch(/^job_/);
    expect(res.headers.get("location")).toBe(`/v1/jobs/${created.id}`);

    const job = await getJob(key, created.id);
    expect(job).toMatchObject({
      id: created.id,
      object: "job",
      operation: "protect",
      status: "running",
      attempts: 1,
      params: { owner: "desk", external_ref: null, strength: 2, format: "png" },
      output: null,
      error: null,
      metrics: null,
      parent_id: null,
    });
    expect(job.stages.map((s) => [s.name, s.operation, s.status])).toEqual([["face.analyze", "face.analyze", "queued"]]);
    const analyzeId = stageId(job, "face.analyze")!;
    expect(await getJob(key, analyzeId)).toMatchObject({ parent_id: job.id, operation: "face.analyze", stages: [] });
    // The worker runs protect itself: no runner is handed it, and it has no queue gauge for the autoscaler.
    expect(await lease(["protect", "verify"])).toEqual([]);
    const gauges = await (await call("/internal/metrics/queue", { key: OPERATOR_KEY })).text();
    expect(gauges).toContain('vigil_jobs_queued{operation="face.analyze"}');
    expect(gauges).not.toContain('operation="protect"');

    await completeJob(analyzeId, "face.analyze", analyzed);
    const embedding = await getJob(key, job.id);
    expect(embedding.stages.map((s) => [s.name, s.status])).toEqual([
      ["face.analyze", "succeeded"],
      ["watermark.embed", "queued"],
    ]);
    await completeJob(stageId(embedding, "watermark.embed")!, "watermark.embed", {}, IMAGE);
    const done = await getJob(key, job.id);
    expect(done.status).toBe("succeeded");
    expect(done.completed_at).not.toBeNull();
    expect(done.output).toMatchObject({ owner: "desk", asset_id: expect.stringMatching(/^ast_/) });

    // One job.succeeded for the request the client made; none for the two stages it never created.
    const events = await deliveries(ep, 1);
    await new Promise((r) => setTimeout(r, 300));
    const all = await deliveries(ep, 1);
    expect(all.map((e) => [e.type, e.data.job.id])).toEqual([["job.succeeded", job.id]]);
    expect(events[0]!.data.job).toMatchObject({ operation: "protect", output: { asset_id: done.output!.asset_id } });

    // The deprecated alias serves the same job, and says it is deprecated.
    const alias = await call(`/v1/identity/flows/${job.id}`, { key });
    expect(alias.status).toBe(200);
    expect(alias.headers.get("deprecation")).toMatch(/^@\d+$/);
    expect(((await alias.json()) as Job).status).toBe("succeeded");
  });

  it("cancel ends the job and its unfinished stages; a stage started after that is refused", async () => {
    const { key, tenantId } = await createTenantKey(["verify"]);
    const job = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    const decodeId = stageId(job, "watermark.decode")!;
    const leased = await leaseJob(decodeId, "watermark.decode");
    const canceled = await call(`/v1/jobs/${job.id}/cancel`, { key, method: "POST" });
    expect(canceled.status).toBe(200);
    const after = (await canceled.json()) as Job;
    expect(after.status).toBe("canceled");
    expect(after.stages.map((s) => s.status)).toEqual(["canceled", "canceled"]);
    // The runner that holds the decode learns it on its report.
    const late = await runnerCall(`/internal/runner/jobs/${decodeId}/complete`, {
      lease_id: leased.lease_id,
      result: detectedReading("00"),
      artifacts: [],
    });
    expect(late.status).toBe(409);
    expect((await getJob(key, job.id)).status).toBe("canceled");
    // A hook racing the cancel cannot add a stage to the ended job.
    const input = { key: `tenants/${tenantId}/jobs/${job.id}/inputs/0`, content_type: "image/png", bytes: IMAGE.byteLength };
    await expect(
      createJob(testEnv as unknown as AppEnv, {
        tenantId,
        operation: "face.analyze",
        inputs: [input],
        origin: "http://vigil.test",
        parent: { id: job.id, stage: "face.analyze.region" },
      }),
    ).rejects.toMatchObject({ status: 409, code: "parent_job_ended" });
    expect((await call(`/v1/jobs/${job.id}/cancel`, { key, method: "POST" })).status).toBe(200);
  });

  it("GET /v1/jobs lists protect and verify jobs and hides their stages unless include_children=true", async () => {
    const { key } = await createTenantKey(["protect", "verify", "inspect"]);
    const protect = (await (await post("/v1/protect", key, IMAGE)).json()) as Job;
    const verify = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    const inspect = (await (await post("/v1/inspect", key, IMAGE)).json()) as Job;
    const ids = async (query: string) =>
      ((await (await call(`/v1/jobs${query}`, { key })).json()) as { data: Job[] }).data.map((j) => j.id).sort();
    expect(await ids("")).toEqual([protect.id, verify.id, inspect.id].sort());
    expect(await ids("?operation=verify")).toEqual([verify.id]);
    const children = [...protect.stages, ...verify.stages].map((s) => s.id);
    expect(children).toHaveLength(3);
    expect(await ids("?include_children=true")).toEqual([protect.id, verify.id, inspect.id, ...children].sort());
    expect(await ids("?operation=face.analyze")).toEqual([]);
    await expectProblem(await call("/v1/jobs?include_children=yes", { key }), 422, "validation_failed");
  });

  it("DELETE removes the job and its stage jobs", async () => {
    const { key } = await createTenantKey(["verify"]);
    const job = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    const del = await call(`/v1/jobs/${job.id}`, { key, method: "DELETE" });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ id: job.id, object: "job", deleted: true });
    for (const id of [job.id, ...job.stages.map((s) => s.id)])
      await expectProblem(await call(`/v1/jobs/${id}`, { key }), 404, "job_not_found");
  });
});

describe("retention", () => {
  it("purges a finished protect or verify job with its stages, and leaves a running one whole", async () => {
    const { key } = await createTenantKey(["verify"]);
    const ended = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    await call(`/v1/jobs/${ended.id}/cancel`, { key, method: "POST" });
    const running = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    const removed = await jobQueue(testEnv as unknown as AppEnv).purgeBefore(Date.now() + 1000, 500);
    const ids = removed.map((j) => j.id);
    for (const id of [ended.id, ...ended.stages.map((s) => s.id)]) expect(ids).toContain(id);
    for (const id of [running.id, ...running.stages.map((s) => s.id)]) {
      expect(ids).not.toContain(id);
      expect((await call(`/v1/jobs/${id}`, { key })).status).toBe(200);
    }
    expect((await call(`/v1/jobs/${ended.id}`, { key })).status).toBe(404);
    await call(`/v1/jobs/${running.id}/cancel`, { key, method: "POST" });
  });
});

describe("protect and verify follow the rules of every operation", () => {
  it("Idempotency-Key: the same request twice is the same job; the key with another body is 409", async () => {
    const { key } = await createTenantKey(["protect", "verify"]);
    const first = await post("/v1/protect", key, IMAGE, { "idempotency-key": "protect-1" });
    expect(first.status).toBe(202);
    const job = (await first.json()) as Job;
    const again = await post("/v1/protect", key, IMAGE, { "idempotency-key": "protect-1" });
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as Job).id).toBe(job.id);
    // One job, one analysis: the replay started no stage.
    const listed = ((await (await call("/v1/jobs?include_children=true", { key })).json()) as { data: Job[] }).data;
    expect(listed.map((j) => j.operation).sort()).toEqual(["face.analyze", "protect"]);
    await expectProblem(
      await post("/v1/protect", key, OTHER_IMAGE, { "idempotency-key": "protect-1" }),
      409,
      "idempotency_key_reused",
    );
    await expectProblem(
      await post("/v1/protect?owner=x", key, IMAGE, { "idempotency-key": "protect-1" }),
      409,
      "idempotency_key_reused",
    );
    await expectProblem(await post("/v1/verify", key, IMAGE, { "idempotency-key": "protect-1" }), 409, "idempotency_key_reused");
  });

  it("an idempotent replay honours Prefer: wait", async () => {
    const { key } = await createTenantKey(["verify"]);
    const job = (await (await post("/v1/verify", key, IMAGE, { "idempotency-key": "verify-wait" })).json()) as Job;
    const t0 = Date.now();
    const replay = post("/v1/verify", key, IMAGE, { "idempotency-key": "verify-wait", prefer: "wait=20" });
    await completeJob(stageId(job, "watermark.decode")!, "watermark.decode", { ...detectedReading("00"), detected: false });
    await completeJob(stageId(job, "face.analyze")!, "face.analyze", analyzed);
    const res = await replay;
    expect(res.status).toBe(200);
    expect(res.headers.get("idempotent-replayed")).toBe("true");
    expect(res.headers.get("preference-applied")).toBe("wait=20");
    const body = (await res.json()) as Job;
    expect(body.id).toBe(job.id);
    expect(body.status).toBe("succeeded");
    expect(body.output).toMatchObject({ verdict: "not_protected" });
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it("Content-Type text/plain is 415, unknown query params are 422, as for inspect", async () => {
    const { key } = await createTenantKey(["protect", "verify", "inspect"]);
    for (const path of ["/v1/protect", "/v1/verify", "/v1/inspect"]) {
      await expectProblem(await post(path, key, "hello", { "content-type": "text/plain" }), 415, "unsupported_media_type");
      const unknown = await expectProblem(await post(`${path}?foo=bar`, key, IMAGE), 422, "invalid_params");
      expect(unknown.errors!.map((e) => e.path)).toContain("params");
    }
    await expectProblem(await post("/v1/protect?strength=9", key, IMAGE), 422, "invalid_params");
  });

  it("multipart is read as for the other operations: params from fields, the image from the `image` file", async () => {
    const { key } = await createTenantKey(["protect"]);
    const form = () => {
      const f = new FormData();
      f.set("image", new File([IMAGE], "photo.png", { type: "image/png" }));
      return f;
    };
    const withOwner = form();
    withOwner.set("owner", "multipart-desk");
    const res = await call("/v1/protect", { key, method: "POST", body: withOwner });
    expect(res.status).toBe(202);
    expect(((await res.json()) as Job).params).toMatchObject({ owner: "multipart-desk" });
    const unknown = form();
    unknown.set("colour", "red");
    await expectProblem(await call("/v1/protect", { key, method: "POST", body: unknown }), 422, "invalid_params");
    const noImage = new FormData();
    noImage.set("owner", "x");
    await expectProblem(await call("/v1/protect", { key, method: "POST", body: noImage }), 422, "missing_image");
    await expectProblem(await call("/v1/protect?owner=x", { key, method: "POST", body: form() }), 422, "invalid_params");
  });

  it("a failed stage fails the job with the stage's own error code and message, and one job.failed event", async () => {
    const { key } = await createTenantKey(["verify", "admin"]);
    const ep = await endpoint(key, ["job.failed"]);
    const job = (await (await post("/v1/verify", key, IMAGE)).json()) as Job;
    const analyzeId = stageId(job, "face.analyze")!;
    const leased = await leaseJob(analyzeId, "face.analyze");
    const failed = await runnerCall(`/internal/runner/jobs/${analyzeId}/fail`, {
      lease_id: leased.lease_id,
      error: { type: "image_decode_failed", message: "the JPEG stream ends inside the first scan" },
      retryable: false,
    });
    expect(failed.status).toBe(200);
    const after = await getJob(key, job.id);
    expect(after.status).toBe("failed");
    expect(after.error!.type).toBe("image_decode_failed");
    expect(after.error!.message).toContain("the JPEG stream ends inside the first scan");
    expect(after.error!.message).toContain(analyzeId);
    // The other stage would run for nothing: it is canceled with the job.
    expect(after.stages.map((s) => [s.name, s.status])).toEqual([
      ["face.analyze", "failed"],
      ["watermark.decode", "canceled"],
    ]);
    const events = await deliveries(ep, 1);
    expect(events.map((e) => [e.type, e.data.job.id, e.data.job.error.type])).toEqual([
      ["job.failed", job.id, "image_decode_failed"],
    ]);
  });
});

describe("the deprecated alias", () => {
  it("GET /v1/identity/flows/{id} serves an idf_ flow from before protect was a job, in the job shape", async () => {
    const { key, tenantId } = await createTenantKey(["protect"]);
    const now = Date.now();
    const output = { asset_id: "ast_legacy", image_url: "http://vigil.test/x", faces: [], owner: null, external_ref: null };
    await testEnv.DB.prepare(
      `INSERT INTO identity_flows (id, tenant_id, kind, status, input_key, params, origin, analyze_job, mark_job, output, created_at, updated_at)
       VALUES (?, ?, 'protect', 'succeeded', ?, ?, 'http://vigil.test', 'job_gone_a', 'job_gone_b', ?, ?, ?)`,
    )
      .bind(
        "idf_legacy1",
        tenantId,
        `tenants/${tenantId}/jobs/idf_legacy1/inputs/0`,
        '{"owner":null}',
        JSON.stringify(output),
        now - 1000,
        now,
      )
      .run();
    const res = await call("/v1/identity/flows/idf_legacy1", { key });
    expect(res.status).toBe(200);
    const job = (await res.json()) as Job;
    expect(job).toMatchObject({
      id: "idf_legacy1",
      object: "job",
      operation: "protect",
      status: "succeeded",
      output,
      error: null,
      params: { owner: null },
      parent_id: null,
    });
    expect(job.stages.map((s) => s.name)).toEqual(["face.analyze", "watermark.embed"]);
    await expectProblem(
      await call("/v1/identity/flows/idf_legacy1", { key: (await createTenantKey(["protect"])).key }),
      404,
      "not_found",
    );
    // An ordinary job is not a flow.
    const inspect = await createTenantKey(["inspect"]);
    const plain = (await (await post("/v1/inspect", inspect.key, IMAGE)).json()) as Job;
    await expectProblem(await call(`/v1/identity/flows/${plain.id}`, { key: inspect.key }), 404, "not_found");
  });

  it("the OpenAPI document marks the alias deprecated and serves protect and verify as Job responses", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as {
      paths: Record<string, Record<string, any>>;
    };
    const alias = doc.paths["/v1/identity/flows/{id}"]!.get;
    expect(alias.deprecated).toBe(true);
    expect(alias.description).toMatch(/Deprecated/);
    const listParams = doc.paths["/v1/jobs"]!.get.parameters as { name: string; in: string; schema: { enum?: string[] } }[];
    expect(listParams.find((p) => p.name === "include_children")).toMatchObject({
      in: "query",
      schema: { enum: ["true", "false"] },
    });
    for (const path of ["/v1/protect", "/v1/verify"]) {
      const op = doc.paths[path]!.post;
      expect(op.responses["202"].content["application/json"].schema.$ref).toBe("#/components/schemas/Job");
      expect(op.description).toMatch(/stage jobs/);
    }
  });
});
