import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, inject, it } from "vitest";
import { Vigil, VigilConnectionError, VigilError } from "@vigil/sdk";
import { backoffMs } from "../../sdk/src/transport.ts";

/** A real HTTP server whose handler decides per attempt; it records every request it got. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number, body: Buffer) => void) {
  const seen: { method: string; url: string; headers: IncomingMessage["headers"]; at: number; body: Buffer }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, at: Date.now(), body });
      handler(req, res, seen.length, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  servers.push(server);
  return { url: `http://127.0.0.1:${addr.port}`, seen };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) (s.closeAllConnections(), s.close());
});

const JOB = { id: "job_1", object: "job", operation: "inspect", status: "succeeded", output: {}, stages: [] };
const problem = (res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) =>
  res
    .writeHead(status, { "content-type": "application/problem+json", "x-request-id": `req-${code}`, ...headers })
    .end(JSON.stringify({ type: `https://vigil.dev/errors/${code}`, title: "Error", status, detail: `a ${code}` }));
const fast = { baseDelayMs: 20, maxDelayMs: 100 };

describe("retries", () => {
  it("retries 5xx and a dropped connection with one Idempotency-Key, then returns the success", async () => {
    const { url, seen } = await serve((req, res, n) => {
      if (n === 1) return problem(res, 503, "unavailable");
      if (n === 2) return req.socket.destroy(); // no HTTP answer at all
      if (n === 3) return problem(res, 502, "bad_gateway");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(JOB));
    });
    const retries: string[] = [];
    const v = new Vigil({ baseUrl: url, apiKey: "vgl_test", retry: fast, onRetry: (i) => retries.push(i.reason) });
    const job = await v.inspect(new Uint8Array([1, 2, 3]), {}, { wait: false });
    expect(job.id).toBe("job_1");
    expect(seen).toHaveLength(4);
    const keys = new Set(seen.map((s) => s.headers["idempotency-key"]));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.every((s) => s.body.equals(Buffer.from([1, 2, 3])))).toBe(true);
    expect(seen.every((s) => s.headers.authorization === "Bearer vgl_test")).toBe(true);
    expect(retries[0]).toBe("HTTP 503");
    expect(retries[2]).toBe("HTTP 502");
  });

  it("gives every POST call its own key, and a caller's key wins", async () => {
    const { url, seen } = await serve((_req, res) =>
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(JOB)),
    );
    const v = new Vigil({ baseUrl: url, apiKey: "k" });
    await v.inspect(new Uint8Array([1]), {}, { wait: false });
    await v.inspect(new Uint8Array([1]), {}, { wait: false });
    await v.inspect(new Uint8Array([1]), {}, { wait: false, idempotencyKey: "mine-1" });
    await v.jobs.get("job_1");
    expect(seen[0]!.headers["idempotency-key"]).not.toBe(seen[1]!.headers["idempotency-key"]);
    expect(seen[2]!.headers["idempotency-key"]).toBe("mine-1");
    expect(seen[3]!.headers["idempotency-key"]).toBeUndefined();
  });

  it("waits the Retry-After of a 429 before the next attempt", async () => {
    const { url, seen } = await serve((_req, res, n) =>
      n === 1
        ? problem(res, 429, "rate_limited", { "retry-after": "1" })
        : res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(JOB)),
    );
    const v = new Vigil({ baseUrl: url, apiKey: "k", retry: fast });
    await v.jobs.get("job_1");
    expect(seen).toHaveLength(2);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it("stops at the retry cap and throws the last answer as a VigilError", async () => {
    const { url, seen } = await serve((_req, res) => problem(res, 500, "internal_error"));
    const v = new Vigil({ baseUrl: url, apiKey: "k", retry: { ...fast, maxRetries: 2 } });
    const err = await v.jobs.get("job_1").catch((e) => e);
    expect(err).toBeInstanceOf(VigilError);
    expect(err).toMatchObject({
      status: 500,
      code: "internal_error",
      requestId: "req-internal_error",
      detail: "a internal_error",
    });
    expect(seen).toHaveLength(3);
  });

  it("does not retry a 4xx other than 429, nor wait a Retry-After beyond its limit", async () => {
    const a = await serve((_req, res) => problem(res, 422, "invalid_params"));
    const err = await new Vigil({ baseUrl: a.url, apiKey: "k", retry: fast }).jobs.get("x").catch((e) => e);
    expect(err).toMatchObject({ status: 422, code: "invalid_params" });
    expect(a.seen).toHaveLength(1);
    const b = await serve((_req, res) => problem(res, 429, "rate_limited", { "retry-after": "3600" }));
    const t0 = Date.now();
    const err2 = await new Vigil({ baseUrl: b.url, apiKey: "k", retry: fast }).jobs.get("x").catch((e) => e);
    expect(err2).toMatchObject({ status: 429, code: "rate_limited", retryAfter: 3600 });
    expect(b.seen).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("backs off with full jitter: uniform below base * 2^n, capped", async () => {
    const opts = { baseDelayMs: 100, maxDelayMs: 250, maxRetries: 4, maxRetryAfterMs: 60_000 };
    expect([0, 1, 2, 3].map((n) => backoffMs(n, opts, () => 1))).toEqual([100, 200, 250, 250]);
    expect([0, 1, 2, 3].map((n) => backoffMs(n, opts, () => 0.5))).toEqual([50, 100, 125, 125]);
    expect(backoffMs(3, opts, () => 0)).toBe(0);
    const { url, seen } = await serve((_req, res) => problem(res, 503, "unavailable"));
    const delays: number[] = [];
    const v = new Vigil({
      baseUrl: url,
      apiKey: "k",
      retry: { baseDelayMs: 100, maxDelayMs: 250, maxRetries: 4 },
      onRetry: (i) => delays.push(i.delayMs),
    });
    await expect(v.jobs.get("x")).rejects.toBeInstanceOf(VigilError);
    expect(seen).toHaveLength(5);
    // Ceilings 100, 200, 250, 250 ms (base * 2^n, capped); each delay is uniform below its ceiling.
    [100, 200, 250, 250].forEach((ceiling, i) => expect(delays[i]).toBeLessThanOrEqual(ceiling));
  });

  it("throws VigilConnectionError when nothing answers, and an abort ends the backoff at once", async () => {
    const { url } = await serve((req) => req.socket.destroy());
    const err = await new Vigil({ baseUrl: url, apiKey: "k", retry: { ...fast, maxRetries: 1 } }).jobs.get("x").catch((e) => e);
    expect(err).toBeInstanceOf(VigilConnectionError);
    const ctl = new AbortController();
    const slow = new Vigil({ baseUrl: url, apiKey: "k", retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    const t0 = Date.now();
    const p = slow.jobs.get("x", { signal: ctl.signal }).catch((e) => e);
    setTimeout(() => ctl.abort(new Error("stop")), 200);
    expect(((await p) as Error).message).toBe("stop");
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe("idempotent retries against the real stack", () => {
  it("a POST whose answer is lost is retried with the same key, and the API answers with the one job it made", async () => {
    const stack = inject("sdkStack");
    let dropped = 0;
    // A real proxy in front of the stack: forwards every request, but drops the connection instead of relaying the
    // answer of the first create request, as a network failure after the server did the work would.
    const { url, seen } = await serve((req, res, n, body) => {
      const up = httpRequest(
        stack.url + req.url,
        { method: req.method, headers: { ...req.headers, host: new URL(stack.url).host } },
        (upRes) => {
          const chunks: Buffer[] = [];
          upRes.on("data", (c) => chunks.push(c));
          upRes.on("end", () => {
            if (n === 1 && req.method === "POST") {
              dropped++;
              return req.socket.destroy();
            }
            res.writeHead(upRes.statusCode!, upRes.headers).end(Buffer.concat(chunks));
          });
        },
      );
      up.end(body);
    });
    const v = new Vigil({ baseUrl: url, apiKey: stack.apiKey, retry: fast });
    const job = await v.inspect(readFileSync("test/fixtures/photo.jpg"), {}, { wait: false });
    expect(dropped).toBe(1);
    const posts = seen.filter((s) => s.method === "POST");
    expect(posts).toHaveLength(2);
    expect(posts[0]!.headers["idempotency-key"]).toBe(posts[1]!.headers["idempotency-key"]);
    // The job the first attempt created is the one the retry got: the API made one job for the two attempts.
    const direct = new Vigil({ baseUrl: stack.url, apiKey: stack.apiKey });
    const { data } = await direct.jobs.list({ operation: "inspect", limit: 100 });
    const sameKey = data.filter((j) => j.id === job.id);
    expect(sameKey).toHaveLength(1);
    const created = data.filter((j) => Date.parse(j.created_at) >= posts[0]!.at - 1000);
    expect(created.map((j) => j.id)).toEqual([job.id]);
  });
});
