import { VigilError, VigilTimeoutError } from "./errors.ts";
import { OPERATIONS, type Job, type OperationId, type OperationTypes, type Upload } from "./generated.ts";
import { send, sleep, type RetryOptions } from "./transport.ts";

export interface VigilOptions {
  /** The API's origin, e.g. `http://127.0.0.1:8787`; in a browser page it defaults to the page's origin. */
  baseUrl?: string;
  /** A tenant key (`vgl_…`): every operation but `/v1/admin/…`. */
  apiKey?: string;
  /** The platform operator credential (`vop_…`), for the `/v1/admin/…` operations. */
  operatorKey?: string;
  retry?: RetryOptions;
  /**
   * Images larger than this go through a signed upload (POST /v1/uploads, PUT, then the job by `upload_id`)
   * instead of in the request body. Default 10 MiB, the worker's MAX_INLINE_UPLOAD_BYTES default; a server with a
   * lower limit answers 413 `use_signed_upload`, after which the call switches to the upload path by itself.
   */
  inlineLimitBytes?: number;
  /** How long a job call waits for its job to finish, in ms (default 5 min). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  onRetry?: (info: { method: string; url: string; attempt: number; delayMs: number; reason: string }) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Sent as Idempotency-Key on a POST; one is generated per call otherwise (the same for all its retries). */
  idempotencyKey?: string;
  /** Sent as x-request-id. */
  requestId?: string;
}

export interface JobOptions extends CallOptions {
  /**
   * true (default): return the job once it is terminal, first with `Prefer: wait` on the create request, then by
   * polling GET /v1/jobs/{id}. false: return the job as the create request answered it (usually `queued`).
   */
  wait?: boolean;
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** "auto" (default): inline up to inlineLimitBytes; "always": always through a signed upload. */
  upload?: "auto" | "always";
}

export interface WaitOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  /** First poll interval in ms (default 250), growing by half each poll up to 2 s. */
  pollIntervalMs?: number;
}

/** An image: bytes in any of the forms fetch bodies take in Workers, browsers and Node. */
export type ImageInput = Blob | ArrayBuffer | ArrayBufferView;

type Op<Id extends OperationId> = OperationTypes[Id];
type Row = (typeof OPERATIONS)[OperationId];

/** Operations that take an image and create a job. */
export type ImageOperationId = {
  [K in OperationId]: (typeof OPERATIONS)[K]["body"] extends "image" ? K : never;
}[OperationId];

/** `lowlight`, `derain`, …: the `POST /v1/enhance/{name}` operations of the document. */
export type EnhanceName = {
  [K in OperationId]: (typeof OPERATIONS)[K]["path"] extends `/v1/enhance/${infer N}` ? N : never;
}[OperationId];

type EnhanceOperationId<N extends EnhanceName> = Extract<ImageOperationId, `postEnhance${Capitalize<N>}`>;

export type ImageMethod<Id extends ImageOperationId> = (
  image: ImageInput,
  params?: Op<Id>["query"],
  options?: JobOptions,
) => Promise<Job>;

export interface CallArgs<Id extends OperationId> extends CallOptions {
  path?: Op<Id>["path"];
  query?: Op<Id>["query"];
  body?: Op<Id>["body"];
}

const TERMINAL = new Set<Job["status"]>(["succeeded", "failed", "canceled"]);
const MAX_PREFER_WAIT_S = 60; // the API's Prefer: wait ceiling (docs: N ≤ 60)

export function isTerminal(job: Pick<Job, "status">): boolean {
  return TERMINAL.has(job.status);
}

/** Operation ids of `POST /v1/enhance/{name}`, by name, as the generated table has them. */
export function enhanceOperations(): Record<string, ImageOperationId> {
  const out: Record<string, ImageOperationId> = {};
  for (const [id, row] of Object.entries(OPERATIONS) as [OperationId, Row][]) {
    const m = /^\/v1\/enhance\/([^/{}]+)$/.exec(row.path);
    if (m && row.body === "image") out[m[1]!] = id as ImageOperationId;
  }
  return out;
}

