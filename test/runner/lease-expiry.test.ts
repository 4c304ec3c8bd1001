import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../gpu-runner/src/config.ts";
import { type RunnerService, startRunner } from "../../gpu-runner/src/serve.ts";
import { FakeWorker } from "./fake-worker.ts";
import { photoBytes } from "./helpers.ts";

/**
 * Leases that really run out. The fake worker ends a lease at the `lease_expires_at` second it told the runner and
 * answers a heartbeat or report after that with 409, as the JobQueue does. A job that takes longer than its lease
 * therefore survives only if the runner's heartbeats (every lease/3) arrive well before the lease ends; the issue's
 * planted bug "heartbeat every full lease instead of a third" passed the suite while the fake never expired leases.
 *
 * Each case has its own fake worker and runner and they run concurrently: both are mostly waiting on timers.
 */

const quiet = () => {};

async function runnerFor(worker: FakeWorker, stallMs: number): Promise<RunnerService> {
  const config = loadConfig({
    VIGIL_API_URL: worker.url,
    VIGIL_RUNNER_ID: worker.runnerId,
    VIGIL_RUNNER_SECRET: worker.secret,
    VIGIL_RUNNER_CONCURRENCY: "1",
    VIGIL_LEASE_WAIT_SECONDS: "1",
    // The job's own work: the runner's fault-injection stall, before the download, so the job outlives its lease.
    VIGIL_RUNNER_FAULT_STALL_MS: String(stallMs),
    VIGIL_TICKET_PUBLIC_KEYS: `${worker.kid}:${worker.publicKey}`,
    PORT: "0",
  });
  return startRunner(config, { log: quiet });
}

describe.concurrent("lease expiry against a fake worker that really expires leases", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup) await c();
  });

  async function setup(stallMs: number) {
    const worker = await new FakeWorker().start();
    const runner = await runnerFor(worker, stallMs);
    cleanup.push(async () => {
      await runner.stop(100);
      await worker.stop();
    });
    return { worker, runner };
  }

  it("keeps a job that runs longer than its lease alive: every heartbeat lands with over a quarter of the lease left", async () => {
    const { worker, runner } = await setup(7000);
    const leaseSeconds = 6;
    const job = worker.enqueue({ inputs: [photoBytes()], leaseSeconds });
    await worker.waitFor(() => runner.loop.outcomes.some((o) => o.job_id === job.id), 20_000);
    expect(runner.loop.outcomes, JSON.stringify({ ...job, spec: undefined })).toEqual([{ job_id: job.id, outcome: "succeeded" }]);
    expect(job.state).toBe("completed");
    expect(job.attempt).toBe(1);
    expect(job.expiredLeases).toBe(0);
    expect(job.lostReports ?? 0).toBe(0);
    // 7 s of work on a 6 s lease: without a heartbeat that extended it, the complete would have been refused.
    expect(job.heartbeats).toBeGreaterThanOrEqual(3);
    // lease/3 leaves about two thirds of the lease at each beat (>= 3 s of 6); a quarter is the floor, with 1.5 s of
    // slack for timer jitter on a loaded machine. A runner beating every full lease arrives with ~0 left, or too late.
    expect(Math.min(...job.heartbeatMarginsMs)).toBeGreaterThan((leaseSeconds * 1000) / 4);
  });

  it("a heartbeat that arrives after the lease ran out gets lease_lost: the attempt is dropped, the next one succeeds", async () => {
    const { worker, runner } = await setup(7000);
    // First lease (4 s): each heartbeat is held 4 s on the way, so the first one (sent ~1.2 s in) arrives at ~5.2 s,
    // after the lease ended and well before the 7 s of work would reach its report. Second lease: heartbeats arrive
    // in time (every ~1.2 s, each with ~2.5 s of lease left) and the same 7 s of work on a 4 s lease completes.
    // The margins leave room for a loaded machine: a timer may fire a second late without changing the outcome.
    const job = worker.enqueue({ inputs: [photoBytes()], leaseSeconds: 4, slowHeartbeats: { ms: 4000, attempts: 1 } });
    // The fake worker marks the job completed when the report arrives; the runner records its outcome only once the
    // report's response is back, so wait for both (a CI run once read the outcomes in between).
    const recorded = () => runner.loop.outcomes.filter((o) => o.job_id === job.id).length;
    await worker.waitFor(() => (job.state === "completed" && recorded() >= 2) || job.state === "failed", 30_000);
    const state = () =>
      JSON.stringify({ ...job, spec: undefined, complete: undefined, outcomes: runner.loop.outcomes, bad: worker.badRequests });
    const outcomes = runner.loop.outcomes.filter((o) => o.job_id === job.id).map((o) => o.outcome);
    expect(outcomes, state()).toEqual(["lease_lost", "succeeded"]);
    expect(job.state).toBe("completed");
    expect(job.attempt).toBe(2);
    expect(job.expiredLeases).toBe(1);
    // The late heartbeat was the only request of the first lease: refused, and the runner stopped there (no complete,
    // fail or release on a lease it no longer holds).
    expect(job.lostReports, state()).toBe(1);
    expect(job.complete?.lease_id).toBe(job.leaseIds[1]);
    expect(job.leaseIds).toHaveLength(2);
    expect(job.heartbeats).toBeGreaterThanOrEqual(3); // all from the second lease
  });
});
