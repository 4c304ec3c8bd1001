import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { signRunnerRequest } from "../../contract/runner-auth.ts";
import type { LeasedJob } from "../../contract/protocol.ts";
import { jobQueue } from "../../worker/src/durable/job-queue.ts";
import type { PublicJob } from "../../worker/src/schemas.ts";

export const ORIGIN = "http://vigil.test";
export const DEV_KEY = "vgl_dev_test_key_0123456789abcdef";
/** The platform operator's credential (VIGIL_OPERATOR_KEY in vitest.config.ts): tenant management and /internal metrics. */
export const OPERATOR_KEY = "vop_operator_test_key_0123456789abcdef";
export const RUNNER_A = { id: "runner-a", secret: "secret-a-0123456789" };
export const RUNNER_B = { id: "runner-b", secret: "secret-b-0123456789" };

export const testEnv = env as unknown as Cloudflare.Env & { JOB_QUEUE: DurableObjectNamespace };

/** A real 1x1 PNG (signature, IHDR, IDAT, IEND). */
export const PNG_1x1 = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  let crc = 0xffffffff;
  for (const b of out.subarray(4, 8 + data.length)) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
  return out;
}

/**
 * A real RGB PNG of the given size (a gradient, so it is not all one colour), made in the worker with
 * CompressionStream: for routes that check an image's dimensions, where the 1x1 PNG is too small.
 */
export async function pngOf(width: number, height: number): Promise<Uint8Array> {
  const raw = new Uint8Array((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) raw.set([x & 255, y & 255, (x + y) & 255], row + 1 + x * 3);
  }
  const idat = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
  );
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  const parts = [PNG_1x1.subarray(0, 8), pngChunk("IHDR", ihdr), pngChunk("IDAT", idat), pngChunk("IEND", new Uint8Array())];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A PNG with distinct trailing bytes, so each call is a different request body. */
export function uniquePng(): Uint8Array {
  const tail = new TextEncoder().encode(crypto.randomUUID());
  const out = new Uint8Array(PNG_1x1.length + tail.length);
  out.set(PNG_1x1);
  out.set(tail, PNG_1x1.length);
  return out;
}

/** Asserts an RFC 9457 problem with a stable type, and returns its body. */
export async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status, `${res.url}`).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  const body = (await res.json()) as {
    type: string;
    status: number;
    title: string;
    detail: string;
    errors?: { path: string; message: string }[];
  };
  expect(body.type).toBe(`https://vigil.dev/errors/${code}`);
  expect(body.status).toBe(status);
  expect(body.title).toBeTruthy();
  expect(body.detail).toBeTruthy();
  expect(JSON.stringify(body)).not.toMatch(/at \w+ \(|\.ts:\d+/); // no stack traces
  return body;
}

export function call(path: string, init: RequestInit & { key?: string | null } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? DEV_KEY : init.key;
  if (key) headers.set("authorization", `Bearer ${key}`);
  return exports.default.fetch(new Request(`${ORIGIN}${path}`, { ...init, headers }));
}

export function postJson(path: string, body: unknown, init: RequestInit & { key?: string | null } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json");
  return call(path, { ...init, method: "POST", headers, body: JSON.stringify(body) });
}

/** A request with the operator credential (`call` with `key: OPERATOR_KEY`); JSON when a body is given. */
export function operatorCall(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, ...rest } = init;
  if (json === undefined) return call(path, { ...rest, key: OPERATOR_KEY });
  return postJson(path, json, { ...rest, key: OPERATOR_KEY });
}

export function postImage(path: string, bytes: Uint8Array = uniquePng(), init: RequestInit & { key?: string | null } = {}) {
  const headers = new Headers(init.headers);
  if (!headers.has("content-type")) headers.set("content-type", "image/png");
  return call(path, { ...init, method: "POST", headers, body: bytes });
}

export async function runnerCall(
  path: string,
  body: unknown,
  opts: { runner?: { id: string; secret: string }; method?: string; now?: number; headers?: Record<string, string> } = {},
): Promise<Response> {
  const runner = opts.runner ?? RUNNER_A;
  const method = opts.method ?? "POST";
  const text = body === undefined ? "" : JSON.stringify(body);
  const signed = await signRunnerRequest({
    runnerId: runner.id,
    secret: runner.secret,
    method,
    url: `${ORIGIN}${path}`,
    body: text,
    now: opts.now,
  });
  return exports.default.fetch(
    new Request(`${ORIGIN}${path}`, {
      method,
      headers: { ...signed, "content-type": "application/json", ...opts.headers },
      body: method === "GET" ? undefined : text,
    }),
  );
}