async function toBytes(image: ImageInput): Promise<{ bytes: Uint8Array; type: string }> {
  if (image instanceof Blob) {
    const type = image.type.startsWith("image/") ? image.type : "application/octet-stream";
    return { bytes: new Uint8Array(await image.arrayBuffer()), type };
  }
  if (image instanceof ArrayBuffer) return { bytes: new Uint8Array(image), type: "application/octet-stream" };
  return { bytes: new Uint8Array(image.buffer, image.byteOffset, image.byteLength), type: "application/octet-stream" };
}

function queryString(query: Record<string, unknown> | undefined): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * The Vigil API client. Every operation of the OpenAPI document has a method (see OPERATION_METHODS); all of them
 * retry network errors, 429 (after Retry-After) and 5xx with jittered exponential backoff, and every POST carries an
 * Idempotency-Key that stays the same across its retries.
 */
export class Vigil {
  readonly baseUrl: string;
  private readonly opts: VigilOptions;
  private readonly retry: Required<RetryOptions>;
  private readonly fetchImpl: typeof fetch;

  constructor(options: VigilOptions = {}) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const base = options.baseUrl ?? origin;
    if (!base) throw new TypeError("Vigil: baseUrl is required outside a browser page");
    this.baseUrl = base.replace(/\/+$/, "");
    this.opts = options;
    this.retry = { maxRetries: 3, baseDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60_000, ...options.retry };
    // Workers refuse a detached `fetch` ("Illegal invocation"): call it bound to the global.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Any operation by operationId: the typed core every method below goes through. */
  async call<Id extends OperationId>(id: Id, args: CallArgs<Id> = {}): Promise<Op<Id>["response"]> {
    const row = OPERATIONS[id] as Row;
    const headers: Record<string, string> = {};
    let body: string | undefined;
    if (args.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(args.body);
    }
    const res = await this.request(row, { ...args, headers, body });
    return (await readJson(res)) as Op<Id>["response"];
  }

  private async request(
    row: Row,
    args: CallOptions & {
      path?: Record<string, unknown>;
      query?: Record<string, unknown>;
      headers: Record<string, string>;
      body?: Uint8Array | string;
      preferWaitS?: number;
    },
  ): Promise<Response> {
    let path: string = row.path;
    for (const name of row.pathParams) {
      const v = args.path?.[name];
      if (typeof v !== "string" || v === "") throw new TypeError(`${row.method} ${row.path}: path parameter ${name} is required`);
      path = path.replace(`{${name}}`, encodeURIComponent(v));
    }
    const url = `${this.baseUrl}${path}${queryString(args.query)}`;
    const headers: Record<string, string> = { accept: "application/json, application/problem+json", ...args.headers };
    const key = row.auth === "operator" ? (this.opts.operatorKey ?? this.opts.apiKey) : this.opts.apiKey;
    if ((row.auth as string) !== "none" && key) headers.authorization = `Bearer ${key}`;
    if (row.method === "POST") headers["idempotency-key"] = args.idempotencyKey ?? crypto.randomUUID();
    if (args.requestId) headers["x-request-id"] = args.requestId;
    if (args.preferWaitS && args.preferWaitS > 0) headers.prefer = `wait=${args.preferWaitS}`;
    return send({
      method: row.method,
      url,
      headers,
      body: args.body,
      signal: args.signal,
      retry: this.retry,
      fetch: this.fetchImpl,
      onRetry: this.opts.onRetry && ((i) => this.opts.onRetry!({ method: row.method, url, ...i })),
    });
  }

