import { Validator, type Schema } from "@cfworker/json-schema";
import { beforeAll, describe, expect, it } from "vitest";
import { operationIdFor, type OpenApiDocument } from "../../worker/src/docs/openapi.ts";
import { renderReference } from "../../worker/src/docs/render.ts";
import { DOCS_CSP } from "../../worker/src/docs/routes.ts";
import { SCOPES } from "../../worker/src/env.ts";
import "../../worker/src/identity/flows.ts";
import {
  call,
  completeJob,
  createTenantKey,
  DEV_KEY,
  OPERATOR_KEY,
  pngOf,
  PNG_1x1,
  postImage,
  postJson,
  uniquePng,
} from "./helpers.ts";

/**
 * The served /openapi.json against the rules docs/openapi.ts promises, and against the real routes: every
 * operation is probed with requests that fail (or succeed) the usual ways, and each status it answers must be one
 * the document declares for it. The served document is also linted by Redocly in test/browser/openapi-lint.test.ts
 * (the linter runs in Node, not in workerd). Every body answered, success and problem+json alike, is validated
 * against the JSON schema the document declares for its status and content type (@cfworker/json-schema, 2020-12,
 * the dialect of OpenAPI 3.1).
 */

interface DocResponse {
  $ref?: string;
  description?: string;
  content?: Record<string, unknown>;
}
interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: { $ref?: string; name?: string; in?: string; required?: boolean }[];
  requestBody?: { content?: Record<string, unknown> };
  responses: Record<string, DocResponse>;
}
interface Doc {
  openapi: string;
  info: { license?: { name: string; identifier?: string; url?: string } };
  paths: Record<string, Record<string, Operation>>;
  components: {
    responses?: Record<string, DocResponse>;
    parameters?: Record<string, { name: string; in: string; schema: { pattern: string } }>;
    schemas?: Record<string, unknown>;
  };
}

let doc: Doc;
const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method, path, op })));
const resolve = (r: DocResponse) => (r.$ref ? doc.components.responses![r.$ref.split("/").pop()!]! : r);

beforeAll(async () => {
  doc = (await (await call("/openapi.json", { key: null })).json()) as Doc;
});

/**
 * A declared response's schema as a standalone JSON schema: the document's component schemas become its `$defs`
 * (every `#/components/schemas/X` pointer is rewritten to `#/$defs/X`), so each `$ref` resolves inside it.
 */
const validators = new Map<string, Validator>();
function validatorFor(key: string, schema: unknown): Validator {
  let v = validators.get(key);
  if (!v) {
    const toDefs = (x: unknown) => JSON.parse(JSON.stringify(x).replaceAll('"#/components/schemas/', '"#/$defs/'));
    v = new Validator({ ...toDefs(schema), $defs: toDefs(doc.components.schemas ?? {}) } as Schema, "2020-12", false);
    validators.set(key, v);
  }
  return v;
}

const bodyCount = { validated: 0 };

/** Every mismatch fails the suite: the document must describe every answer the routes give. */
function expectOnlyKnown(mismatches: string[]): void {
  expect(mismatches).toEqual([]);
}

/**
 * Why `res`, answered by `method path` (the document's path template), does not match the document: its status is
 * not declared, its content type is not among the declared ones, or its JSON body fails the declared schema. Null
 * when it matches. Consumes the body; `parsed` receives the JSON when there is one.
 */
async function mismatch(method: string, path: string, res: Response, parsed?: (body: unknown) => void): Promise<string | null> {
  const op = doc.paths[path]?.[method];
  if (!op) return `${method.toUpperCase()} ${path} is not in the document`;
  const what = `${method.toUpperCase()} ${path} ${res.status}`;
  const declared = op.responses[String(res.status)] ?? op.responses.default;
  const text = await res.text();
  if (!declared) return `${what}: status not declared`;
  const content = resolve(declared).content ?? {};
  const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (!text)
    return Object.keys(content).length && res.status !== 204 ? `${what}: empty body, declared ${Object.keys(content)}` : null;
  const media = Object.keys(content).find((m) => m === type || (m.endsWith("/*") && type.startsWith(m.slice(0, -1))));
  if (!media)
    return `${what}: content type ${type || "(none)"} not declared (declared: ${Object.keys(content).join(", ") || "none"})`;
  if (!/json$/.test(media)) return null;
  const schema = (content[media] as { schema?: unknown }).schema;
  const body: unknown = JSON.parse(text);
  parsed?.(body);
  if (schema === undefined) return null;
  const result = validatorFor(`${method} ${path} ${res.status} ${media}`, schema).validate(body);
  bodyCount.validated++;
  if (result.valid) return null;
  const errors = result.errors
    .filter((e) => e.keyword !== "properties" && e.keyword !== "$ref" && e.keyword !== "allOf")
    .map((e) => `${e.instanceLocation} ${e.error}`);
  return `${what} (${media}): ${(errors.length ? errors : result.errors.map((e) => e.error)).slice(0, 4).join("; ")}`;
}

