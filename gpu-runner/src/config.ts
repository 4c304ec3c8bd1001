import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** Repository root, so the default models directory works whatever the cwd. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const csv = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string()).min(1));

const ExecutionProvider = z.enum(["cuda", "tensorrt", "dml", "webgpu", "coreml", "cpu"]);

const EnvSchema = z.object({
  VIGIL_API_URL: z.string().url(),
  /**
   * Local stack only: a file holding the API base URL, re-read whenever it changes (VIGIL_API_URL is the
   * fallback while it is missing or invalid). `wrangler dev` serves the worker behind a proxy and moves the worker
   * itself to a new port on every hot reload; scripts/dev-server.ts keeps this file pointing at the worker.
   */
  VIGIL_API_URL_FILE: z.string().min(1).optional(),
  VIGIL_RUNNER_ID: z.string().min(1).max(128),
  VIGIL_RUNNER_SECRET: z.string().min(16, "VIGIL_RUNNER_SECRET must be at least 16 characters"),
  VIGIL_RUNNER_OPERATIONS: csv.optional(),
  VIGIL_RUNNER_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(1),
  VIGIL_EXECUTION_PROVIDERS: csv.pipe(z.array(ExecutionProvider)).default(["cpu"]),
  VIGIL_MODELS_DIR: z.string().default(resolve(REPO_ROOT, "models")),
  VIGIL_MAX_PIXELS: z.coerce.number().int().positive().default(100_000_000),
  PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** "kid:base64url-raw-key,kid2:..."; when absent the keys come from the worker. */
  VIGIL_TICKET_PUBLIC_KEYS: z.string().optional(),
  /** Long-poll duration asked of the worker. */
  VIGIL_LEASE_WAIT_SECONDS: z.coerce.number().int().min(0).max(30).default(20),
  /** How long SIGTERM waits for in-flight jobs before releasing them. */
  VIGIL_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(0).max(3600).default(10),
  /** Fault injection for crash tests: sleep this long after leasing, before touching inputs. */
  VIGIL_RUNNER_FAULT_STALL_MS: z.coerce.number().int().min(0).default(0),
});

export interface RunnerConfig {
  apiUrl: string;
  apiUrlFile?: string;
  runnerId: string;
  runnerSecret: string;
  /** Undefined: every operation the registry has a pipeline for. */
  operations?: string[];
  concurrency: number;
  executionProviders: z.infer<typeof ExecutionProvider>[];
  modelsDir: string;
  maxPixels: number;
  port: number;
  ticketPublicKeys?: Map<string, string>;
  leaseWaitSeconds: number;
  shutdownGraceMs: number;
  faultStallMs: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

function parseKeyList(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const entry of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = entry.indexOf(":");
    if (i <= 0 || i === entry.length - 1) throw new ConfigError(`VIGIL_TICKET_PUBLIC_KEYS entry "${entry}" is not kid:key`);
    keys.set(entry.slice(0, i), entry.slice(i + 1));
  }
  if (keys.size === 0) throw new ConfigError("VIGIL_TICKET_PUBLIC_KEYS is set but empty");
  return keys;
}

/** Reads and validates the runner's environment; throws ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`);
    throw new ConfigError(`invalid runner configuration:\n  ${problems.join("\n  ")}`);
  }
  const e = parsed.data;
  return {
    apiUrl: e.VIGIL_API_URL.replace(/\/+$/, ""),
    apiUrlFile: e.VIGIL_API_URL_FILE,
    runnerId: e.VIGIL_RUNNER_ID,
    runnerSecret: e.VIGIL_RUNNER_SECRET,
    operations: e.VIGIL_RUNNER_OPERATIONS,
    concurrency: e.VIGIL_RUNNER_CONCURRENCY,
    executionProviders: e.VIGIL_EXECUTION_PROVIDERS,
    modelsDir: resolve(e.VIGIL_MODELS_DIR),
    maxPixels: e.VIGIL_MAX_PIXELS,
    port: e.PORT,
    ticketPublicKeys: e.VIGIL_TICKET_PUBLIC_KEYS ? parseKeyList(e.VIGIL_TICKET_PUBLIC_KEYS) : undefined,
    leaseWaitSeconds: e.VIGIL_LEASE_WAIT_SECONDS,
    shutdownGraceMs: e.VIGIL_SHUTDOWN_GRACE_SECONDS * 1000,
    faultStallMs: e.VIGIL_RUNNER_FAULT_STALL_MS,
  };
}
