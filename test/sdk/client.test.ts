import { readFileSync } from "node:fs";
import sharp from "sharp";
import { describe, expect, inject, it } from "vitest";
import { OPERATION_METHODS, OPERATIONS, Vigil, VigilError, VigilTimeoutError, type Job } from "@vigil/sdk";
import { SDK_STACK_INLINE_LIMIT } from "./global-setup.ts";

const stack = inject("sdkStack");
const PHOTO = readFileSync("test/fixtures/photo.jpg");

function client(opts: ConstructorParameters<typeof Vigil>[0] = {}) {
  return new Vigil({ baseUrl: stack.url, apiKey: stack.apiKey, operatorKey: stack.operatorKey, ...opts });
}

/** Requests the SDK sends, seen through a fetch that passes each one on to the real one. */
function recording() {
  const calls: { method: string; url: string; headers: Headers; size: number }[] = [];
  const f: typeof fetch = async (input, init) => {
    const body = init?.body;
    const size = body instanceof Uint8Array ? body.byteLength : typeof body === "string" ? body.length : 0;
    calls.push({ method: init?.method ?? "GET", url: String(input), headers: new Headers(init?.headers), size });
    return fetch(input, init);
  };
  return { calls, fetch: f };
}

describe("every operation has a method", () => {
  it("OPERATION_METHODS names a function of the client for each operationId of the generated table", () => {
    const v = client();
    expect(Object.keys(OPERATION_METHODS).sort()).toEqual(Object.keys(OPERATIONS).sort());
    for (const [id, path] of Object.entries(OPERATION_METHODS)) {
      const fn = path.split(".").reduce<any>((o, k) => o?.[k], v);
      expect(typeof fn, `${id} -> ${path}`).toBe("function");
    }
  });
});

