import { renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { unstable_DevEnv } from "wrangler";

/**
 * `wrangler dev` for the local stack, through wrangler's own dev-server API (the same workerd, local D1, R2,
 * Queues and Durable Objects, configured from wrangler.toml) with one difference from the CLI: the DevTools
 * inspector is off unless VIGIL_INSPECTOR_PORT is set. With it on, wrangler forwards every console line and
 * network event of the worker through an inspector proxy into its debug log: measured here, 40 sequential creates
 * took p50 30.8 ms with it and 23.9-27.4 ms without, and wrangler's own node process ran at 45-60 % of a core
 * during the spine benchmark.
 *
 *   tsx scripts/dev-server.ts --port 8787 --persist-to .wrangler/state --vars-file .dev.vars
 *
 * (`--vars-file`, not `--env-file`: tsx hands `--env-file` to node itself.)
 *
 * `--direct-url-file PATH`: keep PATH holding the user worker's own URL (see below), for the local runners.
 */
const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    ip: { type: "string", default: "127.0.0.1" },
    "persist-to": { type: "string" },
    "vars-file": { type: "string" },
    "direct-url-file": { type: "string" },
  },
});

/**
 * `wrangler dev` puts a proxy worker (in its own workerd) in front of the user worker, to hold requests while a
 * hot reload swaps the user worker. Every request through it pays one more HTTP hop through a second workerd:
 * measured here 3-4 ms for a small GET against the direct port (the bench's client-time-minus-Server-Timing, which
 * also counts workerd's own HTTP handling, says 8-9 ms), and the runner's side of a job crossed it three times
 * (lease, input download, completion report). Production has no such proxy, so the local runners skip it and call the user worker
 * directly; clients (curl, the bench's client, the tests) keep using the public dev URL.
 *
 * The user worker listens on a port miniflare picks at random and picks again on every hot reload, and
 * wrangler's public API does not expose it. Its runtime controller announces it to the proxy controller in the
 * `reloadComplete` event on DevEnv's message bus (`DevEnv.dispatch`, typed in wrangler's d.ts), so this
 * subclass listens on that bus and rewrites the file each time; the runner re-reads the file when it changes
 * (VIGIL_API_URL_FILE). Requests without the proxy's shared-secret header are plain requests to the user
 * worker: their URL is the direct one, which is also what the ticket's signed object URLs are minted from.
 */
class DirectUrlDevEnv extends unstable_DevEnv {
  override dispatch(event: Parameters<unstable_DevEnv["dispatch"]>[0]): void {
    if (event.type === "reloadComplete" && values["direct-url-file"]) {
      const { protocol, hostname, port } = event.proxyData.userWorkerUrl;
      const tmp = `${values["direct-url-file"]}.tmp`;
      // Written then renamed, so a reader never sees a half-written URL.
      writeFileSync(tmp, `${protocol}//${hostname}:${port}\n`);
      renameSync(tmp, values["direct-url-file"]);
    }
    super.dispatch(event);
  }
}

const inspectorPort = process.env.VIGIL_INSPECTOR_PORT;
// What `unstable_startWorker` does (`new DevEnv().startWorker(options)`), with the subclass above.
const worker = await new DirectUrlDevEnv().startWorker({
  config: "wrangler.toml",
  envFiles: values["vars-file"] ? [values["vars-file"]] : undefined,
  dev: {
    server: { hostname: values.ip, port: Number(values.port) },
    inspector: inspectorPort ? { hostname: "127.0.0.1", port: Number(inspectorPort) } : false,
    persist: values["persist-to"],
    logLevel: "log",
  },
});
await worker.ready;
console.log(`[dev-server] ready on http://${values.ip}:${values.port}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void worker.dispose().finally(() => process.exit(0));
  });
}
