import { describe, expect, it } from "vitest";
import { signRunnerRequest, verifyRunnerSignature } from "../../contract/runner-auth.ts";
import { signRunnerRequestSync } from "../../gpu-runner/src/worker-client.ts";

const secret = "secret-a-0123456789";
const url = "http://127.0.0.1:8787/internal/runner/jobs/job_1/complete?x=1";
const body = JSON.stringify({ lease_id: "lease_1", result: { ok: true } });

describe("the runner's synchronous request signing (node:crypto)", () => {
  it("produces headers the contract's verifier accepts, and only for the signed method, URL and body", async () => {
    const headers = new Headers(signRunnerRequestSync({ runnerId: "runner-a", secret, method: "POST", url, body }));
    const verify = (over: { method?: string; url?: string; body?: string; secret?: string } = {}) =>
      verifyRunnerSignature({
        headers,
        secret: over.secret ?? secret,
        method: over.method ?? "POST",
        url: over.url ?? url,
        body: over.body ?? body,
      });
    expect(await verify()).toMatchObject({ ok: true, runnerId: "runner-a" });
    expect(await verify({ body: body.replace("true", "false") })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ url: url.replace("x=1", "x=2") })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ method: "PUT" })).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verify({ secret: "another-secret-0123" })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("sends the same headers as the WebCrypto signer, with a fresh 128-bit nonce", async () => {
    const sync = signRunnerRequestSync({ runnerId: "runner-a", secret, method: "post", url, body });
    const web = await signRunnerRequest({ runnerId: "runner-a", secret, method: "post", url, body });
    const headers = new Headers(sync);
    const v = await verifyRunnerSignature({ headers, secret, method: "POST", url, body });
    expect(v.ok).toBe(true);
    expect(Object.keys(sync).sort()).toEqual(Object.keys(web).sort());
    expect(sync["x-vigil-nonce"]).toMatch(/^[0-9a-f]{32}$/);
  });
});
