import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setMetric } from "hono/timing";
import { sha256Hex, stableJson } from "../../../contract/encoding.ts";
import { getOperation, OPERATIONS, runsOnRunner, type OperationSpec } from "../../../contract/operations.ts";
import { isTerminalStatus } from "../../../contract/protocol.ts";
import { jobQueue, type JobInput, type JobRecord } from "../durable/job-queue.ts";
import { intVar, type HonoEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { createJob, idempotencyConflict, workerOperation } from "../lib/jobs-api.ts";
import { publicJob, type PublicJob } from "../lib/job-view.ts";
import { requireScope } from "../lib/keys.ts";
import { objectKeys } from "../lib/object-urls.ts";
import { preferWait } from "../lib/prefer.ts";
import { timed } from "../lib/server-timing.ts";
import { checkImageGeometry, HEADER_BYTES } from "../lib/image-header.ts";
import { SUPPORTED_FORMATS, supportedImageType } from "../lib/sniff.ts";
import { ApiError, json, zodFieldErrors } from "../problem.ts";
import { newRouter } from "../router.ts";
import { Job, JobIdParam, JobList, ListJobsQuery, problemResponses, UploadRef } from "../schemas.ts";
import type { AppEnv } from "../env.ts";

export const jobs = newRouter();
type C = Context<HonoEnv>;

/** What a create request carries once its body has been read, whatever its content type. */
interface ReadInput {
  input: JobInput;
  /** Inline bytes to store; absent when the input is an existing signed upload. */
  bytes?: Uint8Array;
  params: Record<string, unknown>;
  /** Identifies the input for the idempotency hash (sha256 of the bytes, or the upload id). */
  identity: string;
}

function checkSize(op: OperationSpec, bytes: number, inlineLimit: number | null): void {
  if (bytes > op.limits.max_input_bytes) {
    throw new ApiError(413, "input_too_large", `${op.name} accepts inputs up to ${op.limits.max_input_bytes} bytes`);
  }
  if (inlineLimit !== null && bytes > inlineLimit) {
    throw new ApiError(413, "use_signed_upload", `request bodies above ${inlineLimit} bytes must go through POST /v1/uploads`);
  }
}

/**
 * The image's sniffed type, once it is one a runner decodes (415 otherwise) and its header's size fits the
 * operation's geometry limits (422 otherwise): both answered before the input is stored or a job exists.
 */
function sniffed(op: OperationSpec, bytes: Uint8Array): string {
  const type = supportedImageType(bytes);
  checkImageGeometry(bytes, op.limits, op.name);
  return type;
}

async function readInline(
  c: C,
  op: OperationSpec,
  jobId: string,
  bytes: Uint8Array,
  params: Record<string, unknown>,
): Promise<ReadInput> {
  if (bytes.byteLength === 0) throw new ApiError(400, "empty_body", "the request body is empty");
  checkSize(op, bytes.byteLength, intVar(c.env.MAX_INLINE_UPLOAD_BYTES, 10 * 1024 * 1024));
  const contentType = sniffed(op, bytes);
  return {
    input: { key: objectKeys.input(c.get("principal")!.tenantId, jobId, 0), content_type: contentType, bytes: bytes.byteLength },
    bytes,
    params,
    identity: await sha256Hex(bytes),
  };
}

async function readFromUpload(c: C, op: OperationSpec, raw: unknown): Promise<ReadInput> {
  const ref = UploadRef.safeParse(raw);
  if (!ref.success)
    throw new ApiError(422, "invalid_request", "expected { upload_id, params }", { errors: zodFieldErrors(ref.error.issues) });
  const tenantId = c.get("principal")!.tenantId;
  const upload = await c.env.DB.prepare("SELECT object_key FROM uploads WHERE id = ? AND tenant_id = ?")
    .bind(ref.data.upload_id, tenantId)
    .first<{ object_key: string }>();
  if (!upload) throw new ApiError(404, "upload_not_found", `no upload ${ref.data.upload_id}`);
  const head = await c.env.OBJECTS.get(upload.object_key, { range: { offset: 0, length: HEADER_BYTES } });
  if (!head) throw new ApiError(409, "upload_incomplete", "nothing has been PUT to this upload's URL yet");
  const first = new Uint8Array(await head.arrayBuffer());
  checkSize(op, head.size, null);
  return {
    input: { key: upload.object_key, content_type: sniffed(op, first), bytes: head.size },
    params: ref.data.params,
    identity: `upload:${ref.data.upload_id}`,
  };
}

function declaredLength(c: C, op: OperationSpec): void {
  const n = Number(c.req.header("content-length") ?? NaN);
  if (Number.isFinite(n)) checkSize(op, n, intVar(c.env.MAX_INLINE_UPLOAD_BYTES, 10 * 1024 * 1024));
}

/**
 * Params travel in the query string only with a raw image body; with JSON or multipart they are in the body, and a
 * query string there would be silently dropped, so it is refused like any unknown parameter.
 */
function noQuery(c: C, where: string): void {
  const names = [...new URL(c.req.url).searchParams.keys()];
  if (names.length)
    throw new ApiError(422, "invalid_params", `with this content type, params go ${where}, not in the query string`, {
      errors: names.map((n) => ({ path: `query.${n}`, message: `params go ${where}` })),
    });
}

async function readRequest(c: C, op: OperationSpec, jobId: string): Promise<ReadInput> {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    noQuery(c, "in the JSON body's `params`");
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_json", "the body is not valid JSON");
    }
    return readFromUpload(c, op, body);
  }
  if (type === "multipart/form-data") {
    noQuery(c, "in form fields");
    declaredLength(c, op);
    let form: FormData;
    try {
      form = await c.req.raw.formData();
    } catch {
      throw new ApiError(400, "invalid_multipart", "the multipart body could not be parsed");
    }
    const file = form.get("image");
    if (!file || typeof file === "string")
      throw new ApiError(422, "missing_image", "multipart requests need a file field named `image`");
    const params: Record<string, unknown> = {};
    for (const [k, v] of form.entries()) if (k !== "image" && typeof v === "string") params[k] = v;
    return readInline(c, op, jobId, new Uint8Array(await file.arrayBuffer()), params);
  }
  if (type.startsWith("image/") || type === "application/octet-stream") {
    declaredLength(c, op);
    const params = Object.fromEntries(new URL(c.req.url).searchParams.entries());
    return readInline(c, op, jobId, new Uint8Array(await c.req.arrayBuffer()), params);
  }
  throw new ApiError(
    415,
    "unsupported_media_type",
    "send an image (Content-Type: image/*), multipart/form-data, or JSON with an upload_id",
  );
}

