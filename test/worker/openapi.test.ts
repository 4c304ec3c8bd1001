import { beforeAll, describe, expect, it } from "vitest";
import { operationIdFor, type OpenApiDocument } from "../../worker/src/docs/openapi.ts";
import { renderReference } from "../../worker/src/docs/render.ts";
import { DOCS_CSP } from "../../worker/src/docs/routes.ts";
import { call, createTenantKey, DEV_KEY, OPERATOR_KEY, PNG_1x1 } from "./helpers.ts";

/**
 * The served /openapi.json against the rules docs/openapi.ts promises, and against the real routes: every
 * operation is probed with requests that fail (or succeed) the usual ways, and each status it answers must be one
 * the document declares for it. The served document is also linted by Redocly in test/browser/openapi-lint.test.ts
 * (the linter runs in Node, not in workerd).
 */

interface Response {
  $ref?: string;
  description?: string;
  content?: Record<string, unknown>;
}
interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: { $ref?: string; name?: string; in?: string; required?: boolean }[];
  requestBody?: { content?: Record<string, unknown> };
  responses: Record<string, Response>;
}
interface Doc {
  info: { license?: { name: string; identifier?: string; url?: string } };
  paths: Record<string, Record<string, Operation>>;
  components: {
    responses?: Record<string, Response>;
    parameters?: Record<string, { name: string; in: string; schema: { pattern: string } }>;
  };
}

let doc: Doc;
const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method, path, op })));
const resolve = (r: Response) => (r.$ref ? doc.components.responses![r.$ref.split("/").pop()!]! : r);

beforeAll(async () => {
  doc = (await (await call("/openapi.json", { key: null })).json()) as Doc;
});

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
          if (res.status < 400) {
            await res.arrayBuffer();
            continue;
          }
          expect(res.headers.get("content-type"), what).toContain("application/problem+json");
          const type = ((await res.json()) as { type: string }).type;
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
