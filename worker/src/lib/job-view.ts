import type { JobRecord } from "../durable/job-queue.ts";
import type { AppEnv } from "../env.ts";
import type { PublicJob } from "../schemas.ts";
import { objectUrlSigner } from "./object-urls.ts";

/** How long download links in job output stay valid. They are minted fresh on every read. */
export const DOWNLOAD_URL_SECONDS = 3600;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export type { PublicJob };

/** The job as clients see it: `output` = runner result plus a signed `<artifact>_url` per artifact. */
export async function publicJob(env: AppEnv, job: JobRecord, origin?: string): Promise<PublicJob> {
  let output: Record<string, unknown> | null = null;
  if (job.status === "succeeded") {
    output = { ...(job.result ?? {}) };
    if (job.artifacts.length) {
      const signer = objectUrlSigner(env, origin ?? job.origin);
      const expires = Math.floor(Date.now() / 1000) + DOWNLOAD_URL_SECONDS;
      for (const a of job.artifacts) output[`${a.name}_url`] = await signer.sign("GET", a.key, expires);
    }
  }
  return {
    id: job.id,
    object: "job",
    operation: job.operation,
    status: job.status,
    created_at: iso(job.created_at)!,
    started_at: iso(job.started_at),
    completed_at: iso(job.completed_at),
    output,
    error: job.status === "failed" || job.status === "canceled" ? job.error : null,
    attempts: job.attempts,
    params: job.params,
    metrics: job.status === "succeeded" ? ((job.metrics as PublicJob["metrics"]) ?? null) : null,
    // Outbox rows written before jobs had parents hold snapshots without these fields.
    parent_id: job.parent_id ?? null,
    stages: job.stages ?? [],
  };
}
