import type { Job, Problem } from "./generated.ts";

/**
 * An error answer of the API (RFC 9457 problem+json). `code` is the last segment of `type`
 * (`https://vigil.dev/errors/invalid_params` → `invalid_params`), the stable thing to branch on.
 */
export class VigilError extends Error {
  override readonly name = "VigilError";
  readonly type: string;
  readonly code: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly instance?: string;
  /** Per-field validation errors (`validation_failed`, `invalid_params`). */
  readonly errors: NonNullable<Problem["errors"]>;
  /** The response's x-request-id: quote it when reporting a problem. */
  readonly requestId: string | null;
  /** Seconds from Retry-After, when the answer carried one (429, 503). */
  readonly retryAfter: number | null;

  constructor(problem: Problem, requestId: string | null, retryAfter: number | null = null) {
    super(`${problem.status} ${problem.title}: ${problem.detail}${requestId ? ` (request ${requestId})` : ""}`);
    this.type = problem.type;
    this.code = problem.type.slice(problem.type.lastIndexOf("/") + 1);
    this.title = problem.title;
    this.status = problem.status;
    this.detail = problem.detail;
    this.instance = problem.instance;
    this.errors = problem.errors ?? [];
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }

  /** Reads an error response; one that is not problem+json (a proxy's HTML page) still becomes a VigilError. */
  static async fromResponse(res: Response): Promise<VigilError> {
    const text = await res.text().catch(() => "");
    let body: Partial<Problem> = {};
    try {
      body = JSON.parse(text) as Partial<Problem>;
    } catch {
      /* not JSON */
    }
    const problem: Problem =
      typeof body.type === "string" && typeof body.detail === "string"
        ? { title: res.statusText || "Error", status: res.status, ...body, type: body.type, detail: body.detail }
        : {
            type: `https://vigil.dev/errors/http_${res.status}`,
            title: res.statusText || "Error",
            status: res.status,
            detail: text.slice(0, 200) || `HTTP ${res.status} without a problem body`,
          };
    return new VigilError(problem, res.headers.get("x-request-id"), retryAfterSeconds(res.headers.get("retry-after")));
  }
}

/** The request never got an HTTP answer (connection refused, reset, DNS), after every retry. */
export class VigilConnectionError extends Error {
  override readonly name = "VigilConnectionError";
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

/** A job was not terminal when the caller's timeout ran out; it keeps running on the server. */
export class VigilTimeoutError extends Error {
  override readonly name = "VigilTimeoutError";
  constructor(readonly job: Job) {
    super(`job ${job.id} is still ${job.status}: timed out waiting for it`);
  }
}

/** Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); null when absent or unreadable. */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}
