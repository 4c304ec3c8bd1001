import type { OpenAPIHono } from "@hono/zod-openapi";
import type { HonoEnv } from "../env.ts";

/**
 * The served OpenAPI document: what @hono/zod-openapi generates from the routes, completed by rules that hold for
 * every route, so a route added anywhere (a new contract operation, a new feature folder) is covered without
 * listing it here:
 * - its operationId, from its method and path (`operationIdFor`);
 * - the x-request-id header every request may carry;
 * - the problem+json errors that the layers in front of every handler give: authentication and rate limiting by
 *   security scheme, request validation when it has parameters or a body, and the catch-all 500.
 * Routes declare the errors of their own handlers (404 for an unknown id, 409, 413, 415, ...); a declared status
 * is kept as the route wrote it.
 */
export type OpenApiDocument = ReturnType<OpenAPIHono<HonoEnv>["getOpenAPI31Document"]>;
type Config = Parameters<OpenAPIHono<HonoEnv>["getOpenAPI31Document"]>[0];

/** The methods a path item can hold, in the order the reference lists an operation's methods. */
const METHODS = ["get", "post", "put", "patch", "delete", "head", "options", "trace"] as const;

/**
 * Every operation of the document, path by path in document order and METHODS order within a path. `op` is the
 * document's own object, typed as the caller reads it, so edits to it stay in the document.
 */
export function operationsOf<Op>(doc: OpenApiDocument): { method: string; path: string; op: Op }[] {
  return Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    METHODS.flatMap((method) => {
      const op = (item as Record<string, Op | undefined>)[method];
      return op ? [{ method, path, op }] : [];
    }),
  );
}

const pascal = (s: string) =>
  s
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");

/**
 * The one operationId rule: the lower-case method, then each path segment after the `/v1` version prefix in
 * PascalCase, a `{param}` segment as `By<Param>`; `_`, `-` and `.` split words. `POST /v1/enhance/lowlight` is
 * `postEnhanceLowlight`, `GET /v1/jobs/{id}` is `getJobsById`, `POST /v1/api_keys/{id}/rotate` is
 * `postApiKeysByIdRotate`. Method and path identify an operation, so the ids are unique; they change only when the
 * route does. No English guesswork (singular forms, "list" vs "get"), which would need a table of exceptions.
 */
export function operationIdFor(method: string, path: string): string {
  const segments = path
    .replace(/^\/v\d+(?=\/|$)/, "")
    .split("/")
    .filter(Boolean);
  const words = segments.map((s) => {
    const param = /^\{(.+)\}$/.exec(s);
    return param ? `By${pascal(param[1]!)}` : pascal(s);
  });
  return method.toLowerCase() + words.join("");
}

type Headers = Record<string, { description: string; schema: { type: "string" | "integer" } }>;
const problem = (description: string, headers?: Headers) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
});

/**
 * Shared error responses (components.responses), each with the problem types it carries. The codes are those the
 * middleware and app in worker/src throw (keys/service.ts, middleware/auth.ts, router.ts, index.ts).
 */
const COMMON_RESPONSES = {
  MalformedRequest: problem("`bad_request` or `invalid_json`: the body is not the JSON it says it is."),
  Unauthenticated: problem(
    "`unauthorized`: no bearer credential; `invalid_api_key`, `api_key_revoked`, `api_key_expired` (tenant routes) or `invalid_operator_key` (operator routes): one that does not pass. Carries `WWW-Authenticate`.",
    { "WWW-Authenticate": { description: 'Bearer realm="vigil"', schema: { type: "string" } } },
  ),
  TenantForbidden: problem(
    "`insufficient_scope`: the API key lacks the scope this route needs; `tenant_key_required`: the operator credential is not a tenant key.",
  ),
  OperatorForbidden: problem("`operator_required`: a valid credential, but not the platform operator's."),
  UnsupportedMediaType: problem("`unsupported_media_type`: the body's Content-Type is none of those this operation declares."),
  ValidationFailed: problem("`validation_failed`: a parameter or the body does not match its schema; `errors` lists each field."),
  RateLimited: problem("`rate_limited`: the token bucket of the tenant (or the operator) is empty.", {
    "Retry-After": { description: "Seconds until a request will be admitted again.", schema: { type: "integer" } },
  }),
  OperatorNotConfigured: problem("`operator_not_configured`: this deployment has no usable VIGIL_OPERATOR_KEY."),
  InternalError: problem("`internal_error`: an unexpected failure; quote the response's `x-request-id` when reporting it."),
} as const;

