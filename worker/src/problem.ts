/**
 * RFC 9457 problem details. Every error the API returns goes through here so that codes stay stable
 * and nothing internal (stack traces, SQL) reaches a client.
 */
export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = "ApiError";
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function problemResponse(err: ApiError, instance?: string): Response {
  const body: Record<string, unknown> = {
    type: `https://vigil.dev/errors/${err.code}`,
    title: TITLES[err.status] ?? "Error",
    status: err.status,
    detail: err.detail,
  };
  if (instance) body.instance = instance;
  if (err.extra.errors) body.errors = err.extra.errors;
  return new Response(JSON.stringify(body), {
    status: err.status,
    headers: { "content-type": "application/problem+json", ...err.extra.headers },
  });
}

/** zod issues → field errors ("params.strength: Too big"). */
export function zodFieldErrors(issues: readonly { path: readonly PropertyKey[]; message: string }[], prefix = ""): FieldError[] {
  return issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter(Boolean).join("."),
    message: i.message,
  }));
}

export function json(data: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(data), { status, headers: { "content-type": "application/json", ...headers } });
}
