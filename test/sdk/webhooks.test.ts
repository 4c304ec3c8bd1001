import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Vigil, verifyWebhook, verifyWebhookRequest, webhookVerifier, WebhookVerificationError, type JobEvent } from "@vigil/sdk";

interface Delivery {
  body: string;
  headers: Record<string, string>;
}

describe("webhooks", () => {
  const stack = inject("sdkStack");
  const v = new Vigil({ baseUrl: stack.url, apiKey: stack.apiKey });
  const received: Delivery[] = [];
  // A real receiver: it keeps each delivery's raw body and headers exactly as they arrived.
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({
        body: Buffer.concat(chunks).toString("utf8"),
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, val]) => [k, String(val)])),
      });
      res.writeHead(204).end();
    });
  });
  afterAll(() => void server.close());

  it("endpoints create / list / rotateSecret / delete and deliveries; a real signed delivery verifies", async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const ep = await v.webhooks.endpoints.create({ url: `http://127.0.0.1:${port}/hooks`, events: ["job.succeeded"] });
    expect(ep.secret).toMatch(/^whsec_/);
    expect((await v.webhooks.endpoints.list()).data.map((e) => e.id)).toContain(ep.id);

    const job = await v.inspect(readFileSync("test/fixtures/photo.jpg"));
    const deadline = Date.now() + 30_000;
    let delivery: Delivery | undefined;
    while (!(delivery = received.find((d) => d.body.includes(job.id))) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(delivery, "no delivery for the job").toBeDefined();

    const event = verifyWebhook<JobEvent>(ep.secret, delivery!.body, delivery!.headers);
    expect(event.type).toBe("job.succeeded");
    expect(event.data.job.id).toBe(job.id);
    expect(event.id).toBe(delivery!.headers["webhook-id"]);
    // The same delivery through the other entry points: bytes, a bound verifier, a fetch Request.
    expect(webhookVerifier(ep.secret)(new TextEncoder().encode(delivery!.body), delivery!.headers).id).toBe(event.id);
    const req = new Request("http://x/hooks", { method: "POST", body: delivery!.body, headers: delivery!.headers });
    expect((await verifyWebhookRequest(ep.secret, req)).id).toBe(event.id);

    // A changed body, another secret and a missing signature all fail.
    expect(() => verifyWebhook(ep.secret, delivery!.body.replace(job.id, "job_other"), delivery!.headers)).toThrow(
      WebhookVerificationError,
    );
    const other = (await v.webhooks.endpoints.rotateSecret(ep.id)) as { secret?: string };
    expect(other.secret).toMatch(/^whsec_/);
    expect(other.secret).not.toBe(ep.secret);
    expect(() => verifyWebhook(other.secret!, delivery!.body, delivery!.headers)).toThrow(WebhookVerificationError);
    const { "webhook-signature": _, ...unsigned } = delivery!.headers;
    expect(() => verifyWebhook(ep.secret, delivery!.body, unsigned)).toThrow(WebhookVerificationError);

    const { data } = await v.webhooks.deliveries.list(ep.id, { limit: 10 });
    const d = data.find((x) => x.event_id === event.id);
    expect(d).toMatchObject({ event_type: "job.succeeded", status: "succeeded" });
    expect(d!.attempts[0]!.status_code).toBe(204);

    expect(await v.webhooks.endpoints.delete(ep.id)).toMatchObject({ id: ep.id, deleted: true });
    expect((await v.webhooks.endpoints.list()).data.map((e) => e.id)).not.toContain(ep.id);
  });
});
