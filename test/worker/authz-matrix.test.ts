import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../worker/src/env.ts";
import { CONSOLE_ASSETS } from "../../worker/src/console/routes.ts";
import { DOCS_ASSETS } from "../../worker/src/docs/routes.ts";
import { app } from "../../worker/src/index.ts";
import { call, DEV_KEY, OPERATOR_KEY, operatorCall, ORIGIN, pngOf, postJson, testEnv } from "./helpers.ts";

/**
 * The authorisation matrix (issue 12): every route × every credential × own or another tenant's objects, each cell
 * with its exact status (and, for refusals, its problem type).
 *
 * The route list comes from the app itself: every method + path Hono has a handler for (`app.routes`) and every
 * operation of the OpenAPI document. A route that exists but has no row in ROUTES fails the suite, and so does a row
 * for a route that no longer exists, so the matrix cannot fall behind the code.
 *
 * Credentials: no key; one key of each scope in tenant A; the operator; the dev key (tenant ten_dev, every scope).
 * "own" targets objects of the caller's tenant (A, or ten_dev for the dev key); "other" targets tenant B's (A's for
 * the dev key). The operator and no key have no tenant: "own" is A and "other" is B, and the answers are the same.
 * Objects and runner routes carry their own authorisation (signed URLs, signed runner requests): for them every
 * API key, the operator's included, is one more unsigned request.
 */

const CREDENTIALS = ["none", "protect", "verify", "restore", "inspect", "admin", "operator", "dev"] as const;
type Credential = (typeof CREDENTIALS)[number];
type Side = "own" | "other";

interface Tenant {
  id: string;
  /** A key of this tenant with every scope (its admin key; the dev key for ten_dev): makes its fixtures. */
  admin: string;
  jobId: string;
  flowId: string;
  assetId: string;
  endpointId: string;
}

interface Req {
  path: string;
  init?: RequestInit;
}

type Auth =
  /** No credential needed. */
  | { kind: "public" }
  /** A tenant API key; `scope: "any"` = any key of the tenant. `owned`: the path names an object of one tenant. */
  | { kind: "tenant"; scope: Scope | "any"; owned: boolean }
  /** The platform operator only. */
  | { kind: "operator" }
  /** A signed object URL: without a signature, 403 whatever the Authorization header says. */
  | { kind: "signed-url" }
  /** A signed runner request: without one, 401. */
  | { kind: "runner" };

interface Row {
  auth: Auth;
  /** The status when the credential is allowed. */
  ok: number;
  /** The request against `t`'s objects; routes that change their object make a fresh one per cell. */
  request(t: Tenant): Promise<Req>;
}

let image: Uint8Array;
const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});
const png = (): RequestInit => ({ method: "POST", headers: { "content-type": "image/png" }, body: image });
const get = (path: string): Promise<Req> => Promise.resolve({ path });
const post = (path: string, body: unknown = {}): Promise<Req> => Promise.resolve({ path, init: json("POST", body) });

