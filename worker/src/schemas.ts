import { z } from "@hono/zod-openapi";
import { JobStatus } from "../../contract/protocol.ts";
import { SCOPES } from "./env.ts";

/**
 * Response and request schemas shared by the routes and the generated OpenAPI document
 * (zod-openapi builds /openapi.json from these same objects).
 */

export const Problem = z
  .object({
    type: z.string().url(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

/** A required JSON request body of `schema`, for a route's `request.body`. */
export const jsonBody = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } }, required: true });

/** A JSON success response of `schema`, for a route's `responses`. */
export const ok = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/**
 * What each error status means on any route that declares it, as /docs shows it next to the status. The stable
 * codes are in each answer's `type`; the shared responses of worker/src/docs/openapi.ts name them per layer.
 */
const PROBLEM_DESCRIPTIONS = {
  400: "Bad request: the body, a header or the cursor cannot be read",
  401: "Unauthenticated: no bearer credential, or one that does not pass",
  403: "Forbidden: this credential may not use this route (its scopes, or the wrong kind of credential)",
  404: "Not found: no such object for this tenant",
  409: "Conflict: the object's state, or an earlier request with the same key, rules this request out",
  413: "Payload too large: the body is over this route's limit",
  415: "Unsupported media type: a Content-Type this route does not take, or an image no runner decodes",
  422: "Unprocessable: a parameter, the body or the image is not acceptable here",
  429: "Too many requests: the rate limit is reached; retry after Retry-After seconds",
  503: "Unavailable: this deployment is not configured for the request, or has run out of what it needs",
} as const satisfies Record<number, string>;

/** An error status a route can declare: one with a description above. */
export type ProblemStatus = keyof typeof PROBLEM_DESCRIPTIONS;

/** The problem+json error responses of a route, by status, for its `responses`. */
export const problemResponses = (...codes: ProblemStatus[]) =>
  Object.fromEntries(
    codes.map((code) => [
      code,
      { description: PROBLEM_DESCRIPTIONS[code], content: { "application/problem+json": { schema: Problem } } },
    ]),
  ) as Record<number, { description: string; content: { "application/problem+json": { schema: typeof Problem } } }>;

/** One stage of a worker-run job (protect, verify): a child job, readable at GET /v1/jobs/{id}. */
export const JobStage = z
  .object({
    name: z.string().openapi({ example: "face.analyze", description: "The stage's role in its parent job." }),
    id: z.string().openapi({ example: "job_019a40…" }),
    operation: z.string(),
    status: JobStatus,
  })
  .openapi("JobStage");

/** A job's error: a stable code (`type`) and a message. A parent job failed by a stage carries the stage's code. */
export const JobError = z.object({ type: z.string(), message: z.string() }).openapi("JobError");

export const Job = z
  .object({
    id: z.string().openapi({ example: "job_019a3f…" }),
    object: z.literal("job"),
    operation: z.string(),
    status: JobStatus,
    created_at: z.string().datetime(),
    started_at: z.string().datetime().nullable(),
    completed_at: z.string().datetime().nullable(),
    output: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: "Runner result plus a signed, expiring `<artifact>_url` per artifact (minted on each read)." }),
    error: JobError.nullable(),
    attempts: z.number().int(),
    params: z.record(z.string(), z.unknown()),
    metrics: z
      .object({ model_ms: z.number().optional(), total_ms: z.number().optional() })
      .nullable()
      .openapi({ description: "Runner timings of the successful attempt: model time and total time on the runner, in ms." }),
    parent_id: z
      .string()
      .nullable()
      .openapi({ description: "The protect or verify job this job is a stage of; null for jobs you created." }),
    stages: z.array(JobStage).openapi({
      description:
        "For protect and verify: the child jobs their stages ran as, oldest first (empty for every other job). A stage that fails fails its parent with the stage's error.",
    }),
  })
  .openapi("Job");

