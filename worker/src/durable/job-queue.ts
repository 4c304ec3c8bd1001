import { DurableObject } from "cloudflare:workers";
import { base64urlDecode, base64urlEncode, utf8 } from "../../../contract/encoding.ts";
import { getOperation, RUNNER_OPERATION_NAMES, runsOnRunner } from "../../../contract/operations.ts";
import { isTerminalStatus, type Artifact, type JobStatus } from "../../../contract/protocol.ts";
import type { AppEnv } from "../env.ts";
import { newId } from "../lib/ids.ts";
import { Outbox } from "./outbox.ts";

/**
 * JobQueue: the single, strongly consistent source of truth for jobs, leases, idempotency keys,
 * runner nonces and the webhook outbox. One instance (named "global") serialises every state
 * transition, so "two runners race for one job" cannot hand it out twice: each RPC's SQL runs without
 * interleaving. Terminal transitions write their `job.<status>` event in the same transaction (outbox.ts).
 *
 * Worker-run operations (protect, verify: `runs_on: "worker"` in the contract) are parent jobs here too: created
 * `running`, never leased, ended by the worker (settle) or by a stage: their stages are child jobs (`parent_id`),
 * and a child that fails or is canceled fails its running parent with the child's error, in the same transaction.
 * Children send no `job.*` events of their own: a client subscribed to `job.succeeded` gets one per request it
 * made, the parent's, not one per internal stage (which it never created and cannot map back to a request).
 */

export interface JobInput {
  key: string;
  content_type: string;
  bytes: number;
}

export interface JobError {
  type: string;
  message: string;
}

export interface JobRecord {
  id: string;
  tenant_id: string;
  operation: string;
  status: JobStatus;
  params: Record<string, unknown>;
  inputs: JobInput[];
  /** Public origin the job was created through; used to mint absolute URLs in webhooks. */
  origin: string;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  attempts: number;
  max_attempts: number;
  lease_id: string | null;
  lease_expires_at: number | null;
  runner_id: string | null;
  result: Record<string, unknown> | null;
  artifacts: Artifact[];
  error: JobError | null;
  last_error: JobError | null;
  metrics: Record<string, unknown> | null;
  // The three below are optional because job snapshots kept from before stages existed (outbox rows) lack them;
  // every record this object reads from its table has them.
  /** The worker-run job this one is a stage of; null for jobs a client created. */
  parent_id?: string | null;
  /** The stage's name in its parent ("face.analyze", "watermark.embed", "face.analyze.region", ...). */
  stage?: string | null;
  /** A parent's stage jobs, oldest first; empty for every other job. */
  stages?: StageRef[];
}

export interface StageRef {
  name: string;
  id: string;
  operation: string;
  status: JobStatus;
}

export interface CreateJobArgs {
  id: string;
  tenantId: string;
  operation: string;
  params: Record<string, unknown>;
  inputs: JobInput[];
  origin: string;
  idempotency?: { key: string; hash: string };
  /** `Prefer: wait`: hold the answer until the job ends or this many ms pass (a new job only, never a replay). */
  waitMs?: number;
  /** A stage of this running worker-run job (refused once the parent has ended). */
  parent?: { id: string; stage: string };
}

export type IdempotencyLookup = { kind: "none" } | { kind: "replay"; job: JobRecord } | { kind: "conflict" };

/**
 * A signed runner request's nonce. The runner routes hand it to the queue call that acts on the request, which burns
 * it in the same synchronous SQL as the state change: one Durable Object round trip per runner request, not a
 * separate useNonce() call before it (measured here at 2-4 ms on the completion report, which a waiting client waits
 * behind). A used nonce refuses the whole call.
 */
export interface NonceClaim {
  runnerId: string;
  nonce: string;
  /** Kept until then; past the replay window the timestamp check alone refuses the request. */
  expiresAt: number;
}

type Replayed = { ok: false; code: "replayed_nonce"; detail: string };
const REPLAYED: Replayed = { ok: false, code: "replayed_nonce", detail: "this nonce was already used" };

export type ReportOutcome =
  | { ok: true; job: JobRecord; first: boolean }
  | { ok: false; code: "not_found" | "lease_lost" | "job_canceled" | "report_conflict"; detail: string }
  | Replayed;

export type HeartbeatOutcome =
  | { ok: true; lease_expires_at: number; cancel: boolean }
  | { ok: false; code: "not_found" | "lease_lost"; detail: string }
  | Replayed;

export type LeaseOutcome = { ok: true; jobs: JobRecord[] } | Replayed;