async function created<T>(res: Response, what: string): Promise<T> {
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
const newJob = async (t: Tenant) =>
  (await created<{ id: string }>(await call("/v1/inspect", { ...png(), key: t.admin }), "job")).id;
const newKey = async (t: Tenant) =>
  (await created<{ id: string }>(await postJson("/v1/api_keys", { scopes: ["inspect"] }, { key: t.admin }), "key")).id;
const newEndpoint = async (t: Tenant) =>
  (
    await created<{ id: string }>(
      await postJson("/v1/webhook_endpoints", { url: "https://hooks.example.com/matrix", events: NO_EVENTS }, { key: t.admin }),
      "endpoint",
    )
  ).id;

// Endpoints that no event reaches: job events sent to them would be retried in the background all through the run.
const NO_EVENTS = ["matrix.never_sent"];

const tenantRoute = (scope: Scope | "any", owned = false): Auth => ({ kind: "tenant", scope, owned });
const OPERATOR: Auth = { kind: "operator" };
const PUBLIC: Auth = { kind: "public" };
const RUNNER: Auth = { kind: "runner" };

const ROUTES: Record<string, Row> = {
  "GET /healthz": { auth: PUBLIC, ok: 200, request: () => get("/healthz") },
  "GET /openapi.json": { auth: PUBLIC, ok: 200, request: () => get("/openapi.json") },
  "GET /docs": { auth: PUBLIC, ok: 200, request: () => get("/docs") },
  "GET /docs/:asset": { auth: PUBLIC, ok: 200, request: () => get(DOCS_ASSETS.stylesheet) },
  "GET /console": { auth: PUBLIC, ok: 200, request: () => get("/console") },
  "GET /console/:asset": { auth: PUBLIC, ok: 200, request: () => get(CONSOLE_ASSETS.script) },

  "GET /v1/objects/*": {
    auth: { kind: "signed-url" },
    ok: 200,
    request: (t) => get(`/v1/objects/tenants/${t.id}/jobs/${t.jobId}/inputs/0`),
  },
  "HEAD /v1/objects/*": {
    auth: { kind: "signed-url" },
    ok: 200,
    request: async (t) => ({ path: `/v1/objects/tenants/${t.id}/jobs/${t.jobId}/inputs/0`, init: { method: "HEAD" } }),
  },
  "PUT /v1/objects/*": {
    auth: { kind: "signed-url" },
    ok: 201,
    request: async (t) => ({ path: `/v1/objects/tenants/${t.id}/uploads/upl_matrix`, init: { method: "PUT", body: "x" } }),
  },

  "POST /v1/uploads": { auth: tenantRoute("any"), ok: 201, request: () => post("/v1/uploads") },
  "POST /v1/inspect": { auth: tenantRoute("inspect"), ok: 202, request: async () => ({ path: "/v1/inspect", init: png() }) },
  "POST /v1/enhance/lowlight": {
    auth: tenantRoute("restore"),
    ok: 202,
    request: async () => ({ path: "/v1/enhance/lowlight", init: png() }),
  },
  "POST /v1/enhance/derain": {
    auth: tenantRoute("restore"),
    ok: 202,
    request: async () => ({ path: "/v1/enhance/derain", init: png() }),
  },
  "GET /v1/jobs": { auth: tenantRoute("any"), ok: 200, request: () => get("/v1/jobs") },
  "GET /v1/jobs/:id": { auth: tenantRoute("any", true), ok: 200, request: (t) => get(`/v1/jobs/${t.jobId}`) },
  "POST /v1/jobs/:id/cancel": {
    auth: tenantRoute("any", true),
    ok: 200,
    request: async (t) => post(`/v1/jobs/${await newJob(t)}/cancel`),
  },
  "DELETE /v1/jobs/:id": {
    auth: tenantRoute("any", true),
    ok: 200,
    request: async (t) => ({ path: `/v1/jobs/${await newJob(t)}`, init: { method: "DELETE" } }),
  },

  "POST /v1/admin/tenants": { auth: OPERATOR, ok: 201, request: () => post("/v1/admin/tenants", { name: "matrix" }) },
  "GET /v1/admin/tenants": { auth: OPERATOR, ok: 200, request: () => get("/v1/admin/tenants") },
  "POST /v1/admin/tenants/:id/keys": {
    auth: OPERATOR,
    ok: 201,
    request: (t) => post(`/v1/admin/tenants/${t.id}/keys`, { scopes: ["inspect"] }),
  },
  "GET /v1/admin/tenants/:id/keys": { auth: OPERATOR, ok: 200, request: (t) => get(`/v1/admin/tenants/${t.id}/keys`) },
  "POST /v1/admin/tenants/:id/keys/:key_id/revoke": {
    auth: OPERATOR,
    ok: 200,
    request: async (t) => post(`/v1/admin/tenants/${t.id}/keys/${await newKey(t)}/revoke`),
  },
  "POST /v1/admin/tenants/:id/keys/:key_id/rotate": {
    auth: OPERATOR,
    ok: 201,
    request: async (t) => post(`/v1/admin/tenants/${t.id}/keys/${await newKey(t)}/rotate`, { grace_seconds: 60 }),
  },

  "POST /v1/api_keys": { auth: tenantRoute("admin"), ok: 201, request: () => post("/v1/api_keys", { scopes: ["inspect"] }) },
  "GET /v1/api_keys": { auth: tenantRoute("admin"), ok: 200, request: () => get("/v1/api_keys") },
  "POST /v1/api_keys/:id/revoke": {
    auth: tenantRoute("admin", true),
    ok: 200,
    request: async (t) => post(`/v1/api_keys/${await newKey(t)}/revoke`),
  },
  "POST /v1/api_keys/:id/rotate": {
    auth: tenantRoute("admin", true),
    ok: 201,
    request: async (t) => post(`/v1/api_keys/${await newKey(t)}/rotate`),
  },

  "POST /v1/webhook_endpoints": {
    auth: tenantRoute("admin"),
    ok: 201,
    request: () => post("/v1/webhook_endpoints", { url: "https://hooks.example.com/matrix", events: NO_EVENTS }),
  },
  "GET /v1/webhook_endpoints": { auth: tenantRoute("admin"), ok: 200, request: () => get("/v1/webhook_endpoints") },
  "DELETE /v1/webhook_endpoints/:id": {
    auth: tenantRoute("admin", true),
    ok: 200,
    request: async (t) => ({ path: `/v1/webhook_endpoints/${await newEndpoint(t)}`, init: { method: "DELETE" } }),
  },
  "POST /v1/webhook_endpoints/:id/rotate_secret": {
    auth: tenantRoute("admin", true),
    ok: 200,
    request: (t) => post(`/v1/webhook_endpoints/${t.endpointId}/rotate_secret`),
  },
  "GET /v1/webhook_endpoints/:id/deliveries": {
    auth: tenantRoute("admin", true),
    ok: 200,
    request: (t) => get(`/v1/webhook_endpoints/${t.endpointId}/deliveries`),
  },

  "POST /v1/protect": { auth: tenantRoute("protect"), ok: 202, request: async () => ({ path: "/v1/protect", init: png() }) },
  "POST /v1/verify": { auth: tenantRoute("verify"), ok: 202, request: async () => ({ path: "/v1/verify", init: png() }) },
  "GET /v1/identity/flows/:id": {
    auth: tenantRoute("any", true),
    ok: 200,
    request: (t) => get(`/v1/identity/flows/${t.flowId}`),
  },
  "GET /v1/assets": { auth: tenantRoute("protect"), ok: 200, request: () => get("/v1/assets") },
  "GET /v1/assets/:id": { auth: tenantRoute("protect", true), ok: 200, request: (t) => get(`/v1/assets/${t.assetId}`) },
  "DELETE /v1/assets/:id": {
    auth: tenantRoute("protect", true),
    ok: 200,
    request: async (t) => ({ path: `/v1/assets/${t.assetId}`, init: { method: "DELETE" } }),
  },
  "GET /v1/identity/keys": { auth: tenantRoute("admin"), ok: 200, request: () => get("/v1/identity/keys") },
  "POST /v1/identity/keys/rotate": { auth: tenantRoute("admin"), ok: 201, request: () => post("/v1/identity/keys/rotate") },

  "POST /internal/runner/lease": {
    auth: RUNNER,
    ok: 200,
    request: () => post("/internal/runner/lease", { operations: ["inspect"] }),
  },
  "POST /internal/runner/jobs/:id/heartbeat": {
    auth: RUNNER,
    ok: 200,
    request: (t) => post(`/internal/runner/jobs/${t.jobId}/heartbeat`),
  },
  "POST /internal/runner/jobs/:id/complete": {
    auth: RUNNER,
    ok: 200,
    request: (t) => post(`/internal/runner/jobs/${t.jobId}/complete`),
  },
  "POST /internal/runner/jobs/:id/fail": { auth: RUNNER, ok: 200, request: (t) => post(`/internal/runner/jobs/${t.jobId}/fail`) },
  "POST /internal/runner/jobs/:id/release": {
    auth: RUNNER,
    ok: 200,
    request: (t) => post(`/internal/runner/jobs/${t.jobId}/release`),
  },
  "GET /internal/runner/ticket-keys": { auth: PUBLIC, ok: 200, request: () => get("/internal/runner/ticket-keys") },
  "GET /internal/metrics/queue": { auth: OPERATOR, ok: 200, request: () => get("/internal/metrics/queue") },
};

const holds = (cred: Credential, scope: Scope | "any") => cred === "dev" || cred === "admin" || scope === "any" || cred === scope;

/** The exact answer of one cell: status, and the problem type of a refusal. */
function expected(row: Row, cred: Credential, side: Side): { status: number; type?: string } {
  const a = row.auth;
  switch (a.kind) {
    case "public":
      return { status: row.ok };
    case "signed-url":
      return { status: 403, type: "signature_invalid" };
    case "runner":
      return { status: 401, type: "runner_unauthorized" };
    case "operator":
      if (cred === "none") return { status: 401, type: "unauthorized" };
      if (cred !== "operator") return { status: 403, type: "operator_required" };
      return { status: row.ok };
    case "tenant":
      if (cred === "none") return { status: 401, type: "unauthorized" };
      if (cred === "operator") return { status: 403, type: "tenant_key_required" };
      if (!holds(cred, a.scope)) return { status: 403, type: "insufficient_scope" };
      if (a.owned && side === "other") return { status: 404 };
      return { status: row.ok };
  }
}

/** Every method + path the app answers: Hono's handlers (middleware excluded) and the OpenAPI document's operations. */
async function appRoutes(): Promise<string[]> {
  const routes = new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`));
  const doc = (await (await call("/openapi.json", { key: null })).json()) as { paths: Record<string, Record<string, unknown>> };
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) routes.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`);
  }
  return [...routes].sort();
}

