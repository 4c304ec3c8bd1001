import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../scripts/local-stack.ts";
import { api, pollJob, startTestStack, WebhookReceiver } from "./harness.ts";

const photo = readFileSync(new URL("../fixtures/photo.jpg", import.meta.url));
const JOBS = 40;

/**
 * Issue 12, defect 4: 8 of 40 job.succeeded events were never delivered after a kill -9 during a run. The local
 * queue lives in miniflare's memory, so killing the worker drops every event queued but not yet consumed; the
 * outbox in the JobQueue Durable Object (persisted SQLite) must send them again after the restart.
 */
describe("webhook events survive a worker killed with -9 mid-run", () => {
  let stack: LocalStack;
  let cleanup: () => Promise<void>;
  const receiver = new WebhookReceiver();
  let call: ReturnType<typeof api>;
  let endpointId: string;

  beforeAll(async () => {
    // Short leases, so jobs whose runner lost the worker mid-report are leased again in seconds.
    ({ stack, cleanup } = await startTestStack({ port: 18797, runners: 1, vars: { VIGIL_MAX_LEASE_SECONDS: "5" } }));
    call = api(stack);
    const url = await receiver.listen();
    const ep = await call("/v1/webhook_endpoints", { method: "POST", json: { url, events: ["job.succeeded", "job.failed"] } });
    expect(ep.status).toBe(201);
    receiver.setSecret(ep.data.secret);
    endpointId = ep.data.id;
  });

  afterAll(async () => {
    receiver.close();
    await cleanup?.();
  });

  it(`every one of ${JOBS} jobs' terminal event is delivered, and the delivery log lists each`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i += 8) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(8, JOBS - i) }, () =>
          call("/v1/inspect", { method: "POST", headers: { "content-type": "image/jpeg" }, body: photo }),
        ),
      );
      for (const r of batch) {
        expect(r.status).toBe(202);
        ids.push(r.data.id);
      }
    }
    // Right after the last create: jobs are finishing and their events sit in the in-memory queue.
    const deliveredBeforeKill = new Set(receiver.events.map((e) => e.id)).size;
    await stack.restartWorker("SIGKILL");
    for (const id of ids) {
      const job = await pollJob(call, id, (j) => ["succeeded", "failed", "canceled"].includes(j.status), 90_000);
      expect(job.status, JSON.stringify(job.error)).toBe("succeeded");
    }
    // The outbox re-sends what the kill lost once its confirmation deadline (30 s) has passed.
    const missing = () => ids.filter((id) => receiver.eventIdsFor(id).size === 0);
    const deadline = Date.now() + 90_000;
    while (missing().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(missing(), `delivered before the kill: ${deliveredBeforeKill} events`).toEqual([]);
    expect(receiver.rejected).toBe(0);
    // Each job has exactly one terminal event id (re-sends reuse it), and the log shows it delivered.
    for (const id of ids) expect(receiver.eventIdsFor(id).size).toBe(1);
    const log = await call(`/v1/webhook_endpoints/${endpointId}/deliveries?limit=100`);
    expect(log.status).toBe(200);
    const delivered = new Set<string>(
      log.data.data.filter((d: { status: string }) => d.status === "succeeded").map((d: { event_id: string }) => d.event_id),
    );
    const eventIds = ids.map((id) => [...receiver.eventIdsFor(id)][0]!);
    expect(eventIds.filter((e) => !delivered.has(e))).toEqual([]);
  });
});
