import { describe, expect, it } from "vitest";
import { MAX_WAIT_SECONDS } from "../../worker/src/lib/prefer.ts";
import {
  call,
  createInspectJob,
  createTenantKey,
  lease,
  leaseJob,
  postImage,
  postJson,
  runnerCall,
  testEnv,
  uniquePng,
  type JobJson,
} from "./helpers.ts";

const problem = async (res: Response) => (await res.json()) as { type: string; status: number; errors?: { path: string }[] };

describe("job creation and validation", () => {
  it("creates a job from a raw image body: 202 + Location, then GET returns it", async () => {
    const res = await postImage("/v1/inspect");
    expect(res.status).toBe(202);
    const job = (await res.json()) as JobJson;
    expect(res.headers.get("location")).toBe(`/v1/jobs/${job.id}`);
    // Where the request spent its time, per stage (RFC-less but de-facto standard Server-Timing header).
    const timing = res.headers.get("server-timing") ?? "";
    for (const stage of ["auth", "ratelimit", "store", "enqueue", "total"]) expect(timing).toMatch(new RegExp(`${stage};dur=`));
    expect(job).toMatchObject({ object: "job", operation: "inspect", status: "queued", attempts: 0, output: null, error: null });
    expect(new Date(job.created_at).toISOString()).toBe(job.created_at);
    const got = (await (await call(`/v1/jobs/${job.id}`)).json()) as JobJson;
    expect(got.id).toBe(job.id);
  });

  it("accepts multipart with params as fields", async () => {
    const form = new FormData();
    form.set("image", new Blob([uniquePng()], { type: "image/png" }), "x.png");
    form.set("format", "webp");
    const res = await call("/v1/enhance/lowlight", { method: "POST", body: form });
    expect(res.status).toBe(202);
    expect(((await res.json()) as JobJson).params).toEqual({ format: "webp" });
  });

  it("415 for a body that is not an image, whatever its Content-Type says", async () => {
    const res = await postImage("/v1/inspect", new TextEncoder().encode("definitely not a picture"), {
      headers: { "content-type": "image/jpeg" },
    });
    expect(res.status).toBe(415);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect((await problem(res)).type).toBe("https://vigil.dev/errors/unsupported_image");
    expect((await call("/v1/inspect", { method: "POST", body: "x", headers: { "content-type": "text/plain" } })).status).toBe(
      415,
    );
  });

  it("422 with field errors for bad params", async () => {
    const res = await postImage("/v1/enhance/lowlight?format=bmp");
    expect(res.status).toBe(422);
    const body = await problem(res);
    expect(body.type).toBe("https://vigil.dev/errors/invalid_params");
    expect(body.errors?.[0]?.path).toBe("params.format");
    expect((await postImage("/v1/inspect?unexpected=1")).status).toBe(422); // strict schema
  });

  it("413 above the inline limit points to /v1/uploads", async () => {
    const big = new Uint8Array(10 * 1024 * 1024 + 1);
    big.set(uniquePng());
    const res = await postImage("/v1/inspect", big);
    expect(res.status).toBe(413);
    const body = (await res.json()) as { type: string; detail: string };
    expect(body.type).toBe("https://vigil.dev/errors/use_signed_upload");
    expect(body.detail).toContain("/v1/uploads");
  });

  it("404 for unknown jobs, 400 for an empty body, 400 for a bad cursor", async () => {
    const res = await call("/v1/jobs/job_doesnotexist");
    expect(res.status).toBe(404);
    expect((await problem(res)).type).toBe("https://vigil.dev/errors/job_not_found");
    expect((await postImage("/v1/inspect", new Uint8Array(0))).status).toBe(400);
    expect((await call("/v1/jobs?cursor=%%%")).status).toBe(400);
    expect((await call("/v1/jobs?limit=1000")).status).toBe(422);
  });
});

