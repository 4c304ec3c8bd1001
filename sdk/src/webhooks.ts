import { Webhook, WebhookVerificationError } from "standardwebhooks";
import type { Job } from "./generated.ts";

/**
 * The body of every webhook delivery. `id` is also the `webhook-id` header and is the same on every re-delivery
 * of the event (delivery is at least once): de-duplicate on it. The OpenAPI document describes requests, not
 * deliveries, so this shape is written here from the worker's outbox (worker/src/durable/outbox.ts).
 */
export interface WebhookEvent<D = Record<string, unknown>> {
  id: string;
  /** `job.succeeded`, `job.failed`, `job.canceled`, `verification.face_swap_detected`, … */
  type: string;
  created_at: string;
  data: D;
}

/** `job.*` events carry the job as GET /v1/jobs/{id} shows it. */
export type JobEvent = WebhookEvent<{ job: Job }>;

export { WebhookVerificationError };

/** Headers in any of the shapes servers hand them over: fetch's Headers, Node's IncomingHttpHeaders, a record. */
export type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function headerRecord(headers: HeaderSource): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof (headers as Headers).forEach === "function" && typeof (headers as Headers).get === "function") {
    (headers as Headers).forEach((v, k) => (out[k.toLowerCase()] = v));
    return out;
  }
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/**
 * Verifies a delivery's Standard Webhooks signature (HMAC-SHA256 over `id.timestamp.body`, any of the space-separated
 * `v1,` signatures, so both secrets pass during a rotation) and its timestamp (within 5 minutes), then returns the
 * parsed event. Throws WebhookVerificationError otherwise. Pass the body exactly as received: re-serialised JSON
 * does not verify.
 */
export function verifyWebhook<E extends WebhookEvent = WebhookEvent>(
  secret: string,
  body: string | Uint8Array,
  headers: HeaderSource,
): E {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  return new Webhook(secret).verify(text, headerRecord(headers)) as E;
}

/** A verifier bound to one endpoint's secret (`whsec_…`, from webhooks.endpoints.create or rotateSecret). */
export function webhookVerifier(secret: string) {
  const wh = new Webhook(secret);
  return <E extends WebhookEvent = WebhookEvent>(body: string | Uint8Array, headers: HeaderSource): E =>
    wh.verify(typeof body === "string" ? body : new TextDecoder().decode(body), headerRecord(headers)) as E;
}

/** Verifies a fetch Request (Workers, Deno, Bun, Node's fetch servers): reads its body once. */
export async function verifyWebhookRequest<E extends WebhookEvent = WebhookEvent>(secret: string, req: Request): Promise<E> {
  return verifyWebhook<E>(secret, await req.text(), req.headers);
}
