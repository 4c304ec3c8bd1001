import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../worker/src/env.ts";
import {
  backoffSeconds,
  handleWebhookBatch,
  MAX_DELIVERY_ATTEMPTS,
  resendStalledDeliveries,
  STALLED_AFTER_MS,
  type WebhookEvent,
  type WebhookMessage,
} from "../../worker/src/lib/webhooks.ts";
import { call, postJson, testEnv } from "./helpers.ts";

/**
 * The queue consumer, driven one message at a time with a batch whose ack()/retry() calls are recorded
 * (the pool's createMessageBatch drops retry's delaySeconds, and the backoff is what is under test here).
 */
const env = testEnv as unknown as AppEnv;

interface Recorded {
  acked: boolean;
  retries: (number | undefined)[];
}

async function consume(body: WebhookMessage, attempts: number): Promise<Recorded> {
  const rec: Recorded = { acked: false, retries: [] };
  const message = {
    id: `m-${crypto.randomUUID()}`,
    timestamp: new Date(),
    attempts,
    body,
    ack: () => void (rec.acked = true),
    retry: (o?: QueueRetryOptions) => void rec.retries.push(o?.delaySeconds),
  };
  const batch = { queue: "vigil-webhooks", messages: [message], ackAll() {}, retryAll() {} };
  await handleWebhookBatch(batch as unknown as MessageBatch<WebhookMessage>, env);
  return rec;
}

async function endpoint(url: string, events = ["*"]): Promise<{ id: string; secret: string }> {
  const res = await postJson("/v1/webhook_endpoints", { url, events });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string };
}

/** Points an endpoint at the stand-in receiver (vitest.config.ts), which verifies signatures with `secret`. */
async function receiveWith(endpointId: string, secret: string, path = `/ok/${crypto.randomUUID()}`): Promise<void> {
  await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
    .bind(`https://hooks.example.com${path}?secret=${encodeURIComponent(secret)}`, endpointId)
    .run();
}

function event(type = "job.succeeded"): WebhookEvent {
  return { id: `evt_${crypto.randomUUID().replace(/-/g, "")}`, type, created_at: new Date().toISOString(), data: { n: 1 } };
}

async function pendingDelivery(endpointId: string, ev: WebhookEvent): Promise<WebhookMessage & { kind: "delivery" }> {
  const id = `dlv_${crypto.randomUUID().replace(/-/g, "")}`;
  await testEnv.DB.prepare(
    "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_id, event_type, status, attempts, created_at, updated_at) VALUES (?, ?, 'ten_dev', ?, ?, 'pending', 0, ?, ?)",
  )
    .bind(id, endpointId, ev.id, ev.type, Date.now(), Date.now())
    .run();
  return { kind: "delivery", delivery_id: id, endpoint_id: endpointId, event: ev };
}

async function deliveryRow(id: string) {
  const row = await testEnv.DB.prepare("SELECT status, attempts FROM webhook_deliveries WHERE id = ?")
    .bind(id)
    .first<{ status: string; attempts: number }>();
  const { results } = await testEnv.DB.prepare(
    "SELECT attempt, status_code, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
  )
    .bind(id)
    .all<{ attempt: number; status_code: number | null; error: string | null }>();
  return { ...row!, log: results };
}

describe("webhook delivery: retries", () => {
  it("a failed attempt is retried after the exponential backoff for its attempt number", async () => {
    const ep = await endpoint("https://hooks.example.com/fail");
    const msg = await pendingDelivery(ep.id, event());
    for (const attempt of [1, 2, 3, 4]) {
      const rec = await consume(msg, attempt);
      expect(rec).toEqual({ acked: false, retries: [backoffSeconds(attempt)] });
    }
    expect([1, 2, 3, 4].map(backoffSeconds)).toEqual([10, 20, 40, 80]);
    const row = await deliveryRow(msg.delivery_id);
    expect(row.status).toBe("retrying");
    expect(row.log.map((a) => [a.attempt, a.status_code])).toEqual([
      [1, 500],
      [2, 500],
      [3, 500],
      [4, 500],
    ]);
  });

  it(`the ${MAX_DELIVERY_ATTEMPTS}th failed attempt gives up: failed, acknowledged, not retried`, async () => {
    const ep = await endpoint("https://hooks.example.com/fail");
    const msg = await pendingDelivery(ep.id, event());
    expect(await consume(msg, MAX_DELIVERY_ATTEMPTS - 1)).toEqual({ acked: false, retries: [backoffSeconds(9)] });
    expect(await consume(msg, MAX_DELIVERY_ATTEMPTS)).toEqual({ acked: true, retries: [] });
    const row = await deliveryRow(msg.delivery_id);
    expect(row.status).toBe("failed");
    expect(row.attempts).toBe(MAX_DELIVERY_ATTEMPTS);
  });

  it("a 3xx answer is not followed and counts as a failed attempt", async () => {
    const ep = await endpoint("https://hooks.example.com/redirect");
    const msg = await pendingDelivery(ep.id, event());
    expect(await consume(msg, 1)).toEqual({ acked: false, retries: [backoffSeconds(1)] });
    const row = await deliveryRow(msg.delivery_id);
    expect(row.status).toBe("retrying");
    expect(row.log).toEqual([{ attempt: 1, status_code: 307, error: "HTTP 307" }]);
  });
});

