import { runInDurableObject } from "cloudflare:test";
import { expect, it } from "vitest";
import type { JobQueue, JobRecord } from "../../worker/src/durable/job-queue.ts";
import type { WebhookMessage } from "../../worker/src/lib/webhooks.ts";
import { testEnv } from "./helpers.ts";

/**
 * The outbox's promise that a re-sent event is the same event (scripts/mutants.ts, `npm run mutation`): a job
 * event's body holds signed output URLs whose expiry is minted when the body is built, so a body rebuilt for the
 * re-send would differ from the first one. The existing outbox test re-sends a plain event, whose rebuilt body is
 * identical; this one re-sends a succeeded job with an artifact, a second later.
 */

const queueStub = () => testEnv.JOB_QUEUE.get(testEnv.JOB_QUEUE.idFromName("global")) as DurableObjectStub<JobQueue>;

interface OutboxInternals {
  env: { WEBHOOK_QUEUE: { send(m: WebhookMessage): Promise<void> } };
  add(tenantId: string, type: string, source: { job: JobRecord }): string;
  flush(): Promise<number>;
}

it("a re-sent job event carries the first send's body, signed URLs included, under the same id", async () => {
  const now = Date.now();
  const job: JobRecord = {
    id: "job_mutation_outbox_resend",
    tenant_id: "ten_dev",
    operation: "enhance.lowlight",
    status: "succeeded",
    params: {},
    inputs: [],
    origin: "http://vigil.test",
    created_at: now,
    started_at: now,
    completed_at: now,
    attempts: 1,
    max_attempts: 3,
    lease_id: null,
    lease_expires_at: null,
    runner_id: null,
    result: { gain: 1.5 },
    artifacts: [
      {
        name: "image",
        key: "tenants/ten_dev/jobs/job_mutation_outbox_resend/out/image",
        content_type: "image/png",
        bytes: 9,
        sha256: "0".repeat(64),
      },
    ],
    error: null,
    last_error: null,
    metrics: null,
  };
  const sent: WebhookMessage[] = [];
  const id = await runInDurableObject(queueStub(), async (instance, state) => {
    const outbox = (instance as unknown as { outbox: OutboxInternals }).outbox;
    const real = outbox.env;
    // Capture what the outbox sends (instead of the real queue, whose consumer would confirm the event away).
    outbox.env = { ...real, WEBHOOK_QUEUE: { send: async (m) => void sent.push(m) } };
    try {
      const eventId = outbox.add("ten_dev", "job.succeeded", { job });
      await outbox.flush();
      // Its confirmation never comes; a second later (so that freshly minted URLs would expire a second later)
      // the row is due again.
      await new Promise((r) => setTimeout(r, 1100));
      state.storage.sql.exec("UPDATE outbox SET next_send_at = ? WHERE id = ?", Date.now() - 1, eventId);
      await outbox.flush();
      state.storage.sql.exec("DELETE FROM outbox WHERE id = ?", eventId);
      return eventId;
    } finally {
      outbox.env = real;
    }
  });
  expect(sent).toHaveLength(2);
  const [first, again] = sent as Extract<WebhookMessage, { kind: "event" }>[];
  expect(first!.event.id).toBe(id);
  expect((first!.event.data.job as { output: Record<string, unknown> }).output.image_url).toMatch(/^http:\/\/vigil\.test\//);
  expect(again).toEqual(first);
});