type ResponseName = keyof typeof COMMON_RESPONSES;

/**
 * The header every request may carry (middleware/logging.ts): one that matches the pattern is echoed in the
 * response's x-request-id and logged; anything else is replaced by a fresh UUID, never refused.
 */
const REQUEST_ID_PARAMETER = {
  name: "x-request-id",
  in: "header",
  required: false,
  description: "Your id for this request, echoed in the response's `x-request-id` and in the logs; one is minted otherwise.",
  schema: { type: "string", pattern: "^[\\w.:-]{1,128}$" },
} as const;
interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: unknown[];
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, unknown>;
}

/** The errors every operation can give before (or around) its handler, by how it authenticates and what it takes. */
function commonErrors(op: Operation): [status: string, response: ResponseName][] {
  const schemes = new Set((op.security ?? []).flatMap((s) => Object.keys(s)));
  const out: [string, ResponseName][] = [];
  if (op.requestBody?.content?.["application/json"]) out.push(["400", "MalformedRequest"]);
  if (schemes.size > 0) out.push(["401", "Unauthenticated"], ["429", "RateLimited"]);
  if (schemes.has("bearer")) out.push(["403", "TenantForbidden"]);
  else if (schemes.has("operator")) out.push(["403", "OperatorForbidden"], ["503", "OperatorNotConfigured"]);
  if (op.requestBody) out.push(["415", "UnsupportedMediaType"]);
  if ((op.parameters?.length ?? 0) > 0 || op.requestBody) out.push(["422", "ValidationFailed"]);
  out.push(["500", "InternalError"]);
  return out;
}

/** Adds operationIds, the common error responses and their components to a generated document, in place. */
export function completeDocument(doc: OpenApiDocument): OpenApiDocument {
  const used = new Set<ResponseName>();
  for (const { method, path, op } of operationsOf<Operation>(doc)) {
    op.operationId = operationIdFor(method, path);
    op.responses ??= {};
    for (const [status, name] of commonErrors(op)) {
      if (op.responses[status]) continue;
      op.responses[status] = { $ref: `#/components/responses/${name}` };
      used.add(name);
    }
    // After commonErrors: an odd x-request-id is replaced, not a validation failure.
    op.parameters = [...(op.parameters ?? []), { $ref: "#/components/parameters/RequestId" }];
    // Numeric order, as a reader scans them (the generator keeps declaration order).
    op.responses = Object.fromEntries(Object.entries(op.responses).sort(([a], [b]) => a.localeCompare(b)));
  }
  doc.components ??= {};
  const shared = Object.entries(COMMON_RESPONSES).filter(([name]) => used.has(name as ResponseName));
  doc.components.responses = { ...Object.fromEntries(shared), ...doc.components.responses };
  doc.components.parameters = { ...doc.components.parameters, RequestId: REQUEST_ID_PARAMETER };
  return doc;
}

/**
 * A getter for the completed document, generated on first use and then kept for the isolate's life: the routes
 * are all registered before the first request and do not change after. Measured under wrangler dev: the first
 * GET /docs (document and page) took 51 ms of worker time, every later one under 1 ms (Server-Timing).
 */
export function openApiDocument(app: OpenAPIHono<HonoEnv>, config: Config): () => OpenApiDocument {
  let doc: OpenApiDocument | undefined;
  return () => (doc ??= completeDocument(app.getOpenAPI31Document(config)));
}
