import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../worker/src/env.ts";
import worker from "../../worker/src/index.ts";
import { checkWebhookUrl } from "../../worker/src/lib/ssrf.ts";
import { backoffSeconds, emitEvent, webhookHeaders, type WebhookMessage } from "../../worker/src/lib/webhooks.ts";
import { call, createInspectJob, leaseJob, postJson, runnerCall, testEnv } from "./helpers.ts";

interface Delivery {
  id: string;
  event_type: string;
  status: string;
  attempts: { attempt: number; status_code: number | null; error: string | null; duration_ms: number }[];
}

async function deliveries(endpointId: string, until: (d: Delivery[]) => boolean): Promise<Delivery[]> {
  let last: Delivery[] = [];
  for (let i = 0; i < 100; i++) {
    const res = await call(`/v1/webhook_endpoints/${endpointId}/deliveries`);
    last = ((await res.json()) as { data: Delivery[] }).data;
    if (until(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

async function createEndpoint(url: string, events: string[] = ["*"]) {
  const res = await postJson("/v1/webhook_endpoints", { url, events });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string; url: string };
}

describe("webhook signatures", () => {
  it("verify with the standardwebhooks reference implementation, including both secrets during rotation", async () => {
    const secretA = "whsec_" + btoa("0123456789abcdef0123456789abcdef");
    const secretB = "whsec_" + btoa("fedcba9876543210fedcba9876543210");
    const body = JSON.stringify({ id: "evt_1", type: "job.succeeded", data: {} });
    const ts = Math.floor(Date.now() / 1000);
    const headers = await webhookHeaders([secretA, secretB], "evt_1", ts, body);
    expect(headers["webhook-signature"]).toMatch(/^v1,\S+ v1,\S+$/);
    expect(new Webhook(secretA).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(secretB).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(secretA).verify(body.replace("succeeded", "failed"), headers)).toThrow();
    const other = "whsec_" + btoa("another secret, 32 bytes long!!!");
    expect(() => new Webhook(other).verify(body, headers)).toThrow();
  });
});

describe("SSRF guard", () => {
  const blocked = [
    "http://example.com/hook", // not https
    "https://localhost/hook",
    "https://api.localhost/hook",
    "https://127.0.0.1/hook",
    "https://2130706433/hook", // decimal 127.0.0.1
    "https://0x7f000001/hook", // hex
    "https://0177.0.0.1/hook", // octal
    "https://127.1/hook", // short form
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd00:ec2::254]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://user:pass@example.com/hook",
    "https://intranet/hook",
  ];
  it.each(blocked)("rejects %s", (url) => {
    expect(checkWebhookUrl(url, "production").ok).toBe(false);
  });

  it("allows public https targets, and http/loopback only in local mode", () => {
    expect(checkWebhookUrl("https://hooks.example.com/x", "production").ok).toBe(true);
    expect(checkWebhookUrl("https://8.8.8.8/x", "production").ok).toBe(true);
    expect(checkWebhookUrl("https://[2606:4700::1111]/x", "production").ok).toBe(true);
    expect(checkWebhookUrl("http://127.0.0.1:9000/x", "local").ok).toBe(true);
  });

  it("the API refuses private targets with 422", async () => {
    const res = await postJson("/v1/webhook_endpoints", { url: "https://169.254.169.254/" });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { type: string }).type).toBe("https://vigil.dev/errors/webhook_url_not_allowed");
  });
});

