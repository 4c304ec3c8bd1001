/**
 * Child process for face-poison.test.ts: a real runner service (lease loop, job.ts, the crash guard as `serve`
 * installs it) against the protocol-speaking fake worker, fed jobs whose pipelines fail in every way an error can
 * leave a pipeline: thrown RangeError, thrown non-Error, a floating rejected promise, a thenable that drops its
 * rejection (face-api's tasks did), and the real face.analyze on the poison image with verify's params. Prints the
 * fail reports as JSON lines; then rejects a promise outside any job, after which the guard must exit 70.
 */
import { loadConfig } from "../../gpu-runner/src/config.ts";
import { installCrashGuard } from "../../gpu-runner/src/crash-guard.ts";
import type { Logger } from "../../gpu-runner/src/log.ts";
import { REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import type { OperationPipeline } from "../../gpu-runner/src/operations/types.ts";
import { startRunner } from "../../gpu-runner/src/serve.ts";
import { FakeWorker } from "./fake-worker.ts";
import { POISON_PARAMS, poisonPng } from "./face-poison.fixtures.ts";
import { gradientPng } from "./helpers.ts";

const logs: Record<string, unknown>[] = [];
const log: Logger = (level, msg, fields = {}) => {
  logs.push({ level, msg, ...fields });
  if (msg.includes("exiting")) process.stdout.write(JSON.stringify({ step: "guard_log", msg, ...fields }) + "\n");
};
installCrashGuard(log);

const failing = (name: string, run: OperationPipeline["run"]): OperationPipeline => ({ name, run });
const pipelines = [
  failing("test.range_error", async () => {
    throw new RangeError("Invalid typed array length: 1197000000");
  }),
  failing("test.throws_string", async () => {
    throw "a string, not an Error";
  }),
  failing("test.throws_undefined", async () => {
    throw undefined;
  }),
  // A rejection nobody awaits, and a pipeline that never settles: only the guard can end this job.
  failing("test.floating_rejection", () => {
    void Promise.reject(new TypeError("rejected where nobody listens"));
    return new Promise(() => {});
  }),
  // What face-api's ComposableTask did: `then(onfulfilled)` without the rejection callback.
  failing("test.dropping_thenable", async () => {
    const task = {
      async then(onfulfilled: (v: unknown) => unknown) {
        return onfulfilled(await Promise.reject(new RangeError("inside the task")));
      },
    };
    await task;
    return { result: {} };
  }),
];
const registry = new Map([...REGISTRY, ...pipelines.map((p) => [p.name, p] as const)]);
const worker = await new FakeWorker().start();
const runner = await startRunner(
  loadConfig({
    VIGIL_API_URL: worker.url,
    VIGIL_RUNNER_ID: worker.runnerId,
    VIGIL_RUNNER_SECRET: worker.secret,
    VIGIL_RUNNER_CONCURRENCY: "2",
    VIGIL_LEASE_WAIT_SECONDS: "1",
    PORT: "0",
  }),
  { registry, log },
);
const input = await gradientPng(64, 64, 3);
const jobs = pipelines.map((p) => ({ name: p.name, job: worker.enqueue({ operation: p.name, inputs: [input] }) }));
const poison = await poisonPng();
jobs.push({
  name: "face.analyze verify poison",
  job: worker.enqueue({ operation: "face.analyze", params: { ...POISON_PARAMS.verify }, inputs: [poison] }),
});
await worker.waitFor(() => jobs.every(({ job }) => job.state === "failed" || job.state === "completed"), 120_000);
// A job after them all: the runner still serves.
const after = worker.enqueue({ operation: "inspect", inputs: [input] });
await worker.waitFor(() => after.state === "completed" || after.state === "failed", 60_000);
for (const { name, job } of jobs)
  process.stdout.write(JSON.stringify({ step: "job", name, state: job.state, attempts: job.attempt, fail: job.fail }) + "\n");
process.stdout.write(JSON.stringify({ step: "after", state: after.state }) + "\n");
const escaped = logs.filter((l) => l.msg === "unhandled rejection inside a job; failing the job");
process.stdout.write(JSON.stringify({ step: "escaped_logs", job_ids: escaped.map((l) => l.job_id) }) + "\n");
await runner.stop(1000);
await worker.stop();
// Outside any job: state unknown, so the guard exits for the supervisor.
void Promise.reject(new Error("outside any job"));
setTimeout(() => {
  process.stdout.write(JSON.stringify({ step: "still_alive" }) + "\n");
  process.exit(0);
}, 2000);