describe("idempotency", () => {
  it("same key + same body returns the same job; a different body is 409; neither leaves a stored copy", async () => {
    const { tenantId, key } = await createTenantKey(["inspect"]);
    const body = uniquePng();
    const headers = { "idempotency-key": `idem-${crypto.randomUUID()}` };
    const first = await postImage("/v1/inspect", body, { key, headers });
    expect(first.status).toBe(202);
    const a = (await first.json()) as JobJson;
    const again = await postImage("/v1/inspect", body, { key, headers });
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as JobJson).id).toBe(a.id);
    const other = await postImage("/v1/inspect", uniquePng(), { key, headers });
    expect(other.status).toBe(409);
    expect((await problem(other)).type).toBe("https://vigil.dev/errors/idempotency_key_reused");
    // The input is stored while the key is looked up; a replay or a conflict deletes its copy again.
    const stored = await testEnv.OBJECTS.list({ prefix: `tenants/${tenantId}/` });
    expect(stored.objects).toHaveLength(1);
  });

  it("a replay with Prefer: wait waits for the job the key made, as a new request would", async () => {
    const { key } = await createTenantKey(["inspect"]);
    const body = uniquePng();
    const headers = { "idempotency-key": `wait-${crypto.randomUUID()}` };
    const job = (await (await postImage("/v1/inspect", body, { key, headers })).json()) as JobJson;
    const replay = postImage("/v1/inspect", body, { key, headers: { ...headers, prefer: "wait=20" } });
    const leased = await leaseJob(job.id);
    const done = await runnerCall(`/internal/runner/jobs/${job.id}/complete`, {
      lease_id: leased.lease_id,
      result: { width: 1, height: 1 },
      artifacts: [],
    });
    expect(done.status).toBe(200);
    const res = await replay;
    expect(res.status).toBe(200);
    expect(res.headers.get("idempotent-replayed")).toBe("true");
    expect(res.headers.get("preference-applied")).toBe("wait=20");
    expect((await res.json()) as JobJson).toMatchObject({ id: job.id, status: "succeeded", output: { width: 1 } });
  });

  it("a query string next to a JSON or multipart body is refused, not dropped (params go in the body there)", async () => {
    const form = new FormData();
    form.set("image", new File([uniquePng()], "a.png", { type: "image/png" }));
    const multipart = await call("/v1/inspect?foo=bar", { method: "POST", body: form });
    expect(multipart.status).toBe(422);
    expect(await problem(multipart)).toMatchObject({
      type: "https://vigil.dev/errors/invalid_params",
      errors: [{ path: "query.foo" }],
    });
    const viaUpload = await postJson("/v1/inspect?foo=bar", { upload_id: "upl_none" });
    expect(viaUpload.status).toBe(422);
    expect((await problem(viaUpload)).type).toBe("https://vigil.dev/errors/invalid_params");
  });

  it("concurrent identical requests create one job", async () => {
    const body = uniquePng();
    const headers = { "idempotency-key": `race-${crypto.randomUUID()}` };
    const results = await Promise.all([1, 2, 3].map(() => postImage("/v1/inspect", body, { headers })));
    // One request creates the job (202); the others are answered with it as replays (200), never with an error.
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 202]);
    const replays = results.filter((r) => r.status === 200);
    expect(replays.map((r) => r.headers.get("idempotent-replayed"))).toEqual(["true", "true"]);
    expect(results.find((r) => r.status === 202)!.headers.get("idempotent-replayed")).toBeNull();
    const jobs = await Promise.all(results.map(async (r) => (await r.json()) as JobJson));
    expect(new Set(jobs.map((j) => j.id)).size).toBe(1);
    expect(jobs.every((j) => j.object === "job" && j.operation === "inspect")).toBe(true);
  });

  it("keys are scoped per tenant", async () => {
    const t1 = await createTenantKey(["inspect"]);
    const t2 = await createTenantKey(["inspect"]);
    const headers = { "idempotency-key": "shared-key" };
    const a = (await (await postImage("/v1/inspect", uniquePng(), { key: t1.key, headers })).json()) as JobJson;
    const res = await postImage("/v1/inspect", uniquePng(), { key: t2.key, headers });
    expect(res.status).toBe(202);
    expect(((await res.json()) as JobJson).id).not.toBe(a.id);
  });
});

