import { type LeasedJob, LeaseResponse, RUNNER_ROUTES } from "../../contract/protocol.ts";
import { errorMessage } from "./errors.ts";
import { type JobDeps, type JobOutcome, runLeasedJob } from "./job.ts";
import { backoffMs, sleep } from "./worker-client.ts";

export interface LeaseLoopOptions {
  runnerId: string;
  operations: string[];
  concurrency: number;
  waitSeconds: number;
}

/**
 * Long-polls the worker for jobs while slots are free and runs each leased job concurrently.
 * stop(): no new leases, in-flight jobs get a grace period, then are aborted and released.
 */
export class LeaseLoop {
  private readonly inflight = new Map<string, Promise<JobOutcome>>();
  private readonly stopController = new AbortController();
  private readonly shutdownJobs = new AbortController();
  private loop?: Promise<void>;
  private consecutiveErrors = 0;
  readonly outcomes: { job_id: string; outcome: JobOutcome }[] = [];

  constructor(
    private readonly options: LeaseLoopOptions,
    private readonly deps: JobDeps,
  ) {}

  get inflightCount(): number {
    return this.inflight.size;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const stop = this.stopController.signal;
    while (!stop.aborted) {
      const free = this.options.concurrency - this.inflight.size;
      if (free <= 0) {
        await Promise.race([...this.inflight.values(), aborted(stop)]);
        continue;
      }
      let jobs: LeasedJob[];
      try {
        jobs = await this.lease(free, stop);
        this.consecutiveErrors = 0;
      } catch (e) {
        if (stop.aborted) break;
        this.deps.metrics.leaseErrors.inc();
        this.consecutiveErrors++;
        this.deps.log("warn", "lease request failed", { error: errorMessage(e), consecutive: this.consecutiveErrors });
        await sleep(500 + backoffMs(this.consecutiveErrors, 500, 15_000), stop).catch(() => {});
        continue;
      }
      for (const job of jobs) this.launch(job);
    }
  }

  private async lease(maxJobs: number, signal: AbortSignal): Promise<LeasedJob[]> {
    const body = {
      runner_id: this.options.runnerId,
      operations: this.options.operations,
      max_jobs: maxJobs,
      wait_seconds: this.options.waitSeconds,
    };
    const raw = await this.deps.client.call<unknown>("POST", RUNNER_ROUTES.lease, body, signal);
    const parsed = LeaseResponse.safeParse(raw);
    if (!parsed.success) throw new Error("lease response does not match the protocol schema");
    return parsed.data.jobs.slice(0, maxJobs);
  }

  private launch(job: LeasedJob): void {
    if (this.inflight.has(job.job_id)) return;
    const run = runLeasedJob(job, this.deps, this.shutdownJobs.signal)
      .catch((e): JobOutcome => {
        this.deps.log("error", "job handler crashed", { job_id: job.job_id, error: errorMessage(e) });
        return "lease_lost";
      })
      .then((outcome) => {
        this.outcomes.push({ job_id: job.job_id, outcome });
        this.inflight.delete(job.job_id);
        this.deps.metrics.inflight.set(this.inflight.size);
        return outcome;
      });
    this.inflight.set(job.job_id, run);
    this.deps.metrics.inflight.set(this.inflight.size);
  }

  /** Stop leasing; wait up to graceMs for in-flight jobs, then abort and release the rest. */
  async stop(graceMs: number): Promise<void> {
    this.stopController.abort(new Error("stopping"));
    await this.loop?.catch(() => {});
    const all = Promise.allSettled([...this.inflight.values()]);
    const inTime = await Promise.race([all.then(() => true), sleep(graceMs).then(() => false)]);
    if (!inTime) {
      this.deps.log("warn", "grace period over; releasing in-flight jobs", { jobs: [...this.inflight.keys()] });
      this.shutdownJobs.abort(new Error("shutdown"));
      await Promise.allSettled([...this.inflight.values()]);
    }
  }
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
