/**
 * The planted bugs of the mutation check (scripts/mutation.ts). Each is one small, plausible mistake in a core path,
 * found by an exact snippet that must occur exactly once in its file, and the test files that should notice it.
 * Chosen to be observable: no mutant here is equivalent to the original (each changes what a client, a runner or
 * the worker sees). `source: "issue 12"` marks the six bugs of the mutation table, verbatim.
 */

export const MODULES = ["job-queue", "webhooks", "keys", "lease-loop", "job"] as const;

export interface Mutant {
  id: string;
  module: (typeof MODULES)[number] | "out-of-scope";
  file: string;
  find: string;
  replace: string;
  description: string;
  /** vitest project: "worker" (workerd) or "runner" (Node). */
  project: "worker" | "runner";
  tests: string[];
  source?: string;
  /** Why a survivor is acceptable, shown in the results; only where one is expected. */
  note?: string;
  /** When an earlier run found this mutant surviving: what survived it and which test was written to kill it. */
  history?: string;
}

type Spec = Omit<Mutant, "module" | "file" | "project">;

const JQ = "worker/src/durable/job-queue.ts";
const OUTBOX = "worker/src/durable/outbox.ts";
const WH = "worker/src/lib/webhooks.ts";
const KEYS = "worker/src/keys/service.ts";
const LL = "gpu-runner/src/lease-loop.ts";
const JOB = "gpu-runner/src/job.ts";

const W = (...f: string[]) => f.map((x) => `test/worker/${x}.test.ts`);
const R = (...f: string[]) => f.map((x) => `test/runner/${x}.test.ts`);

