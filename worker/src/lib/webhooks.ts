import { jobQueue } from "../durable/job-queue.ts";
import type { WebhookEvent } from "../durable/outbox.ts";
import type { AppEnv } from "../env.ts";
import { newId } from "./ids.ts";
import { openSecret } from "./secret-box.ts";
import { checkWebhookUrl } from "./ssrf.ts";

/**
 * Webhooks per the Standard Webhooks spec (https://www.standardwebhooks.com/): headers webhook-id,
 * webhook-timestamp and webhook-signature = "v1,<base64 HMAC-SHA256(secret bytes, id.timestamp.body)>",
 * where the secret bytes are the base64 after "whsec_". During a secret rotation both signatures are sent.
 *
 * Events come from the JobQueue's transactional outbox (durable/outbox.ts). An `event` message fans out to the
 * tenant's matching endpoints, makes each delivery's first attempt, and is then confirmed to the outbox; each
 * `delivery` message is one endpoint's retry, with its backoff.
 */

export type { WebhookEvent };

export type WebhookMessage =
  | { kind: "event"; tenant_id: string; event: WebhookEvent }
  | {
      kind: "delivery";
      delivery_id: string;
      endpoint_id: string;
      event: WebhookEvent;
      /** Attempts made before this message (a re-sent stalled delivery); its own attempts count on from there. */
      prior_attempts?: number;
    };

export const PREVIOUS_SECRET_GRACE_SECONDS = 24 * 3600;
const DELIVERY_TIMEOUT_MS = 10_000;
/** Matches max_retries of the queue consumer in wrangler.toml. */
export const MAX_DELIVERY_ATTEMPTS = 10;

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function generateWebhookSecret(): string {
  return `whsec_${b64(crypto.getRandomValues(new Uint8Array(24)))}`;
}

