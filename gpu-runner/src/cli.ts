import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { getOperation } from "../../contract/operations.ts";
import { ConfigError, loadConfig, REPO_ROOT } from "./config.ts";
import { installCrashGuard } from "./crash-guard.ts";
import { errorMessage, RunnerError } from "./errors.ts";
import { executeOperation } from "./execute.ts";
import { formatFromPath } from "./image/encode.ts";
import { log } from "./log.ts";
import { SessionCache } from "./models/session-cache.ts";
import { REGISTRY } from "./operations/registry.ts";
import { startRunner } from "./serve.ts";
import { extname, resolve } from "node:path";

const USAGE = `usage:
  npm run runner -- serve
  npm run runner -- exec <operation> --in a.jpg [--in b.jpg] [--out out.png] [--param k=v ...]
operations: ${[...REGISTRY.keys()].join(", ")}`;

/** Errors as problem-like JSON on stderr, so scripts can parse them. */
function fail(type: string, detail: string, status = 1): never {
  process.stderr.write(JSON.stringify({ type, title: type.replace(/_/g, " "), detail }) + "\n");
  process.exit(status);
}

function parseParams(pairs: string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    if (i <= 0) fail("invalid_params", `--param expects k=v, got "${pair}"`, 2);
    // Values are strings; the operation's zod schema coerces numbers where it declares them.
    params[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return params;
}

async function exec(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { in: { type: "string", multiple: true }, out: { type: "string" }, param: { type: "string", multiple: true } },
  });
  const operation = positionals[0];
  if (!operation) fail("usage", USAGE, 2);
  const pipeline = REGISTRY.get(operation);
  const spec = getOperation(operation);
  if (!pipeline || !spec) fail("unknown_operation", `no pipeline for operation "${operation}"\n${USAGE}`, 2);
  const files = values.in ?? [];
  if (files.length < spec.inputs.min || files.length > spec.inputs.max) {
    fail("invalid_inputs", `${operation} takes ${spec.inputs.min}-${spec.inputs.max} --in files, got ${files.length}`, 2);
  }
  const outFormat = values.out ? formatFromPath(values.out) : null;
  if (values.out && !outFormat) fail("invalid_output", `--out must end in .png, .jpg, .jpeg or .webp: ${values.out}`, 2);
  const inputs = await Promise.all(
    files.map((f) => readFile(f).catch((e) => fail("input_unavailable", `${f}: ${errorMessage(e)}`, 2))),
  );
  const params = parseParams(values.param ?? []);
  if (outFormat && spec.params.safeParse({ ...params, format: outFormat }).success) params.format ??= outFormat;
  const sessions = new SessionCache({
    modelsDir: resolve(process.env.VIGIL_MODELS_DIR ?? resolve(REPO_ROOT, "models")),
    executionProviders: (process.env.VIGIL_EXECUTION_PROVIDERS ?? "cpu").split(",").map((s) => s.trim()),
  });
  const models = await sessions.refsFor(spec.models);
  const out = await executeOperation({
    pipeline,
    params,
    inputs,
    maxPixels: Math.min(spec.limits.max_pixels, Number(process.env.VIGIL_MAX_PIXELS ?? Infinity)),
    models,
    sessions,
    signal: new AbortController().signal,
  });
  const written: string[] = [];
  if (values.out) {
    // The first artifact is --out; any others (enhance.derain's maps) go next to it: clean.png -> clean.rain.png.
    const ext = extname(values.out);
    const stem = values.out.slice(0, values.out.length - ext.length);
    for (const [i, artifact] of out.artifacts.entries()) {
      const path = i === 0 ? values.out : `${stem}.${artifact.name}${ext}`;
      await writeFile(path, artifact.body);
      written.push(path);
    }
  }
  process.stdout.write(
    JSON.stringify(
      {
        operation,
        result: out.result,
        artifacts: out.artifacts.map((a) => ({
          name: a.name,
          content_type: a.contentType,
          bytes: a.body.length,
          sha256: a.sha256,
        })),
        written,
        metrics: out.metrics,
      },
      null,
      2,
    ) + "\n",
  );
  await sessions.release();
}

async function serve(): Promise<void> {
  // Before anything can fail asynchronously: a job's escaped error fails the job, anything else exits (crash-guard.ts).
  installCrashGuard(log);
  const config = loadConfig();
  const service = await startRunner(config);
  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) return;
    signalled = true;
    log("info", "signal received; draining", { signal: sig, grace_ms: config.shutdownGraceMs });
    service.stop().then(
      () => process.exit(0),
      (e) => {
        log("error", "shutdown failed", { error: errorMessage(e) });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}

const [command = "serve", ...rest] = process.argv.slice(2);
try {
  if (command === "serve") await serve();
  else if (command === "exec") await exec(rest);
  else fail("usage", USAGE, 2);
} catch (e) {
  if (e instanceof RunnerError) fail(e.code, e.message);
  if (e instanceof ConfigError) fail("invalid_config", e.message, 2);
  fail("internal_error", errorMessage(e));
}