function idempotencyKey(c: C): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key))
    throw new ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters");
  return key;
}

async function respondWithJob(c: C, job: JobRecord, extra: Record<string, string> = {}, forceStatus?: number): Promise<Response> {
  const origin = new URL(c.req.url).origin;
  const headers = { location: `/v1/jobs/${job.id}`, ...extra };
  return json(await publicJob(c.env, job, origin), forceStatus ?? (isTerminalStatus(job.status) ? 200 : 202), headers);
}

/**
 * The job as a client reads it: a worker-run job's own read step runs first (it tidies state outside the queue
 * once a stage failed it or it was canceled, worker/src/identity/flows.ts).
 */
async function readable(env: AppEnv, job: JobRecord): Promise<JobRecord> {
  const spec = getOperation(job.operation);
  const impl = spec && !runsOnRunner(spec) ? workerOperation(job.operation) : undefined;
  if (impl?.onRead) await impl.onRead(env, job);
  return job;
}

/** An idempotent replay answers with the job the key made, after the `Prefer: wait` the replaying request asks for. */
async function replay(c: C, job: JobRecord, wait: number): Promise<Response> {
  let current = job;
  if (wait > 0 && !isTerminalStatus(job.status))
    current = (await jobQueue(c.env).waitFor(job.tenant_id, job.id, wait * 1000)) ?? job;
  const headers: Record<string, string> = { "idempotent-replayed": "true" };
  if (wait > 0) headers["preference-applied"] = `wait=${wait}`;
  return respondWithJob(c, await readable(c.env, current), headers, 200);
}

