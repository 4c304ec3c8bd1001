import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, REPO_ROOT } from "../../gpu-runner/src/config.ts";
import { REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import { servedOperations } from "../../gpu-runner/src/serve.ts";
import { TicketKeyring } from "../../gpu-runner/src/ticket-keys.ts";
import { followUrlFile, WorkerClient } from "../../gpu-runner/src/worker-client.ts";
import { signTicket, TicketError } from "../../contract/ticket.ts";
import { FakeWorker } from "./fake-worker.ts";
import { ticketPayload } from "./tickets.ts";

const BASE = { VIGIL_API_URL: "http://127.0.0.1:8787/", VIGIL_RUNNER_ID: "r1", VIGIL_RUNNER_SECRET: "0123456789abcdef0123" };

describe("runner configuration from env", () => {
  it("applies the documented defaults", () => {
    const c = loadConfig(BASE);
    expect(c).toMatchObject({
      apiUrl: "http://127.0.0.1:8787",
      concurrency: 1,
      executionProviders: ["cpu"],
      modelsDir: `${REPO_ROOT}/models`,
      port: 9464,
      ticketPublicKeys: undefined,
    });
    expect(servedOperations(c, REGISTRY)).toEqual([...REGISTRY.keys()]);
  });

  it("parses lists and keys", () => {
    const c = loadConfig({
      ...BASE,
      VIGIL_EXECUTION_PROVIDERS: "cuda, cpu",
      VIGIL_RUNNER_OPERATIONS: "inspect",
      VIGIL_TICKET_PUBLIC_KEYS: "k1:abc,k2:def",
    });
    expect(c.executionProviders).toEqual(["cuda", "cpu"]);
    expect(c.operations).toEqual(["inspect"]);
    expect([...c.ticketPublicKeys!]).toEqual([
      ["k1", "abc"],
      ["k2", "def"],
    ]);
  });

  it("names every bad variable in one error", () => {
    let err: unknown;
    try {
      loadConfig({
        VIGIL_API_URL: "not a url",
        VIGIL_RUNNER_SECRET: "short",
        VIGIL_RUNNER_CONCURRENCY: "0",
        VIGIL_EXECUTION_PROVIDERS: "gpu",
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const v of [
      "VIGIL_API_URL",
      "VIGIL_RUNNER_ID",
      "VIGIL_RUNNER_SECRET",
      "VIGIL_RUNNER_CONCURRENCY",
      "VIGIL_EXECUTION_PROVIDERS",
    ])
      expect(msg).toContain(v);
    expect(() => loadConfig({ ...BASE, VIGIL_TICKET_PUBLIC_KEYS: "nokid" })).toThrow(ConfigError);
    expect(() => servedOperations(loadConfig({ ...BASE, VIGIL_RUNNER_OPERATIONS: "inspect,teleport" }), REGISTRY)).toThrow(
      /teleport/,
    );
  });
});

describe("ticket keys fetched from the worker", () => {
  let worker: FakeWorker;
  beforeAll(async () => {
    worker = await new FakeWorker().start();
  });
  afterAll(() => worker.stop());

  it("fetches keys with a signed request and refetches once when a ticket names a new kid (rotation)", async () => {
    const client = new WorkerClient({ apiUrl: worker.url, runnerId: worker.runnerId, secret: worker.secret });
    const keyring = new TicketKeyring({ client }, 0);
    await keyring.init();
    expect(keyring.size).toBe(1);
    const sign = async (kid: string) =>
      signTicket(ticketPayload({ kid }), (worker as unknown as { privateKey: CryptoKey }).privateKey);
    expect((await keyring.verify(await sign(worker.kid))).kid).toBe("test-kid");
    await worker.rotateKey("rotated-kid");
    expect((await keyring.verify(await sign("rotated-kid"))).kid).toBe("rotated-kid");
    expect(worker.authFailures).toEqual([]);
    // A kid the worker does not know either stays rejected.
    await expect(keyring.verify(await sign("forged-kid"))).rejects.toBeInstanceOf(TicketError);
  });

  it("a wrong runner secret is refused by the worker", async () => {
    const client = new WorkerClient({ apiUrl: worker.url, runnerId: worker.runnerId, secret: "wrong-secret-0123456789" });
    await expect(new TicketKeyring({ client }).init()).rejects.toThrow(/401/);
    expect(worker.authFailures.at(-1)).toMatch(/bad_signature/);
  });
});

describe("VIGIL_API_URL_FILE (the local stack's direct worker URL, which moves on every hot reload)", () => {
  it("is read into the config, and followed: the URL changes when the file does, VIGIL_API_URL while it is unusable", () => {
    expect(loadConfig({ ...BASE, VIGIL_API_URL_FILE: "/tmp/x" }).apiUrlFile).toBe("/tmp/x");
    const dir = mkdtempSync(join(tmpdir(), "vigil-url-"));
    try {
      const file = join(dir, "url");
      const url = followUrlFile(file, "http://127.0.0.1:8787");
      expect(url()).toBe("http://127.0.0.1:8787"); // not written yet
      writeFileSync(file, "http://127.0.0.1:40001\n");
      expect(url()).toBe("http://127.0.0.1:40001");
      writeFileSync(file, "http://127.0.0.1:5/\n");
      expect(url()).toBe("http://127.0.0.1:5");
      writeFileSync(file, "not a url");
      expect(url()).toBe("http://127.0.0.1:8787");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
