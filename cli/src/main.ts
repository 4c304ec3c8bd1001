import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { enhanceOperations, Vigil, VigilConnectionError, VigilError, type ImageOperationId } from "@vigil/sdk";
import { runBatch, type FileResult } from "./batch.ts";
import { expandInputs } from "./files.ts";
import { BatchState } from "./state.ts";

/** Exit codes: 0 everything succeeded, 1 something failed (a file, a job, an API call), 2 usage, 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

const HELP = `vigil: the Vigil API from the command line

Usage:
  vigil protect <files|folders|globs…> [options]     watermark photos
  vigil verify  <files|folders|globs…> [options]     check photos for a watermark and a face swap
  vigil inspect <files|folders|globs…> [options]     image metadata and perceptual hashes
  vigil enhance <name> <files|folders|globs…>       restore: ${Object.keys(enhanceOperations()).join(", ")}
  vigil jobs list [--status S] [--operation OP] [--limit N] [--all]
  vigil jobs get <job_id…>
  vigil jobs cancel <job_id…>
  vigil webhooks list
  vigil webhooks create <url> [--events a,b] [--description TEXT]
  vigil webhooks delete <endpoint_id…>
  vigil webhooks deliveries <endpoint_id> [--limit N]

Batch options (protect, verify, inspect, enhance):
  -p, --param k=v        an operation parameter, repeatable (e.g. -p format=jpeg -p strength=1.5)
  -c, --concurrency N    files in flight at once (default 4)
  -o, --out DIR          save each job's output images in DIR
      --state FILE       resume file (default .vigil-state.json); a re-run skips files done before
      --no-resume        ignore and do not write the state file
      --timeout S        seconds to wait for each job (default 300)

Common options:
      --json             JSON on stdout instead of a table
      --api-url URL      default $VIGIL_API_URL, else http://127.0.0.1:8787
      --api-key KEY      default $VIGIL_API_KEY
  -h, --help

Ctrl-C stops a batch cleanly: files in flight are recorded, and the next run picks them up without sending them
again. Exit status: 0 all succeeded, 1 some failed, 2 usage error, 130 interrupted.
`;

const OPTIONS = {
  param: { type: "string", short: "p", multiple: true },
  concurrency: { type: "string", short: "c" },
  out: { type: "string", short: "o" },
  state: { type: "string" },
  "no-resume": { type: "boolean" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  "api-url": { type: "string" },
  "api-key": { type: "string" },
  status: { type: "string" },
  operation: { type: "string" },
  limit: { type: "string" },
  all: { type: "boolean" },
  events: { type: "string" },
  description: { type: "string" },
  help: { type: "boolean", short: "h" },
} satisfies ParseArgsConfig["options"];

class UsageError extends Error {}

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT. */
  signal?: AbortSignal;
}

function positiveInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${v}`);
  return n;
}

function params(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const i = p.indexOf("=");
    if (i < 1) throw new UsageError(`--param takes k=v, got ${p}`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** Columns padded to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** Runs the CLI and resolves with its exit code; `io` makes it testable in process. */
export async function main(argv: string[], io?: Io): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(EXIT.interrupted); // a second Ctrl-C: no clean-up
    process.stderr.write("\ninterrupted: finishing up (Ctrl-C again to quit now)\n");
    controller.abort(new Error("interrupted"));
  };
  const ownSignals = !io;
  if (ownSignals) process.on("SIGINT", onSigint);
  const sys: Io = io ?? {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    signal: controller.signal,
  };
  try {
    return await run(argv, sys, sys.signal ?? controller.signal);
  } catch (e) {
    if (e instanceof UsageError) {
      sys.stderr(`vigil: ${e.message}\nRun vigil --help for usage.\n`);
      return EXIT.usage;
    }
    if (e instanceof VigilError || e instanceof VigilConnectionError) {
      sys.stderr(`vigil: ${e.message}\n`);
      return EXIT.failed;
    }
    if ((sys.signal ?? controller.signal).aborted) return EXIT.interrupted;
    throw e;
  } finally {
    if (ownSignals) process.off("SIGINT", onSigint);
  }
}

async function run(argv: string[], io: Io, signal: AbortSignal): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (v.help || !command) {
    (v.help ? io.stdout : io.stderr)(HELP);
    return v.help ? EXIT.ok : EXIT.usage;
  }
  const client = () => {
    const apiKey = v["api-key"] ?? io.env.VIGIL_API_KEY;
    if (!apiKey) throw new UsageError("no API key: set VIGIL_API_KEY or pass --api-key");
    return new Vigil({ baseUrl: v["api-url"] ?? io.env.VIGIL_API_URL ?? "http://127.0.0.1:8787", apiKey });
  };
  const print = (json: unknown, rows: string[][]) => io.stdout(v.json ? JSON.stringify(json, null, 2) + "\n" : table(rows));

  switch (command) {
    case "protect":
    case "verify":
    case "inspect":
    case "enhance": {
      let operation: ImageOperationId;
      let label: string = command;
      let inputs = rest;
      if (command === "enhance") {
        const [name, ...files] = rest;
        const ops = enhanceOperations();
        if (!name) throw new UsageError(`enhance needs an operation: ${Object.keys(ops).join(", ")}`);
        const id = ops[name];
        if (!id)
          throw new UsageError(
            `enhance ${name}: the API has no such operation (no POST /v1/enhance/${name} in its OpenAPI document; it has ${Object.keys(ops).join(", ")})`,
          );
        operation = id;
        label = `enhance.${name}`;
        inputs = files;
      } else operation = ({ protect: "postProtect", verify: "postVerify", inspect: "postInspect" } as const)[command];
      if (inputs.length === 0) throw new UsageError(`${command} needs files, folders or globs`);
      let files: string[];
      try {
        files = expandInputs(inputs);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const state = v["no-resume"] ? null : new BatchState(resolve(v.state ?? ".vigil-state.json"));
      const { results, summary } = await runBatch({
        client: client(),
        operation,
        label,
        files,
        params: params(v.param),
        concurrency: positiveInt(v.concurrency, "concurrency", 4),
        state,
        outDir: v.out,
        timeoutMs: positiveInt(v.timeout, "timeout", 300) * 1000,
        signal,
      });
      const rows = [["FILE", "STATUS", "JOB", "DETAIL"], ...results.map((r) => [r.file, r.status, r.job_id ?? "", detail(r)])];
      print({ summary, results }, rows);
      io.stderr(
        `${label}: ${summary.total} files, ${summary.succeeded} succeeded, ${summary.failed} failed, ` +
          `${summary.skipped} skipped (done before), ${summary.interrupted} interrupted, in ${summary.seconds} s\n`,
      );
      if (summary.interrupted > 0 || signal.aborted) return EXIT.interrupted;
      return summary.failed > 0 ? EXIT.failed : EXIT.ok;
    }
    case "jobs": {
      const [sub, ...ids] = rest;
      const c = client();
      if (sub === "list") {
        const query = {
          ...(v.status ? { status: v.status as never } : {}),
          ...(v.operation ? { operation: v.operation } : {}),
          limit: Math.min(100, positiveInt(v.limit, "limit", 20)),
        };
        const data = [];
        if (v.all) for await (const j of c.jobs.listAll(query, { signal })) data.push(j);
        else data.push(...(await c.jobs.list(query, { signal })).data);
        print(data, [["ID", "OPERATION", "STATUS", "CREATED"], ...data.map((j) => [j.id, j.operation, j.status, j.created_at])]);
        return EXIT.ok;
      }
      if (sub === "get" || sub === "cancel") {
        if (ids.length === 0) throw new UsageError(`jobs ${sub} needs job ids`);
        const jobs = [];
        for (const id of ids) jobs.push(sub === "get" ? await c.jobs.get(id, { signal }) : await c.jobs.cancel(id, { signal }));
        print(jobs.length === 1 ? jobs[0] : jobs, [
          ["ID", "OPERATION", "STATUS", "ERROR"],
          ...jobs.map((j) => [j.id, j.operation, j.status, j.error ? `${j.error.type}: ${j.error.message}` : ""]),
        ]);
        return EXIT.ok;
      }
      throw new UsageError("jobs takes list, get or cancel");
    }
    case "webhooks": {
      const [sub, ...args] = rest;
      const c = client();
      if (sub === "list") {
        const { data } = await c.webhooks.endpoints.list({ signal });
        print(data, [["ID", "URL", "EVENTS", "CREATED"], ...data.map((e) => [e.id, e.url, e.events.join(","), e.created_at])]);
        return EXIT.ok;
      }
      if (sub === "create") {
        const [url] = args;
        if (!url || args.length > 1) throw new UsageError("webhooks create takes one URL");
        const ep = await c.webhooks.endpoints.create(
          {
            url,
            ...(v.events ? { events: v.events.split(",").map((s) => s.trim()) } : {}),
            ...(v.description ? { description: v.description } : {}),
          },
          { signal },
        );
        print(ep, [
          ["ID", "URL", "EVENTS", "SECRET"],
          [ep.id, ep.url, ep.events.join(","), ep.secret],
        ]);
        return EXIT.ok;
      }
      if (sub === "delete") {
        if (args.length === 0) throw new UsageError("webhooks delete needs endpoint ids");
        const out = [];
        for (const id of args) out.push(await c.webhooks.endpoints.delete(id, { signal }));
        print(out, [["ID", "DELETED"], ...out.map((d) => [d.id, String(d.deleted)])]);
        return EXIT.ok;
      }
      if (sub === "deliveries") {
        const [id] = args;
        if (!id || args.length > 1) throw new UsageError("webhooks deliveries takes one endpoint id");
        const { data } = await c.webhooks.deliveries.list(
          id,
          { limit: Math.min(100, positiveInt(v.limit, "limit", 20)) },
          { signal },
        );
        print(data, [
          ["ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "LAST"],
          ...data.map((d) => {
            const last = d.attempts.at(-1);
            return [
              d.id,
              d.event_id,
              d.event_type,
              d.status,
              String(d.attempts.length),
              last ? String(last.status_code ?? last.error) : "",
            ];
          }),
        ]);
        return EXIT.ok;
      }
      throw new UsageError("webhooks takes list, create, delete or deliveries");
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

function detail(r: FileResult): string {
  if (r.error) return r.error;
  if (r.outputs?.length) return r.outputs.join(" ");
  const o = r.output ?? {};
  for (const k of ["verdict", "asset_id", "phash"]) if (typeof o[k] === "string") return `${k}=${o[k]}`;
  return "";
}