/**
 * A worker-run operation's job (protect, verify): created running, then its first stages are started here; a start
 * that throws fails the job with `stage_not_created` and the client gets the error. `Prefer: wait` waits on the
 * parent job, which ends when its last stage's hook settles it or a stage fails it.
 */
async function startWorkerJob(c: C, job: JobRecord, wait: number): Promise<JobRecord> {
  const impl = workerOperation(job.operation);
  const queue = jobQueue(c.env);
  try {
    if (!impl) throw new Error(`no worker implementation is registered for ${job.operation}`);
    await impl.start(c.env, job);
  } catch (e) {
    await queue.settle(job.tenant_id, job.id, {
      status: "failed",
      error: { type: "stage_not_created", message: e instanceof Error ? e.message : String(e) },
    });
    throw e;
  }
  const t0 = Date.now();
  const done = wait > 0 ? await queue.waitFor(job.tenant_id, job.id, wait * 1000) : await queue.get(job.tenant_id, job.id);
  if (wait > 0 && c.get("metric")) setMetric(c, "wait", Date.now() - t0);
  return readable(c.env, done ?? job);
}

async function createHandler(c: C, op: OperationSpec): Promise<Response> {
  const principal = requireScope(c.get("principal"), op.scope);
  const key = idempotencyKey(c);
  const jobId = newId("job");
  const read = await readRequest(c, op, jobId);
  const parsed = op.params.safeParse(read.params);
  if (!parsed.success) {
    throw new ApiError(422, "invalid_params", "the parameters are not valid for this operation", {
      errors: zodFieldErrors(parsed.error.issues, "params"),
    });
  }
  const hash = await sha256Hex(`POST\n${new URL(c.req.url).pathname}\n${read.identity}\n${stableJson(parsed.data)}`);
  const queue = jobQueue(c.env);
  const bytes = read.bytes;
  // The idempotency lookup (a Durable Object call) and the input's store (R2) are independent, so they run side by
  // side: a create used to pay for both in turn. A replay or conflict, rare, then deletes the surplus copy.
  const [seen] = await Promise.all([
    key ? queue.lookupIdempotency(principal.tenantId, key, hash) : null,
    bytes
      ? timed(c, "store", () =>
          c.env.OBJECTS.put(read.input.key, bytes, { httpMetadata: { contentType: read.input.content_type } }),
        )
      : null,
  ]);
  const wait = preferWait(c);
  if (seen && seen.kind !== "none") {
    if (bytes) await c.env.OBJECTS.delete(read.input.key);
    if (seen.kind === "conflict") throw idempotencyConflict();
    return replay(c, seen.job, wait);
  }
  const byWorker = !runsOnRunner(op);
  const t0 = Date.now();
  const { job, replayed, waitedMs } = await createJob(c.env, {
    tenantId: principal.tenantId,
    operation: op.name,
    inputs: [read.input],
    params: parsed.data as Record<string, unknown>,
    origin: new URL(c.req.url).origin,
    jobId,
    idempotency: key ? { key, hash } : undefined,
    // A worker-run job waits once its stages exist (startWorkerJob), not inside the create call.
    waitMs: byWorker ? 0 : wait * 1000,
  });
  // One call enqueues and waits; Server-Timing still reports the two apart (workerd's clock, 1 ms steps).
  const spent = Date.now() - t0;
  if (c.get("metric")) {
    setMetric(c, "enqueue", Math.max(0, spent - (waitedMs ?? 0)));
    if (waitedMs !== undefined) setMetric(c, "wait", waitedMs);
  }
  if (replayed) {
    // Lost a race with an identical request: its job stands, our copy of the input is surplus.
    if (read.bytes) await c.env.OBJECTS.delete(read.input.key);
    return replay(c, job, wait);
  }
  const answer = byWorker ? await startWorkerJob(c, job, wait) : job;
  return respondWithJob(c, answer, wait > 0 ? { "preference-applied": `wait=${wait}` } : {});
}