const jobQueue: Spec[] = [
  {
    id: "jq-gate-expiry",
    history: "survived the suite per issue 12; killed by queue.test.ts's late-report case (e27a46b, the queue/outbox work)",
    source: "issue 12",
    description: "durable/job-queue.ts: the lease-expiry check in the report gate disabled",
    find: `    if (job.status === "canceled") return { ok: false, code: "job_canceled", detail: "the job was canceled" };
    if (job.status !== "running" || (job.lease_expires_at ?? 0) <= Date.now()) {`,
    replace: `    if (job.status === "canceled") return { ok: false, code: "job_canceled", detail: "the job was canceled" };
    if (job.status !== "running") {`,
    tests: W("queue"),
  },
  {
    id: "jq-purge-status",
    history: "survived the suite per issue 12; killed by retention.test.ts's queued/running case (the queue/outbox work)",
    source: "issue 12",
    description: "durable/job-queue.ts: the retention purge ignores job status (deletes running jobs)",
    find: `"SELECT * FROM jobs WHERE created_at < ? AND status IN ('succeeded','failed','canceled') LIMIT ?"`,
    replace: `"SELECT * FROM jobs WHERE created_at < ? LIMIT ?"`,
    tests: W("retention"),
  },
  {
    id: "jq-heartbeat-expiry",
    description: "heartbeat extends a lease that has already expired",
    find: `    if (job.status === "canceled") return { ok: true, lease_expires_at: job.lease_expires_at ?? Date.now(), cancel: true };
    if (job.status !== "running" || (job.lease_expires_at ?? 0) <= Date.now()) {`,
    replace: `    if (job.status === "canceled") return { ok: true, lease_expires_at: job.lease_expires_at ?? Date.now(), cancel: true };
    if (job.status !== "running") {`,
    tests: W("queue"),
  },
  {
    id: "jq-heartbeat-cancel",
    description: "heartbeat on a canceled job does not tell the runner to stop (cancel: false)",
    find: `return { ok: true, lease_expires_at: job.lease_expires_at ?? Date.now(), cancel: true };`,
    replace: `return { ok: true, lease_expires_at: job.lease_expires_at ?? Date.now(), cancel: false };`,
    tests: W("queue"),
  },
  {
    id: "jq-gate-lease-id",
    description: "report gate accepts a report from a lease that is no longer held (lease id check removed)",
    find: `    if (job.lease_id !== leaseId) return { ok: false, code: "lease_lost", detail: "the lease is no longer held" };
    if (job.status === "canceled") return { ok: false, code: "job_canceled", detail: "the job was canceled" };`,
    replace: `    if (job.status === "canceled") return { ok: false, code: "job_canceled", detail: "the job was canceled" };`,
    tests: W("queue"),
  },
  {
    id: "jq-report-body",
    description: "a second report for the same lease with a different body is answered as a replay",
    find: `if (prior.kind === kind && prior.body_hash === bodyHash) return { ok: true, job, first: false };`,
    replace: `if (prior.kind === kind) return { ok: true, job, first: false };`,
    tests: W("queue"),
  },
  {
    id: "jq-fail-boundary",
    description: "a retryable failure on the last attempt re-queues once more (attempts < max -> <=)",
    find: `if (retryable && job.attempts < job.max_attempts) return`,
    replace: `if (retryable && job.attempts <= job.max_attempts) return`,
    tests: W("queue"),
  },
  {
    id: "jq-fail-retryable",
    description: "a non-retryable failure is re-queued like a retryable one",
    find: `if (retryable && job.attempts < job.max_attempts) return`,
    replace: `if (job.attempts < job.max_attempts) return`,
    tests: W("queue"),
  },
  {
    id: "jq-release-refund",
    description: "release spends an attempt instead of refunding it",
    find: `      refundAttempt ? 1 : 0,`,
    replace: `      0,`,
    tests: W("queue"),
  },
  {
    id: "jq-expire-boundary",
    description: "an expired lease on the last attempt is re-queued instead of failing runner_crashed (>= -> >)",
    find: `      if (job.attempts >= job.max_attempts) {
        await this.finish(job, "failed", {`,
    replace: `      if (job.attempts > job.max_attempts) {
        await this.finish(job, "failed", {`,
    tests: W("queue"),
  },
  {
    id: "jq-take-order",
    history: "survived queue.test.ts in the first run (20:31Z); killed by mutation-queue.test.ts (oldest first)",
    description: "lease hands out the newest queued job first instead of the oldest",
    find: `ORDER BY queued_at, id LIMIT ?`,
    replace: `ORDER BY queued_at DESC, id DESC LIMIT ?`,
    tests: W("queue", "mutation-queue"),
  },
  {
    id: "jq-take-attempts",
    description: "a lease does not count an attempt",
    find: `runner_id = ?, attempts = attempts + 1,`,
    replace: `runner_id = ?, attempts = attempts,`,
    tests: W("queue"),
  },
  {
    id: "jq-take-max-jobs",
    history: "survived queue.test.ts (20:31Z); killed by mutation-queue.test.ts (at most max_jobs)",
    description: "lease hands out one job more than max_jobs",
    find: `        ...operations,
        maxJobs,`,
    replace: `        ...operations,
        maxJobs + 1,`,
    tests: W("queue", "mutation-queue"),
  },
  {
    id: "jq-take-operations",
    history: "survived queue.test.ts (20:31Z); killed by mutation-queue.test.ts (only the operations asked for)",
    description: "lease hands out jobs of operations the runner did not ask for",
    find: "WHERE status = 'queued' AND operation IN (${marks}) ORDER BY",
    replace: "WHERE status = 'queued' AND (operation IN (${marks}) OR 1) ORDER BY",
    tests: W("queue", "mutation-queue"),
  },
  {
    id: "jq-idem-conflict",
    description: "an idempotency key reused with a different request is replayed instead of 409",
    find: `    if (hit.request_hash !== hash) return { kind: "conflict" };\n`,
    replace: ``,
    tests: W("jobs"),
  },
  {
    id: "jq-idem-ttl",
    description: "idempotency lookup ignores live keys (expires_at > now flipped)",
    find: `"SELECT request_hash, job_id FROM idempotency WHERE tenant_id = ? AND key = ? AND expires_at > ?"`,
    replace: `"SELECT request_hash, job_id FROM idempotency WHERE tenant_id = ? AND key = ? AND expires_at < ?"`,
    tests: W("jobs"),
  },
  {
    id: "jq-cancel-finished",
    history: "survived jobs.test.ts (20:31Z); killed by mutation-queue.test.ts (409 job_not_cancelable)",
    description: "a succeeded or failed job can be canceled",
    find: `    if (job.status === "succeeded" || job.status === "failed") return { error: "not_cancelable" };\n`,
    replace: ``,
    tests: W("jobs", "mutation-queue"),
  },
  {
    id: "jq-get-tenant",
    history:
      "survived jobs.test.ts + auth-roles.test.ts (20:31Z); auth.test.ts's isolation test kills it, which the mutant had not listed; mutation-queue.test.ts adds cancel/delete/list",
    description: "get() returns another tenant's job",
    find: `return job && job.tenant_id === tenantId ? job : null;`,
    replace: `return job;`,
    tests: W("jobs", "auth", "mutation-queue"),
  },
  {
    id: "jq-list-cursor",
    description: "list pagination repeats the boundary row on the next page (created_at < -> <=, id < -> <=)",
    find: `where.push("(created_at < ? OR (created_at = ? AND id < ?))");`,
    replace: `where.push("(created_at < ? OR (created_at = ? AND id <= ?))");`,
    tests: W("jobs"),
  },
  {
    id: "jq-list-more",
    history: "survived jobs.test.ts (20:31Z); killed by mutation-queue.test.ts (a page ending at the last job)",
    description: "list says there is a next page when there is none (rows > limit -> >=)",
    find: `const more = rows.length > opts.limit;`,
    replace: `const more = rows.length >= opts.limit;`,
    tests: W("jobs", "mutation-queue"),
  },
  {
    id: "jq-finish-waiters",
    description: "a terminal transition does not wake Prefer: wait callers",
    find: `    for (const resolve of [...(this.terminalWaiters.get(job.id) ?? [])]) resolve(done);\n`,
    replace: ``,
    tests: W("jobs"),
  },
  {
    id: "jq-finish-outbox",
    description: "a terminal transition writes no job.<status> event to the outbox",
    find: "      this.outbox.add(row.tenant_id, `job.${status}`, { job: row });\n",
    replace: ``,
    tests: W("outbox", "webhooks"),
  },
  {
    id: "jq-nonce-replay",
    description: "a used runner nonce is not refused (the seen-check removed; the insert then replaces it)",
    find: `    if (seen.length) return false;
    this.sql.exec("INSERT INTO nonces (runner_id, nonce, expires_at) VALUES (?, ?, ?)", runnerId, nonce, expiresAt);`,
    replace: `    this.sql.exec("INSERT OR REPLACE INTO nonces (runner_id, nonce, expires_at) VALUES (?, ?, ?)", runnerId, nonce, expiresAt);`,
    tests: W("queue"),
  },
  {
    id: "jq-alarm-earlier",
    history:
      "survived queue.test.ts + outbox.test.ts (20:31Z); killed by mutation-queue.test.ts (the alarm moves to the lease expiry)",
    description: "scheduleAlarm never moves an alarm earlier (a new lease waits for housekeeping to expire)",
    find: `if (current === null || at < current) await this.ctx.storage.setAlarm(at);`,
    replace: `if (current === null) await this.ctx.storage.setAlarm(at);`,
    tests: W("queue", "outbox", "mutation-queue"),
  },
  {
    id: "jq-metrics-running",
    history: "survived queue.test.ts (20:31Z); killed by mutation-queue.test.ts (queued and running counted apart)",
    description: "queue metrics report queued jobs as running",
    find: `const r = rows.find((x) => x.operation === operation && x.status === "running");`,
    replace: `const r = rows.find((x) => x.operation === operation && x.status === "queued");`,
    tests: W("queue", "mutation-queue"),
  },
];

