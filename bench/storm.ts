import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { LocalStack, ROOT, type RunnerExit } from "../scripts/local-stack.ts";
import { WebhookReceiver } from "../test/e2e/harness.ts";
import { uniform as rng } from "../contract/random.ts";
import { stableJson } from "../contract/encoding.ts";

/**
 * Kill storm (issue 12's fault campaign), written to bench/results/storm.json: two supervised runners, STORM_JOBS
 * submissions of mixed operations (inspect, enhance.lowlight on small images, protect and verify flows, and poison
 * inputs), while runner 1 is killed with SIGKILL at seeded random moments (1-3 s after each restart is healthy),
 * STORM_KILLS times at least. A webhook endpoint on a local receiver that verifies every Standard Webhooks
 * signature records every delivery.
 *
 * Measured:
 * - lost: created jobs (flows' child jobs included) not terminal by the deadline;
 * - two different results: (a) runner-side, more than one "job succeeded" log line for a job across all runners'
 *   logs (a runner logs it only after the worker accepted its complete); (b) a job's result (output without its
 *   freshly signed URLs, plus the sha256 of each artifact's bytes) read when it ended differs from the one read at
 *   the end; (c) more than one distinct terminal event (webhook-id) for a job; and, for information, how many
 *   distinct results jobs of the same deterministic operation on the same input produced;
 * - webhook events missing: a terminal job whose job.<status> event never reached the receiver, and one with no
 *   succeeded delivery in the delivery log (D1's webhook_deliveries, read with `wrangler d1 execute` after the
 *   stack stops, because GET /v1/webhook_endpoints/{id}/deliveries lists only the latest 100; those 100 are
 *   cross-checked against the API).
 *
 * Leases: a killed runner's job is leasable again only when its lease expires (30-120 s by operation), so the
 * stack runs with VIGIL_MAX_LEASE_SECONDS (local mode only, read in JobQueue.leaseSeconds) = STORM_LEASE_SECONDS.
 * With max_attempts 3, a job whose three attempts were all killed ends failed (runner_crashed): counted, with
 * the rate the kill rate predicts.
 *
 * Run it on a tree nobody is editing: wrangler dev hot-reloads the worker on every source change, and a runner
 * restarted by the supervisor loads the runner code as it is on disk then. In a shared checkout, run it from a
 * snapshot (`git archive HEAD | tar -x -C DIR`, node_modules linked in); `worker_hot_reloads` in the result counts
 * the reloads wrangler logged, and must be 0 for the run to say anything about one version of the code. A first run
 * in the shared checkout saw 13, some of them to half-edited code (ReferenceErrors in /complete answered 500).
 *
 * STORM_WORKER_KILLS=N also kills wrangler (and workerd) with SIGKILL N times mid-storm and starts it again on the
 * same persisted state (LocalStack.restartWorker); clients retry with their Idempotency-Key.
 */

const JOBS = Number(process.env.STORM_JOBS ?? 500);
const MIN_KILLS = Number(process.env.STORM_KILLS ?? 100);
const SEED = Number(process.env.STORM_SEED ?? 12);
const LEASE_SECONDS = Number(process.env.STORM_LEASE_SECONDS ?? 5);
const WORKER_KILLS = Number(process.env.STORM_WORKER_KILLS ?? 0);
/** After the last kill, how long every job and event has to settle before it counts as lost or missing. */
const SETTLE_MS = Number(process.env.STORM_SETTLE_SECONDS ?? 180) * 1000;
const PORT = Number(process.env.STORM_PORT ?? 28767); // spine 28787, identity 28747
const STATE_BASE = process.env.BENCH_STATE_DIR ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
const VICTIM = 1;
const SUPERVISOR = { initialBackoffMs: 250, maxBackoffMs: 1000 };

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A PNG whose IDAT deflate stream is damaged but whose chunk CRCs are right: every up-front check passes. */
function corruptIdat(png: Buffer): Buffer {
  const out = Buffer.from(png);
  const at = out.indexOf("IDAT");
  const len = out.readUInt32BE(at - 4);
  for (let i = at + 4 + 2; i < at + 4 + len; i += 7) out[i] = out[i]! ^ 0x5a; // past the 2-byte zlib header
  out.writeUInt32BE(crc32(out.subarray(at, at + 4 + len)) >>> 0, at + 4 + len);
  return out;
}

