import { createHmac, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TicketPayload } from "../../contract/protocol.ts";
import {
  CompleteRequest,
  FailRequest,
  HeartbeatRequest,
  LeaseRequest,
  ReleaseRequest,
  RUNNER_ROUTES,
} from "../../contract/protocol.ts";
import { verifyRunnerSignature } from "../../contract/runner-auth.ts";
import { generateTicketKeyPair, importTicketPrivateKey, signTicket } from "../../contract/ticket.ts";

/**
 * A small stand-in for the worker's runner routes, speaking the real protocol: runner requests must carry
 * valid HMAC signatures, tickets are real Ed25519 tickets, and object URLs are HMAC-signed and served here.
 * Each job can be configured to misbehave (bad ticket, cancel, 409 on complete) to exercise the runner.
 *
 * Leases really expire, as in the worker's JobQueue: a lease ends at the `lease_expires_at` second the runner was
 * told (a heartbeat moves it to now + leaseSeconds); a heartbeat or report after that is answered 409 lease_lost,
 * and the job goes back to the queue with its attempt spent (failed `lease_expired` once maxAttempts are spent).
 * Request bodies are checked against the protocol's schemas (400 otherwise), and a lease hands out only jobs of the
 * operations the runner asked for.
 */

export interface FakeJobSpec {
  operation?: string;
  params?: Record<string, unknown>;
  inputs: Buffer[];
  outputs?: string[];
  models?: TicketPayload["models"];
  leaseSeconds?: number;
  /**
   * Corrupt the ticket: "tamper" changes a signed field, "foreign" signs with another key, "mismatch" names another
   * job, "other-lease" / "other-attempt" are validly signed for this job but another lease or attempt of it.
   */
  badTicket?: "tamper" | "foreign" | "mismatch" | "expired" | "other-lease" | "other-attempt";
  /** Hand the job to a runner even if it did not ask for its operation (a worker and runner at different versions). */
  ignoreOperations?: boolean;
  /** The ticket's pixel limit (limits.max_pixels); 50 MP. */
  maxPixels?: number;
  /** The first N reads of this job's inputs are answered 500 (a flaky object store). */
  failReads?: number;
  /** Uploads of this job's outputs are answered with this status instead of stored. */
  rejectUploads?: number;
  /** The lease response lists this job twice (a worker bug or a retried response): the runner must run it once. */
  duplicateInLease?: boolean;
  /** Answer `cancel: true` to heartbeats. */
  cancel?: boolean;
  /** The lease is taken away (expired and re-leased elsewhere) right after it is handed out: reports get 409. */
  loseLease?: boolean;
  /** Attempts before an expired lease fails the job instead of re-queueing it (the worker's max_attempts); 3. */
  maxAttempts?: number;
  /**
   * A congested link: the heartbeats of the first `attempts` leases are held `ms` before the fake handles them,
   * so they arrive that much later than the runner sent them.
   */
  slowHeartbeats?: { ms: number; attempts: number };
}

export interface FakeJob {
  id: string;
  leaseId: string;
  spec: FakeJobSpec;
  state: "queued" | "leased" | "completed" | "failed" | "released";
  heartbeats: number;
  /** Attempt of the current (or last) lease; 0 while never leased. */
  attempt: number;
  /** When the current lease ends (ms since the epoch): the second the runner was told, times 1000. */
  leaseExpiresAt?: number;
  /** For each accepted heartbeat: how many ms of the lease were left when it arrived. */
  heartbeatMarginsMs: number[];
  /** Leases that ran out before the runner reported (each re-queued the job or failed it). */
  expiredLeases: number;
  /** Lease ids this job was handed, in order. */
  leaseIds: string[];
  complete?: Record<string, unknown>;
  fail?: { error: { type: string; message: string }; retryable: boolean };
  released: boolean;
  inputReads: number;
  /** Reports answered 409 because the lease was gone. */
  lostReports?: number;
}

export class FakeWorker {
  readonly runnerId = "runner-test";
  readonly secret = "test-runner-secret-0123456789";
  kid = "test-kid";
  publicKey = "";
  url = "";
  readonly jobs: FakeJob[] = [];
  readonly objects = new Map<string, { body: Buffer; contentType: string }>();
  readonly authFailures: string[] = [];
  /** Requests refused 400 because their body did not match the protocol schema. */
  readonly badRequests: string[] = [];
  /** Every lease request's body, in order. */
  readonly leaseRequests: { max_jobs: number; operations: string[]; at: number }[] = [];
  /** The most jobs leased (not yet reported or expired) at once. */
  maxLeasedAtOnce = 0;
  leaseCalls = 0;
  /** Fail the next N lease calls with 503 (worker trouble; the runner's client retries these itself). */
  failNextLeases = 0;
  /** Answer the next N lease calls 200 with a body that is not a lease response (the lease loop's own error path). */
  malformedLeases = 0;
  private server?: Server;
  private privateKey?: CryptoKey;
  private foreignKey?: CryptoKey;
  private readonly urlSecret = "object-url-secret";
  private waiters: (() => void)[] = [];