/** The JobQueue's transactional outbox (issue 12 defect 4): part of the job queue module. */
const outbox: Spec[] = [
  {
    id: "ob-retry-delay",
    description: "outbox: an unconfirmed event is first re-sent after 60 s instead of 30 s (backoff exponent off by one)",
    find: `return Math.min(MAX_RETRY_MS, CONFIRM_TIMEOUT_MS * 2 ** Math.max(0, sends - 1));`,
    replace: `return Math.min(MAX_RETRY_MS, CONFIRM_TIMEOUT_MS * 2 ** Math.max(0, sends));`,
    tests: W("outbox"),
  },
  {
    id: "ob-no-claim",
    description: "outbox: a sent row is not claimed, so every flush sends it again at once",
    find: `        now + retryDelayMs((row.sends as number) + 1),`,
    replace: `        now,`,
    tests: W("outbox"),
  },
  {
    id: "ob-body-not-kept",
    history:
      "survived outbox.test.ts (20:57Z), whose re-sent plain event rebuilds identically; killed by mutation-outbox.test.ts (a job event with signed URLs)",
    description: "outbox: the built event body is not stored, so a re-send carries a rebuilt body",
    find: `"UPDATE outbox SET event = ? WHERE id = ? AND event IS NULL"`,
    replace: `"UPDATE outbox SET event = ? WHERE id = ? AND 0"`,
    tests: W("outbox", "mutation-outbox"),
  },
  {
    id: "ob-confirm-noop",
    description: "outbox: confirm() removes nothing, so a delivered event is sent again and again",
    find: `"DELETE FROM outbox WHERE id = ?"`,
    replace: `"DELETE FROM outbox WHERE id = ? AND 0"`,
    tests: W("outbox"),
  },
  {
    id: "ob-event-id",
    description: "outbox: the event gets a new id instead of its outbox id (the consumer's confirm misses it)",
    find: `      id: row.id as string,`,
    replace: `      id: newId("evt"),`,
    tests: W("outbox", "webhooks"),
  },
  {
    id: "ob-alarm-late",
    description: "outbox: the alarm for an unsent event is an hour late",
    find: `"SELECT MIN(next_send_at) AS t FROM outbox"`,
    replace: `"SELECT MIN(next_send_at) + 3600000 AS t FROM outbox"`,
    tests: W("outbox"),
  },
];