describe("operationId", () => {
  it("follows the one rule: method, then the path after /v1 in PascalCase, {param} as By<Param>", () => {
    expect(operationIdFor("post", "/v1/enhance/lowlight")).toBe("postEnhanceLowlight");
    expect(operationIdFor("get", "/v1/jobs/{id}")).toBe("getJobsById");
    expect(operationIdFor("post", "/v1/admin/tenants/{id}/keys/{key_id}/rotate")).toBe("postAdminTenantsByIdKeysByKeyIdRotate");
    expect(operationIdFor("post", "/v1/webhook_endpoints/{id}/rotate_secret")).toBe("postWebhookEndpointsByIdRotateSecret");
    expect(operationIdFor("get", "/healthz")).toBe("getHealthz");
    expect(operationIdFor("post", "/v2/enhance/derain")).toBe("postEnhanceDerain");
  });

  it("every served operation has its id by that rule, and no two share one", () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThan(20);
    for (const { method, path, op } of ops) expect(op.operationId, `${method} ${path}`).toBe(operationIdFor(method, path));
    const ids = ops.map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("document", () => {
  it("has a licence with an SPDX identifier", () => {
    expect(doc.info.license?.name).toBeTruthy();
    expect(doc.info.license?.identifier ?? doc.info.license?.url).toBeTruthy();
  });

  it("declares on every operation the errors of the layers in front of its handler, all as problem+json", () => {
    const missing: string[] = [];
    for (const { method, path, op } of operations()) {
      const want = ["500"];
      const schemes = (op.security ?? []).flatMap((s) => Object.keys(s));
      if (schemes.length) want.push("401", "403", "429");
      if (schemes.includes("operator")) want.push("503");
      // x-request-id, on every operation, is never refused (an odd one is replaced).
      const validated = (op.parameters ?? []).filter((p) => p.name !== undefined);
      if (validated.length || op.requestBody) want.push("422");
      if (op.requestBody) want.push("415");
      if (op.requestBody?.content?.["application/json"]) want.push("400");
      for (const s of want) if (!op.responses[s]) missing.push(`${method.toUpperCase()} ${path}: ${s}`);
      for (const [status, r] of Object.entries(op.responses)) {
        if (!/^[45]/.test(status)) continue;
        expect(Object.keys(resolve(r).content ?? {}), `${method} ${path} ${status}`).toEqual(["application/problem+json"]);
        expect(resolve(r).description, `${method} ${path} ${status}`).toBeTruthy();
      }
    }
    expect(missing).toEqual([]);
  });

  it("declares the x-request-id header on every operation, and echoes a valid one", async () => {
    for (const { method, path, op } of operations())
      expect(op.parameters, `${method} ${path}`).toContainEqual({ $ref: "#/components/parameters/RequestId" });
    const param = doc.components.parameters!.RequestId!;
    expect(param).toMatchObject({ name: "x-request-id", in: "header" });
    const pattern = new RegExp(param.schema.pattern);
    const res = await call("/v1/jobs", { headers: { "x-request-id": "trace:42.a-b" } });
    await res.arrayBuffer();
    expect(pattern.test("trace:42.a-b")).toBe(true);
    expect(res.headers.get("x-request-id")).toBe("trace:42.a-b");
    const odd = await call("/v1/jobs", { headers: { "x-request-id": "not ok!" } });
    await odd.arrayBuffer();
    expect(pattern.test("not ok!")).toBe(false);
    expect(odd.status).toBe(200);
    expect(odd.headers.get("x-request-id")).not.toBe("not ok!");
  });

  it("declares each shared error response it refers to, and only those", () => {
    const referred = new Set(
      operations().flatMap(({ op }) => Object.values(op.responses).flatMap((r) => (r.$ref ? [r.$ref.split("/").pop()!] : []))),
    );
    expect(new Set(Object.keys(doc.components.responses ?? {}))).toEqual(referred);
  });
});

/**
 * Each operation answered with no credential, the wrong kind of credential, keys with one scope each, and the right
 * credential with unknown ids and bodies that are empty, `{}`, malformed JSON or an image. Whatever status comes
 * back must be declared for that operation; a 500 is a bug in itself.
 */
describe("every answered status is declared", () => {
  // Between them, each lacks a scope that some route needs (inspect's and every other).
  const narrow: string[] = [];
  beforeAll(async () => {
    for (const scope of ["inspect", "restore"]) narrow.push((await createTenantKey([scope])).key);
  });

  const bodies: [string, Record<string, string>, BodyInit | undefined][] = [
    ["none", {}, undefined],
    ["{}", { "content-type": "application/json" }, "{}"],
    ["malformed JSON", { "content-type": "application/json" }, "{"],
    ["image", { "content-type": "image/png" }, PNG_1x1],
  ];

  it("for every operation, credential and body", async () => {
    const undeclared: string[] = [];
    const crashes: string[] = [];
    const mismatches: string[] = [];
    const before = bodyCount.validated;
    let probes = 0;
    let sharedChecked = 0;
    for (const { method, path, op } of operations()) {
      const operator = (op.security ?? []).some((s) => "operator" in s);
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => `${name}_doesnotexist0000`);
      const right = operator ? OPERATOR_KEY : DEV_KEY;
      const keys: (string | null)[] = [null, operator ? DEV_KEY : OPERATOR_KEY, right, ...narrow];
      for (const key of keys) {
        // Every body with the right credential; the others fail before a body matters, so one is enough.
        const sent = method === "get" || method === "delete" || key !== right ? bodies.slice(0, 1) : bodies;
        for (const [label, headers, body] of sent) {
          const res = await call(url, { method: method.toUpperCase(), key, headers, body });
          probes++;
          const what = `${method.toUpperCase()} ${path} (key ${key?.slice(0, 4) ?? "none"}, body ${label}): ${res.status}`;
          if (res.status >= 500) crashes.push(what);
          if (!op.responses[String(res.status)]) undeclared.push(what);
          let answer: unknown;
          const wrong = await mismatch(method, path, res, (b) => (answer = b));
          if (wrong) mismatches.push(`${wrong} (key ${key?.slice(0, 4) ?? "none"}, body ${label})`);
          if (res.status < 400) continue;
          expect(res.headers.get("content-type"), what).toContain("application/problem+json");
          const type = (answer as { type: string }).type;
          // A stable type that names the failure, not a generic one (Hono's 415 came out as `bad_request`).
          if (res.status === 415) expect(type, what).toMatch(/\/(unsupported_media_type|unsupported_image)$/);
          // A shared error response names the codes it carries: the one answered must be among them.
          const declared = op.responses[String(res.status)];
          if (declared?.$ref) {
            const codes = [...(resolve(declared).description ?? "").matchAll(/`(\w+)`/g)].map((m) => m[1]);
            expect(codes, what).toContain(type.split("/").pop());
            sharedChecked++;
          }
        }
      }
    }
    expect(probes).toBeGreaterThan(150);
    expect(sharedChecked).toBeGreaterThan(10);
    expect(crashes).toEqual([]);
    expect(undeclared).toEqual([]);
    console.info(
      `openapi bodies: ${probes} probes, ${bodyCount.validated - before} bodies validated, ${mismatches.length} mismatches`,
    );
    expectOnlyKnown(mismatches);
    expect(bodyCount.validated - before).toBeGreaterThan(150);
  });
});

/**
 * Every operation called the way a client uses it, so that each answers its success body: a tenant and its keys,
 * an upload, jobs of each operation (played through the runner protocol to success where the body changes with
 * it), protect driven to an asset, webhooks with a delivery, identity keys, and the tear-down calls. Each answer is
 * checked against the document; then every operation must have answered a 2xx body that was validated.
 */
describe("every operation's success body matches the document", () => {
  it("for a walk through the API that calls each operation", async () => {
    const mismatches: string[] = [];
    const succeeded = new Set<string>();
    const before = bodyCount.validated;
    const check = async <T = Record<string, any>>(
      method: string,
      path: string,
      res: Response | Promise<Response>,
      status: number,
    ): Promise<T> => {
      const r = await res;
      let body: unknown;
      const wrong = await mismatch(method, path, r, (b) => (body = b));
      if (wrong) mismatches.push(wrong);
      expect(r.status, `${method.toUpperCase()} ${path}: ${JSON.stringify(body)}`).toBe(status);
      if (status < 300) succeeded.add(`${method} ${path}`);
      return body as T;
    };
    const op = (key: string | null = OPERATOR_KEY) => ({ key });

    // The operator: a tenant, its keys (minted, listed, rotated with grace, revoked).
    const tenant = await check("post", "/v1/admin/tenants", postJson("/v1/admin/tenants", { name: "walk" }, op()), 201);
    await check("get", "/v1/admin/tenants", call("/v1/admin/tenants", op()), 200);
    const base = `/v1/admin/tenants/${tenant.id}/keys`;
    const minted = await check("post", "/v1/admin/tenants/{id}/keys", postJson(base, { name: "all", scopes: SCOPES }, op()), 201);
    await check("get", "/v1/admin/tenants/{id}/keys", call(base, op()), 200);
    const spare = await check("post", "/v1/admin/tenants/{id}/keys", postJson(base, { scopes: ["inspect"] }, op()), 201);
    const successor = await check(
      "post",
      "/v1/admin/tenants/{id}/keys/{key_id}/rotate",
      postJson(`${base}/${spare.id}/rotate`, { grace_seconds: 60 }, op()),
      201,
    );
    await check(
      "post",
      "/v1/admin/tenants/{id}/keys/{key_id}/revoke",
      call(`${base}/${successor.id}/revoke`, { method: "POST", ...op() }),
      200,
    );

    // The tenant's own key management, with its admin key.
    const key: string = minted.key;
    const own = await check("post", "/v1/api_keys", postJson("/v1/api_keys", { name: "ci", scopes: ["inspect"] }, { key }), 201);
    await check("get", "/v1/api_keys", call("/v1/api_keys", { key }), 200);
    const next = await check(
      "post",
      "/v1/api_keys/{id}/rotate",
      call(`/v1/api_keys/${own.id}/rotate`, { method: "POST", key }),
      201,
    );
    await check("post", "/v1/api_keys/{id}/revoke", call(`/v1/api_keys/${next.id}/revoke`, { method: "POST", key }), 200);

    // A webhook endpoint first, so that the jobs below are delivered to it.
    const endpoint = await check(
      "post",
      "/v1/webhook_endpoints",
      postJson("/v1/webhook_endpoints", { url: "https://hooks.example.com/walk?secret=x", events: ["*"] }, { key }),
      201,
    );
    await check("get", "/v1/webhook_endpoints", call("/v1/webhook_endpoints", { key }), 200);
    await check("post", "/v1/uploads", call("/v1/uploads", { method: "POST", key }), 201);

    // Each image operation's create, queued; inspect played to success, read, listed; one canceled, one deleted.
    const image = await pngOf(64, 64);
    for (const path of doc.paths ? Object.keys(doc.paths) : []) {
      const post = doc.paths[path]!.post;
      if (!post?.requestBody?.content?.["image/*"]) continue;
      await check("post", path, postImage(path, image, { key }), 202);
    }
    const inspect = await check("post", "/v1/inspect", postImage("/v1/inspect", uniquePng(), { key }), 202);
    await completeJob(inspect.id, "inspect", { width: 1, height: 1, format: "png" });
    const done = await check("get", "/v1/jobs/{id}", call(`/v1/jobs/${inspect.id}`, { key }), 200);
    expect(done.status).toBe("succeeded");
    await check("get", "/v1/jobs", call("/v1/jobs?include_children=true&limit=100", { key }), 200);
    const queued = await check("post", "/v1/inspect", postImage("/v1/inspect", uniquePng(), { key }), 202);
    await check("post", "/v1/jobs/{id}/cancel", call(`/v1/jobs/${queued.id}/cancel`, { method: "POST", key }), 200);
    await check("delete", "/v1/jobs/{id}", call(`/v1/jobs/${queued.id}`, { method: "DELETE", key }), 200);

    // protect played through its stages to an asset; the asset read, listed, erased; the job through its alias.
    const protect = await check("post", "/v1/protect", postImage("/v1/protect?owner=walk", image, { key }), 202);
    const stage = (job: Record<string, any>, name: string) => job.stages.find((s: { name: string }) => s.name === name).id;
    await completeJob(stage(protect, "face.analyze"), "face.analyze", { faces: [], identity_code_bits: 32 });
    const embedding = await check("get", "/v1/jobs/{id}", call(`/v1/jobs/${protect.id}`, { key }), 200);
    await completeJob(stage(embedding, "watermark.embed"), "watermark.embed", {}, image);
    const protectedJob = await check("get", "/v1/identity/flows/{id}", call(`/v1/identity/flows/${protect.id}`, { key }), 200);
    expect(protectedJob.status).toBe("succeeded");
    const assetId: string = protectedJob.output.asset_id;
    await check("get", "/v1/assets", call("/v1/assets", { key }), 200);
    await check("get", "/v1/assets/{id}", call(`/v1/assets/${assetId}`, { key }), 200);
    await check("delete", "/v1/assets/{id}", call(`/v1/assets/${assetId}`, { method: "DELETE", key }), 200);

    // Error answers a client meets along the way: each a problem+json body of the declared schema.
    const revokedRotate = call(`${base}/${successor.id}/rotate`, { method: "POST", ...op() });
    await check("post", "/v1/admin/tenants/{id}/keys/{key_id}/rotate", revokedRotate, 409);
    await check("post", "/v1/jobs/{id}/cancel", call(`/v1/jobs/${inspect.id}/cancel`, { method: "POST", key }), 409);
    await check("get", "/v1/jobs", call("/v1/jobs?cursor=not-a-cursor", { key }), 400);
    await check("get", "/v1/jobs", call("/v1/jobs?limit=1000", { key }), 422);
    const text = { method: "POST", key, headers: { "content-type": "text/plain" }, body: "hello" };
    await check("post", "/v1/inspect", call("/v1/inspect", text), 415);
    await check("post", "/v1/inspect", postImage("/v1/inspect?strength=2", image, { key }), 422);
    const once = { key, headers: { "idempotency-key": "walk" } };
    await check("post", "/v1/inspect", postImage("/v1/inspect", image, once), 202);
    await check("post", "/v1/inspect", postImage("/v1/inspect", uniquePng(), once), 409);
    await check("post", "/v1/webhook_endpoints", postJson("/v1/webhook_endpoints", { url: "http://127.0.0.1/x" }, { key }), 422);
    // A body over the inline limit (10 MiB), refused on its declared length; and a tenant over its rate limit.
    const large = new Uint8Array(10 * 1024 * 1024 + 1);
    await check("post", "/v1/inspect", postImage("/v1/inspect", large, { key }), 413);
    const limited = await createTenantKey(["inspect"], { rate_limit_per_minute: 1, rate_limit_burst: 1 });
    await check("get", "/v1/jobs", call("/v1/jobs", { key: limited.key }), 200);
    await check("get", "/v1/jobs", call("/v1/jobs", { key: limited.key }), 429);

    // Identity master keys.
    await check("get", "/v1/identity/keys", call("/v1/identity/keys", { key }), 200);
    await check("post", "/v1/identity/keys/rotate", call("/v1/identity/keys/rotate", { method: "POST", key }), 201);

    // The endpoint's deliveries (the finished jobs' events), a secret rotation, the endpoint's removal.
    const deliveriesPath = `/v1/webhook_endpoints/${endpoint.id}/deliveries`;
    let deliveries: { data: unknown[] } = { data: [] };
    for (let i = 0; i < 50 && deliveries.data.length === 0; i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      deliveries = await check("get", "/v1/webhook_endpoints/{id}/deliveries", call(deliveriesPath, { key }), 200);
    }
    expect(deliveries.data.length).toBeGreaterThan(0);
    await check(
      "post",
      "/v1/webhook_endpoints/{id}/rotate_secret",
      call(`/v1/webhook_endpoints/${endpoint.id}/rotate_secret`, { method: "POST", key }),
      200,
    );
    await check(
      "delete",
      "/v1/webhook_endpoints/{id}",
      call(`/v1/webhook_endpoints/${endpoint.id}`, { method: "DELETE", key }),
      200,
    );

    // Whatever else the document lists answers without a credential or with the operator's (health, docs).
    for (const { method, path } of operations()) {
      if (succeeded.has(`${method} ${path}`) || method !== "get" || path.includes("{")) continue;
      const r = await call(path, {
        key: (doc.paths[path]!.get!.security ?? []).some((s) => "operator" in s) ? OPERATOR_KEY : null,
      });
      await check("get", path, r, r.status);
    }

    console.info(
      `openapi bodies: success walk, ${bodyCount.validated - before} bodies validated, ${mismatches.length} mismatches`,
    );
    expectOnlyKnown(mismatches);
    const never = operations()
      .map(({ method, path }) => `${method} ${path}`)
      .filter((o) => !succeeded.has(o));
    expect(never).toEqual([]);
  });
});

describe("/docs", () => {
  it("is HTML from the worker under a CSP that allows no script and nothing from another origin", async () => {
    const res = await call("/docs", { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toBe(DOCS_CSP);
    const directives = new Map(
      csp
        .split(";")
        .map((d) => d.trim().split(/\s+/) as [string, ...string[]])
        .map(([k, ...v]) => [k, v]),
    );
    expect(directives.get("default-src")).toEqual(["'none'"]);
    expect(directives.has("script-src")).toBe(false); // falls back to default-src 'none'
    expect(csp).not.toMatch(/unsafe-|https?:|\*/);
    for (const d of ["base-uri", "form-action", "frame-ancestors"]) expect(directives.get(d)).toEqual(["'none'"]);

    const page = await res.text();
    expect(page).not.toMatch(/<script|\son\w+=|style="/i);
    // Every subresource is a same-origin path, and each one is served.
    const refs = [...page.matchAll(/<link [^>]*href="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBe(2);
    for (const ref of refs) {
      expect(ref).toMatch(/^\/docs\//);
      const asset = await call(ref, { key: null });
      expect(asset.status, ref).toBe(200);
      expect(asset.headers.get("cache-control")).toContain("immutable");
      await asset.arrayBuffer();
    }
    const unknown = await call("/docs/reference.00000000.css", { key: null });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("content-type")).toContain("application/problem+json");
    await unknown.arrayBuffer();
  });

  it("lists every operation of the document with its id", async () => {
    const page = await (await call("/docs", { key: null })).text();
    for (const { method, path, op } of operations()) {
      expect(page, op.operationId).toContain(`id="op-${op.operationId}"`);
      expect(page).toContain(`<span class="method ${method}">${method.toUpperCase()}</span>`);
      expect(page).toContain(path);
    }
  });

  it("renders every text of the document as text: markup in it cannot become an element or an attribute", () => {
    const evil = `<img src=x onerror=alert(1)>"'&`;
    const hostile = {
      openapi: "3.1.0",
      info: { title: evil, version: evil, description: `\`${evil}\` ${evil}`, license: { name: evil, url: evil } },
      tags: [{ name: evil, description: evil }],
      paths: {
        [`/v1/x/{${evil}}`]: {
          get: {
            operationId: evil,
            tags: [evil],
            summary: evil,
            description: evil,
            parameters: [{ name: evil, in: "query", description: evil, schema: { type: "string", example: evil, enum: [evil] } }],
            responses: {
              [evil]: {
                description: evil,
                content: {
                  [evil]: { schema: { type: "object", properties: { [evil]: { $ref: `#/components/schemas/${evil}` } } } },
                },
              },
            },
          },
        },
      },
      components: {
        schemas: { [evil]: { type: "object", description: evil, properties: { [evil]: { type: "string", pattern: evil } } } },
        responses: { [evil]: { description: evil } },
        securitySchemes: { [evil]: { type: "http", scheme: evil, description: evil } },
      },
    } as unknown as OpenApiDocument;
    const page = renderReference(hostile, { stylesheet: evil, icon: evil });
    expect(page).not.toContain("<img");
    // Raw quotes only delimit attribute values (a quote in text is &#34;): without the values, no tag may have an
    // attribute the page did not write.
    const tags = page.replace(/"[^"]*"/g, '""').match(/<[^>]*>/g)!;
    expect(tags.filter((t) => /\son\w+=/.test(t))).toEqual([]);
    expect(page).toContain("&#60;img src=x onerror=alert(1)&#62;&#34;&#39;&#38;");
    // The page's own elements are all that is there: its <link>s, and no script.
    expect([...page.matchAll(/<(script|img|iframe|object|embed|form|base)\b/g)]).toEqual([]);
    expect(page.match(/<link /g)?.length).toBe(2);
  });
});
