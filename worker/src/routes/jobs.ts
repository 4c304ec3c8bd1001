import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setMetric } from "hono/timing";
import { sha256Hex, stableJson } from "../../../contract/encoding.ts";
import { OPERATIONS, type OperationSpec } from "../../../contract/operations.ts";
import { isTerminalStatus } from "../../../contract/protocol.ts";
import { jobQueue, type JobInput, type JobRecord } from "../durable/job-queue.ts";
import { intVar, type HonoEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { createJob, idempotencyConflict } from "../lib/jobs-api.ts";
import { publicJob } from "../lib/job-view.ts";
import { requireScope } from "../lib/keys.ts";
import { objectKeys } from "../lib/object-urls.ts";
import { preferWait } from "../lib/prefer.ts";
import { timed } from "../lib/server-timing.ts";
import { checkImageGeometry, HEADER_BYTES } from "../lib/image-header.ts";
import { SUPPORTED_FORMATS, supportedImageType } from "../lib/sniff.ts";
import { ApiError, json, zodFieldErrors } from "../problem.ts";
import { newRouter } from "../router.ts";
import { Job, JobIdParam, JobList, ListJobsQuery, problemResponses, UploadRef } from "../schemas.ts";

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

async function readRequest(c: C, op: OperationSpec, jobId: string): Promise<ReadInput> {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_json", "the body is not valid JSON");
    }
    return readFromUpload(c, op, body);
  }
  if (type === "multipart/form-data") {
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
  if (seen && seen.kind !== "none") {
    if (bytes) await c.env.OBJECTS.delete(read.input.key);
    if (seen.kind === "conflict") throw idempotencyConflict();
    return respondWithJob(c, seen.job, { "idempotent-replayed": "true" }, 200);
  }
  const wait = preferWait(c);
  const t0 = Date.now();
  const { job, replayed, waitedMs } = await createJob(c.env, {
    tenantId: principal.tenantId,
    operation: op.name,
    inputs: [read.input],
    params: parsed.data as Record<string, unknown>,
    origin: new URL(c.req.url).origin,
    jobId,
    idempotency: key ? { key, hash } : undefined,
    waitMs: wait * 1000,
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
    return respondWithJob(c, job, { "idempotent-replayed": "true" }, 200);
  }
  return respondWithJob(c, job, wait > 0 ? { "preference-applied": `wait=${wait}` } : {});
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
      `Creates a \`${op.name}\` job (scope \`${op.scope}\`). Send the image as the raw body with params in the query string, as multipart (\`image\` file + param fields), or as JSON referencing a signed upload. \`Prefer: wait=N\` (N ≤ 60) waits for the result. ` +
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
jobs.openapi(getJob, (async (c: C) => {
  const p = c.get("principal")!;
  const job = await jobQueue(c.env).get(p.tenantId, c.req.param("id")!);
  if (!job) throw new ApiError(404, "job_not_found", "no such job");
  return json(await publicJob(c.env, job, new URL(c.req.url).origin));
}) as never);

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
jobs.openapi(listJobs, (async (c: C & { req: { valid(t: "query"): z.infer<typeof ListJobsQuery> } }) => {
  const p = c.get("principal")!;
  const q = c.req.valid("query");
  const page = await jobQueue(c.env).list(p.tenantId, q);
  if ("error" in page) throw new ApiError(400, "invalid_cursor", "the cursor is not valid");
  const origin = new URL(c.req.url).origin;
  return json({
    object: "list",
    data: await Promise.all(page.data.map((j) => publicJob(c.env, j, origin))),
    has_more: page.next_cursor !== null,
    next_cursor: page.next_cursor,
  });
}) as never);

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
jobs.openapi(cancelJob, (async (c: C) => {
  const p = c.get("principal")!;
  const out = await jobQueue(c.env).cancel(p.tenantId, c.req.param("id")!);
  if ("error" in out) {
    if (out.error === "not_found") throw new ApiError(404, "job_not_found", "no such job");
    throw new ApiError(409, "job_not_cancelable", "the job has already finished");
  }
  return json(await publicJob(c.env, out.job, new URL(c.req.url).origin));
}) as never);

const deleteJob = createRoute({
  method: "delete",
  path: "/v1/jobs/{id}",
  tags: ["Jobs"],
  summary: "Delete a job and all of its objects (cancels it first if needed)",
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
jobs.openapi(deleteJob, (async (c: C) => {
  const p = c.get("principal")!;
  const id = c.req.param("id")!;
  const queue = jobQueue(c.env);
  await queue.cancel(p.tenantId, id);
  const job = await queue.remove(p.tenantId, id);
  if (!job) throw new ApiError(404, "job_not_found", "no such job");
  await deleteJobObjects(c.env, job);
  return json({ id, object: "job", deleted: true });
}) as never);

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