describe("webhook delivery: endpoint changes after the event", () => {
  it("a deleted endpoint's pending delivery is canceled without a request", async () => {
    const ep = await endpoint("https://hooks.example.com/fail");
    const msg = await pendingDelivery(ep.id, event());
    expect((await call(`/v1/webhook_endpoints/${ep.id}`, { method: "DELETE" })).status).toBe(200);
    expect(await consume(msg, 1)).toEqual({ acked: true, retries: [] });
    const row = await deliveryRow(msg.delivery_id);
    expect(row.status).toBe("canceled");
    // Had it been sent, /fail would have answered 500.
    expect(row.log).toEqual([{ attempt: 1, status_code: null, error: "endpoint deleted" }]);
  });

  it("the SSRF rules are checked again at delivery time: an endpoint now pointing inside is blocked, not fetched", async () => {
    const ep = await endpoint("https://hooks.example.com/fail");
    await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = 'https://10.0.0.7/hook' WHERE id = ?").bind(ep.id).run();
    const msg = await pendingDelivery(ep.id, event());
    expect(await consume(msg, 1)).toEqual({ acked: true, retries: [] });
    const row = await deliveryRow(msg.delivery_id);
    expect(row.status).toBe("failed");
    expect(row.log).toHaveLength(1);
    expect(row.log[0]!.status_code).toBeNull();
    expect(row.log[0]!.error).toMatch(/^blocked: .*private/i);
  });

  it("after a secret rotation's grace period only the new secret signs", async () => {
    const ep = await endpoint("https://hooks.example.com/x");
    const rotated = (await (await postJson(`/v1/webhook_endpoints/${ep.id}/rotate_secret`, {})).json()) as { secret: string };
    await receiveWith(ep.id, ep.secret);
    // Inside the grace period the old secret still verifies.
    const inGrace = await pendingDelivery(ep.id, event());
    expect(await consume(inGrace, 1)).toEqual({ acked: true, retries: [] });
    expect((await deliveryRow(inGrace.delivery_id)).log[0]!.status_code).toBe(200);
    // Past it, a receiver that still holds the old secret must reject the delivery.
    await testEnv.DB.prepare("UPDATE webhook_endpoints SET previous_secret_expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1000, ep.id)
      .run();
    const late = await pendingDelivery(ep.id, event());
    expect(await consume(late, 1)).toEqual({ acked: false, retries: [backoffSeconds(1)] });
    expect((await deliveryRow(late.delivery_id)).log[0]!.status_code).toBe(401);
    await receiveWith(ep.id, rotated.secret);
    const current = await pendingDelivery(ep.id, event());
    expect(await consume(current, 1)).toEqual({ acked: true, retries: [] });
  });
});

describe("webhook fan-out", () => {
  it("makes the first attempt itself; a re-delivered fan-out creates no second delivery and no second attempt", async () => {
    const ep = await endpoint("https://hooks.example.com/fail", ["test.dedupe"]);
    const ev = event("test.dedupe");
    const fanOut: WebhookMessage = { kind: "event", tenant_id: "ten_dev", event: ev };
    const sent: { message: WebhookMessage; delaySeconds?: number }[] = [];
    // Record what the fan-out enqueues for this endpoint (other tests' "*" endpoints match too) instead of letting
    // the pool's consumer run it concurrently with this test.
    const send = async (m: WebhookMessage, o?: QueueSendOptions) =>
      void (m.kind === "delivery" && m.endpoint_id === ep.id && sent.push({ message: m, delaySeconds: o?.delaySeconds }));
    const recording = { ...env, WEBHOOK_QUEUE: { send } } as unknown as AppEnv;
    const run = async () => {
      const rec: Recorded = { acked: false, retries: [] };
      const message = {
        id: "m",
        timestamp: new Date(),
        attempts: 1,
        body: fanOut,
        ack: () => void (rec.acked = true),
        retry() {},
      };
      await handleWebhookBatch({ queue: "q", messages: [message], ackAll() {}, retryAll() {} } as never, recording);
      return rec;
    };
    expect((await run()).acked).toBe(true);
    const rows = await testEnv.DB.prepare("SELECT id FROM webhook_deliveries WHERE endpoint_id = ? AND event_id = ?")
      .bind(ep.id, ev.id)
      .all<{ id: string }>();
    expect(rows.results).toHaveLength(1);
    const id = rows.results[0]!.id;
    // The first attempt was made during the fan-out (the endpoint answered 500); only its retry was queued.
    expect((await deliveryRow(id)).log.map((a) => [a.attempt, a.status_code])).toEqual([[1, 500]]);
    expect(sent).toEqual([
      { message: { kind: "delivery", delivery_id: id, endpoint_id: ep.id, event: ev, prior_attempts: 1 }, delaySeconds: 10 },
    ]);
    // A second fan-out of the same event (the outbox re-sent it) leaves the delivery to its retry cycle.
    expect((await run()).acked).toBe(true);
    expect(sent).toHaveLength(1);
    expect((await deliveryRow(id)).log).toHaveLength(1);
    // The retry message counts on from the fan-out's attempt.
    expect(await consume(sent[0]!.message, 1)).toEqual({ acked: false, retries: [backoffSeconds(2)] });
    expect((await deliveryRow(id)).log.map((a) => a.attempt)).toEqual([1, 2]);
  });

  it("a delivery left pending by a crash after its insert gets its first attempt on the re-sent fan-out", async () => {
    const ep = await endpoint("https://hooks.example.com/x", ["test.pending"]);
    await receiveWith(ep.id, ep.secret);
    const ev = event("test.pending");
    const pending = await pendingDelivery(ep.id, ev);
    const message = {
      id: "m",
      timestamp: new Date(),
      attempts: 1,
      body: { kind: "event", tenant_id: "ten_dev", event: ev },
      ack() {},
      retry() {},
    };
    await handleWebhookBatch({ queue: "q", messages: [message], ackAll() {}, retryAll() {} } as never, env);
    const row = await deliveryRow(pending.delivery_id);
    expect(row.status).toBe("succeeded");
    expect(row.log.map((a) => [a.attempt, a.status_code])).toEqual([[1, 200]]);
  });
});

describe("stalled deliveries", () => {
  it("a delivery whose queue message was lost is re-sent, and its attempts count on", async () => {
    const ep = await endpoint("https://hooks.example.com/fail");
    const now = Date.now();
    const row = async (status: string, attempts: number, updatedAt: number) => {
      const msg = await pendingDelivery(ep.id, event());
      await testEnv.DB.prepare("UPDATE webhook_deliveries SET status = ?, attempts = ?, updated_at = ?, event = ? WHERE id = ?")
        .bind(status, attempts, updatedAt, JSON.stringify(msg.event), msg.delivery_id)
        .run();
      return msg.delivery_id;
    };
    const lostPending = await row("pending", 0, now - STALLED_AFTER_MS - 1000);
    const lostRetry = await row("retrying", 3, now - backoffSeconds(3) * 1000 - STALLED_AFTER_MS - 1000);
    const waitingRetry = await row("retrying", 3, now - STALLED_AFTER_MS - 1000); // its 40 s backoff is not yet overdue by 15 min
    const done = await row("succeeded", 1, now - 10 * STALLED_AFTER_MS);
    const sent: WebhookMessage[] = [];
    const send = async (m: WebhookMessage) => void (m.kind === "delivery" && m.endpoint_id === ep.id && sent.push(m));
    expect(await resendStalledDeliveries({ ...env, WEBHOOK_QUEUE: { send } } as unknown as AppEnv, now)).toBeGreaterThanOrEqual(
      2,
    );
    const byId = new Map(sent.map((m) => [m.kind === "delivery" ? m.delivery_id : "", m]));
    expect([...byId.keys()].sort()).toEqual([lostPending, lostRetry].sort());
    expect(byId.has(waitingRetry) || byId.has(done)).toBe(false);
    // The re-sent message is the queue's first attempt of it, but the delivery's fourth.
    expect(await consume(byId.get(lostRetry)!, 1)).toEqual({ acked: false, retries: [backoffSeconds(4)] });
    expect((await deliveryRow(lostRetry)).log.map((a) => a.attempt)).toEqual([4]);
    // Swept once, not again on the next sweep while its message is out.
    sent.length = 0;
    await resendStalledDeliveries({ ...env, WEBHOOK_QUEUE: { send } } as unknown as AppEnv, now + 1000);
    expect(sent.filter((m) => m.kind === "delivery" && m.delivery_id === lostPending)).toEqual([]);
  });
});
