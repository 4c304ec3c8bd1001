import { jobQueue } from "../durable/job-queue.ts";
import type { AppEnv } from "../env.ts";
import { getFlow, refreshFlow, type FlowRow } from "./flows.ts";

/** After a stage job ends, its completion hook moves the flow on; this is how often we look for that. */
const HOOK_POLL_MS = 25;

/**
 * `Prefer: wait` for protect and verify: resolves with the flow once it has finished, or as it stands at the
 * deadline. Stage jobs wake us when they end (the queue Durable Object resolves waiters on terminal
 * transitions), so a waiting request costs a few reads per stage, not a polling loop over the whole wait.
 */
export async function waitForFlow(env: AppEnv, flow: FlowRow, timeoutMs: number): Promise<FlowRow> {
  const deadline = Date.now() + timeoutMs;
  const queue = jobQueue(env);
  let current = flow;
  for (;;) {
    current = await refreshFlow(env, (await getFlow(env, current.tenant_id, current.id)) ?? current);
    const left = deadline - Date.now();
    if (current.status !== "running" || left <= 0) return current;
    const stages = [current.analyze_job, current.mark_job].filter((id): id is string => id !== null);
    const jobs = await Promise.all(stages.map((id) => queue.get(current.tenant_id, id)));
    const live = jobs.filter((j) => j && (j.status === "queued" || j.status === "running"));
    if (live.length) await Promise.race(live.map((j) => queue.waitFor(current.tenant_id, j!.id, left)));
    else await new Promise((resolve) => setTimeout(resolve, Math.min(HOOK_POLL_MS, left)));
  }
}