describe("signed uploads and objects", () => {
  it("upload → PUT to the signed URL → job from upload_id", async () => {
    const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string; upload_url: string };
    const notYet = await postJson("/v1/inspect", { upload_id: up.upload_id });
    expect(notYet.status).toBe(409);
    const url = new URL(up.upload_url);
    const put = await call(url.pathname + url.search, {
      key: null,
      method: "PUT",
      body: uniquePng(),
      headers: { "content-type": "image/png" },
    });
    expect(put.status).toBe(201);
    const res = await postJson("/v1/inspect", { upload_id: up.upload_id, params: {} });
    expect(res.status).toBe(202);
    expect(((await res.json()) as JobJson).status).toBe("queued");
    expect((await postJson("/v1/inspect", { upload_id: "upl_nope" })).status).toBe(404);
  });

  it("deleting one job of a shared upload leaves the upload for the other jobs", async () => {
    const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string; upload_url: string };
    const url = new URL(up.upload_url);
    const bytes = uniquePng();
    await call(url.pathname + url.search, { key: null, method: "PUT", body: bytes, headers: { "content-type": "image/png" } });
    const first = (await (await postJson("/v1/inspect", { upload_id: up.upload_id })).json()) as JobJson;
    const second = (await (await postJson("/v1/inspect", { upload_id: up.upload_id })).json()) as JobJson;
    expect((await call(`/v1/jobs/${first.id}`, { method: "DELETE" })).status).toBe(200);
    // The second job still gets its input: lease it and download through its ticket's signed URL.
    const leased = await leaseJob(second.id);
    const { verifyTicket, importTicketPublicKey } = await import("../../contract/ticket.ts");
    const keys = new Map([["test-2026", await importTicketPublicKey("ypRq4DZy2ATa503_4HgtL9xKxRIBR5-fbGchEUQVnsY")]]);
    const input = new URL((await verifyTicket(leased.ticket, keys)).inputs[0]!.url);
    const got = await call(input.pathname + input.search, { key: null });
    expect(got.status).toBe(200);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
  });

  it("tampered or expired object URLs are refused", async () => {
    const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_url: string };
    const url = new URL(up.upload_url);
    const tampered = url.pathname.replace(/upl_/, "upl_x") + url.search;
    const r1 = await call(tampered, { key: null, method: "PUT", body: uniquePng() });
    expect(r1.status).toBe(403);
    expect((await problem(r1)).type).toBe("https://vigil.dev/errors/signature_invalid");
    const asGet = await call(url.pathname + url.search, { key: null }); // signed for PUT, not GET
    expect(asGet.status).toBe(403);
    // A correctly signed but expired URL.
    const { WorkerObjectUrlSigner } = await import("../../worker/src/lib/object-urls.ts");
    const signer = new WorkerObjectUrlSigner("http://vigil.test", "object-url-secret-for-tests");
    const old = new URL(await signer.sign("GET", "tenants/ten_dev/uploads/x", Math.floor(Date.now() / 1000) - 5));
    const r2 = await call(old.pathname + old.search, { key: null });
    expect(r2.status).toBe(403);
    expect((await problem(r2)).type).toBe("https://vigil.dev/errors/url_expired");
  });
});

