import type { Server } from "node:http";
import { ConfigError, type RunnerConfig } from "./config.ts";
import { errorMessage } from "./errors.ts";
import { type HealthState, startHttpServer } from "./http-server.ts";
import { LeaseLoop } from "./lease-loop.ts";
import { log as defaultLog, type Logger } from "./log.ts";
import { RunnerMetrics } from "./metrics.ts";
import { SessionCache } from "./models/session-cache.ts";
import { REGISTRY } from "./operations/registry.ts";
import type { OperationPipeline } from "./operations/types.ts";
import { TicketKeyring } from "./ticket-keys.ts";
import { followUrlFile, sleep, WorkerClient } from "./worker-client.ts";

export interface RunnerService {
  loop: LeaseLoop;
  server: Server;
  metrics: RunnerMetrics;
  state: HealthState;
  sessions: SessionCache;
  /** Graceful stop: no new leases, in-flight jobs finish or are released within the grace period. */
  stop(graceMs?: number): Promise<void>;
}

export function servedOperations(config: RunnerConfig, registry: ReadonlyMap<string, OperationPipeline>): string[] {
  const ops = config.operations ?? [...registry.keys()];
  const unknown = ops.filter((o) => !registry.has(o));
  if (unknown.length)
    throw new ConfigError(`VIGIL_RUNNER_OPERATIONS names operations this runner has no pipeline for: ${unknown.join(", ")}`);
  return ops;
}

/** Starts health/metrics, loads ticket keys (retrying until the worker answers), then the lease loop. */
export async function startRunner(
  config: RunnerConfig,
  opts: { registry?: ReadonlyMap<string, OperationPipeline>; log?: Logger } = {},
): Promise<RunnerService> {
  const registry = opts.registry ?? REGISTRY;
  const log = opts.log ?? defaultLog;
  const operations = servedOperations(config, registry);
  const metrics = new RunnerMetrics();
  const state: HealthState = {
    configLoaded: true,
    workerReachable: false,
    draining: false,
    operations,
    runnerId: config.runnerId,
  };
  const client = new WorkerClient({
    apiUrl: config.apiUrlFile ? followUrlFile(config.apiUrlFile, config.apiUrl) : config.apiUrl,
    runnerId: config.runnerId,
    secret: config.runnerSecret,
    onReachability: (up) => {
      state.workerReachable = up;
      metrics.workerUp.set(up ? 1 : 0);
    },
  });
  const server = await startHttpServer(config.port, state, metrics);
  const sessions = new SessionCache({ modelsDir: config.modelsDir, executionProviders: config.executionProviders, log });
  const keyring = new TicketKeyring(config.ticketPublicKeys ? { fixed: config.ticketPublicKeys } : { client });
  for (let attempt = 0; ; attempt++) {
    try {
      await keyring.init();
      break;
    } catch (e) {
      log("warn", "cannot load ticket public keys yet", { error: errorMessage(e) });
      await sleep(Math.min(10_000, 500 * 2 ** attempt));
    }
  }
  await client.ping();
  const loop = new LeaseLoop(
    { runnerId: config.runnerId, operations, concurrency: config.concurrency, waitSeconds: config.leaseWaitSeconds },
    { client, keyring, sessions, registry, metrics, log, maxPixels: config.maxPixels, faultStallMs: config.faultStallMs },
  );
  loop.start();
  log("info", "runner started", {
    runner_id: config.runnerId,
    operations,
    concurrency: config.concurrency,
    providers: config.executionProviders,
    port: config.port,
  });
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = config.shutdownGraceMs) =>
    (stopping ??= (async () => {
      state.draining = true;
      await loop.stop(graceMs);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await sessions.release();
    })());
  return { loop, server, metrics, state, sessions, stop };
}