const webhooks: Spec[] = [
  {
    id: "wh-previous-secret-expiry",
    history: "survived the suite per issue 12; killed by webhook-delivery.test.ts's after-the-grace case (the queue/outbox work)",
    source: "issue 12",
    description: "lib/webhooks.ts: the previous secret's expiry check after rotation removed",
    find: `if (ep.previous_secret && (ep.previous_secret_expires_at ?? 0) > started)`,
    replace: `if (ep.previous_secret)`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-signed-string",
    source: "issue 12",
    description: "the Standard Webhooks signed string reordered",
    find: "new TextEncoder().encode(`${id}.${timestamp}.${body}`)",
    replace: "new TextEncoder().encode(`${timestamp}.${id}.${body}`)",
    tests: W("webhooks"),
  },
  {
    id: "wh-one-signature",
    description: "during a secret rotation only the first signature is sent",
    find: `"webhook-signature": sigs.join(" "),`,
    replace: `"webhook-signature": sigs.slice(0, 1).join(" "),`,
    tests: W("webhooks"),
  },
  {
    id: "wh-id-unstable",
    description: "webhook-id is a fresh id per delivery attempt instead of the event id",
    find: `    "webhook-id": id,`,
    replace: `    "webhook-id": newId("msg"),`,
    tests: W("webhooks", "webhook-delivery", "outbox"),
  },
  {
    id: "wh-timestamp-stale",
    description: "webhook-timestamp is 10 minutes old (outside the receiver's tolerance)",
    find: `Math.floor(started / 1000), body);`,
    replace: `Math.floor(started / 1000) - 600, body);`,
    tests: W("webhooks"),
  },
  {
    id: "wh-filter-removed",
    history: "survived webhooks.test.ts + webhook-delivery.test.ts (20:31Z); killed by mutation-webhooks.test.ts",
    description: "fan-out ignores the endpoint's event subscription",
    find: `    if (!events.includes("*") && !events.includes(event.type)) continue;\n`,
    replace: ``,
    tests: W("webhooks", "webhook-delivery", "mutation-webhooks"),
  },
  {
    id: "wh-wildcard",
    history: "survived webhooks.test.ts + webhook-delivery.test.ts (20:31Z); killed by mutation-webhooks.test.ts",
    description: "fan-out ignores the * subscription",
    find: `if (!events.includes("*") && !events.includes(event.type)) continue;`,
    replace: `if (!events.includes(event.type)) continue;`,
    tests: W("webhooks", "webhook-delivery", "mutation-webhooks"),
  },
  {
    id: "wh-fanout-resend-attempted",
    description: "a re-delivered fan-out re-sends deliveries that already have attempts (duplicates)",
    find: `if (!prior || prior.status !== "pending") continue;`,
    replace: `if (!prior) continue;`,
    tests: W("webhooks", "webhook-delivery", "outbox"),
  },
  {
    id: "wh-deleted-endpoint",
    description: "a deleted endpoint's delivery is recorded failed instead of canceled",
    find: `await record("canceled", null, "endpoint deleted");`,
    replace: `await record("failed", null, "endpoint deleted");`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-ssrf-recheck",
    description: "the SSRF check at delivery time is skipped",
    find: `  if (!verdict.ok) {
    await record("failed", null, \`blocked: \${verdict.reason}\`);`,
    replace: `  if (!verdict.ok && Date.now() < 0) {
    await record("failed", null, \`blocked: \${verdict.reason}\`);`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-3xx-ok",
    description: "a 3xx answer counts as delivered",
    find: `const ok = res.status >= 200 && res.status < 300;`,
    replace: `const ok = res.status >= 200 && res.status < 400;`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-redirect-follow",
    description: "deliveries follow redirects",
    find: `      redirect: "manual",`,
    replace: `      redirect: "follow",`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-attempt-cap",
    description: "the 10th attempt does not give up (attempt >= MAX -> >)",
    find: `const last = attempt >= MAX_DELIVERY_ATTEMPTS;`,
    replace: `const last = attempt > MAX_DELIVERY_ATTEMPTS;`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-never-failed",
    description: "a delivery that gave up is recorded retrying, never failed",
    find: `await record(ok ? "succeeded" : last ? "failed" : "retrying", res.status, ok ? null : \`HTTP \${res.status}\`);`,
    replace: `await record(ok ? "succeeded" : "retrying", res.status, ok ? null : \`HTTP \${res.status}\`);`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-backoff-exponent",
    description: "backoff starts at 20 s instead of 10 s (exponent off by one)",
    find: `return Math.min(3600, 10 * 2 ** Math.max(0, attempt - 1));`,
    replace: `return Math.min(3600, 10 * 2 ** Math.max(0, attempt));`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-backoff-cap",
    description: "backoff is capped at 10 hours instead of one",
    find: `return Math.min(3600, 10 * 2 ** Math.max(0, attempt - 1));`,
    replace: `return Math.min(36000, 10 * 2 ** Math.max(0, attempt - 1));`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-prior-attempts",
    description: "a re-sent stalled delivery counts its attempts from 1 again (prior_attempts ignored)",
    find: `const attempt = (body.prior_attempts ?? 0) + message.attempts;`,
    replace: `const attempt = message.attempts;`,
    tests: W("webhooks", "webhook-delivery", "outbox"),
  },
  {
    id: "wh-no-confirm",
    description: "the consumer never confirms a fanned-out event to the outbox",
    find: `        await jobQueue(env).confirmEvent(body.event.id);\n`,
    replace: ``,
    tests: W("outbox", "webhooks"),
  },
  {
    id: "wh-failed-acked",
    description: "a failed delivery is acked instead of retried with backoff",
    find: `else message.retry({ delaySeconds: backoffSeconds(attempt) });`,
    replace: `else message.ack();`,
    tests: W("webhooks", "webhook-delivery"),
  },
  {
    id: "wh-stalled-too-early",
    description: "a delivery still inside its backoff is re-sent as stalled",
    find: `    if (due + STALLED_AFTER_MS > now) continue;\n`,
    replace: ``,
    tests: W("webhooks", "webhook-delivery", "outbox"),
  },
  {
    id: "wh-attempt-log",
    description: "every attempt is logged as attempt 1",
    find: `).bind(msg.delivery_id, attempt, code, error, Date.now() - started, started),`,
    replace: `).bind(msg.delivery_id, 1, code, error, Date.now() - started, started),`,
    tests: W("webhooks", "webhook-delivery"),
  },
];

