import { getOperation } from "../../../contract/operations.ts";
import { PROTOCOL_VERSION, type LeasedJob, type TicketPayload } from "../../../contract/protocol.ts";
import { importTicketPrivateKey, signTicket } from "../../../contract/ticket.ts";
import manifest from "../../../models/manifest.json";
import type { JobRecord } from "../durable/job-queue.ts";
import type { AppEnv } from "../env.ts";
import { objectKeys, objectUrlSigner } from "./object-urls.ts";

/** Tickets outlive the lease a little so a runner that just heartbeated is not refused mid-step. */
export const TICKET_SLACK_SECONDS = 60;
/** Object URLs in a ticket must survive heartbeated leases of long jobs. */
const TICKET_URL_SECONDS = 3600;

interface ManifestModel {
  id: string;
  version: string;
  sha256: string;
}

let cachedKey: { pkcs8: string; key: Promise<CryptoKey> } | null = null;

function signingKey(env: AppEnv): Promise<CryptoKey> {
  if (!env.TICKET_SIGNING_KEY || !env.TICKET_SIGNING_KID)
    throw new Error("TICKET_SIGNING_KEY / TICKET_SIGNING_KID are not configured");
  if (cachedKey?.pkcs8 !== env.TICKET_SIGNING_KEY) {
    cachedKey = { pkcs8: env.TICKET_SIGNING_KEY, key: importTicketPrivateKey(env.TICKET_SIGNING_KEY) };
  }
  return cachedKey.key;
}

export function modelRefs(ids: readonly string[]): TicketPayload["models"] {
  const models = (manifest as { models: ManifestModel[] }).models;
  return ids.map((id) => {
    const m = models.find((x) => x.id === id);
    if (!m) throw new Error(`model ${id} is not in models/manifest.json`);
    return { id: m.id, version: m.version, sha256: m.sha256 };
  });
}

export async function buildTicketPayload(env: AppEnv, job: JobRecord, origin: string): Promise<TicketPayload> {
  const op = getOperation(job.operation)!;
  const now = Math.floor(Date.now() / 1000);
  const leaseExpires = Math.floor((job.lease_expires_at ?? Date.now()) / 1000);
  const signer = objectUrlSigner(env, origin);
  const urlExpiry = now + Math.max(TICKET_URL_SECONDS, op.limits.lease_seconds * 4);
  return {
    v: PROTOCOL_VERSION,
    job_id: job.id,
    lease_id: job.lease_id!,
    attempt: job.attempts,
    operation: job.operation,
    params: job.params,
    models: modelRefs(op.models),
    inputs: await Promise.all(
      job.inputs.map(async (input, i) => ({
        name: String(i),
        url: await signer.sign("GET", input.key, urlExpiry),
        content_type: input.content_type,
        bytes: input.bytes,
      })),
    ),
    outputs: await Promise.all(
      op.artifacts.map(async (a) => {
        const key = objectKeys.output(job.tenant_id, job.id, a.name);
        return { name: a.name, url: await signer.sign("PUT", key, urlExpiry), key };
      }),
    ),
    limits: { max_pixels: op.limits.max_pixels },
    issued_at: now,
    expires_at: leaseExpires + TICKET_SLACK_SECONDS,
    kid: env.TICKET_SIGNING_KID!,
  };
}

export async function leasedJob(env: AppEnv, job: JobRecord, origin: string): Promise<LeasedJob> {
  const payload = await buildTicketPayload(env, job, origin);
  return {
    job_id: job.id,
    lease_id: job.lease_id!,
    attempt: job.attempts,
    lease_expires_at: Math.floor(job.lease_expires_at! / 1000),
    ticket: await signTicket(payload, await signingKey(env)),
  };
}