describe("image operations against the local stack", () => {
  let protectedImage: Uint8Array;

  it("protect waits for the terminal job (Prefer: wait) and its stages; the marked image downloads", async () => {
    const rec = recording();
    const job = await client({ fetch: rec.fetch }).protect(PHOTO, { format: "png", owner: "sdk-test" });
    expect(job.id).toMatch(/^job_/);
    expect(job.status).toBe("succeeded");
    expect(job.stages.map((s) => s.name)).toEqual(["face.analyze", "watermark.embed"]);
    expect(job.params).toMatchObject({ owner: "sdk-test", format: "png" });
    const post = rec.calls.find((c) => c.method === "POST")!;
    expect(post.headers.get("prefer")).toMatch(/^wait=\d+$/);
    expect(post.headers.get("idempotency-key")).toBeTruthy();
    expect(post.url).toContain("/v1/protect?format=png&owner=sdk-test");
    const res = await fetch(job.output!.image_url as string);
    expect(res.headers.get("content-type")).toBe("image/png");
    protectedImage = new Uint8Array(await res.arrayBuffer());
    const meta = await sharp(protectedImage).metadata();
    expect([meta.width, meta.height]).toEqual([512, 512]);
  });

  it("verify finds the watermark of the protected image", async () => {
    const job = await client().verify(protectedImage);
    expect(job.status).toBe("succeeded");
    expect(job.operation).toBe("verify");
    expect(job.output).toMatchObject({ verdict: "authentic", evidence: { watermark_detected: true } });
    expect(JSON.stringify(job.output)).toContain(
      String((await client().jobs.list({ operation: "protect" })).data[0]!.output?.asset_id),
    );
  });

  it("inspect and enhance.lowlight / enhance.derain return their outputs; a Blob works as input", async () => {
    const v = client();
    const small = await sharp(PHOTO).resize(96, 96).jpeg().toBuffer();
    const inspected = await v.inspect(new Blob([small], { type: "image/jpeg" }));
    expect(inspected.output).toMatchObject({ width: 96, height: 96, format: "jpeg" });
    const lit = await v.enhance.lowlight(small, { format: "jpeg" });
    expect(lit.status).toBe("succeeded");
    expect(lit.output!.image_url).toMatch(/^http/);
    const derained = await v.enhance.derain(small);
    expect(derained.status).toBe("succeeded");
    const viaRun = await v.enhance.run("lowlight", small);
    expect(viaRun.operation).toBe("enhance.lowlight");
    await expect(v.enhance.run("hdr", small)).rejects.toThrow(/no POST \/v1\/enhance\/hdr .*lowlight/);
  });

  it("wait: false returns the queued job; jobs.wait polls it to the end", async () => {
    const v = client();
    const queued = await v.inspect(PHOTO, {}, { wait: false });
    expect(queued.status).not.toBe("failed");
    const done = await v.jobs.wait(queued.id, { pollIntervalMs: 50 });
    expect(done.status).toBe("succeeded");
    expect(done.id).toBe(queued.id);
  });

  it("jobs.wait times out with the job's last state, and an AbortSignal ends it", async () => {
    const v = client();
    const queued = await v.protect(PHOTO, {}, { wait: false });
    const err = await v.jobs.wait(queued.id, { timeoutMs: 1 }).catch((e) => e);
    if (err instanceof VigilTimeoutError) expect(err.job.id).toBe(queued.id);
    else expect((err as Job).status).toBe("succeeded"); // it finished within the first poll
    const ctl = new AbortController();
    const p = v.jobs.wait(queued.id, { signal: ctl.signal });
    ctl.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
    await v.jobs.wait(queued.id);
  });

  it("an unmarked image verifies as not_protected; a refused request throws a typed VigilError", async () => {
    const v = client();
    const plain = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#888" } })
      .png()
      .toBuffer();
    const job = await v.verify(plain);
    expect(job.status).toBe("succeeded");
    expect(job.output).toMatchObject({ verdict: "not_protected" });
    const err = await v.protect(PHOTO, { strength: 99 }).catch((e) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect(err).toMatchObject({ status: 422, code: "invalid_params", type: "https://vigil.dev/errors/invalid_params" });
    expect(err.errors[0].path).toBe("params.strength");
    expect(err.requestId).toBeTruthy();
    const bmp = await v.inspect(new Uint8Array(Buffer.from("BM" + "x".repeat(100)))).catch((e) => e);
    expect(bmp).toMatchObject({ status: 415, code: "unsupported_image" });
    const unauth = await new Vigil({ baseUrl: stack.url, apiKey: "vgl_wrong" }).jobs.list().catch((e) => e);
    expect(unauth).toMatchObject({ status: 401, code: "invalid_api_key" });
  });
});

describe("large images go through signed uploads", () => {
  it("above the SDK's inline limit: POST /v1/uploads, PUT to the signed URL, then the job by upload_id", async () => {
    const rec = recording();
    const v = client({ fetch: rec.fetch, inlineLimitBytes: 10_000 });
    const job = await v.inspect(PHOTO, {}, { idempotencyKey: `upload-${Date.now()}` });
    expect(job.status).toBe("succeeded");
    expect(job.output).toMatchObject({ width: 512, bytes: PHOTO.byteLength });
    expect(rec.calls.map((c) => `${c.method} ${new URL(c.url).pathname.split("/").slice(0, 3).join("/")}`)).toEqual([
      "POST /v1/uploads",
      "PUT /v1/objects",
      "POST /v1/inspect",
    ]);
    expect(rec.calls[1]!.headers.get("authorization")).toBeNull();
    expect(rec.calls[1]!.size).toBe(PHOTO.byteLength);
    expect(rec.calls[2]!.size).toBeLessThan(200);
  });

  it("a server with a lower limit answers 413 use_signed_upload, and the call switches to an upload by itself", async () => {
    const big = await sharp({
      create: { width: 900, height: 900, channels: 3, background: "#000", noise: { type: "gaussian", mean: 128, sigma: 60 } },
    })
      .png()
      .toBuffer();
    expect(big.byteLength).toBeGreaterThan(SDK_STACK_INLINE_LIMIT);
    const rec = recording();
    const job = await client({ fetch: rec.fetch }).inspect(big);
    expect(job.output).toMatchObject({ width: 900, height: 900, bytes: big.byteLength });
    expect(rec.calls.map((c) => c.method)).toEqual(["POST", "POST", "PUT", "POST"]);
    // One request to the API: the same key on the refused inline attempt and on the upload's job request.
    expect(rec.calls[0]!.headers.get("idempotency-key")).toBe(rec.calls[3]!.headers.get("idempotency-key"));
    const upload = await client().uploads.create();
    expect(upload.upload_id).toMatch(/^upl_/);
    expect(upload.max_bytes).toBeGreaterThan(big.byteLength);
  });
});

describe("jobs, assets, keys, identity, admin", () => {
  it("jobs.list / listAll / get / cancel / delete", async () => {
    const v = client();
    const page = await v.jobs.list({ limit: 2 });
    expect(page.object).toBe("list");
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const all: Job[] = [];
    for await (const j of v.jobs.listAll({ limit: 2 })) all.push(j);
    expect(all.length).toBeGreaterThan(2);
    expect(new Set(all.map((j) => j.id)).size).toBe(all.length);
    expect(all.every((j) => j.parent_id === null)).toBe(true);
    const withStages = await v.jobs.list({ include_children: "true", limit: 100 });
    expect(withStages.data.some((j) => j.parent_id !== null)).toBe(true);
    const got = await v.jobs.get(all[0]!.id);
    expect(got.id).toBe(all[0]!.id);
    const queued = await v.protect(PHOTO, {}, { wait: false });
    const canceled = await v.jobs.cancel(queued.id).catch((e: VigilError) => e);
    if (canceled instanceof VigilError)
      expect(canceled.code).toBe("job_not_cancelable"); // it had finished
    else expect(canceled.status).toBe("canceled");
    const del = await v.jobs.delete(queued.id);
    expect(del).toEqual({ id: queued.id, object: "job", deleted: true });
    await expect(v.jobs.get(queued.id)).rejects.toMatchObject({ status: 404, code: "job_not_found" });
  });

  it("assets list / get / delete", async () => {
    const v = client();
    const job = await v.protect(PHOTO, { external_ref: "asset-test" });
    const id = job.output!.asset_id as string;
    const listed = await v.assets.list({ limit: 200 });
    expect(JSON.stringify(listed)).toContain(id);
    expect(await v.assets.get(id)).toMatchObject({ id });
    expect(await v.assets.delete(id)).toMatchObject({ id, deleted: true });
    // A deleted asset stays readable as a tombstone, so a later verify can still say what it was.
    expect(await v.assets.get(id)).toMatchObject({ id, deleted: true });
  });

  it("api keys create / list / rotate / revoke; identity keys; the operator's tenants and keys", async () => {
    const v = client();
    const key = await v.apiKeys.create({ name: "sdk", scopes: ["inspect"] });
    expect(key.key).toMatch(/^vgl_/);
    expect((await v.apiKeys.list()).data.map((k) => k.id)).toContain(key.id);
    const scoped = new Vigil({ baseUrl: stack.url, apiKey: key.key });
    await expect(scoped.protect(PHOTO)).rejects.toMatchObject({ status: 403, code: "insufficient_scope" });
    const rotated = await v.apiKeys.rotate(key.id, { grace_seconds: 0 });
    expect(rotated.id).not.toBe(key.id);
    expect(await v.apiKeys.revoke(rotated.id)).toMatchObject({ id: rotated.id });
    const idKeys = await v.identity.keys.list();
    expect(JSON.stringify(idKeys)).toMatch(/version|kid|id/);
    await expect(v.identity.flows.get("idf_missing")).rejects.toMatchObject({ status: 404 });

    const tenant = await v.admin.tenants.create({ name: "sdk-tenant" });
    expect(tenant.id).toMatch(/^ten_/);
    expect((await v.admin.tenants.list()).data.map((t) => t.id)).toContain(tenant.id);
    const tkey = await v.admin.tenants.keys.create(tenant.id, { scopes: ["inspect"] });
    expect((await v.admin.tenants.keys.list(tenant.id)).data.map((k) => k.id)).toContain(tkey.id);
    const trot = await v.admin.tenants.keys.rotate(tenant.id, tkey.id, { grace_seconds: 60 });
    expect(await v.admin.tenants.keys.revoke(tenant.id, trot.id)).toMatchObject({ id: trot.id });
    const asTenant = await new Vigil({ baseUrl: stack.url, apiKey: tkey.key }).inspect(PHOTO);
    expect(asTenant.status).toBe("succeeded");
    // The operator credential only where the document says operator: a tenant key there is refused.
    await expect(new Vigil({ baseUrl: stack.url, apiKey: stack.apiKey }).admin.tenants.list()).rejects.toMatchObject({
      status: 403,
    });
  });

  it("identity.keys.rotate makes a new master key version", async () => {
    const v = client();
    const before = JSON.stringify(await v.identity.keys.list());
    await v.identity.keys.rotate();
    expect(JSON.stringify(await v.identity.keys.list())).not.toBe(before);
  });
});
