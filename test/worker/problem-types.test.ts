/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../worker/src/env.ts";
import { createJob } from "../../worker/src/lib/jobs-api.ts";
import { ApiError, problemResponse } from "../../worker/src/problem.ts";
import { createInspectJob, call, leaseJob, PNG_1x1, postImage, postJson, runnerCall, testEnv, uniquePng } from "./helpers.ts";

/**
 * Problem types that no other test triggered: each is provoked here through the real API and checked for its
 * status and stable type. The last test keeps the list honest: every `ApiError` code in worker/src must be
 * triggered by some test file, or be listed in NOT_TRIGGERABLE with the reason.
 */

const sources = import.meta.glob<string>("../../worker/src/**/*.ts", { query: "?raw", import: "default", eager: true });
const tests = import.meta.glob<string>("./**/*.test.ts", { query: "?raw", import: "default", eager: true });

/** Codes that a test cannot provoke through the API, with why. */
const NOT_TRIGGERABLE: Record<string, string> = {
  internal_error: "the catch-all for an unexpected exception; every known failure has its own code",
  misconfigured: "MASTER_KEY_ENCRYPTION_KEY is fixed for the whole test pool (a bad one fails every identity test)",
  master_key_missing: "a record whose master key row was deleted: no route deletes master keys",
  master_key_unavailable: "a wrapped key that cannot be read back: needs a corrupted D1 row",
  master_key_unwrap_failed: "a wrapped key sealed under another MASTER_KEY_ENCRYPTION_KEY: fixed in the pool",
  asset_ref_exhausted: "all 2^k asset refs of a master key taken: millions of records",
  rotation_conflict: "two master-key rotations interleaving inside D1's batch: not reproducible from one isolate",
  not_configured: "TICKET_* and OBJECT_URL_SECRET are configured for the whole pool",
};

type Case = { code: string; status: number; send: () => Promise<Response> };

/** The internal job API (lib/jobs-api.ts) that protect and verify use: its refusals as the problem a route would send. */
async function internalCreate(req: Parameters<typeof createJob>[1]): Promise<Response> {
  try {
    await createJob(testEnv as unknown as AppEnv, req);
    return new Response("created", { status: 201 });
  } catch (e) {
    if (e instanceof ApiError) return problemResponse(e);
    throw e;
  }
}
const someInput = { key: "tenants/ten_dev/uploads/x", content_type: "image/png", bytes: PNG_1x1.byteLength };

const raw = (path: string, body: BodyInit, headers: Record<string, string>) => call(path, { method: "POST", body, headers });