describe("webhook delivery", () => {
  it("job.succeeded is delivered through the queue, signed, and recorded", async () => {
    const path = `/hook/${crypto.randomUUID()}`;
    const ep = await createEndpoint(`https://hooks.example.com${path}`, ["job.succeeded"]);
    // The stand-in receiver (vitest.config.ts) verifies signatures given the secret in the query;
    // point the endpoint there now that the secret is known.
    await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
      .bind(`https://hooks.example.com${path}?secret=${encodeURIComponent(ep.secret)}`, ep.id)
      .run();
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    expect(
      (await runnerCall(`/internal/runner/jobs/${job.id}/complete`, { lease_id: l.lease_id, result: { ok: 1 } })).status,
    ).toBe(200);
    const list = await deliveries(ep.id, (d) => d.some((x) => x.status === "succeeded"));
    const d = list.find((x) => x.status === "succeeded");
    expect(d, JSON.stringify(list)).toBeDefined();
    expect(d!.event_type).toBe("job.succeeded");
    expect(d!.attempts[0]).toMatchObject({ attempt: 1, status_code: 200, error: null });
  });

  it("rotate_secret: deliveries carry both signatures for the grace period", async () => {
    const path = `/hook/${crypto.randomUUID()}`;
    const ep = await createEndpoint(`https://hooks.example.com${path}`, ["test.ping"]);
    const rotated = (await (await postJson(`/v1/webhook_endpoints/${ep.id}/rotate_secret`, {})).json()) as { secret: string };
    expect(rotated.secret).not.toBe(ep.secret);
    // The receiver checks with the OLD secret: it must still verify.
    await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
      .bind(`https://hooks.example.com${path}?secret=${encodeURIComponent(ep.secret)}`, ep.id)
      .run();
    await emitEvent(testEnv as unknown as AppEnv, "ten_dev", "test.ping", { hello: "world" });
    const list = await deliveries(ep.id, (d) => d.some((x) => x.status === "succeeded"));
    expect(list[0]?.status, JSON.stringify(list)).toBe("succeeded");
  });

  it("a failing endpoint is retried with exponential backoff and every attempt is recorded", async () => {
    const ep = await createEndpoint("https://hooks.example.com/fail");
    const event = { id: `evt_${crypto.randomUUID()}`, type: "job.failed", created_at: new Date().toISOString(), data: {} };
    await testEnv.DB.prepare(
      "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_id, event_type, status, attempts, created_at, updated_at) VALUES (?, ?, 'ten_dev', ?, ?, 'pending', 0, ?, ?)",
    )
      .bind("dlv_test_retry", ep.id, event.id, event.type, Date.now(), Date.now())
      .run();
    const body: WebhookMessage = { kind: "delivery", delivery_id: "dlv_test_retry", endpoint_id: ep.id, event };
    for (const attempts of [1, 3]) {
      const batch = createMessageBatch<WebhookMessage>("vigil-webhooks", [
        { id: `m${attempts}`, timestamp: new Date(), attempts, body },
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, testEnv as unknown as AppEnv);
      const result = await getQueueResult(batch, ctx);
      expect(result.explicitAcks).toEqual([]);
      // The test harness records that retry() was called but drops its delaySeconds; backoffSeconds is checked below.
      expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual([`m${attempts}`]);
    }
    expect([1, 2, 3, 4].map(backoffSeconds)).toEqual([10, 20, 40, 80]);
    expect(backoffSeconds(20)).toBe(3600);
    const list = await deliveries(ep.id, () => true);
    const d = list.find((x) => x.id === "dlv_test_retry")!;
    expect(d.status).toBe("retrying");
    expect(d.attempts.map((a) => a.status_code)).toEqual([500, 500]);
    expect(d.attempts.every((a) => a.duration_ms >= 0)).toBe(true);
  });

  it("lists and deletes endpoints without exposing secrets", async () => {
    const ep = await createEndpoint("https://hooks.example.com/list");
    const list = (await (await call("/v1/webhook_endpoints")).json()) as { data: { id: string }[] };
    expect(list.data.map((e) => e.id)).toContain(ep.id);
    expect(JSON.stringify(list)).not.toContain(ep.secret);
    // At rest the secret is sealed with AES-GCM under MASTER_KEY_ENCRYPTION_KEY, never stored in the clear.
    const row = await testEnv.DB.prepare("SELECT secret FROM webhook_endpoints WHERE id = ?")
      .bind(ep.id)
      .first<{ secret: string }>();
    expect(row!.secret).toMatch(/^enc1:/);
    expect(row!.secret).not.toContain(ep.secret.slice(6));
    expect((await call(`/v1/webhook_endpoints/${ep.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await call(`/v1/webhook_endpoints/${ep.id}`, { method: "DELETE" })).status).toBe(404);
  });
});