// One create route per public operation, straight from the contract's table.
for (const op of Object.values(OPERATIONS) as OperationSpec[]) {
  if (op.path === null) continue;
  const path = `/v1/${op.path}`;
  jobs.openAPIRegistry.registerPath({
    method: "post",
    path,
    summary: op.summary,
    tags: ["Jobs"],
    security: [{ bearer: [] }],
    description:
      `Creates a \`${op.name}\` job (scope \`${op.scope}\`). Send the image as the raw body with params in the query string, as multipart (\`image\` file + param fields), or as JSON referencing a signed upload; an unknown param is \`422 invalid_params\`. \`Prefer: wait=N\` (N ≤ 60) waits for the result. The same \`Idempotency-Key\` with the same request answers the first job (\`Idempotent-Replayed: true\`, after its own \`Prefer: wait\`), with another request \`409 idempotency_key_reused\`. ` +
      (op.stages
        ? `The worker runs it as stage jobs of ${op.stages.map((s) => `\`${s}\``).join(" and ")} on the one image, listed in the job's \`stages\` (each a job with \`parent_id\`); a stage that fails fails the job with the stage's error code and message. `
        : "") +
      `The image is sniffed from its bytes: ${SUPPORTED_FORMATS}; anything else, BMP included, is \`415 unsupported_image\`. ` +
      `Its shorter side must be at least ${op.limits.min_side} px (\`422 image_too_small\`) and its longer side at most ${op.limits.max_aspect_ratio} times the shorter (\`422 unsupported_aspect_ratio\`).`,
    request: {
      headers: z.object({
        "idempotency-key": z.string().max(255).optional(),
        prefer: z.string().optional().openapi({ example: "wait=30" }),
      }),
      query: op.params instanceof z.ZodObject ? (op.params as z.ZodObject) : undefined,
      body: {
        content: {
          "image/*": { schema: z.string().openapi({ format: "binary" }) },
          "multipart/form-data": { schema: z.object({ image: z.string().openapi({ format: "binary" }) }) },
          "application/json": { schema: UploadRef },
        },
      },
    },
    responses: {
      200: { description: "Finished within the wait, or an idempotent replay", content: { "application/json": { schema: Job } } },
      202: { description: "Queued; poll the Location", content: { "application/json": { schema: Job } } },
      ...problemResponses(400, 401, 403, 409, 413, 415, 422, 429),
    },
  });
  jobs.post(path, (c) => createHandler(c, op));
}

const getJob = createRoute({
  method: "get",
  path: "/v1/jobs/{id}",
  tags: ["Jobs"],
  summary: "Get a job (output URLs are minted fresh on each read)",
  security: [{ bearer: [] }],
  request: { params: JobIdParam },
  responses: { 200: { description: "The job", content: { "application/json": { schema: Job } } }, ...problemResponses(401, 404) },
});
jobs.openapi(getJob, async (c) => {
  const p = c.get("principal")!;
  const job = await jobQueue(c.env).get(p.tenantId, c.req.valid("param").id);
  if (!job) throw new ApiError(404, "job_not_found", "no such job");
  const body: PublicJob = await publicJob(c.env, await readable(c.env, job), new URL(c.req.url).origin);
  return c.json(body, 200);
});

