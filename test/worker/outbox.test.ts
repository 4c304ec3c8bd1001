import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { JobQueue } from "../../worker/src/durable/job-queue.ts";
import { CONFIRM_TIMEOUT_MS, retryDelayMs } from "../../worker/src/durable/outbox.ts";
import { call, createInspectJob, leaseJob, postJson, runnerCall, testEnv } from "./helpers.ts";

/**
 * The transactional outbox (worker/src/durable/outbox.ts): events commit with the state change, are sent
 * after it, and are sent again by the alarm until the webhook consumer confirms their fan-out.
 */
const queueStub = () => testEnv.JOB_QUEUE.get(testEnv.JOB_QUEUE.idFromName("global")) as DurableObjectStub<JobQueue>;

interface OutboxRow {
  id: string;
  type: string;
  event: string | null;
  sends: number;
  next_send_at: number;
}

const outboxRow = (id: string) =>
  runInDurableObject(
    queueStub(),
    (_i, state) => state.storage.sql.exec("SELECT * FROM outbox WHERE id = ?", id).toArray()[0],
  ) as Promise<OutboxRow | undefined>;

async function endpoint(events: string[]): Promise<{ id: string; secret: string }> {
  const res = await postJson("/v1/webhook_endpoints", { url: "https://hooks.example.com/x", events });
  expect(res.status).toBe(201);
  const ep = (await res.json()) as { id: string; secret: string };
  await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
    .bind(`https://hooks.example.com/ok?secret=${encodeURIComponent(ep.secret)}`, ep.id)
    .run();
  return ep;
}

interface Delivery {
  event_id: string;
  event_type: string;
  status: string;
}

async function waitFor<T>(what: () => Promise<T>, until: (v: T) => boolean, label: string): Promise<T> {
  let last = await what();
  for (let i = 0; i < 100 && !until(last); i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = await what();
  }
  expect(until(last), `${label}: ${JSON.stringify(last)}`).toBe(true);
  return last;
}

const deliveries = async (endpointId: string) =>
  ((await (await call(`/v1/webhook_endpoints/${endpointId}/deliveries?limit=100`)).json()) as { data: Delivery[] }).data;

describe("webhook outbox", () => {
  it("a terminal transition's event is delivered and then leaves the outbox", async () => {
    const ep = await endpoint(["job.succeeded"]);
    const job = await createInspectJob();
    const l = await leaseJob(job.id);
    expect(
      (await runnerCall(`/internal/runner/jobs/${job.id}/complete`, { lease_id: l.lease_id, result: { a: 1 } })).status,
    ).toBe(200);
    const [d] = await waitFor(
      () => deliveries(ep.id),
      (list) => list.some((x) => x.status === "succeeded"),
      "delivered",
    );
    expect(d!.event_type).toBe("job.succeeded");
    // Confirmed by the consumer after the fan-out: nothing left to re-send.
    await waitFor(
      () => outboxRow(d!.event_id),
      (row) => row === undefined,
      "confirmed",
    );
  });

  it("an event committed with its change but never sent (a crash after the commit) is sent by the alarm", async () => {
    const ep = await endpoint(["test.crash_after_commit"]);
    // What a crash between the commit and the send leaves behind: a row that was never sent.
    const id = await runInDurableObject(queueStub(), (instance) =>
      (instance as unknown as { outbox: { add(t: string, type: string, s: unknown): string } }).outbox.add(
        "ten_dev",
        "test.crash_after_commit",
        { data: { hello: "again" } },
      ),
    );
    expect((await outboxRow(id))!.sends).toBe(0);
    expect(await runDurableObjectAlarm(queueStub())).toBe(true);
    const list = await waitFor(
      () => deliveries(ep.id),
      (l) => l.some((x) => x.event_id === id && x.status === "succeeded"),
      "delivered after the alarm",
    );
    expect(list.filter((x) => x.event_id === id)).toHaveLength(1);
    await waitFor(
      () => outboxRow(id),
      (row) => row === undefined,
      "confirmed",
    );
  });

  it("an event sent but never confirmed (its queue message lost) is sent again, same id and body, with backoff", async () => {
    const ep = await endpoint(["test.lost_message"]);
    const id = await runInDurableObject(queueStub(), (instance, state) => {
      const outbox = (instance as unknown as { outbox: { add(t: string, type: string, s: unknown): string } }).outbox;
      const eventId = outbox.add("ten_dev", "test.lost_message", { data: { n: 7 } });
      // Sent once, its message then lost: the body was built, the confirmation deadline has passed.
      const body = JSON.stringify({
        id: eventId,
        type: "test.lost_message",
        created_at: "2026-12-01T00:00:00.000Z",
        data: { n: 7 },
      });
      state.storage.sql.exec(
        "UPDATE outbox SET sends = 1, event = ?, next_send_at = ? WHERE id = ?",
        body,
        Date.now() - 1,
        eventId,
      );
      return eventId;
    });
    // Until it is confirmed, the next re-send is scheduled one backoff step later. (Read right after the send: the
    // local consumer batches for up to a second before it can confirm.)
    const before = Date.now();
    const row = await runInDurableObject(queueStub(), async (instance, state) => {
      await (instance as unknown as { outbox: { flush(): Promise<number> } }).outbox.flush();
      return state.storage.sql.exec("SELECT * FROM outbox WHERE id = ?", id).toArray()[0] as unknown as OutboxRow;
    });
    expect(row.sends).toBe(2);
    expect(row.next_send_at).toBeGreaterThanOrEqual(before + retryDelayMs(2));
    expect(JSON.parse(row.event!)).toMatchObject({ id, data: { n: 7 } });
    expect(retryDelayMs(1)).toBe(CONFIRM_TIMEOUT_MS);
    expect(retryDelayMs(2)).toBe(2 * CONFIRM_TIMEOUT_MS);
    expect(retryDelayMs(40)).toBe(3_600_000);
    await waitFor(
      () => deliveries(ep.id),
      (l) => l.some((x) => x.event_id === id && x.status === "succeeded"),
      "delivered on the re-send",
    );
    await waitFor(
      () => outboxRow(id),
      (r) => r === undefined,
      "confirmed",
    );
  });

  it("the alarm is scheduled for an unconfirmed event", async () => {
    await runInDurableObject(queueStub(), async (instance, state) => {
      const outbox = (instance as unknown as { outbox: { add(t: string, type: string, s: unknown): string } }).outbox;
      const eventId = outbox.add("ten_dev", "test.nobody_listens", { data: {} });
      state.storage.sql.exec("UPDATE outbox SET next_send_at = ? WHERE id = ?", Date.now() + 5_000, eventId);
      await state.storage.deleteAlarm();
      await (instance as unknown as { alarm(): Promise<void> }).alarm();
      const at = await state.storage.getAlarm();
      expect(at).not.toBeNull();
      expect(at!).toBeLessThanOrEqual(Date.now() + 5_000);
    });
  });
});