export async function signWebhook(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${id}.${timestamp}.${body}`));
  return `v1,${b64(new Uint8Array(mac))}`;
}

/** Headers for one delivery; `secrets` are all currently valid secrets (one signature each). */
export async function webhookHeaders(
  secrets: string[],
  id: string,
  timestamp: number,
  body: string,
): Promise<Record<string, string>> {
  const sigs = await Promise.all(secrets.map((s) => signWebhook(s, id, timestamp, body)));
  return {
    "content-type": "application/json",
    "user-agent": "Vigil-Webhooks/1",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": sigs.join(" "),
  };
}

/**
 * Emits any event type for a tenant (e.g. "verification.face_swap_detected"). It is recorded in the JobQueue's
 * outbox before this returns, then delivered asynchronously through WEBHOOK_QUEUE; endpoints subscribed to the
 * type (or to "*") receive it. Returns the event id (the `webhook-id` every delivery of it carries).
 */
export async function emitEvent(env: AppEnv, tenantId: string, type: string, data: Record<string, unknown>): Promise<string> {
  return jobQueue(env).emit(tenantId, type, data);
}

interface EndpointRow {
  id: string;
  tenant_id: string;
  url: string;
  events: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
}

/**
 * One delivery per matching endpoint, and its first attempt made here, before the consumer confirms the event to
 * the outbox: until that attempt is recorded the outbox still holds the event, so a crash anywhere up to here is
 * repaired by the outbox's re-send. (A second queue hop for the first attempt had a window in which a killed local
 * worker lost the delivery message after the event was confirmed.) Only retries travel as delivery messages.
 */
async function fanOut(env: AppEnv, tenantId: string, event: WebhookEvent): Promise<void> {
  const { results } = await env.DB.prepare("SELECT * FROM webhook_endpoints WHERE tenant_id = ?")
    .bind(tenantId)
    .all<EndpointRow>();
  const now = Date.now();
  const due: Extract<WebhookMessage, { kind: "delivery" }>[] = [];
  for (const ep of results) {
    const events = JSON.parse(ep.events) as string[];
    if (!events.includes("*") && !events.includes(event.type)) continue;
    // UNIQUE(endpoint, event): a re-delivered fan-out message does not create a second delivery.
    let id = newId("dlv");
    const r = await env.DB.prepare(
      `INSERT OR IGNORE INTO webhook_deliveries (id, endpoint_id, tenant_id, event_id, event_type, status, attempts, created_at, updated_at, event)
       VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)`,
    )
      .bind(id, ep.id, tenantId, event.id, event.type, now, now, JSON.stringify(event))
      .run();
    if (!r.meta.changes) {
      // A fan-out seen before (the outbox re-sent the event). A delivery that never got its first attempt (a crash
      // after the insert) gets it now; one with attempts is in the queue's retry cycle already.
      const prior = await env.DB.prepare("SELECT id, status FROM webhook_deliveries WHERE endpoint_id = ? AND event_id = ?")
        .bind(ep.id, event.id)
        .first<{ id: string; status: string }>();
      if (!prior || prior.status !== "pending") continue;
      id = prior.id;
    }
    due.push({ kind: "delivery", delivery_id: id, endpoint_id: ep.id, event });
  }
  await Promise.all(
    due.map(async (message) => {
      if (await deliver(env, message, 1)) return;
      await env.WEBHOOK_QUEUE.send({ ...message, prior_attempts: 1 }, { delaySeconds: backoffSeconds(1) });
    }),
  );
}

/** Attempts one delivery and records it. Returns true when done (success or permanently given up). */
export async function deliver(
  env: AppEnv,
  msg: Extract<WebhookMessage, { kind: "delivery" }>,
  attempt: number,
): Promise<boolean> {
  const ep = await env.DB.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(msg.endpoint_id).first<EndpointRow>();
  const started = Date.now();
  const record = async (status: string, code: number | null, error: string | null) => {
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      ).bind(msg.delivery_id, attempt, code, error, Date.now() - started, started),
      env.DB.prepare("UPDATE webhook_deliveries SET status = ?, attempts = ?, updated_at = ? WHERE id = ?").bind(
        status,
        attempt,
        Date.now(),
        msg.delivery_id,
      ),
    ]);
  };
  if (!ep) {
    await record("canceled", null, "endpoint deleted");
    return true;
  }
  // Checked again at delivery time: the rules (or VIGIL_MODE) may have changed since registration.
  const verdict = checkWebhookUrl(ep.url, env.VIGIL_MODE);
  if (!verdict.ok) {
    await record("failed", null, `blocked: ${verdict.reason}`);
    return true;
  }
  const key = env.MASTER_KEY_ENCRYPTION_KEY;
  const secrets = [await openSecret(key, ep.id, ep.secret)];
  if (ep.previous_secret && (ep.previous_secret_expires_at ?? 0) > started)
    secrets.push(await openSecret(key, ep.id, ep.previous_secret));
  const body = JSON.stringify(msg.event);
  const headers = await webhookHeaders(secrets, msg.event.id, Math.floor(started / 1000), body);
  const last = attempt >= MAX_DELIVERY_ATTEMPTS;
  try {
    const res = await fetch(verdict.url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    await res.body?.cancel();
    const ok = res.status >= 200 && res.status < 300;
    await record(ok ? "succeeded" : last ? "failed" : "retrying", res.status, ok ? null : `HTTP ${res.status}`);
    return ok || last;
  } catch (e) {
    await record(last ? "failed" : "retrying", null, e instanceof Error ? e.message : String(e));
    return last;
  }
}

/** A pending or retrying delivery is stalled when its next attempt is this far overdue. */
export const STALLED_AFTER_MS = 15 * 60 * 1000;

/**
 * Re-sends deliveries whose queue message is gone: pending or retrying, and their next attempt (by the backoff
 * of the attempts made) overdue by STALLED_AFTER_MS. Cloudflare Queues keep messages durably, so in production
 * this finds nothing; a local worker killed with messages in flight (miniflare keeps them in memory) leaves
 * such deliveries behind. The JobQueue's alarm runs it. Returns how many were re-sent.
 */
export async function resendStalledDeliveries(env: AppEnv, now = Date.now()): Promise<number> {
  const { results } = await env.DB.prepare(
    `SELECT id, endpoint_id, attempts, updated_at, event FROM webhook_deliveries
     WHERE status IN ('pending', 'retrying') AND event IS NOT NULL AND updated_at < ? ORDER BY updated_at LIMIT 200`,
  )
    .bind(now - STALLED_AFTER_MS)
    .all<{ id: string; endpoint_id: string; attempts: number; updated_at: number; event: string }>();
  let resent = 0;
  for (const d of results) {
    const due = d.updated_at + (d.attempts ? backoffSeconds(d.attempts) * 1000 : 0);
    if (due + STALLED_AFTER_MS > now) continue;
    const message: WebhookMessage = {
      kind: "delivery",
      delivery_id: d.id,
      endpoint_id: d.endpoint_id,
      event: JSON.parse(d.event) as WebhookEvent,
      prior_attempts: d.attempts,
    };
    await env.WEBHOOK_QUEUE.send(message);
    // Not again before this message has had its chance.
    await env.DB.prepare("UPDATE webhook_deliveries SET updated_at = ? WHERE id = ?").bind(now, d.id).run();
    resent++;
  }
  return resent;
}

/** Exponential backoff: 10 s, 20 s, 40 s, ... capped at one hour. */
export function backoffSeconds(attempt: number): number {
  return Math.min(3600, 10 * 2 ** Math.max(0, attempt - 1));
}

export async function handleWebhookBatch(batch: MessageBatch<WebhookMessage>, env: AppEnv): Promise<void> {
  for (const message of batch.messages) {
    const body = message.body;
    try {
      if (body.kind === "event") {
        await fanOut(env, body.tenant_id, body.event);
        // Only now is the event safe in D1 and the queue: until this call the outbox keeps sending it.
        await jobQueue(env).confirmEvent(body.event.id);
        message.ack();
      } else {
        const attempt = (body.prior_attempts ?? 0) + message.attempts;
        if (await deliver(env, body, attempt)) message.ack();
        else message.retry({ delaySeconds: backoffSeconds(attempt) });
      }
    } catch (e) {
      console.error(JSON.stringify({ msg: "webhook_consumer_error", error: String(e) }));
      message.retry({ delaySeconds: backoffSeconds(message.attempts) });
    }
  }
}