/** A job as clients see it: the one shape of `object: "job"`, wherever it is served (routes, webhooks). */
export type PublicJob = z.infer<typeof Job>;

export const JobList = z
  .object({ object: z.literal("list"), data: z.array(Job), has_more: z.boolean(), next_cursor: z.string().nullable() })
  .openapi("JobList");

export const JobIdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });

export const ListJobsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
  status: JobStatus.optional(),
  operation: z.string().max(64).optional(),
  include_children: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true")
    .openapi({ description: "Also list the stage jobs of protect and verify jobs (hidden by default)." }),
});

export const UploadRef = z
  .object({
    upload_id: z.string().min(1),
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .openapi("UploadReference");

export const Upload = z
  .object({ upload_id: z.string(), upload_url: z.string().url(), expires_at: z.string().datetime(), max_bytes: z.number().int() })
  .openapi("Upload");

export const ScopeEnum = z.enum(SCOPES as [string, ...string[]]);

export const Tenant = z
  .object({
    id: z.string(),
    object: z.literal("tenant"),
    name: z.string(),
    created_at: z.string().datetime(),
    rate_limit_per_minute: z.number().int().nullable(),
    rate_limit_burst: z.number().int().nullable(),
  })
  .openapi("Tenant");

export const CreateTenant = z
  .object({
    name: z.string().min(1).max(200),
    rate_limit_per_minute: z.number().int().positive().optional(),
    rate_limit_burst: z.number().int().positive().optional(),
  })
  .openapi("CreateTenant");

export const ApiKey = z
  .object({
    id: z.string(),
    object: z.literal("api_key"),
    tenant_id: z.string(),
    name: z.string().nullable(),
    scopes: z.array(ScopeEnum),
    created_at: z.string().datetime(),
    revoked_at: z.string().datetime().nullable(),
    expires_at: z.string().datetime().nullable(),
    replaced_by: z.string().nullable(),
  })
  .openapi("ApiKey");

export const ApiKeyWithSecret = ApiKey.extend({ key: z.string().openapi({ description: "The full key. Shown once." }) }).openapi(
  "ApiKeyWithSecret",
);

export const CreateKey = z
  .object({ name: z.string().max(200).optional(), scopes: z.array(ScopeEnum).min(1) })
  .openapi("CreateApiKey");

export const RotateKey = z
  .object({
    grace_seconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 24 * 3600)
      .optional()
      .openapi({ description: "How long the old key keeps working; omitted or 0 = revoked now." }),
  })
  .openapi("RotateApiKey");

export const WebhookEndpoint = z
  .object({
    id: z.string(),
    object: z.literal("webhook_endpoint"),
    url: z.string().url(),
    description: z.string().nullable(),
    events: z.array(z.string()),
    created_at: z.string().datetime(),
  })
  .openapi("WebhookEndpoint");

export const WebhookEndpointWithSecret = WebhookEndpoint.extend({
  secret: z.string().openapi({ description: "whsec_… signing secret. Shown once." }),
}).openapi("WebhookEndpointWithSecret");

export const CreateWebhookEndpoint = z
  .object({
    url: z.string().url().max(2048),
    description: z.string().max(500).optional(),
    events: z
      .array(z.string().regex(/^(\*|[a-z_]+(\.[a-z_]+)+)$/, "event types look like job.succeeded, or * for all"))
      .min(1)
      .default(["*"]),
  })
  .openapi("CreateWebhookEndpoint");

export const WebhookDelivery = z
  .object({
    id: z.string(),
    object: z.literal("webhook_delivery"),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "retrying", "succeeded", "failed", "canceled"]),
    attempts: z.array(
      z.object({
        attempt: z.number().int(),
        status_code: z.number().int().nullable(),
        error: z.string().nullable(),
        duration_ms: z.number().int(),
        created_at: z.string().datetime(),
      }),
    ),
    created_at: z.string().datetime(),
    updated_at: z.string().datetime(),
  })
  .openapi("WebhookDelivery");