export async function lease(
  operations: string[],
  opts: { runner?: typeof RUNNER_A; max_jobs?: number; wait_seconds?: number } = {},
) {
  const res = await runnerCall(
    "/internal/runner/lease",
    { runner_id: (opts.runner ?? RUNNER_A).id, operations, max_jobs: opts.max_jobs ?? 1, wait_seconds: opts.wait_seconds ?? 0 },
    { runner: opts.runner },
  );
  if (res.status !== 200) throw new Error(`lease failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { jobs: LeasedJob[] }).jobs;
}

/**
 * Leases one job at a time (FIFO) until the given one comes out; older queued jobs of the same test
 * file are leased and abandoned on the way, later ones stay queued.
 */
export async function leaseJob(jobId: string, operation = "inspect", runner = RUNNER_A): Promise<LeasedJob> {
  for (let i = 0; i < 200; i++) {
    const jobs = await lease([operation], { runner, max_jobs: 1 });
    const hit = jobs.find((j) => j.job_id === jobId);
    if (hit) return hit;
    if (!jobs.length) break;
  }
  throw new Error(`job ${jobId} was not leased`);
}

/** A new tenant (created by the operator) with one key of these scopes. */
export async function createTenantKey(scopes: string[], tenant?: { rate_limit_per_minute?: number; rate_limit_burst?: number }) {
  const t = await operatorCall("/v1/admin/tenants", { json: { name: `t-${crypto.randomUUID()}`, ...tenant } });
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${await t.text()}`);
  const tenantJson = (await t.json()) as { id: string };
  const k = await operatorCall(`/v1/admin/tenants/${tenantJson.id}/keys`, { json: { name: "test", scopes } });
  if (k.status !== 201) throw new Error(`key: ${k.status} ${await k.text()}`);
  const keyJson = (await k.json()) as { id: string; key: string };
  return { tenantId: tenantJson.id, keyId: keyJson.id, key: keyJson.key };
}

/** A job as the API serves it (create, GET /v1/jobs/:id, lists, webhooks): the type of the worker's zod `Job`. */
export type JobJson = PublicJob;

export async function createInspectJob(key: string = DEV_KEY, init: RequestInit = {}): Promise<JobJson> {
  const res = await postImage("/v1/inspect", uniquePng(), { ...init, key });
  if (res.status !== 202 && res.status !== 200) throw new Error(`create: ${res.status} ${await res.text()}`);
  return (await res.json()) as JobJson;
}

/**
 * Plays the runner for one job: leases it and completes it with `result`, storing `image` (if any) as its output
 * artifact the way the runner uploads it. Returns the job record.
 */
export async function completeJob(jobId: string, operation: string, result: Record<string, unknown>, image?: Uint8Array) {
  const leased = await leaseJob(jobId, operation);
  const queue = jobQueue(testEnv as unknown as Parameters<typeof jobQueue>[0]);
  const job = (await queue.get((await queue.ownerOf(jobId))!, jobId))!;
  const artifacts = [];
  if (image) {
    const key = `tenants/${job.tenant_id}/jobs/${jobId}/outputs/image`;
    await testEnv.OBJECTS.put(key, image);
    const sha = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", image)), (b) =>
      b.toString(16).padStart(2, "0"),
    ).join("");
    artifacts.push({ name: "image", key, content_type: "image/png", bytes: image.byteLength, sha256: sha });
  }
  const res = await runnerCall(`/internal/runner/jobs/${jobId}/complete`, { lease_id: leased.lease_id, result, artifacts });
  if (res.status !== 200) throw new Error(`completing ${jobId} answered ${res.status}: ${await res.text()}`);
  return job;
}

/** What watermark.decode returns for a clearly detected payload (one corrected error). */
export const detectedReading = (bits: string) => ({
  bits,
  corrected: true,
  confidence: [],
  errors: 1,
  p_value: 1e-15,
  detected: true,
});
