/**
 * Plain fetch against the documented API (/openapi.json), same origin only (the page's CSP has
 * `connect-src 'self'`). The types are the fields the console reads of the documented responses; the worker's zod
 * schemas (worker/src/schemas.ts, identity/verdict.ts) are their source, but they cannot be imported here: they
 * bring in the Workers runtime's global types, which clash with the DOM's.
 */

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: { path: string; message: string }[];
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
  }
  /** The stable code: the last segment of the problem type (https://vigil.dev/errors/<code>). */
  get code(): string {
    return this.problem.type.split("/").pop() ?? this.problem.type;
  }
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "canceled";
export const TERMINAL: readonly JobStatus[] = ["succeeded", "failed", "canceled"];

export interface Job {
  id: string;
  operation: string;
  status: JobStatus;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  output: Record<string, unknown> | null;
  error: { type: string; message: string } | null;
  params: Record<string, unknown>;
  parent_id: string | null;
  stages: { name: string; id: string; operation: string; status: JobStatus }[];
}

export interface Rate {
  rate: number;
  ci95: [number, number];
}

/** verify's output (worker/src/identity/verdict.ts, VerifyOutput): the fields the verdict view shows. */
export interface Verification {
  verdict: string;
  reason: string;
  evidence: {
    watermark_detected: boolean;
    p_value: number;
    bits_recovered: number;
    watermark_codec: number | null;
    payload_authenticated: boolean;
    faces_found: number;
    identity_basis: "record" | "payload" | null;
    identity_metric: "euclidean" | "hamming" | null;
    identity_distance: number | null;
    payload_identity_distance: number | null;
    swapped_faces: number[];
    threshold: number;
    code_bits: number;
    false_alarm_rate?: Rate;
    miss_rate?: Rate;
    rates_basis?: string;
  };
  source: { asset_id: string; owner: string | null; protected_at: string } | null;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  description: string | null;
  events: string[];
  created_at: string;
  secret?: string;
}

export interface WebhookDelivery {
  id: string;
  event_id: string;
  event_type: string;
  status: string;
  attempts: { attempt: number; status_code: number | null; error: string | null; duration_ms: number; created_at: string }[];
  created_at: string;
}

export interface List<T> {
  data: T[];
  has_more?: boolean;
}

/** The parts of the OpenAPI document the run form is built from. */
export interface OpenApiParameter {
  name: string;
  in: string;
  description?: string;
  schema?: {
    type?: string | string[];
    enum?: unknown[];
    default?: unknown;
    minimum?: number;
    maximum?: number;
    maxLength?: number;
    anyOf?: { type?: string }[];
  };
}
export interface OpenApiOperation {
  operationId: string;
  summary?: string;
  description?: string;
  parameters?: (OpenApiParameter | { $ref: string })[];
  requestBody?: { content?: Record<string, unknown> };
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
}

export interface RequestOptions {
  query?: Record<string, string>;
  body?: BodyInit;
  json?: unknown;
  headers?: Record<string, string>;
}

export type Api = <T>(method: string, path: string, opts?: RequestOptions) => Promise<T>;

/** A caller with the key; every refusal is an ApiError carrying the problem+json body. */
export function apiClient(key: string, onUnauthorized: () => void): Api {
  return async <T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> => {
    const headers = new Headers(opts.headers);
    headers.set("authorization", `Bearer ${key}`);
    let body = opts.body;
    if (opts.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(opts.json);
    }
    const qs = opts.query && Object.keys(opts.query).length ? `?${new URLSearchParams(opts.query)}` : "";
    const res = await fetch(path + qs, { method, headers, body });
    const text = await res.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const problem =
        data && typeof data === "object" && "type" in data
          ? (data as Problem)
          : { type: "about:blank", title: res.statusText || "Error", status: res.status, detail: text.slice(0, 200) };
      if (res.status === 401) onUnauthorized();
      throw new ApiError(problem);
    }
    return data as T;
  };
}

/** The public OpenAPI document: the operations the run form offers and their parameters. */
export async function loadDocument(): Promise<OpenApiDocument> {
  const res = await fetch("/openapi.json");
  if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}`);
  return (await res.json()) as OpenApiDocument;
}