/**
 * The cells call the app directly (app.fetch with the test bindings) rather than through `exports.default.fetch`:
 * through that binding every request here got slower than the one before (3 ms for the first GET /healthz, 40 ms
 * after 300 and 150 ms after 600, measured here), which made the ~700 cells take over a minute; app.fetch stayed
 * at 0-1 ms. The app and bindings are the same.
 */
async function send(req: Req, key: string | null): Promise<Response> {
  const headers = new Headers(req.init?.headers);
  if (key) headers.set("authorization", `Bearer ${key}`);
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`${ORIGIN}${req.path}`, { ...req.init, headers }), testEnv, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const keys: Partial<Record<Credential, string>> = { operator: OPERATOR_KEY, dev: DEV_KEY };
const tenants: Record<"a" | "b" | "dev", Tenant> = {} as never;

/** High limits: the matrix sends a few hundred requests per tenant in seconds; rate limiting has its own tests. */
const LIMITS = { rate_limit_per_minute: 1_000_000, rate_limit_burst: 1_000_000 };

async function tenantWithFixtures(id: string, admin: string): Promise<Tenant> {
  const t: Tenant = { id, admin, jobId: "", flowId: "", assetId: "", endpointId: "" };
  t.jobId = await newJob(t);
  t.endpointId = await newEndpoint(t);
  t.flowId = (await created<{ id: string }>(await call("/v1/protect", { ...png(), key: admin }), "flow")).id;
  // An asset record as a finished protect leaves it (identity-record.test.ts covers how it gets there).
  const mk = await created<{ id: string; slot: number }>(
    await postJson("/v1/identity/keys/rotate", {}, { key: admin }),
    "master key",
  );
  t.assetId = `ast_matrix_${crypto.randomUUID().replaceAll("-", "")}`;
  await testEnv.DB.prepare(
    `INSERT INTO identity_assets (id, tenant_id, master_key_id, key_slot, asset_ref, mode, payload, image_key, protected_at)
     VALUES (?, ?, ?, ?, ?, 'face', 'payload', ?, ?)`,
  )
    .bind(t.assetId, id, mk.id, mk.slot, Math.floor(Math.random() * 2 ** 30), `tenants/${id}/assets/${t.assetId}`, Date.now())
    .run();
  return t;
}