describe("job lifecycle through the API", () => {
  it("Prefer: wait returns 200 with the finished job and signed output URLs", async () => {
    const listQueued = async () =>
      ((await (await call("/v1/jobs?operation=enhance.lowlight&status=queued&limit=100")).json()) as { data: JobJson[] }).data;
    const before = new Set((await listQueued()).map((j) => j.id));
    const pending = postImage("/v1/enhance/lowlight", uniquePng(), { headers: { prefer: "wait=10" } });
    // Find the new job and finish it as a runner would, including the artifact upload.
    let job: JobJson | undefined;
    for (let i = 0; i < 100 && !job; i++) {
      job = (await listQueued()).find((j) => !before.has(j.id));
      if (!job) await new Promise((r) => setTimeout(r, 20));
    }
    expect(job).toBeDefined();
    const leaseRes = await runnerCall("/internal/runner/lease", {
      runner_id: "runner-a",
      operations: ["enhance.lowlight"],
      max_jobs: 32,
      wait_seconds: 0,
    });
    const leased = ((await leaseRes.json()) as { jobs: { job_id: string; lease_id: string; ticket: string }[] }).jobs.find(
      (j) => j.job_id === job!.id,
    );
    // models/manifest.json lists enhance.lowlight's model, so the lease must hand the job out with a ticket. (This
    // used to accept a job failed with configuration_error as well, which hid any bug in building tickets.)
    expect(leased, "the lease should hand out the new job").toBeDefined();
    if (!leased) return;
    // Act as the runner: verify the ticket, upload the artifact to its signed PUT URL, complete.
    const { importTicketPublicKey, verifyTicket } = await import("../../contract/ticket.ts");
    const keys = new Map([["test-2026", await importTicketPublicKey("ypRq4DZy2ATa503_4HgtL9xKxRIBR5-fbGchEUQVnsY")]]);
    const ticket = await verifyTicket(leased.ticket, keys);
    expect(ticket.models.map((m) => m.id)).toEqual(["lowlight-iagc"]);
    const out = ticket.outputs.find((o) => o.name === "image")!;
    const artifact = uniquePng();
    const putUrl = new URL(out.url);
    const put = await call(putUrl.pathname + putUrl.search, {
      key: null,
      method: "PUT",
      body: artifact,
      headers: { "content-type": "image/png" },
    });
    expect(put.status).toBe(201);
    const sha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", artifact))]
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    const complete = await runnerCall(`/internal/runner/jobs/${job!.id}/complete`, {
      lease_id: leased.lease_id,
      result: { gain: 1.5 },
      artifacts: [{ name: "image", key: out.key, content_type: "image/png", bytes: artifact.length, sha256: sha }],
      metrics: { model_ms: 12.5, total_ms: 30.25 },
    });
    expect(complete.status).toBe(200);
    const res = await pending;
    expect(res.status).toBe(200);
    const done = (await res.json()) as JobJson;
    expect(done.status).toBe("succeeded");
    expect(done.output!.gain).toBe(1.5);
    expect(done.metrics).toEqual({ model_ms: 12.5, total_ms: 30.25 });
    const get = new URL(done.output!.image_url as string);
    const img = await call(get.pathname + get.search, { key: null });
    expect(img.status).toBe(200);
    expect(new Uint8Array(await img.arrayBuffer())).toEqual(artifact);
  });

  it("Prefer: wait times out with 202 and the current job", async () => {
    const started = Date.now();
    const res = await postImage("/v1/inspect", uniquePng(), { headers: { prefer: "wait=1" } });
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(res.headers.get("location")).toMatch(/^\/v1\/jobs\/job_/);
    // Enqueue and wait are one call to the queue; Server-Timing still reports them apart.
    const wait = Number(/wait;dur=([\d.]+)/.exec(res.headers.get("server-timing") ?? "")?.[1]);
    expect(wait).toBeGreaterThanOrEqual(900);
    expect(res.headers.get("server-timing")).toMatch(/enqueue;dur=/);
    expect(res.headers.get("preference-applied")).toBe("wait=1");
  });

  it(`Prefer: wait is capped at ${MAX_WAIT_SECONDS} s and says so in Preference-Applied; no Prefer, no header`, async () => {
    const plain = await postImage("/v1/inspect", uniquePng());
    expect(plain.status).toBe(202);
    expect(plain.headers.get("preference-applied")).toBeNull();
    // Ask for ten minutes; finish the job as a runner would so the test does not sit out the cap.
    const asked = postImage("/v1/inspect", uniquePng(), { headers: { prefer: "respond-async, wait=600" } });
    let leased: { job_id: string; lease_id: string } | undefined;
    for (let i = 0; i < 100 && !leased; i++) {
      [leased] = await lease(["inspect"], { max_jobs: 1, wait_seconds: 1 });
    }
    // Older queued jobs of this file may come out first: finish each until the request answers.
    for (let i = 0; i < 50 && leased; i++) {
      await runnerCall(`/internal/runner/jobs/${leased.job_id}/complete`, { lease_id: leased.lease_id, result: {} });
      const settled = await Promise.race([asked.then(() => true), new Promise((r) => setTimeout(() => r(false), 200))]);
      if (settled) break;
      [leased] = await lease(["inspect"], { max_jobs: 1, wait_seconds: 1 });
    }
    const res = await asked;
    expect(res.status).toBe(200);
    expect(res.headers.get("preference-applied")).toBe(`wait=${MAX_WAIT_SECONDS}`);
    expect(((await res.json()) as JobJson).status).toBe("succeeded");
  });

  it("a completed job exposes output with a signed artifact URL that serves the bytes", async () => {
    const job = await createInspectJob();
    const leased = await leaseJob(job.id);
    const complete = await runnerCall(`/internal/runner/jobs/${job.id}/complete`, {
      lease_id: leased.lease_id,
      result: { width: 1, height: 1 },
    });
    expect(complete.status).toBe(200);
    const got = (await (await call(`/v1/jobs/${job.id}`)).json()) as JobJson;
    expect(got.status).toBe("succeeded");
    expect(got.output).toEqual({ width: 1, height: 1 });
    expect(got.completed_at).not.toBeNull();
  });

  it("lists newest first with an opaque cursor and filters", async () => {
    const { key } = await createTenantKey(["inspect"]);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createInspectJob(key)).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const page = (await (await call(`/v1/jobs?limit=2${q}`, { key })).json()) as {
        data: JobJson[];
        has_more: boolean;
        next_cursor: string | null;
      };
      seen.push(...page.data.map((j) => j.id));
      expect(page.has_more).toBe(page.next_cursor !== null);
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const none = (await (await call("/v1/jobs?status=succeeded", { key })).json()) as { data: JobJson[] };
    expect(none.data).toEqual([]);
  });

  it("cancel and delete", async () => {
    const job = await createInspectJob();
    const c = await postJson(`/v1/jobs/${job.id}/cancel`, {});
    expect(c.status).toBe(200);
    expect(((await c.json()) as JobJson).status).toBe("canceled");
    expect((await postJson(`/v1/jobs/${job.id}/cancel`, {})).status).toBe(200); // idempotent
    const d = await call(`/v1/jobs/${job.id}`, { method: "DELETE" });
    expect(d.status).toBe(200);
    expect((await call(`/v1/jobs/${job.id}`)).status).toBe(404);
  });
});
