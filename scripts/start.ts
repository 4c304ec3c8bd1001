import { join } from "node:path";
import { LocalStack, ROOT } from "./local-stack.ts";

// `npm start`: the whole service on one machine — wrangler dev (local D1, R2, Queues, Durable Objects) plus one CPU runner
// (VIGIL_RUNNERS for more), which the stack restarts when it crashes.
const port = Number(process.env.PORT ?? 8787);
const stack = new LocalStack({
  port,
  persistTo: join(ROOT, ".wrangler", "state"),
  envFile: join(ROOT, ".dev.vars"),
  runners: Number(process.env.VIGIL_RUNNERS ?? 1),
  inheritOutput: true,
});

let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  await stack.stop();
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

try {
  await stack.start();
} catch (e) {
  console.error(`npm start failed: ${e instanceof Error ? e.message : e}`);
  await shutdown(1);
}
const key = stack.vars.VIGIL_DEV_KEY;
console.log(`
  Vigil is running.
    API       ${stack.url}
    Docs      ${stack.url}/docs
    Dev key   ${key}
    Operator  ${stack.vars.VIGIL_OPERATOR_KEY} (tenant management: /v1/admin/*)

  Try it:
    curl -s -H "Authorization: Bearer ${key}" -H "Content-Type: image/jpeg" -H "Prefer: wait=30" \\
      --data-binary @test/fixtures/photo.jpg ${stack.url}/v1/inspect
`);
// Runners are supervised by the stack (restarted with backoff, each exit logged as "[supervisor …] runner N …").
// The worker is not (see scripts/local-stack.ts): its process dying is rare locally, and its Queues are in memory.
stack.on("worker-exit", ({ code, signal }: { code: number | null; signal: string | null }) => {
  if (stopping) return;
  console.error(`the worker (wrangler dev) exited (${signal ?? code}); stopping`);
  void shutdown(1);
});
