import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../worker/src/env.ts";
import { emitEvent } from "../../worker/src/lib/webhooks.ts";
import { call, postJson, testEnv } from "./helpers.ts";

/**
 * Webhook behaviour that planted bugs (scripts/mutants.ts, `npm run mutation`) showed no test pinned down: an
 * endpoint receives exactly the event types it subscribed to, "*" meaning all. Real path: emitEvent → the JobQueue's
 * outbox → WEBHOOK_QUEUE → fan-out → delivery to the stand-in receiver (vitest.config.ts), which verifies signatures.
 */

interface Delivery {
  id: string;
  event_type: string;
  status: string;
}

const deliveriesOf = async (endpointId: string) =>
  ((await (await call(`/v1/webhook_endpoints/${endpointId}/deliveries`)).json()) as { data: Delivery[] }).data;

/** An endpoint at the verifying stand-in receiver, subscribed to `events`. */
async function endpoint(events: string[]) {
  const path = `/hook/${crypto.randomUUID()}`;
  const res = await postJson("/v1/webhook_endpoints", { url: `https://hooks.example.com${path}`, events });
  expect(res.status).toBe(201);
  const ep = (await res.json()) as { id: string; secret: string };
  await testEnv.DB.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
    .bind(`https://hooks.example.com${path}?secret=${encodeURIComponent(ep.secret)}`, ep.id)
    .run();
  return ep;
}

describe("fan-out follows each endpoint's subscription", () => {
  it("an event reaches the endpoints subscribed to its type or to *, and no other", async () => {
    // Event types are dotted lower-case words (the endpoint schema's rule).
    const word = Array.from({ length: 10 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join("");
    const type = `test.sub_${word}`;
    const exact = await endpoint([type]);
    const wildcard = await endpoint(["*"]);
    const other = await endpoint(["test.something_else", "job.failed"]);
    await emitEvent(testEnv as unknown as AppEnv, "ten_dev", type, { n: 1 });
    // One fan-out handles every endpoint of the tenant, so once both subscribers have their delivery the
    // unsubscribed endpoint's absence is final.
    let got: Delivery[][] = [];
    for (let i = 0; i < 100; i++) {
      got = await Promise.all([exact, wildcard].map((e) => deliveriesOf(e.id)));
      if (got.every((d) => d.some((x) => x.status === "succeeded"))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const d of got) expect(d.map((x) => [x.event_type, x.status])).toEqual([[type, "succeeded"]]);
    expect(await deliveriesOf(other.id)).toEqual([]);
  });
});