export interface ListOptions {
  limit: number;
  cursor?: string;
  status?: string;
  operation?: string;
  /** Stage jobs of worker-run jobs are left out unless asked for. */
  include_children?: boolean;
}

/** How a worker-run job ends: its output, or the error that stopped it. */
export type Settlement = ({ status: "succeeded"; result: Record<string, unknown> } | { status: "failed"; error: JobError }) & {
  /** An event the outcome raises (verify's face_swap_detected), written with the job's own in the same transaction. */
  event?: { type: string; data: Record<string, unknown> };
};

/** What a terminal transition writes with the status (finish, end); `event` is an extra event in the same commit. */
interface EndFields {
  result?: Record<string, unknown>;
  artifacts?: Artifact[];
  metrics?: Record<string, unknown> | null;
  error?: JobError;
  event?: { type: string; data: Record<string, unknown> };
}

export interface QueueMetric {
  operation: string;
  queued: number;
  running: number;
  oldest_queued_age_seconds: number;
}

const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
const HOUSEKEEPING_MS = 10 * 60 * 1000;
const DELIVERY_SWEEP_MS = 5 * 60 * 1000;

type Row = Record<string, SqlStorageValue>;

function parseJson<T>(v: SqlStorageValue | undefined, fallback: T): T {
  return typeof v === "string" ? (JSON.parse(v) as T) : fallback;
}

function toRecord(r: Row): JobRecord {
  return {
    id: r.id as string,
    tenant_id: r.tenant_id as string,
    operation: r.operation as string,
    status: r.status as JobStatus,
    params: parseJson(r.params, {}),
    inputs: parseJson(r.inputs, []),
    origin: (r.origin as string) ?? "",
    created_at: r.created_at as number,
    started_at: (r.started_at as number | null) ?? null,
    completed_at: (r.completed_at as number | null) ?? null,
    attempts: r.attempts as number,
    max_attempts: r.max_attempts as number,
    lease_id: (r.lease_id as string | null) ?? null,
    lease_expires_at: (r.lease_expires_at as number | null) ?? null,
    runner_id: (r.runner_id as string | null) ?? null,
    result: parseJson(r.result, null),
    artifacts: parseJson(r.artifacts, []),
    error: parseJson(r.error, null),
    last_error: parseJson(r.last_error, null),
    metrics: parseJson(r.metrics, null),
    parent_id: (r.parent_id as string | null) ?? null,
    stage: (r.stage as string | null) ?? null,
    stages: [],
  };
}

export function encodeCursor(createdAt: number, id: string): string {
  return base64urlEncode(utf8(JSON.stringify([createdAt, id])));
}

function decodeCursor(cursor: string): [number, string] | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(base64urlDecode(cursor))) as unknown;
    if (Array.isArray(v) && typeof v[0] === "number" && typeof v[1] === "string") return [v[0], v[1]];
  } catch {
    // fall through: an unreadable cursor is the caller's error
  }
  return null;
}

export class JobQueue extends DurableObject<AppEnv> {
  private readonly sql: SqlStorage;
  private readonly outbox: Outbox;
  /** Resolvers for `Prefer: wait` callers, keyed by job id; called on terminal transitions. */
  private readonly terminalWaiters = new Map<string, Set<(job: JobRecord) => void>>();
  /** Long-polling lease calls; woken whenever a job becomes leasable. */
  private readonly leaseWaiters = new Set<() => void>();

  constructor(ctx: DurableObjectState, env: AppEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.migrate();
    this.outbox = new Outbox(this.sql, env);
    // After a restart, make sure unsent events and unexpired leases have an alarm, whatever became of the old one.
    void ctx.blockConcurrencyWhile(async () => {
      if ((await ctx.storage.getAlarm()) === null) await ctx.storage.setAlarm(this.nextAlarmAt());
    });
  }