async function newTenant(scopes: Scope[][]): Promise<{ id: string; keys: string[] }> {
  const t = await created<{ id: string }>(
    await operatorCall("/v1/admin/tenants", { json: { name: "matrix", ...LIMITS } }),
    "tenant",
  );
  const out: string[] = [];
  for (const s of scopes) {
    out.push(
      (await created<{ key: string }>(await operatorCall(`/v1/admin/tenants/${t.id}/keys`, { json: { scopes: s } }), "key")).key,
    );
  }
  return { id: t.id, keys: out };
}

beforeAll(async () => {
  image = await pngOf(512, 512);
  await testEnv.DB.prepare(
    `INSERT INTO tenants (id, name, created_at, rate_limit_per_minute, rate_limit_burst) VALUES ('ten_dev', 'Development', ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET rate_limit_per_minute = excluded.rate_limit_per_minute, rate_limit_burst = excluded.rate_limit_burst`,
  )
    .bind(Date.now(), LIMITS.rate_limit_per_minute, LIMITS.rate_limit_burst)
    .run();
  const scoped: Scope[] = ["protect", "verify", "restore", "inspect", "admin"];
  const a = await newTenant(scoped.map((s) => [s]));
  scoped.forEach((s, i) => (keys[s] = a.keys[i]));
  const b = await newTenant([["admin"]]);
  tenants.a = await tenantWithFixtures(a.id, keys.admin!);
  tenants.b = await tenantWithFixtures(b.id, b.keys[0]!);
  tenants.dev = await tenantWithFixtures("ten_dev", DEV_KEY);
});