  async start(): Promise<this> {
    const pair = await generateTicketKeyPair();
    this.publicKey = pair.publicKey;
    this.privateKey = await importTicketPrivateKey(pair.privateKey);
    this.foreignKey = await importTicketPrivateKey((await generateTicketKeyPair()).privateKey);
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** Key rotation: new tickets are signed with a fresh key under a new kid, which ticket-keys now lists. */
  async rotateKey(kid: string): Promise<void> {
    const pair = await generateTicketKeyPair();
    this.publicKey = pair.publicKey;
    this.privateKey = await importTicketPrivateKey(pair.privateKey);
    this.kid = kid;
  }

  enqueue(spec: FakeJobSpec): FakeJob {
    const job: FakeJob = {
      id: `job_${randomUUID()}`,
      leaseId: "",
      spec,
      state: "queued",
      heartbeats: 0,
      attempt: 0,
      heartbeatMarginsMs: [],
      expiredLeases: 0,
      leaseIds: [],
      released: false,
      inputReads: 0,
    };
    this.jobs.push(job);
    spec.inputs.forEach((body, i) => this.objects.set(`in/${job.id}/${i}`, { body, contentType: "application/octet-stream" }));
    for (const w of this.waiters.splice(0)) w();
    return job;
  }

  /** Resolves when `pred` holds, polling; fails after timeoutMs. */
  async waitFor(pred: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error("timed out waiting for fake worker state");
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private signUrl(method: string, key: string): string {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const sig = createHmac("sha256", this.urlSecret).update(`${method}\n${key}\n${exp}`).digest("hex");
    return `${this.url}/objects/${key}?exp=${exp}&sig=${sig}`;
  }

  private async ticketFor(job: FakeJob, leaseExpires: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload: TicketPayload = {
      v: 1,
      job_id: job.spec.badTicket === "mismatch" ? "job_someone_else" : job.id,
      lease_id: job.spec.badTicket === "other-lease" ? `lease_${randomUUID()}` : job.leaseId,
      attempt: job.spec.badTicket === "other-attempt" ? job.attempt + 1 : job.attempt,
      operation: job.spec.operation ?? "inspect",
      params: job.spec.params ?? {},
      models: job.spec.models ?? [],
      inputs: job.spec.inputs.map((b, i) => ({
        name: String(i),
        url: this.signUrl("GET", `in/${job.id}/${i}`),
        content_type: "image/jpeg",
        bytes: b.length,
      })),
      outputs: (job.spec.outputs ?? []).map((name) => ({
        name,
        url: this.signUrl("PUT", `out/${job.id}/${name}`),
        key: `out/${job.id}/${name}`,
      })),
      limits: { max_pixels: job.spec.maxPixels ?? 50_000_000 },
      issued_at: now,
      expires_at: job.spec.badTicket === "expired" ? now - 1 : leaseExpires + 60,
      kid: this.kid,
    };
    const token = await signTicket(payload, job.spec.badTicket === "foreign" ? this.foreignKey! : this.privateKey!);
    if (job.spec.badTicket !== "tamper") return token;
    // Swap the payload for one with more generous limits, keeping the original signature.
    const [, sig] = token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...payload, limits: { max_pixels: 1e9 } })).toString("base64url");
    return `${forged}.${sig}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", this.url);
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
    };
    if (url.pathname === "/healthz") return send(200, { ok: true });
    if (url.pathname.startsWith("/objects/")) return this.handleObject(req, res, url, body);
    const auth = await verifyRunnerSignature({
      headers: new Headers(req.headers as Record<string, string>),
      secret: this.secret,
      method: req.method!,
      url: url.href,
      body,
    });
    if (!auth.ok) {
      this.authFailures.push(`${req.method} ${url.pathname}: ${auth.reason}`);
      return send(401, { type: "unauthorized", reason: auth.reason });
    }
    const json = body.length ? JSON.parse(body.toString()) : {};
    if (url.pathname === RUNNER_ROUTES.ticketKeys) return send(200, { keys: [{ kid: this.kid, public_key: this.publicKey }] });
    const m = /^\/internal\/runner\/jobs\/([^/]+)\/(heartbeat|complete|fail|release)$/.exec(url.pathname);
    // The worker validates every body against the protocol (routes/runner.ts parseBody): so does the fake.
    const schema =
      url.pathname === RUNNER_ROUTES.lease
        ? LeaseRequest
        : { heartbeat: HeartbeatRequest, complete: CompleteRequest, fail: FailRequest, release: ReleaseRequest }[m?.[2] ?? ""];
    if (schema && !schema.safeParse(json).success) {
      this.badRequests.push(`${req.method} ${url.pathname}: ${body.toString().slice(0, 200)}`);
      return send(400, { type: "invalid_request" });
    }
    if (url.pathname === RUNNER_ROUTES.lease) return this.handleLease(json, send, () => res.destroyed || req.socket.destroyed);
    const job = m ? this.jobs.find((j) => j.id === m[1]) : undefined;
    if (!m || !job) return send(404, { type: "not_found" });
    const slow = job.spec.slowHeartbeats;
    if (m[2] === "heartbeat" && slow && job.attempt <= slow.attempts) await new Promise((r) => setTimeout(r, slow.ms));
    this.expireLeases();
    if (json.lease_id !== job.leaseId || job.state !== "leased" || job.spec.loseLease) {
      job.lostReports = (job.lostReports ?? 0) + 1;
      return send(409, { type: "lease_lost" });
    }
    if (m[2] === "heartbeat") {
      job.heartbeats++;
      job.heartbeatMarginsMs.push(job.leaseExpiresAt! - Date.now());
      const expires = Math.floor(Date.now() / 1000) + (job.spec.leaseSeconds ?? 30);
      job.leaseExpiresAt = expires * 1000;
      return send(200, { lease_expires_at: expires, cancel: job.spec.cancel ?? false });
    }
    if (m[2] === "complete") {
      job.state = "completed";
      job.complete = json;
    } else if (m[2] === "fail") {
      job.state = "failed";
      job.fail = json;
    } else {
      job.state = "released";
      job.released = true;
    }
    return send(200, { ok: true });
  }

  private async handleLease(
    json: { max_jobs: number; wait_seconds: number; operations: string[] },
    send: (s: number, j: unknown) => void,
    gone: () => boolean,
  ) {
    this.leaseCalls++;
    this.leaseRequests.push({ max_jobs: json.max_jobs, operations: json.operations, at: Date.now() });
    if (this.failNextLeases > 0) {
      this.failNextLeases--;
      return send(503, { type: "unavailable" });
    }
    if (this.malformedLeases > 0) {
      this.malformedLeases--;
      return send(200, { jobs: "not a list" });
    }
    const deadline = Date.now() + json.wait_seconds * 1000;
    const leasable = () => {
      this.expireLeases();
      return this.jobs.filter(
        (j) => j.state === "queued" && (j.spec.ignoreOperations || json.operations.includes(j.spec.operation ?? "inspect")),
      );
    };
    let queued = leasable();
    while (queued.length === 0 && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, Math.max(0, deadline - Date.now()));
      });
      queued = leasable();
    }
    // A runner that gave up on this long-poll (shutdown) must not be handed jobs it will never see.
    if (gone()) return;
    const picked = queued.slice(0, json.max_jobs);
    const out = [];
    for (const job of picked) {
      job.state = "leased";
      job.leaseId = `lease_${randomUUID()}`;
      job.leaseIds.push(job.leaseId);
      job.attempt++;
      const expires = Math.floor(Date.now() / 1000) + (job.spec.leaseSeconds ?? 30);
      job.leaseExpiresAt = expires * 1000;
      const leased = {
        job_id: job.id,
        lease_id: job.leaseId,
        attempt: job.attempt,
        lease_expires_at: expires,
        ticket: await this.ticketFor(job, expires),
      };
      out.push(leased);
      if (job.spec.duplicateInLease) out.push(leased);
    }
    this.maxLeasedAtOnce = Math.max(this.maxLeasedAtOnce, this.jobs.filter((j) => j.state === "leased").length);
    send(200, { jobs: out });
  }

  /** The JobQueue's expireLeases(): every lease past its end re-queues its job, or fails it on the last attempt. */
  private expireLeases(): void {
    const now = Date.now();
    let requeued = false;
    for (const job of this.jobs) {
      if (job.state !== "leased" || job.leaseExpiresAt === undefined || job.leaseExpiresAt > now) continue;
      job.expiredLeases++;
      job.leaseExpiresAt = undefined;
      if (job.attempt >= (job.spec.maxAttempts ?? 3)) {
        job.state = "failed";
        job.fail = { error: { type: "lease_expired", message: `lease ${job.leaseId} expired` }, retryable: false };
      } else {
        job.state = "queued";
        requeued = true;
      }
    }
    if (requeued) for (const w of this.waiters.splice(0)) w();
  }

  private handleObject(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void {
    const key = decodeURIComponent(url.pathname.slice("/objects/".length));
    const exp = Number(url.searchParams.get("exp"));
    const expected = createHmac("sha256", this.urlSecret).update(`${req.method}\n${key}\n${exp}`).digest("hex");
    if (url.searchParams.get("sig") !== expected || exp < Date.now() / 1000) {
      res.writeHead(403).end("bad signature");
      return;
    }
    if (req.method === "GET") {
      const obj = this.objects.get(key);
      const job = this.jobs.find((j) => key.startsWith(`in/${j.id}/`));
      if (job) job.inputReads++;
      if (job?.spec.failReads && job.inputReads <= job.spec.failReads) res.writeHead(500).end("object store trouble");
      else if (!obj) res.writeHead(404).end();
      else res.writeHead(200, { "content-type": obj.contentType, "content-length": obj.body.length }).end(obj.body);
      return;
    }
    if (req.method === "PUT") {
      const job = this.jobs.find((j) => key.startsWith(`out/${j.id}/`));
      if (job?.spec.rejectUploads) {
        res.writeHead(job.spec.rejectUploads).end("refused");
        return;
      }
      this.objects.set(key, { body, contentType: String(req.headers["content-type"]) });
      res.writeHead(200).end();
      return;
    }
    res.writeHead(405).end();
  }
}