  private migrate(): void {
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, operation TEXT NOT NULL, status TEXT NOT NULL,
        params TEXT NOT NULL, inputs TEXT NOT NULL, origin TEXT NOT NULL,
        created_at INTEGER NOT NULL, queued_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL,
        lease_id TEXT, lease_expires_at INTEGER, runner_id TEXT,
        result TEXT, artifacts TEXT, error TEXT, last_error TEXT, metrics TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_tenant_created ON jobs (tenant_id, created_at DESC, id DESC);
      CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, operation, queued_at, id);
      CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_expires_at);
      CREATE TABLE IF NOT EXISTS idempotency (
        tenant_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, job_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, key)
      );
      CREATE TABLE IF NOT EXISTS reports (
        job_id TEXT NOT NULL, lease_id TEXT NOT NULL, kind TEXT NOT NULL, body_hash TEXT NOT NULL,
        PRIMARY KEY (job_id, lease_id)
      );
      CREATE TABLE IF NOT EXISTS nonces (
        runner_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (runner_id, nonce)
      );
    `);
    // Stage jobs of worker-run jobs (protect, verify). Added to tables created before them.
    const columns = new Set(
      this.sql
        .exec("PRAGMA table_info(jobs)")
        .toArray()
        .map((c) => c.name as string),
    );
    if (!columns.has("parent_id")) this.sql.exec("ALTER TABLE jobs ADD COLUMN parent_id TEXT");
    if (!columns.has("stage")) this.sql.exec("ALTER TABLE jobs ADD COLUMN stage TEXT");
    this.sql.exec("CREATE INDEX IF NOT EXISTS jobs_parent ON jobs (parent_id, created_at)");
  }

  private row(id: string): JobRecord | null {
    const rows = this.sql.exec("SELECT * FROM jobs WHERE id = ?", id).toArray();
    return rows[0] ? this.withStages(toRecord(rows[0])) : null;
  }

  /** Fills a worker-run job's `stages` from its child rows (one indexed query; other jobs have none). */
  private withStages(job: JobRecord): JobRecord {
    const spec = getOperation(job.operation);
    if (!spec || runsOnRunner(spec)) return job;
    job.stages = this.sql
      .exec("SELECT id, operation, status, stage FROM jobs WHERE parent_id = ? ORDER BY created_at, id", job.id)
      .toArray()
      .map((r) => ({
        name: (r.stage as string | null) ?? (r.operation as string),
        id: r.id as string,
        operation: r.operation as string,
        status: r.status as JobStatus,
      }));
    return job;
  }

  // ---------------------------------------------------------------- client side

  lookupIdempotency(tenantId: string, key: string, hash: string): IdempotencyLookup {
    const rows = this.sql
      .exec(
        "SELECT request_hash, job_id FROM idempotency WHERE tenant_id = ? AND key = ? AND expires_at > ?",
        tenantId,
        key,
        Date.now(),
      )
      .toArray();
    const hit = rows[0];
    if (!hit) return { kind: "none" };
    if (hit.request_hash !== hash) return { kind: "conflict" };
    const job = this.row(hit.job_id as string);
    return job ? { kind: "replay", job } : { kind: "none" };
  }

  /**
   * Creates a job: queued for a runner, or running for a worker-run operation (the worker starts its stages right
   * after, in the same request). Re-checks the idempotency key atomically (two identical requests may race).
   */
  async create(
    args: CreateJobArgs,
  ): Promise<{ job: JobRecord; replayed: boolean; waitedMs?: number } | { conflict: true } | { parent_ended: true }> {
    if (args.idempotency) {
      const seen = this.lookupIdempotency(args.tenantId, args.idempotency.key, args.idempotency.hash);
      if (seen.kind === "conflict") return { conflict: true };
      if (seen.kind === "replay") return { job: seen.job, replayed: true };
    }
    const op = getOperation(args.operation);
    if (!op) throw new Error(`unknown operation ${args.operation}`);
    if (args.parent) {
      // A stage started by a hook that raced the parent's end (canceled, failed by another stage) would run for
      // nothing and never be read.
      const parent = this.get(args.tenantId, args.parent.id);
      if (!parent || parent.status !== "running") return { parent_ended: true };
    }
    const byWorker = !runsOnRunner(op);
    const now = Date.now();
    this.sql.exec(
      `INSERT INTO jobs (id, tenant_id, operation, status, params, inputs, origin, created_at, queued_at, started_at,
         attempts, max_attempts, parent_id, stage)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      args.id,
      args.tenantId,
      args.operation,
      byWorker ? "running" : "queued",
      JSON.stringify(args.params),
      JSON.stringify(args.inputs),
      args.origin,
      now,
      now,
      byWorker ? now : null,
      byWorker ? 1 : 0,
      op.limits.max_attempts,
      args.parent?.id ?? null,
      args.parent?.stage ?? null,
    );
    if (args.idempotency) {
      this.sql.exec(
        "INSERT OR REPLACE INTO idempotency (tenant_id, key, request_hash, job_id, expires_at) VALUES (?, ?, ?, ?, ?)",
        args.tenantId,
        args.idempotency.key,
        args.idempotency.hash,
        args.id,
        now + IDEMPOTENCY_TTL_MS,
      );
    }
    this.wakeLeasers();
    await this.scheduleAlarm();
    // Waiting here, not in a second waitFor() call, saves a round trip to this object on every waited create.
    if (args.waitMs && args.waitMs > 0) {
      const t0 = Date.now();
      const job = (await this.waitFor(args.tenantId, args.id, args.waitMs)) ?? this.row(args.id)!;
      return { job, replayed: false, waitedMs: Date.now() - t0 };
    }
    return { job: this.row(args.id)!, replayed: false };
  }

  ownerOf(id: string): string | null {
    const row = this.sql.exec("SELECT tenant_id FROM jobs WHERE id = ?", id).toArray()[0];
    return row ? (row.tenant_id as string) : null;
  }

  /** For the runner routes, which act across tenants: one call, where ownerOf-then-get was two round trips. */
  byId(id: string): JobRecord | null {
    return this.row(id);
  }

  get(tenantId: string, id: string): JobRecord | null {
    const job = this.row(id);
    return job && job.tenant_id === tenantId ? job : null;
  }

  /**
   * Replaces the stored result of a succeeded job, for results that hold more than should be kept once consumed
   * (face descriptors of identity flows). Returns whether a job was changed.
   */
  redactResult(tenantId: string, id: string, result: Record<string, unknown>): boolean {
    const cursor = this.sql.exec(
      "UPDATE jobs SET result = ? WHERE id = ? AND tenant_id = ? AND status = 'succeeded'",
      JSON.stringify(result),
      id,
      tenantId,
    );
    return cursor.rowsWritten > 0;
  }

  list(tenantId: string, opts: ListOptions): { data: JobRecord[]; next_cursor: string | null } | { error: "bad_cursor" } {
    const where = ["tenant_id = ?"];
    if (!opts.include_children) where.push("parent_id IS NULL");
    const binds: SqlStorageValue[] = [tenantId];
    if (opts.cursor) {
      const c = decodeCursor(opts.cursor);
      if (!c) return { error: "bad_cursor" };
      where.push("(created_at < ? OR (created_at = ? AND id < ?))");
      binds.push(c[0], c[0], c[1]);
    }
    if (opts.status) {
      where.push("status = ?");
      binds.push(opts.status);
    }
    if (opts.operation) {
      where.push("operation = ?");
      binds.push(opts.operation);
    }
    const rows = this.sql
      .exec(`SELECT * FROM jobs WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`, ...binds, opts.limit + 1)
      .toArray()
      .map((r) => this.withStages(toRecord(r)));
    const more = rows.length > opts.limit;
    const data = rows.slice(0, opts.limit);
    const last = data[data.length - 1];
    return { data, next_cursor: more && last ? encodeCursor(last.created_at, last.id) : null };
  }

  /** Resolves with the job once terminal, or with its current state after `timeoutMs`. */
  async waitFor(tenantId: string, id: string, timeoutMs: number): Promise<JobRecord | null> {
    const job = this.get(tenantId, id);
    if (!job || isTerminalStatus(job.status) || timeoutMs <= 0) return job;
    return new Promise((resolve) => {
      const set = this.terminalWaiters.get(id) ?? new Set();
      this.terminalWaiters.set(id, set);
      const done = (j: JobRecord) => {
        clearTimeout(timer);
        set.delete(done);
        resolve(j);
      };
      const timer = setTimeout(() => {
        set.delete(done);
        resolve(this.row(id));
      }, timeoutMs);
      set.add(done);
    });
  }

  async cancel(tenantId: string, id: string): Promise<{ job: JobRecord } | { error: "not_found" | "not_cancelable" }> {
    const job = this.get(tenantId, id);
    if (!job) return { error: "not_found" };
    if (job.status === "canceled") return { job };
    if (job.status === "succeeded" || job.status === "failed") return { error: "not_cancelable" };
    // A running job keeps its lease id so the runner's next heartbeat learns it was canceled.
    return { job: await this.finish(job, "canceled", { error: { type: "canceled", message: "canceled by the client" } }) };
  }

  /**
   * Ends a running worker-run job with its output or error (the worker calls it when the last stage's hook has
   * decided). Only the first call wins: `won` is false when the job had already ended (canceled, failed by a stage,
   * or settled by a racing hook), and the stored job is returned unchanged.
   */
  async settle(tenantId: string, id: string, outcome: Settlement): Promise<{ won: boolean; job: JobRecord } | null> {
    const job = this.get(tenantId, id);
    if (!job) return null;
    if (job.status !== "running" || runsOnRunner(getOperation(job.operation)!)) return { won: false, job };
    const done =
      outcome.status === "succeeded"
        ? await this.finish(job, "succeeded", { result: outcome.result, event: outcome.event })
        : await this.finish(job, "failed", { error: outcome.error, event: outcome.event });
    return { won: true, job: done };
  }

  /**
   * Deletes the job record, and a parent's stage jobs with it. Returns the removed records, the job first, so the
   * caller deletes their objects; empty when there is no such job.
   */
  remove(tenantId: string, id: string): JobRecord[] {
    const job = this.get(tenantId, id);
    if (!job) return [];
    const removed = [job];
    for (const stage of job.stages ?? []) removed.push(...this.remove(tenantId, stage.id));
    this.sql.exec("DELETE FROM jobs WHERE id = ?", id);
    this.sql.exec("DELETE FROM reports WHERE job_id = ?", id);
    this.sql.exec("DELETE FROM idempotency WHERE job_id = ?", id);
    return removed;
  }

  /**
   * Retention: removes finished jobs created before `cutoff` (up to `limit` rows looked at), a parent with its
   * stages, and returns every removed record for object deletion.
   */
  purgeBefore(cutoff: number, limit = 500): JobRecord[] {
    const rows = this.sql
      .exec("SELECT * FROM jobs WHERE created_at < ? AND status IN ('succeeded','failed','canceled') LIMIT ?", cutoff, limit)
      .toArray()
      .map(toRecord);
    // A stage goes with its parent (never younger than it): in this batch or, when the limit cut the parent off, a
    // later one.
    return rows.flatMap((job) => (job.parent_id ? [] : this.remove(job.tenant_id, job.id)));
  }

  // ---------------------------------------------------------------- runner side

  /** Records a runner nonce; false when it was already used inside the replay window. */
  useNonce(runnerId: string, nonce: string, expiresAt: number): boolean {
    const seen = this.sql.exec("SELECT 1 FROM nonces WHERE runner_id = ? AND nonce = ?", runnerId, nonce).toArray();
    if (seen.length) return false;
    this.sql.exec("INSERT INTO nonces (runner_id, nonce, expires_at) VALUES (?, ?, ?)", runnerId, nonce, expiresAt);
    return true;
  }

  /** Burns `claim` (absent for the worker's own calls, which are not runner requests); false when it was used. */
  private claim(claim: NonceClaim | undefined): boolean {
    return !claim || this.useNonce(claim.runnerId, claim.nonce, claim.expiresAt);
  }

  /**
   * Leases up to `maxJobs` queued jobs of `operations`, oldest first, waiting up to `waitMs` for one to
   * appear. Each gets a fresh lease id, attempt + 1 and a visibility timeout of the operation's lease_seconds.
   */
  async lease(
    runnerId: string,
    operations: string[],
    maxJobs: number,
    waitMs: number,
    nonce?: NonceClaim,
  ): Promise<LeaseOutcome> {
    if (!this.claim(nonce)) return REPLAYED;
    // Worker-run operations are never handed out, whatever a runner asks for.
    const known = operations.filter((o) => {
      const spec = getOperation(o);
      return spec !== undefined && runsOnRunner(spec);
    });
    if (!known.length) return { ok: true, jobs: [] };
    const deadline = Date.now() + waitMs;
    for (;;) {
      await this.expireLeases();
      const taken = this.take(runnerId, known, maxJobs);
      if (taken.length) {
        await this.scheduleAlarm();
        return { ok: true, jobs: taken };
      }
      const left = deadline - Date.now();
      if (left <= 0) return { ok: true, jobs: [] };
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.leaseWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.leaseWaiters.add(wake);
      });
    }
  }

  /**
   * A lease's length: the operation's (or the heartbeat's) seconds, capped by VIGIL_MAX_LEASE_SECONDS in local mode
   * only, for fault tests (bench/storm.ts) where a killed runner's job should be leasable again in seconds, not 30-120.
   */
  private leaseSeconds(seconds: number): number {
    const env = this.env as { VIGIL_MODE?: string; VIGIL_MAX_LEASE_SECONDS?: string };
    const cap = env.VIGIL_MODE === "local" ? Number(env.VIGIL_MAX_LEASE_SECONDS) : NaN;
    return cap > 0 ? Math.min(seconds, cap) : seconds;
  }

  private take(runnerId: string, operations: string[], maxJobs: number): JobRecord[] {
    const marks = operations.map(() => "?").join(",");
    const ids = this.sql
      .exec(
        `SELECT id FROM jobs WHERE status = 'queued' AND operation IN (${marks}) ORDER BY queued_at, id LIMIT ?`,
        ...operations,
        maxJobs,
      )
      .toArray()
      .map((r) => r.id as string);
    const now = Date.now();
    return ids.map((id) => {
      const job = this.row(id)!;
      const op = getOperation(job.operation)!;
      this.sql.exec(
        `UPDATE jobs SET status = 'running', lease_id = ?, lease_expires_at = ?, runner_id = ?, attempts = attempts + 1,
           started_at = COALESCE(started_at, ?) WHERE id = ?`,
        newId("lease"),
        now + this.leaseSeconds(op.limits.lease_seconds) * 1000,
        runnerId,
        now,
        id,
      );
      return this.row(id)!;
    });
  }

  heartbeat(jobId: string, leaseId: string, extendSeconds?: number, nonce?: NonceClaim): HeartbeatOutcome {
    if (!this.claim(nonce)) return REPLAYED;
    const job = this.row(jobId);
    if (!job) return { ok: false, code: "not_found", detail: "no such job" };
    if (job.lease_id !== leaseId) return { ok: false, code: "lease_lost", detail: "the lease is no longer held" };
    if (job.status === "canceled") return { ok: true, lease_expires_at: job.lease_expires_at ?? Date.now(), cancel: true };
    if (job.status !== "running" || (job.lease_expires_at ?? 0) <= Date.now()) {
      return { ok: false, code: "lease_lost", detail: "the lease has expired" };
    }
    const seconds = this.leaseSeconds(extendSeconds ?? getOperation(job.operation)!.limits.lease_seconds);
    const expires = Date.now() + seconds * 1000;
    this.sql.exec("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", expires, jobId);
    return { ok: true, lease_expires_at: expires, cancel: false };
  }

  /**
   * Common gate for complete/fail/release. A report already recorded for this lease is answered again
   * (same body) or refused (different body); otherwise the lease must be current and unexpired.
   */
  private gate(jobId: string, leaseId: string, kind: string, bodyHash: string): ReportOutcome | { proceed: JobRecord } {
    const job = this.row(jobId);
    if (!job) return { ok: false, code: "not_found", detail: "no such job" };
    const prior = this.sql
      .exec("SELECT kind, body_hash FROM reports WHERE job_id = ? AND lease_id = ?", jobId, leaseId)
      .toArray()[0];
    if (prior) {
      if (prior.kind === kind && prior.body_hash === bodyHash) return { ok: true, job, first: false };
      return {
        ok: false,
        code: "report_conflict",
        detail: `this lease already reported ${String(prior.kind)} with a different body`,
      };
    }
    if (job.lease_id !== leaseId) return { ok: false, code: "lease_lost", detail: "the lease is no longer held" };
    if (job.status === "canceled") return { ok: false, code: "job_canceled", detail: "the job was canceled" };
    if (job.status !== "running" || (job.lease_expires_at ?? 0) <= Date.now()) {
      return { ok: false, code: "lease_lost", detail: "the lease has expired" };
    }
    return { proceed: job };
  }

  private recordReport(jobId: string, leaseId: string, kind: string, bodyHash: string): void {
    this.sql.exec("INSERT INTO reports (job_id, lease_id, kind, body_hash) VALUES (?, ?, ?, ?)", jobId, leaseId, kind, bodyHash);
  }

  async complete(
    jobId: string,
    leaseId: string,
    bodyHash: string,
    report: { result: Record<string, unknown>; artifacts: Artifact[]; metrics?: Record<string, unknown> },
    nonce?: NonceClaim,
  ): Promise<ReportOutcome> {
    if (!this.claim(nonce)) return REPLAYED;
    const g = this.gate(jobId, leaseId, "complete", bodyHash);
    if (!("proceed" in g)) return g;
    this.recordReport(jobId, leaseId, "complete", bodyHash);
    const job = await this.finish(g.proceed, "succeeded", {
      result: report.result,
      artifacts: report.artifacts,
      metrics: report.metrics ?? null,
    });
    return { ok: true, job, first: true };
  }

  async fail(
    jobId: string,
    leaseId: string,
    bodyHash: string,
    error: JobError,
    retryable: boolean,
    nonce?: NonceClaim,
  ): Promise<ReportOutcome> {
    if (!this.claim(nonce)) return REPLAYED;
    const g = this.gate(jobId, leaseId, "fail", bodyHash);
    if (!("proceed" in g)) return g;
    this.recordReport(jobId, leaseId, "fail", bodyHash);
    const job = g.proceed;
    if (retryable && job.attempts < job.max_attempts) return { ok: true, job: this.requeue(job, error, false), first: true };
    return { ok: true, job: await this.finish(job, "failed", { error }), first: true };
  }

  /** Graceful shutdown: back to the queue without spending an attempt. */
  release(jobId: string, leaseId: string, bodyHash: string, nonce?: NonceClaim): ReportOutcome {
    if (!this.claim(nonce)) return REPLAYED;
    const g = this.gate(jobId, leaseId, "release", bodyHash);
    if (!("proceed" in g)) return g;
    this.recordReport(jobId, leaseId, "release", bodyHash);
    return { ok: true, job: this.requeue(g.proceed, g.proceed.last_error, true), first: true };
  }

  private requeue(job: JobRecord, lastError: JobError | null, refundAttempt: boolean): JobRecord {
    this.sql.exec(
      `UPDATE jobs SET status = 'queued', lease_id = NULL, lease_expires_at = NULL, runner_id = NULL, last_error = ?,
         attempts = attempts - ? WHERE id = ?`,
      lastError ? JSON.stringify(lastError) : null,
      refundAttempt ? 1 : 0,
      job.id,
    );
    this.wakeLeasers();
    return this.row(job.id)!;
  }

  /**
   * The one terminal transition. The state change and its `job.<status>` event commit together; the event is
   * sent after the commit (and again by the alarm until the webhook consumer confirms it).
   */
  private async finish(job: JobRecord, status: "succeeded" | "failed" | "canceled", fields: EndFields): Promise<JobRecord> {
    const ended: JobRecord[] = [];
    const done = this.ctx.storage.transactionSync(() => this.end(job, status, fields, ended));
    for (const resolve of [...(this.terminalWaiters.get(job.id) ?? [])]) resolve(done);
    this.terminalWaiters.delete(job.id);
    // The parent or stages the cascade ended with it.
    for (const row of ended.filter((r) => r.id !== job.id)) {
      for (const resolve of [...(this.terminalWaiters.get(row.id) ?? [])]) resolve(row);
      this.terminalWaiters.delete(row.id);
    }
    await this.outbox.flush();
    await this.scheduleAlarm();
    return done;
  }

  /**
   * finish()'s transaction body, and the cascade between a parent and its stages: canceling a parent cancels its
   * unfinished stages (a running one learns it on its next heartbeat), and a stage that fails or is canceled fails
   * its running parent with the stage's own error code and message. Every ended row goes to `ended`.
   */
  private end(job: JobRecord, status: "succeeded" | "failed" | "canceled", fields: EndFields, ended: JobRecord[]): JobRecord {
    this.sql.exec(
      `UPDATE jobs SET status = ?, completed_at = ?, lease_expires_at = NULL, result = ?, artifacts = ?, metrics = ?, error = ?
       WHERE id = ?`,
      status,
      Date.now(),
      fields.result ? JSON.stringify(fields.result) : null,
      JSON.stringify(fields.artifacts ?? []),
      fields.metrics ? JSON.stringify(fields.metrics) : null,
      fields.error ? JSON.stringify(fields.error) : null,
      job.id,
    );
    if (status !== "succeeded") {
      // The parent's answer is decided: unfinished stages would run for nothing.
      for (const stage of this.row(job.id)!.stages ?? []) {
        if (isTerminalStatus(stage.status)) continue;
        const child = this.row(stage.id)!;
        this.end(child, "canceled", { error: { type: "canceled", message: `its parent job ${job.id} ended ${status}` } }, ended);
      }
    }
    const row = this.row(job.id)!;
    ended.push(row);
    if (fields.event) this.outbox.add(row.tenant_id, fields.event.type, { data: fields.event.data });
    if (!row.parent_id) {
      this.outbox.add(row.tenant_id, `job.${status}`, { job: row });
    } else if (status !== "succeeded") {
      const parent = this.row(row.parent_id);
      if (parent && parent.status === "running") {
        const cause = row.error ?? { type: status, message: status };
        this.end(
          parent,
          "failed",
          { error: { type: cause.type, message: `stage ${row.stage ?? row.operation} (${row.id}): ${cause.message}` } },
          ended,
        );
      }
    }
    return this.row(job.id)!;
  }

  // ---------------------------------------------------------------- events

  /**
   * Any other event type for a tenant (e.g. "verification.face_swap_detected"), through the same outbox as the
   * job events: recorded, sent, and re-sent until the consumer confirms it. Returns the event id.
   */
  async emit(tenantId: string, type: string, data: Record<string, unknown>): Promise<string> {
    const id = this.outbox.add(tenantId, type, { data });
    await this.outbox.flush();
    await this.scheduleAlarm();
    return id;
  }

  /** The webhook consumer fanned `eventId` out to the tenant's endpoints: the outbox forgets it. */
  confirmEvent(eventId: string): boolean {
    return this.outbox.confirm(eventId);
  }

  /** Events not yet confirmed by the webhook consumer. */
  pendingEvents(): number {
    return this.outbox.pending();
  }

  // ---------------------------------------------------------------- timers

  /**
   * Re-queues every job whose lease has expired: its runner stopped heartbeating (crashed, was killed, or lost
   * the network). An expired lease spends its attempt, so a job whose input kills every runner that takes it
   * ends `failed` with `runner_crashed` after max_attempts instead of being retried forever.
   */
  private async expireLeases(): Promise<number> {
    const expired = this.sql
      .exec("SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at <= ?", Date.now())
      .toArray()
      .map(toRecord);
    for (const job of expired) {
      if (job.attempts >= job.max_attempts) {
        await this.finish(job, "failed", {
          error: {
            type: "runner_crashed",
            message: `the runner stopped reporting during attempt ${job.attempts} of ${job.max_attempts} (lease ${job.lease_id} expired); the job is not retried again`,
          },
        });
      } else {
        this.requeue(job, { type: "lease_expired", message: `lease ${job.lease_id} expired (attempt ${job.attempts})` }, false);
      }
    }
    return expired.length;
  }

  private wakeLeasers(): void {
    for (const wake of [...this.leaseWaiters]) wake();
  }

  private lastDeliverySweep = 0;

  /**
   * The outbox's watch continues past the fan-out: deliveries whose queue message was lost are re-sent
   * (lib/webhooks.ts resendStalledDeliveries), at most every DELIVERY_SWEEP_MS. Imported when needed:
   * lib/webhooks.ts itself calls into this object.
   */
  private async sweepStalledDeliveries(): Promise<void> {
    if (Date.now() - this.lastDeliverySweep < DELIVERY_SWEEP_MS) return;
    this.lastDeliverySweep = Date.now();
    try {
      const { resendStalledDeliveries } = await import("../lib/webhooks.ts");
      await resendStalledDeliveries(this.env);
    } catch (e) {
      console.error(JSON.stringify({ msg: "delivery_sweep_failed", error: String(e) }));
    }
  }

  /** The next time the alarm has work: a lease to expire, an outbox event to (re-)send, or housekeeping. */
  private nextAlarmAt(): number {
    const lease = this.sql.exec("SELECT MIN(lease_expires_at) AS t FROM jobs WHERE status = 'running'").one().t as number | null;
    const event = this.outbox.nextSendAt();
    return Math.min(lease ?? Infinity, event ?? Infinity, Date.now() + HOUSEKEEPING_MS);
  }

  private async scheduleAlarm(): Promise<void> {
    const at = this.nextAlarmAt();
    const current = await this.ctx.storage.getAlarm();
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    await this.expireLeases();
    await this.outbox.flush();
    await this.sweepStalledDeliveries();
    const now = Date.now();
    this.sql.exec("DELETE FROM nonces WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM idempotency WHERE expires_at <= ?", now);
    await this.ctx.storage.setAlarm(this.nextAlarmAt());
  }

  // ---------------------------------------------------------------- metrics

  metrics(): QueueMetric[] {
    const now = Date.now();
    const rows = this.sql
      .exec(
        `SELECT operation, status, COUNT(*) AS n, MIN(queued_at) AS oldest FROM jobs
         WHERE status IN ('queued','running') GROUP BY operation, status`,
      )
      .toArray();
    // Runner operations only: these gauges drive the autoscaler, and no runner takes a worker-run job.
    return RUNNER_OPERATION_NAMES.map((operation) => {
      const q = rows.find((r) => r.operation === operation && r.status === "queued");
      const r = rows.find((x) => x.operation === operation && x.status === "running");
      return {
        operation,
        queued: (q?.n as number) ?? 0,
        running: (r?.n as number) ?? 0,
        oldest_queued_age_seconds: q ? Math.max(0, (now - (q.oldest as number)) / 1000) : 0,
      };
    });
  }
}

type QueueMethods =
  | "lookupIdempotency"
  | "create"
  | "ownerOf"
  | "byId"
  | "get"
  | "redactResult"
  | "settle"
  | "list"
  | "waitFor"
  | "cancel"
  | "remove"
  | "purgeBefore"
  | "useNonce"
  | "lease"
  | "heartbeat"
  | "complete"
  | "fail"
  | "release"
  | "emit"
  | "confirmEvent"
  | "pendingEvents"
  | "metrics";

/**
 * The queue's RPC surface as plain async methods. Workers' generated RPC types turn `unknown`-typed
 * fields (params, result) into `never`; every value here is JSON-shaped, so the plain signatures hold.
 */
export type JobQueueApi = {
  [K in QueueMethods]: JobQueue[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** The one queue instance. */
export function jobQueue(env: AppEnv): JobQueueApi {
  return env.JOB_QUEUE.get(env.JOB_QUEUE.idFromName("global")) as unknown as JobQueueApi;
}