type Kind = "inspect" | "lowlight" | "protect" | "verify" | "poison_truncated_jpeg" | "poison_corrupt_idat" | "poison_wide_png";

interface Input {
  kind: Kind;
  path: string;
  contentType: string;
  body: Buffer;
  flow: boolean;
}

interface Tracked {
  kind: Kind;
  id: string;
  flow: boolean;
  /** The parent flow, for a child job. */
  parent?: string;
  submittedAt: number;
  status?: string;
  endedAt?: number;
  attempts?: number;
  operation?: string;
  error?: string | null;
  resultHash?: string;
  stages?: Record<string, string | null>;
}

export async function runStormBench() {
  const t0 = Date.now();
  const random = rng(SEED);
  const photo = readFileSync(join(ROOT, "test/fixtures/photo.jpg"));
  const small = await sharp(photo).resize(128, 128).modulate({ brightness: 0.3 }).png().toBuffer();
  const inputs: Record<Kind, Input> = {
    inspect: { kind: "inspect", path: "/v1/inspect", contentType: "image/jpeg", body: photo, flow: false },
    lowlight: { kind: "lowlight", path: "/v1/enhance/lowlight", contentType: "image/png", body: small, flow: false },
    protect: { kind: "protect", path: "/v1/protect", contentType: "image/jpeg", body: photo, flow: true },
    verify: { kind: "verify", path: "/v1/verify", contentType: "image/jpeg", body: photo, flow: true },
    // Passes the worker's sniffing (magic bytes), fails to decode in the runner.
    poison_truncated_jpeg: {
      kind: "poison_truncated_jpeg",
      path: "/v1/inspect",
      contentType: "image/jpeg",
      body: photo.subarray(0, 2000),
      flow: false,
    },
    poison_corrupt_idat: {
      kind: "poison_corrupt_idat",
      path: "/v1/enhance/lowlight",
      contentType: "image/png",
      body: corruptIdat(small),
      flow: false,
    },
    // The issue's runner killer (face-api padded it to a 20000x20000 square); now refused up front with 422.
    poison_wide_png: {
      kind: "poison_wide_png",
      path: "/v1/protect",
      contentType: "image/png",
      body: await sharp({ create: { width: 20000, height: 50, channels: 3, background: "#808080" } })
        .png()
        .toBuffer(),
      flow: true,
    },
  };
  const mix: [Kind, number][] = [
    ["inspect", 0.36],
    ["lowlight", 0.2],
    ["protect", 0.16],
    ["verify", 0.16],
    ["poison_truncated_jpeg", 0.04],
    ["poison_corrupt_idat", 0.04],
    ["poison_wide_png", 0.04],
  ];
  const pick = (): Kind => {
    let x = random();
    for (const [k, w] of mix) if ((x -= w) < 0) return k;
    return "inspect";
  };

  const dir = mkdtempSync(join(STATE_BASE, "vigil-storm-"));
  const logs = { wrangler: join(dir, "wrangler.log"), runners: join(dir, "runners.log") };
  const stack = new LocalStack({
    port: PORT,
    persistTo: join(dir, "state"),
    envFile: join(dir, "dev.vars"),
    runners: 2,
    vars: { RATE_LIMIT_PER_MINUTE: "1000000", RATE_LIMIT_BURST: "100000", VIGIL_MAX_LEASE_SECONDS: String(LEASE_SECONDS) },
    // Kills come 1-3 s after each restart is healthy, so the victim never stays up the 30 s that resets the backoff,
    // and with the defaults it would soon sit 30 s between restarts. 250 ms doubling to 1 s still shows the backoff;
    // a kill cycle is then about 1 s backoff + 2.5-3 s start (measured in a 5-kill trial) + 1-3 s up.
    supervisor: SUPERVISOR,
    onOutput: (source, chunk) => appendFileSync(source === "wrangler" ? logs.wrangler : logs.runners, chunk),
  });
  const receiver = new WebhookReceiver();
  try {
    await stack.start();
    const key = stack.vars.VIGIL_DEV_KEY!;
    const auth = { authorization: `Bearer ${key}` };

    /** A request that survives a killed worker: network errors and 5xx are retried (same Idempotency-Key on creates). */
    let retries = 0;
    const request = async (path: string, init: RequestInit = {}, until = Date.now() + 120_000): Promise<Response> => {
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await fetch(stack.url + path, { ...init, headers: { ...auth, ...(init.headers as object) } });
          if (res.status < 500) return res;
          await res.arrayBuffer();
          if (Date.now() > until) return res;
        } catch (e) {
          if (Date.now() > until) throw e;
        }
        retries++;
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    };
    const getJson = async (path: string) => {
      const res = await request(path);
      return { status: res.status, data: (await res.json()) as any };
    };

    const hookUrl = await receiver.listen();
    const ep = (await request("/v1/webhook_endpoints", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: hookUrl, events: ["job.succeeded", "job.failed", "job.canceled"] }),
    }).then((r) => r.json())) as any;
    if (!ep.secret) throw new Error(`webhook endpoint not created: ${JSON.stringify(ep)}`);
    receiver.setSecret(ep.secret);

    const tracked = new Map<string, Tracked>();
    const rejected: { kind: Kind; status: number; type: string }[] = [];
    const submitErrors: string[] = [];
    let submitted = 0;
    let kills = 0;
    let workerKills = 0;
    let killing = true;

    /** Output without its signed URLs (minted fresh on every read), plus the sha256 of each artifact's bytes. */
    const resultHash = async (job: any): Promise<string> => {
      const output = { ...(job.output ?? {}) };
      const artifacts: Record<string, string> = {};
      for (const k of Object.keys(output)) {
        if (!k.endsWith("_url")) continue;
        const res = await fetch(output[k]);
        artifacts[k] = res.ok ? sha(new Uint8Array(await res.arrayBuffer())) : `HTTP ${res.status}`;
        delete output[k];
      }
      return sha(stableJson({ status: job.status, output, artifacts, error: job.error?.type ?? null }));
    };

    const submit = async (kind: Kind) => {
      const input = inputs[kind];
      const res = await request(input.path, {
        method: "POST",
        headers: { "content-type": input.contentType, "idempotency-key": crypto.randomUUID() },
        body: new Uint8Array(input.body),
      });
      const data = (await res.json()) as any;
      if (res.status === 202 || res.status === 200) {
        tracked.set(data.id, { kind, id: data.id, flow: input.flow, submittedAt: Date.now() });
      } else if (res.status >= 400 && res.status < 500) {
        rejected.push({
          kind,
          status: res.status,
          type: String(data.type ?? "")
            .split("/")
            .pop()!,
        });
      } else {
        submitErrors.push(`${kind}: HTTP ${res.status} ${JSON.stringify(data).slice(0, 200)}`);
      }
    };

    /** Polls every open item; a flow that ended brings its child jobs in to be tracked too. */
    const pollOnce = async () => {
      const open = [...tracked.values()].filter((t) => !t.status);
      await Promise.all(
        open.map(async (t) => {
          const { status, data } = await getJson(t.flow ? `/v1/identity/flows/${t.id}` : `/v1/jobs/${t.id}`);
          if (status !== 200 || data.status === "queued" || data.status === "running") return;
          t.status = data.status;
          t.endedAt = Date.now();
          t.error = data.error?.type ?? null;
          t.operation = data.operation;
          t.attempts = data.attempts;
          if (t.flow) {
            t.stages = data.stages;
            for (const id of Object.values<string | null>(data.stages ?? {})) {
              if (id && !tracked.has(id))
                tracked.set(id, { kind: t.kind, id, flow: false, parent: t.id, submittedAt: t.submittedAt });
            }
          } else t.resultHash = await resultHash(data);
        }),
      );
    };

    const killLog: { at_s: number; pid: number | undefined; up_ms: number }[] = [];
    const killer = (async () => {
      const k = rng(SEED + 1);
      const workerKillAt = new Set(
        Array.from({ length: WORKER_KILLS }, (_, i) => Math.round(((i + 1) * MIN_KILLS) / (WORKER_KILLS + 1))),
      );
      while (killing) {
        const runner = await stack.waitForRestarts(VICTIM, stack.runners[VICTIM]!.restarts, 120_000);
        const readyAt = Date.now();
        await sleep(1000 + 2000 * k());
        if (!killing) break;
        const child = runner.process;
        const exit = new Promise((r) => child.once("exit", r));
        stack.killRunner(VICTIM, "SIGKILL");
        killLog.push({ at_s: (Date.now() - t0) / 1000, pid: child.pid, up_ms: Date.now() - readyAt });
        kills++;
        await exit;
        if (workerKillAt.has(kills)) {
          workerKills++;
          console.log(`storm: killing the worker (wrangler) at kill ${kills}`);
          await stack.restartWorker("SIGKILL");
        }
        await stack.waitForRestarts(VICTIM, stack.runners[VICTIM]!.restarts + 1, 120_000).catch(() => {});
        if (kills % 10 === 0)
          console.log(
            `storm: ${kills} kills, ${submitted}/${JOBS} submitted, ${[...tracked.values()].filter((t) => t.status).length}/${tracked.size} ended`,
          );
      }
    })();

    // Submissions keep pace with the kills (about JOBS / MIN_KILLS per kill), with at most 24 items open, so that
    // jobs are running through the whole storm instead of all finishing before the first kills.
    const pollTimer = setInterval(() => void pollOnce().catch(() => {}), 1000);
    while (submitted < JOBS) {
      const open = [...tracked.values()].filter((t) => !t.status).length;
      const due = Math.ceil(((kills + 1) * JOBS) / MIN_KILLS);
      if (submitted < due && open < 24) {
        submitted++;
        await submit(pick()).catch((e) => submitErrors.push(String(e)));
      } else await sleep(100);
    }
    while (kills < MIN_KILLS) await sleep(200);
    killing = false;
    await killer;
    const lastKillAt = Date.now();
    const stormS = (lastKillAt - t0) / 1000;
    console.log(`storm: kills done (${kills}) after ${stormS.toFixed(0)} s; settling`);

    // Every created job must end, and every terminal job's event arrive, within SETTLE_MS of the last kill.
    const deadline = lastKillAt + SETTLE_MS;
    const eventType = (t: Tracked) => `job.${t.status}`;
    const jobsOnly = () => [...tracked.values()].filter((t) => !t.flow);
    while (Date.now() < deadline) {
      await pollOnce().catch(() => {});
      const allEnded = [...tracked.values()].every((t) => t.status);
      const allEvents = jobsOnly().every((t) => t.status && receiver.eventIdsFor(t.id, eventType(t)).size > 0);
      if (allEnded && allEvents) break;
      await sleep(1000);
    }
    clearInterval(pollTimer);
    const settledS = (Date.now() - lastKillAt) / 1000;
    await sleep(3000); // late re-deliveries, for the duplicate count

    // Re-read every terminal job: its result must be the one it ended with.
    const changed: string[] = [];
    for (const t of jobsOnly()) {
      if (!t.status) continue;
      const { data } = await getJson(`/v1/jobs/${t.id}`);
      if ((await resultHash(data)) !== t.resultHash) changed.push(t.id);
    }
    const apiDeliveries = (await getJson(`/v1/webhook_endpoints/${ep.id}/deliveries?limit=100`)).data.data as any[];

    // Runner-side: accepted completes per job, from every runner process's log (restarts included).
    const succeededLines = new Map<string, number>();
    for (const line of readFileSync(logs.runners, "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const l = JSON.parse(line);
        if (l.msg === "job succeeded") succeededLines.set(l.job_id, (succeededLines.get(l.job_id) ?? 0) + 1);
      } catch {
        /* a line cut by a kill */
      }
    }
    // Worker-side: how the report gate answered (a stale complete is refused with 409).
    const reports: Record<string, number> = {};
    let hotReloads = 0;
    for (const line of readFileSync(logs.wrangler, "utf8").split("\n")) {
      if (line.includes("Reloading local server")) hotReloads++;
      const m = /"method":"POST","path":"\/internal\/runner\/jobs\/[^/]+\/(complete|fail|release|heartbeat)","status":(\d+)/.exec(
        line,
      );
      if (m) reports[`${m[1]} ${m[2]}`] = (reports[`${m[1]} ${m[2]}`] ?? 0) + 1;
    }

    const exits: RunnerExit[] = [...stack.runnerExits];
    const supervisorTail = stack.supervisorLog.slice(-5);
    await stack.stop();

    // The whole delivery log, from D1 (the API lists the latest 100 only).
    const d1 = spawnSync(
      join(ROOT, "node_modules/.bin/wrangler"),
      [
        "d1",
        "execute",
        "DB",
        "--local",
        "--persist-to",
        join(dir, "state"),
        "--json",
        "--command",
        "SELECT event_id, event_type, status, attempts FROM webhook_deliveries",
      ],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
      },
    );
    if (d1.status !== 0) throw new Error(`wrangler d1 execute failed: ${d1.stderr}`);
    const deliveryRows = (JSON.parse(d1.stdout)[0].results ?? []) as {
      event_id: string;
      event_type: string;
      status: string;
      attempts: number;
    }[];
    const deliveredOk = new Set(deliveryRows.filter((r) => r.status === "succeeded").map((r) => r.event_id));
    const d1ById = new Map(deliveryRows.map((r) => [r.event_id, r]));
    const apiMismatch = apiDeliveries.filter((d) => d1ById.get(d.event_id)?.status !== d.status).length;

    // ---- tallies
    const all = [...tracked.values()];
    const jobs = jobsOnly();
    const lost = all.filter((t) => !t.status);
    const byKind: Record<string, Record<string, number>> = {};
    for (const t of all) {
      const k = `${t.kind}${t.flow ? " (flow)" : t.parent ? ` child ${t.operation ?? "?"}` : ""}`;
      byKind[k] ??= {};
      const s = t.status ? `${t.status}${t.error ? `: ${t.error}` : ""}` : "not ended";
      byKind[k][s] = (byKind[k][s] ?? 0) + 1;
    }
    const attempts: Record<string, number> = {};
    for (const t of jobs) if (t.attempts !== undefined) attempts[t.attempts] = (attempts[t.attempts] ?? 0) + 1;
    const crashed = jobs.filter((t) => t.error === "runner_crashed" || t.error === "lease_expired");
    const twoTerminalEvents = jobs.filter(
      (t) => receiver.eventIdsFor(t.id, "job.succeeded").size + receiver.eventIdsFor(t.id, "job.failed").size > 1,
    );
    const missingEvent = jobs.filter((t) => t.status && receiver.eventIdsFor(t.id, eventType(t)).size === 0);
    const missingDelivery = jobs.filter((t) => {
      if (!t.status) return false;
      const ids = receiver.eventIdsFor(t.id, eventType(t));
      return ![...ids].some((id) => deliveredOk.has(id));
    });
    // Same operation on the same bytes: deterministic pipelines give one result (protect embeds per-asset bits).
    const distinctResults: Record<string, number> = {};
    for (const t of jobs.filter((j) => j.status === "succeeded" && (j.kind === "inspect" || j.kind === "lowlight"))) {
      distinctResults[t.kind] ??= 0;
    }
    for (const kind of Object.keys(distinctResults)) {
      distinctResults[kind] = new Set(
        jobs.filter((j) => j.kind === kind && j.status === "succeeded").map((j) => j.resultHash),
      ).size;
    }
    // What the kill rate predicts for runner_crashed: a fraction p of all attempts were cut by a kill (attempts
    // beyond the first are re-runs after a lost lease), so about jobs * p^3 have three cut attempts in a row.
    const totalAttempts = jobs.reduce((s, t) => s + (t.attempts ?? 0), 0);
    const cutAttempts = jobs.reduce((s, t) => s + Math.max(0, (t.attempts ?? 1) - 1), 0) + crashed.length;
    const p = totalAttempts ? cutAttempts / totalAttempts : 0;
    const upMs = exits
      .filter((e) => e.runner === VICTIM)
      .map((e) => e.uptimeMs)
      .sort((a, b) => a - b);

    return {
      config: {
        code: process.env.STORM_CODE ?? null,
        jobs: JOBS,
        min_kills: MIN_KILLS,
        seed: SEED,
        lease_seconds_cap: LEASE_SECONDS,
        worker_kills: WORKER_KILLS,
        settle_s: SETTLE_MS / 1000,
        runners: 2,
        runner_concurrency: 1,
        mix: Object.fromEntries(mix),
        supervisor: SUPERVISOR,
        cpus: os.cpus().length,
        load_at_start: os.loadavg()[0],
      },
      worker_hot_reloads: hotReloads,
      duration_s: { storm: stormS, settle: settledS, total: (Date.now() - t0) / 1000 },
      kills: {
        runner_sigkills: kills,
        worker_sigkills: workerKills,
        victim_uptime_ms: { min: upMs[0], p50: upMs[Math.floor(upMs.length / 2)], max: upMs[upMs.length - 1] },
        unexpected_exits_by_runner: exits.reduce<Record<string, number>>(
          (m, e) => ((m[e.runner] = (m[e.runner] ?? 0) + 1), m),
          {},
        ),
        restart_delays_ms: [...new Set(exits.map((e) => e.restartInMs))].sort((a, b) => (a ?? 0) - (b ?? 0)),
        non_kill_exits: exits
          .filter((e) => e.runner !== VICTIM || e.signal !== "SIGKILL")
          .map((e) => ({ runner: e.runner, code: e.code, signal: e.signal })),
      },
      submitted: {
        requests: submitted,
        accepted: all.filter((t) => !t.parent).length,
        rejected_up_front: rejected.reduce<Record<string, number>>(
          (m, r) => ((m[`${r.kind} ${r.status} ${r.type}`] = (m[`${r.kind} ${r.status} ${r.type}`] ?? 0) + 1), m),
          {},
        ),
        errors: submitErrors,
        client_retries: retries,
      },
      tracked: { flows: all.filter((t) => t.flow).length, jobs: jobs.length, child_jobs: jobs.filter((t) => t.parent).length },
      outcomes: byKind,
      attempts_histogram: attempts,
      targets: {
        lost: lost.length,
        lost_ids: lost.slice(0, 20).map((t) => `${t.kind} ${t.id}`),
        two_results: {
          runner_logged_success_more_than_once: [...succeededLines.values()].filter((n) => n > 1).length,
          result_changed_after_terminal: changed.length,
          more_than_one_terminal_event: twoTerminalEvents.length,
        },
        webhook_events_missing: missingEvent.length,
        delivery_log_missing_succeeded: missingDelivery.length,
        missing_ids: [...new Set([...missingEvent, ...missingDelivery].map((t) => `${t.status} ${t.kind} ${t.id}`))].slice(0, 20),
      },
      runner_crashed: {
        count: crashed.length,
        by_type: crashed.reduce<Record<string, number>>((m, t) => ((m[t.error!] = (m[t.error!] ?? 0) + 1), m), {}),
        attempts_total: totalAttempts,
        attempts_cut: cutAttempts,
        cut_fraction: Math.round(p * 1000) / 1000,
        expected_from_kill_rate: Math.round(jobs.length * p ** 3 * 10) / 10,
      },
      webhooks: {
        deliveries_received: receiver.events.length,
        distinct_event_ids: new Set(receiver.events.map((e) => e.id)).size,
        signature_rejected: receiver.rejected,
        delivery_log_rows: deliveryRows.length,
        delivery_log_status: deliveryRows.reduce<Record<string, number>>(
          (m, r) => ((m[r.status] = (m[r.status] ?? 0) + 1), m),
          {},
        ),
        api_latest_100_disagreeing_with_d1: apiMismatch,
      },
      same_input_distinct_results: distinctResults,
      worker_report_answers: reports,
      supervisor_log_tail: supervisorTail,
      runner_success_log_lines: [...succeededLines.values()].reduce((a, b) => a + b, 0),
    };
  } finally {
    receiver.close();
    await stack.stop();
    if (!process.env.STORM_KEEP_STATE) rmSync(dir, { recursive: true, force: true });
    else console.log(`storm: state and logs kept in ${dir}`);
  }
}