const keys: Spec[] = [
  {
    id: "keys-revoked",
    description: "a revoked key still authenticates",
    find: `  if (row.revoked_at !== null) throw unauthorized("api_key_revoked", "the API key has been revoked");`,
    replace: `  if (row.revoked_at !== null && Date.now() < 0) throw unauthorized("api_key_revoked", "the API key has been revoked");`,
    tests: W("auth", "auth-rotation"),
  },
  {
    id: "keys-expired",
    description: "an expired (rotated) key still authenticates",
    find: `  if (row.expires_at !== null && row.expires_at <= Date.now())
    throw unauthorized("api_key_expired"`,
    replace: `  if (row.expires_at !== null && row.expires_at <= Date.now() - 3_600_000)
    throw unauthorized("api_key_expired"`,
    tests: W("auth", "auth-rotation"),
  },
  {
    id: "keys-dev-key-prefix",
    description: "any token that starts like the dev key is taken for it",
    find: `if (env.VIGIL_DEV_KEY && sameString(token, env.VIGIL_DEV_KEY)) {`,
    replace: `if (env.VIGIL_DEV_KEY && token.startsWith(env.VIGIL_DEV_KEY.slice(0, 8))) {`,
    tests: W("auth", "auth-roles", "mutation-keys"),
  },
  {
    id: "keys-secret-unchecked",
    description: "a known key id authenticates with any secret",
    find: `if (!row || !sameString(hash, row.secret_hash)) throw`,
    replace: `if (!row) throw`,
    tests: W("auth"),
  },
  {
    id: "keys-admin-implies",
    description: "admin no longer implies the other scopes",
    find: `return p.scopes.includes("admin") || p.scopes.includes(scope);`,
    replace: `return p.scopes.includes(scope);`,
    tests: W("auth", "auth-roles"),
  },
  {
    id: "keys-any-scope",
    description: "any scope passes every scope check",
    find: `return p.scopes.includes("admin") || p.scopes.includes(scope);`,
    replace: `return p.scopes.length > 0;`,
    tests: W("auth", "auth-roles"),
  },
  {
    id: "keys-scope-status",
    description: "a missing scope is 401 instead of 403",
    find: `if (!hasScope(p, scope)) throw new ApiError(403, "insufficient_scope"`,
    replace: `if (!hasScope(p, scope)) throw new ApiError(401, "insufficient_scope"`,
    tests: W("auth", "auth-roles"),
  },
  {
    id: "keys-superseded-manager",
    description: "a key in its rotation grace period can still mint and rotate keys",
    find: `  if (principal.expiresAt !== null)
    throw new ApiError(403, "api_key_superseded"`,
    replace: `  if (principal.expiresAt !== null && Date.now() < 0)
    throw new ApiError(403, "api_key_superseded"`,
    tests: W("auth-roles", "auth-rotation"),
  },
  {
    id: "keys-rotate-revoked",
    description: "rotating a revoked key is reported as already rotated, not revoked",
    find: `  if (k.revoked_at !== null) return new ApiError(409, "api_key_revoked", "a revoked key cannot be rotated");\n`,
    replace: ``,
    tests: W("auth-rotation", "auth"),
  },
  {
    id: "keys-rotate-expired",
    description: "an expired key's rotation is checked only by the SQL claim (api_key_expired never said)",
    find: `  if (k.expires_at !== null && k.expires_at <= now)
    return new ApiError(409, "api_key_expired"`,
    replace: `  if (k.expires_at !== null && k.expires_at <= now && now < 0)
    return new ApiError(409, "api_key_expired"`,
    tests: W("auth-rotation"),
  },
  {
    id: "keys-rotate-no-revoke",
    description: "rotation without grace does not revoke the old key",
    find: `revoked_at = CASE WHEN ?3 > 0 THEN revoked_at ELSE ?4 END`,
    replace: `revoked_at = revoked_at`,
    tests: W("auth", "auth-rotation"),
  },
  {
    id: "keys-rotate-grace",
    history:
      "survived auth.test.ts + auth-rotation.test.ts (20:31Z), which wait out graces of seconds; killed by mutation-keys.test.ts (an hour, to the second)",
    description: "rotation's grace period is a tenth of what was asked",
    find: `THEN ?4 + ?3 * 1000 ELSE expires_at END`,
    replace: `THEN ?4 + ?3 * 100 ELSE expires_at END`,
    tests: W("auth", "auth-rotation", "mutation-keys"),
  },
  {
    id: "keys-revoke-cache",
    description: "revoking a key does not drop it from this isolate's auth cache (works for 30 s more)",
    find: `  await env.DB.prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?").bind(now, key.id).run();
  forgetApiKey(key.id);`,
    replace: `  await env.DB.prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?").bind(now, key.id).run();`,
    tests: W("auth", "auth-roles"),
  },
  {
    id: "keys-other-tenant-key",
    description: "another tenant's key id is found (tenant condition dropped from the lookup)",
    find: `"SELECT * FROM api_keys WHERE id = ? AND tenant_id = ?"`,
    replace: `"SELECT * FROM api_keys WHERE id = ? AND ? IS NOT NULL"`,
    tests: W("auth-roles"),
  },
  {
    id: "keys-list-all-tenants",
    description: "listing keys returns every tenant's keys",
    find: `"SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC"`,
    replace: `"SELECT * FROM api_keys WHERE ? IS NOT NULL ORDER BY created_at DESC"`,
    tests: W("auth-roles"),
  },
  {
    id: "keys-operator-tenant-403",
    description: "a tenant key on an operator route is 401 invalid_operator_key instead of 403 operator_required",
    find: `  if (tenantKey)
    throw new ApiError(
      403,`,
    replace: `  if (tenantKey && Date.now() < 0)
    throw new ApiError(
      403,`,
    tests: W("auth-roles"),
  },
  {
    id: "keys-operator-on-tenant-route",
    description: "the operator credential on a tenant route is 401 instead of 403 tenant_key_required",
    find: `    if (await isOperatorToken(env, token))
      throw new ApiError(403, "tenant_key_required"`,
    replace: `    if ((await isOperatorToken(env, token)) && Date.now() < 0)
      throw new ApiError(403, "tenant_key_required"`,
    tests: W("auth-roles"),
  },
  {
    id: "keys-operator-min-length",
    description: "a short operator secret is accepted as configured",
    find: `  if (configured.length < MIN_OPERATOR_KEY_LENGTH) return false;\n`,
    replace: `  if (configured.length === 0) return false;\n`,
    tests: W("auth-roles"),
  },
  {
    id: "keys-cache-ttl",
    description: "auth cache entries never expire",
    find: `    if (e.expiresAt <= this.now()) {`,
    replace: `    if (e.expiresAt < 0) {`,
    tests: W("auth"),
  },
  {
    id: "keys-cache-bound",
    description: "the auth cache holds one entry more than its bound (>= -> >)",
    find: `if (this.entries.size >= this.maxEntries) this.entries.delete`,
    replace: `if (this.entries.size > this.maxEntries) this.entries.delete`,
    tests: W("auth"),
  },
  {
    id: "keys-minted-scopes",
    description: "a minted key is stored with the admin scope instead of the scopes asked for",
    find: `.bind(row.id, row.tenant_id, row.name, row.secret_hash, row.scopes, row.created_at)`,
    replace: `.bind(row.id, row.tenant_id, row.name, row.secret_hash, '["admin"]', row.created_at)`,
    tests: W("auth", "auth-roles"),
  },
  {
    id: "keys-rotate-scopes",
    description: "a rotated key's successor gets the admin scope instead of the old key's scopes",
    find: `const next = await keyRow(old.tenant_id, old.name, JSON.parse(old.scopes) as Scope[], newKeyMaterial());`,
    replace: `const next = await keyRow(old.tenant_id, old.name, ["admin"], newKeyMaterial());`,
    tests: W("auth", "auth-rotation"),
  },
];