  /**
   * Creates a job of an image operation and, unless `wait: false`, returns it once terminal (succeeded, failed or
   * canceled: a failed job is returned, not thrown; its `error` says why). Throws VigilTimeoutError when the job
   * is still running at the timeout, and the signal's reason when aborted.
   */
  async createJob<Id extends ImageOperationId>(
    id: Id,
    image: ImageInput,
    params: Op<Id>["query"] = {} as Op<Id>["query"],
    options: JobOptions = {},
  ): Promise<Job> {
    const row = OPERATIONS[id] as Row;
    const wait = options.wait ?? true;
    const deadline = Date.now() + (options.timeoutMs ?? this.opts.timeoutMs ?? 300_000);
    const preferWaitS = () => (wait ? Math.max(1, Math.min(MAX_PREFER_WAIT_S, Math.floor((deadline - Date.now()) / 1000))) : 0);
    // One key for the whole call: retries and the switch to a signed upload are the same request to the API.
    const call = { ...options, idempotencyKey: options.idempotencyKey ?? crypto.randomUUID() };
    const { bytes, type } = await toBytes(image);
    const limit = this.opts.inlineLimitBytes ?? 10 * 1024 * 1024;
    let job: Job | undefined;
    if (options.upload !== "always" && bytes.byteLength <= limit) {
      try {
        const res = await this.request(row, {
          ...call,
          query: params as Record<string, unknown>,
          headers: { "content-type": type },
          body: bytes,
          preferWaitS: preferWaitS(),
        });
        job = (await readJson(res)) as Job;
      } catch (e) {
        if (!(e instanceof VigilError && e.code === "use_signed_upload")) throw e;
      }
    }
    if (!job) {
      const upload = await this.uploads.put(bytes, { signal: options.signal });
      const res = await this.request(row, {
        ...call,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ upload_id: upload.upload_id, params: params ?? {} }),
        preferWaitS: preferWaitS(),
      });
      job = (await readJson(res)) as Job;
    }
    if (!wait || isTerminal(job)) return job;
    return this.jobs.wait(job.id, { signal: options.signal, timeoutMs: Math.max(0, deadline - Date.now()) });
  }

  private image<Id extends ImageOperationId>(id: Id): ImageMethod<Id> {
    return (image, params, options) => this.createJob(id, image, params, options);
  }

  /** Watermark an image with its faces' encrypted identity (`output.image_url`, `output.asset_id`). */
  readonly protect = this.image("postProtect");
  /** Check an image for a Vigil watermark and a face swap. */
  readonly verify = this.image("postVerify");
  readonly inspect = this.image("postInspect");

  /**
   * The restoration operations, one method per `POST /v1/enhance/{name}` of the document, and `run(name, …)` for a
   * name known only at run time (it throws a TypeError naming the known ones when the document has no such name).
   */
  readonly enhance = {
    lowlight: this.image("postEnhanceLowlight"),
    derain: this.image("postEnhanceDerain"),
    run: async (name: string, image: ImageInput, params: Record<string, unknown> = {}, options?: JobOptions): Promise<Job> => {
      const ops = enhanceOperations();
      const id = ops[name];
      if (!id)
        throw new TypeError(
          `enhance ${name}: the API document has no POST /v1/enhance/${name} (it has: ${Object.keys(ops).join(", ")})`,
        );
      return this.createJob(id, image, params as never, options);
    },
  } satisfies { [N in EnhanceName]: ImageMethod<EnhanceOperationId<N>> } & Record<string, unknown>;

  readonly jobs = {
    get: (id: string, o?: CallOptions) => this.call("getJobsById", { ...o, path: { id } }),
    list: (query: Op<"getJobs">["query"] = {}, o?: CallOptions) => this.call("getJobs", { ...o, query }),
    /** Every job matching `query`, following `next_cursor` page by page. */
    listAll: (query: Op<"getJobs">["query"] = {}, o?: CallOptions) =>
      paginate((cursor) => this.jobs.list({ ...query, ...(cursor ? { cursor } : {}) }, o)),
    cancel: (id: string, o?: CallOptions) => this.call("postJobsByIdCancel", { ...o, path: { id } }),
    delete: (id: string, o?: CallOptions) => this.call("deleteJobsById", { ...o, path: { id } }),
    /** Polls a job until it is terminal; VigilTimeoutError (with the last state seen) at the timeout. */
    wait: async (id: string, o: WaitOptions = {}): Promise<Job> => {
      const deadline = Date.now() + (o.timeoutMs ?? this.opts.timeoutMs ?? 300_000);
      let interval = o.pollIntervalMs ?? 250;
      for (;;) {
        const job = await this.jobs.get(id, { signal: o.signal });
        if (isTerminal(job)) return job;
        const left = deadline - Date.now();
        if (left <= 0) throw new VigilTimeoutError(job);
        await sleep(Math.min(interval, left), o.signal);
        interval = Math.min(2000, interval * 1.5);
      }
    },
  };

  readonly uploads = {
    /** A signed URL to PUT an image to (`upload_url`, valid until `expires_at`, at most `max_bytes`). */
    create: (o?: CallOptions) => this.call("postUploads", o),
    /** Creates an upload and PUTs the image to its URL; pass the result's `upload_id` to a job. */
    put: async (image: ImageInput, o: CallOptions = {}): Promise<Upload> => {
      const upload = await this.uploads.create(o);
      const { bytes, type } = await toBytes(image);
      if (bytes.byteLength > upload.max_bytes)
        throw new RangeError(`image of ${bytes.byteLength} bytes exceeds the upload limit of ${upload.max_bytes}`);
      // The signed URL is the credential: no Authorization header goes to it. A PUT of the same bytes is idempotent.
      const res = await send({
        method: "PUT",
        url: upload.upload_url,
        headers: { "content-type": type },
        body: bytes,
        signal: o.signal,
        retry: this.retry,
        fetch: this.fetchImpl,
      });
      await res.body?.cancel().catch(() => {});
      return upload;
    },
  };

  readonly assets = {
    list: (query: Op<"getAssets">["query"] = {}, o?: CallOptions) => this.call("getAssets", { ...o, query }),
    get: (id: string, o?: CallOptions) => this.call("getAssetsById", { ...o, path: { id } }),
    delete: (id: string, o?: CallOptions) => this.call("deleteAssetsById", { ...o, path: { id } }),
  };

  readonly webhooks = {
    endpoints: {
      /** The answer carries the endpoint's signing `secret`, shown only here and on rotateSecret. */
      create: (body: Op<"postWebhookEndpoints">["body"], o?: CallOptions) => this.call("postWebhookEndpoints", { ...o, body }),
      list: (o?: CallOptions) => this.call("getWebhookEndpoints", o),
      delete: (id: string, o?: CallOptions) => this.call("deleteWebhookEndpointsById", { ...o, path: { id } }),
      rotateSecret: (id: string, o?: CallOptions) => this.call("postWebhookEndpointsByIdRotateSecret", { ...o, path: { id } }),
    },
    deliveries: {
      list: (endpointId: string, query: Op<"getWebhookEndpointsByIdDeliveries">["query"] = {}, o?: CallOptions) =>
        this.call("getWebhookEndpointsByIdDeliveries", { ...o, path: { id: endpointId }, query }),
    },
  };

  readonly apiKeys = {
    create: (body: Op<"postApiKeys">["body"], o?: CallOptions) => this.call("postApiKeys", { ...o, body }),
    list: (o?: CallOptions) => this.call("getApiKeys", o),
    revoke: (id: string, o?: CallOptions) => this.call("postApiKeysByIdRevoke", { ...o, path: { id } }),
    rotate: (id: string, body: Op<"postApiKeysByIdRotate">["body"] = {}, o?: CallOptions) =>
      this.call("postApiKeysByIdRotate", { ...o, path: { id }, body }),
  };

  readonly identity = {
    keys: {
      list: (o?: CallOptions) => this.call("getIdentityKeys", o),
      rotate: (o?: CallOptions) => this.call("postIdentityKeysRotate", o),
    },
    flows: {
      /** @deprecated `idf_…` ids from before protect and verify were jobs; use jobs.get. */
      get: (id: string, o?: CallOptions) => this.call("getIdentityFlowsById", { ...o, path: { id } }),
    },
  };

  /** Operator operations: the client needs `operatorKey`. */
  readonly admin = {
    tenants: {
      create: (body: Op<"postAdminTenants">["body"], o?: CallOptions) => this.call("postAdminTenants", { ...o, body }),
      list: (o?: CallOptions) => this.call("getAdminTenants", o),
      keys: {
        create: (tenantId: string, body: Op<"postAdminTenantsByIdKeys">["body"], o?: CallOptions) =>
          this.call("postAdminTenantsByIdKeys", { ...o, path: { id: tenantId }, body }),
        list: (tenantId: string, o?: CallOptions) => this.call("getAdminTenantsByIdKeys", { ...o, path: { id: tenantId } }),
        revoke: (tenantId: string, keyId: string, o?: CallOptions) =>
          this.call("postAdminTenantsByIdKeysByKeyIdRevoke", { ...o, path: { id: tenantId, key_id: keyId } }),
        rotate: (
          tenantId: string,
          keyId: string,
          body: Op<"postAdminTenantsByIdKeysByKeyIdRotate">["body"] = {},
          o?: CallOptions,
        ) => this.call("postAdminTenantsByIdKeysByKeyIdRotate", { ...o, path: { id: tenantId, key_id: keyId }, body }),
      },
    },
  };
}