function target(cred: Credential, side: Side): Tenant {
  if (cred === "dev") return side === "own" ? tenants.dev : tenants.a;
  return side === "own" ? tenants.a : tenants.b;
}

describe("authorisation matrix", () => {
  it("covers every route the app has, and only those", async () => {
    const routes = await appRoutes();
    expect(
      routes.filter((r) => !(r in ROUTES)),
      "routes with no row in the matrix",
    ).toEqual([]);
    expect(
      Object.keys(ROUTES).filter((r) => !routes.includes(r)),
      "rows for routes that do not exist",
    ).toEqual([]);
  });

  const cells = Object.entries(ROUTES).flatMap(([route, row]) =>
    CREDENTIALS.flatMap((cred) => (["own", "other"] as const).map((side) => ({ route, row, cred, side }))),
  );

  it.each(Object.keys(ROUTES))("%s: every credential, own and other tenant", async (route) => {
    const row = ROUTES[route]!;
    const failures: string[] = [];
    for (const { cred, side } of cells.filter((c) => c.route === route)) {
      const want = expected(row, cred, side);
      const req = await row.request(target(cred, side));
      const res = await send(req, cred === "none" ? null : keys[cred]!);
      const body = await res.text();
      const type =
        body && res.headers.get("content-type")?.includes("problem+json")
          ? (JSON.parse(body) as { type: string }).type
          : undefined;
      const gotType = type?.replace("https://vigil.dev/errors/", "");
      // A HEAD answer has no body to carry a problem type.
      if (res.status !== want.status || (want.type && req.init?.method !== "HEAD" && gotType !== want.type)) {
        failures.push(`${cred}/${side}: ${res.status} ${gotType ?? ""}, expected ${want.status} ${want.type ?? ""}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("has 16 cells per route", () => {
    expect(cells.length).toBe(Object.keys(ROUTES).length * CREDENTIALS.length * 2);
  });
});