const RUNNER_LOOP = R("lease-loop", "lease-expiry", "runner-paths");

const leaseLoop: Spec[] = [
  {
    id: "ll-free-slots",
    description: "the loop leases up to `concurrency` jobs whatever is already in flight",
    find: `const free = this.options.concurrency - this.inflight.size;`,
    replace: `const free = this.options.concurrency;`,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-full-boundary",
    description: "with every slot busy the loop still long-polls, for 0 jobs (free <= 0 -> < 0)",
    find: `if (free <= 0) {`,
    replace: `if (free < 0) {`,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-operations",
    description: "the lease request names no operations",
    find: `      operations: this.options.operations,`,
    replace: `      operations: [],`,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-slot-freed",
    description: "a finished job never frees its slot",
    find: `        this.inflight.delete(job.job_id);\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-duplicate-lease",
    description: "a job leased twice (a worker re-sending it) runs twice at once",
    find: `    if (this.inflight.has(job.job_id)) return;\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-grace-ignored",
    description: "stop() releases in-flight work at once instead of waiting the grace period",
    find: `sleep(graceMs).then(() => false)`,
    replace: `sleep(0).then(() => false)`,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-no-abort-after-grace",
    description: "after the grace period in-flight jobs are not aborted and released",
    find: `      this.shutdownJobs.abort(new Error("shutdown"));\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-stop-keeps-leasing",
    description: "stop() does not stop the lease loop",
    find: `    this.stopController.abort(new Error("stopping"));\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-error-backoff",
    description: "a failed lease request is retried at once, without backoff",
    find: `await sleep(500 + backoffMs(this.consecutiveErrors, 500, 15_000), stop).catch(() => {});`,
    replace: `await sleep(0, stop).catch(() => {});`,
    tests: RUNNER_LOOP,
  },
  {
    id: "ll-error-count-reset",
    history:
      "survived the runner tests (20:14Z): only a random delay changes; killed by runner-paths.test.ts with the jitter pinned",
    description: "a successful lease does not reset the error count (backoff keeps growing after recovery)",
    find: `        this.consecutiveErrors = 0;\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
];

const job: Spec[] = [
  {
    id: "job-heartbeat-interval",
    history: "survived the suite per issue 12 (the fake worker never expired leases); killed by lease-expiry.test.ts",
    source: "issue 12",
    description: "gpu-runner/src/job.ts: heartbeat every full lease instead of a third",
    find: `const everyMs = Math.max(1000, Math.floor(leaseMs / 3));`,
    replace: `const everyMs = Math.max(1000, leaseMs);`,
    tests: R("lease-loop", "lease-expiry"),
  },
  {
    id: "job-heartbeat-once",
    description: "only the first heartbeat is sent",
    find: `if (!stopped && !abort.signal.aborted) timer = setTimeout(beat, everyMs);`,
    replace: `if (!stopped && !abort.signal.aborted && Date.now() < 0) timer = setTimeout(beat, everyMs);`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-cancel-ignored",
    description: "a heartbeat answer cancel: true is ignored",
    find: `if (res.cancel) abort.abort(new CanceledByWorker("the job was canceled"));`,
    replace: `if (res.cancel && Date.now() < 0) abort.abort(new CanceledByWorker("the job was canceled"));`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-lease-lost-ignored",
    description: "a heartbeat answered 409 does not abort the job",
    find: `if (e instanceof LeaseLostError) abort.abort(e);`,
    replace: `if (e instanceof LeaseLostError && Date.now() < 0) abort.abort(e);`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-ticket-lease",
    description: "a ticket for another lease or attempt of the same job is accepted",
    find: `if (ticket.job_id !== job.job_id || ticket.lease_id !== job.lease_id || ticket.attempt !== job.attempt) {`,
    replace: `if (ticket.job_id !== job.job_id) {`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-unknown-op-release",
    description: "a leased operation without a pipeline is dropped instead of released",
    find: `    await report(d, RUNNER_ROUTES.release(job.job_id), { lease_id: job.lease_id }).catch(() => {});\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-retry-500",
    description: "a 500 from the object store is not retried (s >= 500 -> > 500)",
    find: `const RETRYABLE_STATUS = (s: number) => s === 408 || s === 429 || s >= 500;`,
    replace: `const RETRYABLE_STATUS = (s: number) => s === 408 || s === 429 || s > 500;`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-no-retries",
    description: "object downloads and uploads are tried once",
    find: `for (let attempt = 0; attempt < 4; attempt++) {`,
    replace: `for (let attempt = 0; attempt < 1; attempt++) {`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-download-status",
    description: "a 404 download is read as an empty input (input_size_mismatch instead of input_unavailable)",
    find: `  if (!isOk(status)) {
    discard(res);
    throw new RunnerError("input_unavailable"`,
    replace: `  if (!isOk(status) && status < 0) {
    discard(res);
    throw new RunnerError("input_unavailable"`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-download-boundary",
    description: "an input of exactly the ticket's size is refused as too large (> -> >=)",
    find: `if (n + chunk.length > input.bytes) {`,
    replace: `if (n + chunk.length >= input.bytes) {`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-upload-status",
    description: "an upload the object store refused still completes the job",
    find: `if (!isOk(status)) throw new RunnerError("upload_failed", \`upload of \${a.name}: HTTP \${status}\`, true);`,
    replace: `if (!isOk(status) && status < 0) throw new RunnerError("upload_failed", \`upload of \${a.name}: HTTP \${status}\`, true);`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-ticket-pixels",
    description: "the ticket's pixel limit is ignored (only the runner's own applies)",
    find: `maxPixels: Math.min(ticket.limits.max_pixels, d.maxPixels),`,
    replace: `maxPixels: d.maxPixels,`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-heartbeat-after-complete",
    description: "heartbeats go on after the job is reported complete",
    find: `    stopHeartbeat();
    await report(d, RUNNER_ROUTES.complete(job.job_id),`,
    replace: `    await report(d, RUNNER_ROUTES.complete(job.job_id),`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-lease-lost-reports",
    description: "after losing its lease the runner still reports the job failed",
    find: `    if (reason instanceof LeaseLostError || e instanceof LeaseLostError) return "lease_lost";\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-cancel-reports",
    description: "a job the worker canceled is reported failed",
    find: `    if (reason instanceof CanceledByWorker) return "canceled";\n`,
    replace: ``,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-shutdown-no-release",
    description: "a job aborted by shutdown is not released back to the queue",
    find: `      await report(d, RUNNER_ROUTES.release(job.job_id), { lease_id: job.lease_id });
      return "released";`,
    replace: `      return "released";`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-fail-retryable",
    description: "every failure is reported retryable",
    find: `      retryable: err.retryable,`,
    replace: `      retryable: true,`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-fail-code",
    description: "every failure is reported as internal_error",
    find: `      error: { type: err.code, message: err.message.slice(0, 2000) },`,
    replace: `      error: { type: "internal_error", message: err.message.slice(0, 2000) },`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-ticket-reason",
    description: 'every rejected ticket is counted under reason "error" (the TicketError code dropped)',
    find: `const reason = e instanceof TicketError ? e.code : "error";`,
    replace: `const reason = "error";`,
    tests: RUNNER_LOOP,
  },
  {
    id: "job-orphan-artifact",
    description: "an artifact the ticket has no URL for crashes as a retryable internal error instead of a typed one",
    find: `      if (!target)
        throw new RunnerError("internal_error"`,
    replace: `      if (!target && Date.now() < 0)
        throw new RunnerError("internal_error"`,
    tests: RUNNER_LOOP,
  },
];

const outOfScope: Mutant[] = [
  {
    id: "wm-false-positive-rate",
    source: "issue 12",
    module: "out-of-scope",
    description: "the watermark false-positive threshold 1e-6 -> 1e-5",
    file: "gpu-runner/src/operations/watermark-code.ts",
    find: `export const FALSE_POSITIVE_RATE = 1e-6;`,
    replace: `export const FALSE_POSITIVE_RATE = 1e-5;`,
    project: "runner",
    tests: R("watermark-code"),
  },
];

const inModule = (module: Mutant["module"], file: string, project: Mutant["project"], list: Spec[]): Mutant[] =>
  list.map((m) => ({ ...m, module, file, project }));

export const MUTANTS: Mutant[] = [
  ...inModule("job-queue", JQ, "worker", jobQueue),
  ...inModule("job-queue", OUTBOX, "worker", outbox),
  ...inModule("webhooks", WH, "worker", webhooks),
  ...inModule("keys", KEYS, "worker", keys),
  ...inModule("lease-loop", LL, "runner", leaseLoop),
  ...inModule("job", JOB, "runner", job),
  ...outOfScope,
];