/**
 * The client method of every operation, by operationId. Typed as a complete record, so an operation added to the
 * document (and regenerated into generated.ts) fails the typecheck here until it has a method.
 */
export const OPERATION_METHODS = {
  postUploads: "uploads.create",
  postInspect: "inspect",
  postProtect: "protect",
  postVerify: "verify",
  postEnhanceLowlight: "enhance.lowlight",
  postEnhanceDerain: "enhance.derain",
  getJobsById: "jobs.get",
  deleteJobsById: "jobs.delete",
  getJobs: "jobs.list",
  postJobsByIdCancel: "jobs.cancel",
  postAdminTenants: "admin.tenants.create",
  getAdminTenants: "admin.tenants.list",
  postAdminTenantsByIdKeys: "admin.tenants.keys.create",
  getAdminTenantsByIdKeys: "admin.tenants.keys.list",
  postAdminTenantsByIdKeysByKeyIdRevoke: "admin.tenants.keys.revoke",
  postAdminTenantsByIdKeysByKeyIdRotate: "admin.tenants.keys.rotate",
  postApiKeys: "apiKeys.create",
  getApiKeys: "apiKeys.list",
  postApiKeysByIdRevoke: "apiKeys.revoke",
  postApiKeysByIdRotate: "apiKeys.rotate",
  postWebhookEndpoints: "webhooks.endpoints.create",
  getWebhookEndpoints: "webhooks.endpoints.list",
  deleteWebhookEndpointsById: "webhooks.endpoints.delete",
  postWebhookEndpointsByIdRotateSecret: "webhooks.endpoints.rotateSecret",
  getWebhookEndpointsByIdDeliveries: "webhooks.deliveries.list",
  getAssets: "assets.list",
  getAssetsById: "assets.get",
  deleteAssetsById: "assets.delete",
  getIdentityFlowsById: "identity.flows.get",
  getIdentityKeys: "identity.keys.list",
  postIdentityKeysRotate: "identity.keys.rotate",
} as const satisfies Record<OperationId, string>;

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

async function* paginate<T>(
  page: (cursor: string | null) => Promise<{ data: T[]; has_more: boolean; next_cursor: string | null }>,
): AsyncGenerator<T> {
  let cursor: string | null = null;
  for (;;) {
    const p = await page(cursor);
    yield* p.data;
    if (!p.has_more || !p.next_cursor) return;
    cursor = p.next_cursor;
  }
}
