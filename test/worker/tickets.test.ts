import { describe, expect, it } from "vitest";
import { base64urlDecode, base64urlEncode, utf8 } from "../../contract/encoding.ts";
import { importTicketPublicKey, TicketError, verifyTicket } from "../../contract/ticket.ts";
import type { JobRecord } from "../../worker/src/durable/job-queue.ts";
import type { AppEnv } from "../../worker/src/env.ts";
import { publicJob } from "../../worker/src/lib/job-view.ts";
import { call, leaseJob, postImage, testEnv, uniquePng, type JobJson } from "./helpers.ts";

async function publishedKeys(): Promise<Map<string, CryptoKey>> {
  const res = await call("/internal/runner/ticket-keys", { key: null });
  expect(res.status).toBe(200);
  const { keys } = (await res.json()) as { keys: { kid: string; public_key: string }[] };
  return new Map(await Promise.all(keys.map(async (k) => [k.kid, await importTicketPublicKey(k.public_key)] as const)));
}

/** Returns a different value of the same JSON type, so the change is a tamper, not a schema error. */
function mutate(v: unknown): unknown {
  if (typeof v === "number") return v + 1;
  if (typeof v === "string") return v + "x";
  if (typeof v === "boolean") return !v;
  if (Array.isArray(v)) return v.length ? v.slice(1) : [{ injected: true }];
  if (v && typeof v === "object") return { ...v, injected: true };
  return "x";
}

describe("tickets", () => {
  it("verifies with the published key, carries the job, and its input URL serves the uploaded bytes", async () => {
    const bytes = uniquePng();
    const job = (await (await postImage("/v1/inspect", bytes)).json()) as JobJson;
    const leased = await leaseJob(job.id);
    const payload = await verifyTicket(leased.ticket, await publishedKeys());
    expect(payload).toMatchObject({
      v: 1,
      job_id: job.id,
      lease_id: leased.lease_id,
      attempt: 1,
      operation: "inspect",
      kid: "test-2026",
    });
    expect(payload.expires_at).toBeGreaterThan(leased.lease_expires_at);
    expect(payload.inputs).toHaveLength(1);
    expect(payload.inputs[0]!.bytes).toBe(bytes.length);
    expect(payload.inputs[0]!.content_type).toBe("image/png");
    const url = new URL(payload.inputs[0]!.url);
    const got = await call(url.pathname + url.search, { key: null });
    expect(got.status).toBe(200);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
  });

  it("changing any payload field, or the signature, makes verifyTicket reject it", async () => {
    const job = (await (await postImage("/v1/inspect")).json()) as JobJson;
    const leased = await leaseJob(job.id);
    const keys = await publishedKeys();
    const [body, sig] = leased.ticket.split(".") as [string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64urlDecode(body))) as Record<string, unknown>;
    const fields = Object.keys(payload);
    expect(fields.sort()).toEqual(
      [
        "attempt",
        "expires_at",
        "inputs",
        "issued_at",
        "job_id",
        "kid",
        "lease_id",
        "limits",
        "models",
        "operation",
        "outputs",
        "params",
        "v",
      ].sort(),
    );
    for (const field of fields) {
      const tampered = { ...payload, [field]: mutate(payload[field]) };
      const token = `${base64urlEncode(utf8(JSON.stringify(tampered)))}.${sig}`;
      await expect(verifyTicket(token, keys), `field ${field}`).rejects.toBeInstanceOf(TicketError);
    }
    const sigBytes = base64urlDecode(sig);
    for (const i of [0, 31, 63]) {
      const flipped = sigBytes.slice();
      flipped[i] = flipped[i]! ^ 1;
      await expect(verifyTicket(`${body}.${base64urlEncode(flipped)}`, keys)).rejects.toMatchObject({ code: "bad_signature" });
    }
    await expect(verifyTicket(leased.ticket, keys)).resolves.toMatchObject({ job_id: job.id });
  });
});

describe("job output", () => {
  it("artifact URLs are signed per read and serve the artifact", async () => {
    const env = testEnv as unknown as AppEnv;
    const key = "tenants/ten_dev/jobs/job_view/outputs/image";
    const bytes = uniquePng();
    await env.OBJECTS.put(key, bytes, { httpMetadata: { contentType: "image/png" } });
    const record: JobRecord = {
      id: "job_view",
      tenant_id: "ten_dev",
      operation: "enhance.lowlight",
      status: "succeeded",
      params: { format: "png" },
      inputs: [],
      origin: "http://vigil.test",
      created_at: Date.now(),
      started_at: Date.now(),
      completed_at: Date.now(),
      attempts: 1,
      max_attempts: 3,
      lease_id: null,
      lease_expires_at: null,
      runner_id: null,
      result: { mean_gain: 2.1 },
      artifacts: [{ name: "image", key, content_type: "image/png", bytes: bytes.length, sha256: "0".repeat(64) }],
      error: null,
      last_error: null,
      metrics: null,
    };
    const view = await publicJob(env, record);
    expect(view.output!.mean_gain).toBe(2.1);
    const url = new URL(view.output!.image_url as string);
    expect(url.searchParams.get("sig")).toMatch(/^[0-9a-f]{64}$/);
    const res = await call(url.pathname + url.search, { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
  });
});
