import { createServer, type Server } from "node:http";
import type { RunnerMetrics } from "./metrics.ts";

export interface HealthState {
  configLoaded: boolean;
  workerReachable: boolean;
  draining: boolean;
  operations: string[];
  runnerId: string;
}

/** /healthz (ready = config loaded and worker reachable, not draining) and /metrics on one small port. */
export function startHttpServer(port: number, state: HealthState, metrics: RunnerMetrics): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      const ready = state.configLoaded && state.workerReachable && !state.draining;
      res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: ready ? "ok" : state.draining ? "draining" : "unavailable", ...state }));
      return;
    }
    if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(metrics.render());
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found" }));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve(server));
  });
}