const CASES: Case[] = [
  {
    code: "unknown_operation",
    status: 404,
    send: () =>
      internalCreate({ tenantId: "ten_dev", operation: "no.such.op", inputs: [someInput], origin: "http://vigil.test" }),
  },
  {
    code: "invalid_inputs",
    status: 422,
    send: () => internalCreate({ tenantId: "ten_dev", operation: "inspect", inputs: [], origin: "http://vigil.test" }),
  },
  {
    code: "forbidden_object",
    status: 403,
    send: () =>
      internalCreate({
        tenantId: "ten_dev",
        operation: "inspect",
        inputs: [{ ...someInput, key: "tenants/ten_other/uploads/x" }],
        origin: "http://vigil.test",
      }),
  },
  {
    code: "input_too_large",
    status: 413,
    send: async () => {
      // Through a signed upload (inline bodies stop at MAX_INLINE_UPLOAD_BYTES first): 26 MB, over inspect's 25 MB.
      const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string; upload_url: string };
      const url = new URL(up.upload_url);
      const big = new Uint8Array(26 * 1024 * 1024);
      big.set(PNG_1x1);
      const put = await call(url.pathname + url.search, {
        key: null,
        method: "PUT",
        body: big,
        headers: { "content-type": "image/png" },
      });
      expect(put.status).toBe(201);
      return postJson("/v1/inspect", { upload_id: up.upload_id });
    },
  },
  { code: "empty_body", status: 400, send: () => postImage("/v1/inspect", new Uint8Array(0)) },
  {
    code: "unsupported_media_type",
    status: 415,
    send: () => raw("/v1/inspect", "just words", { "content-type": "text/plain" }),
  },
  { code: "invalid_json", status: 400, send: () => raw("/v1/inspect", "{not json", { "content-type": "application/json" }) },
  {
    code: "invalid_multipart",
    status: 400,
    send: () => raw("/v1/inspect", "--x\r\nbroken", { "content-type": "multipart/form-data; boundary=y" }),
  },
  {
    code: "missing_image",
    status: 422,
    send: () => {
      const form = new FormData();
      form.set("note", "no file here");
      return call("/v1/inspect", { method: "POST", body: form });
    },
  },
  { code: "invalid_request", status: 422, send: () => postJson("/v1/inspect", { upload: "wrong field" }) },
  { code: "upload_not_found", status: 404, send: () => postJson("/v1/inspect", { upload_id: "upl_doesnotexist" }) },
  {
    code: "upload_incomplete",
    status: 409,
    send: async () => {
      const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string };
      return postJson("/v1/inspect", { upload_id: up.upload_id });
    },
  },
  {
    code: "invalid_idempotency_key",
    status: 400,
    send: () => postImage("/v1/inspect", uniquePng(), { headers: { "idempotency-key": "tab\tinside" } }),
  },
  { code: "invalid_cursor", status: 400, send: () => call("/v1/jobs?cursor=bm90LWEtY3Vyc29y") },
  { code: "invalid_limit", status: 422, send: () => call("/v1/assets?limit=0") },
  {
    code: "job_not_cancelable",
    status: 409,
    send: async () => {
      const job = await createInspectJob();
      const l = await leaseJob(job.id);
      await runnerCall(`/internal/runner/jobs/${job.id}/complete`, { lease_id: l.lease_id, result: {} });
      return call(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
    },
  },
  {
    code: "artifact_missing",
    status: 422,
    send: async () => {
      const res = await postImage("/v1/enhance/lowlight", uniquePng());
      const job = (await res.json()) as { id: string; tenant_id?: string };
      const l = await leaseJob(job.id, "enhance.lowlight");
      // The ticket's output key, but nothing was PUT there.
      return runnerCall(`/internal/runner/jobs/${job.id}/complete`, {
        lease_id: l.lease_id,
        result: {},
        artifacts: [
          {
            name: "image",
            key: `tenants/ten_dev/jobs/${job.id}/outputs/image`,
            content_type: "image/png",
            bytes: 10,
            sha256: "0".repeat(64),
          },
        ],
      });
    },
  },
  {
    code: "runner_unauthorized",
    status: 401,
    send: () =>
      call("/internal/runner/lease", { key: null, method: "POST", body: "{}", headers: { "content-type": "application/json" } }),
  },
  {
    code: "payload_too_large",
    status: 413,
    send: async () => {
      const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_url: string };
      const url = new URL(up.upload_url);
      // Declares more than an object may hold; the body itself is never read.
      return call(url.pathname + url.search, {
        key: null,
        method: "PUT",
        body: "x",
        headers: { "content-type": "image/png", "content-length": String(2 ** 40) },
      });
    },
  },
];

describe("problem types", () => {
  for (const c of CASES) {
    it(`${c.code}: ${c.status} application/problem+json`, async () => {
      const res = await c.send();
      const body = (await res.json()) as { type: string; status: number; title: string; detail: string };
      expect(res.status, JSON.stringify(body)).toBe(c.status);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(body.type).toBe(`https://vigil.dev/errors/${c.code}`);
      expect(body.status).toBe(c.status);
      expect(body.detail.length).toBeGreaterThan(0);
    });
  }

  it("every problem type the worker can send is triggered by a test, or listed with the reason it cannot be", () => {
    const codes = new Set<string>();
    for (const text of Object.values(sources)) {
      for (const m of text.matchAll(/ApiError\(\s*\d{3},\s*"([a-z_]+)"/g)) codes.add(m[1]!);
      for (const m of text.matchAll(/unauthorized\("([a-z_]+)"/g)) codes.add(m[1]!);
    }
    expect(codes.size).toBeGreaterThan(30);
    const testText = Object.values(tests).join("\n");
    // A test names the type it expects (".../errors/<code>") or the bare code; this file's cases count too.
    const triggered = new Set(CASES.map((c) => c.code));
    const untested = [...codes].filter(
      (code) =>
        !NOT_TRIGGERABLE[code] && !triggered.has(code) && !testText.includes(`errors/${code}`) && !testText.includes(`"${code}"`),
    );
    expect(untested).toEqual([]);
    // The allow-list must not hide codes that no longer exist.
    expect(Object.keys(NOT_TRIGGERABLE).filter((c) => !codes.has(c))).toEqual([]);
  });
});