const listJobs = createRoute({
  method: "get",
  path: "/v1/jobs",
  tags: ["Jobs"],
  summary: "List jobs, newest first (cursor pagination)",
  security: [{ bearer: [] }],
  request: { query: ListJobsQuery },
  responses: {
    200: { description: "A page of jobs", content: { "application/json": { schema: JobList } } },
    ...problemResponses(400, 401, 422),
  },
});
jobs.openapi(listJobs, async (c) => {
  const p = c.get("principal")!;
  const q = c.req.valid("query");
  const page = await jobQueue(c.env).list(p.tenantId, q);
  if ("error" in page) throw new ApiError(400, "invalid_cursor", "the cursor is not valid");
  const origin = new URL(c.req.url).origin;
  const body: z.infer<typeof JobList> = {
    object: "list",
    data: await Promise.all(page.data.map((j) => publicJob(c.env, j, origin))),
    has_more: page.next_cursor !== null,
    next_cursor: page.next_cursor,
  };
  return c.json(body, 200);
});

const cancelJob = createRoute({
  method: "post",
  path: "/v1/jobs/{id}/cancel",
  tags: ["Jobs"],
  summary: "Cancel a queued or running job",
  security: [{ bearer: [] }],
  request: { params: JobIdParam },
  responses: {
    200: { description: "The canceled job", content: { "application/json": { schema: Job } } },
    ...problemResponses(401, 404, 409),
  },
});
jobs.openapi(cancelJob, async (c) => {
  const p = c.get("principal")!;
  const out = await jobQueue(c.env).cancel(p.tenantId, c.req.valid("param").id);
  if ("error" in out) {
    if (out.error === "not_found") throw new ApiError(404, "job_not_found", "no such job");
    throw new ApiError(409, "job_not_cancelable", "the job has already finished");
  }
  const body: PublicJob = await publicJob(c.env, await readable(c.env, out.job), new URL(c.req.url).origin);
  return c.json(body, 200);
});

const deleteJob = createRoute({
  method: "delete",
  path: "/v1/jobs/{id}",
  tags: ["Jobs"],
  summary: "Delete a job and all of its objects, and a protect or verify job's stage jobs (cancels it first if needed)",
  security: [{ bearer: [] }],
  request: { params: JobIdParam },
  responses: {
    200: {
      description: "Deleted",
      content: {
        "application/json": { schema: z.object({ id: z.string(), object: z.literal("job"), deleted: z.literal(true) }) },
      },
    },
    ...problemResponses(401, 404),
  },
});
jobs.openapi(deleteJob, async (c) => {
  const p = c.get("principal")!;
  const id = c.req.valid("param").id;
  const queue = jobQueue(c.env);
  const canceled = await queue.cancel(p.tenantId, id);
  // The cancel's read step tidies what a worker-run job keeps outside the queue before its record goes.
  if ("job" in canceled) await readable(c.env, canceled.job);
  const removed = await queue.remove(p.tenantId, id);
  if (!removed.length) throw new ApiError(404, "job_not_found", "no such job");
  for (const job of removed) await deleteJobObjects(c.env, job);
  return c.json({ id, object: "job" as const, deleted: true as const }, 200);
});

/** Deletes everything under the job's prefix plus inputs that live elsewhere (signed uploads). */
export async function deleteJobObjects(env: HonoEnv["Bindings"], job: JobRecord): Promise<void> {
  const prefix = objectKeys.jobPrefix(job.tenant_id, job.id);
  const keys = new Set<string>([...job.inputs.map((i) => i.key), ...job.artifacts.map((a) => a.key)]);
  let cursor: string | undefined;
  do {
    const page = await env.OBJECTS.list({ prefix, cursor });
    for (const o of page.objects) keys.add(o.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  // A signed upload can feed several jobs, so it is not this job's to delete: uploads go with retention.
  const uploads = objectKeys.upload(job.tenant_id, "");
  const all = [...keys].filter((k) => k.startsWith(`tenants/${job.tenant_id}/`) && !k.startsWith(uploads));
  for (let i = 0; i < all.length; i += 1000) await env.OBJECTS.delete(all.slice(i, i + 1000));
}
