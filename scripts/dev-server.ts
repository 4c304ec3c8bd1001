import { parseArgs } from "node:util";
import { unstable_startWorker } from "wrangler";

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
 */
const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    ip: { type: "string", default: "127.0.0.1" },
    "persist-to": { type: "string" },
    "vars-file": { type: "string" },
  },
});

const inspectorPort = process.env.VIGIL_INSPECTOR_PORT;
const worker = await unstable_startWorker({
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
