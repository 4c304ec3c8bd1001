import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { VigilError, type ImageOperationId, type Job, type Vigil } from "@vigil/sdk";
import { sha256File } from "./files.ts";
import { Progress } from "./progress.ts";
import { BatchState } from "./state.ts";

export interface BatchOptions {
  client: Vigil;
  operation: ImageOperationId;
  /** Label for the progress line and the state key: `protect`, `enhance.lowlight`, … */
  label: string;
  files: string[];
  params: Record<string, string>;
  concurrency: number;
  state: BatchState | null;
  outDir?: string;
  timeoutMs?: number;
  signal: AbortSignal;
}

export interface FileResult {
  file: string;
  status: "succeeded" | "failed" | "skipped" | "interrupted";
  job_id?: string;
  error?: string;
  /** Files written under --out. */
  outputs?: string[];
  /** The job's output (the asset id, the verdict, the inspection…). */
  output?: Record<string, unknown> | null;
}

export interface BatchSummary {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  interrupted: number;
  seconds: number;
}

const EXT: Record<string, string> = { "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp" };

/** Downloads each `<artifact>_url` of a job's output next to the input's name under `dir`. */
async function saveOutputs(client: Vigil, job: Job, file: string, dir: string, signal: AbortSignal): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const stem = basename(file, extname(file));
  const written: string[] = [];
  for (const [k, v] of Object.entries(job.output ?? {})) {
    if (!k.endsWith("_url") || typeof v !== "string") continue;
    const artifact = k.slice(0, -4);
    const res = await fetch(v, { signal });
    if (!res.ok) throw new Error(`download of ${artifact}: HTTP ${res.status}`);
    const ext = EXT[(res.headers.get("content-type") ?? "").split(";")[0]!] ?? ".bin";
    const path = join(dir, artifact === "image" ? `${stem}${ext}` : `${stem}.${artifact}${ext}`);
    writeFileSync(path, new Uint8Array(await res.arrayBuffer()));
    written.push(path);
  }
  return written;
}

/**
 * Runs one image operation over many files, `concurrency` at a time, with a progress line on stderr. Files the
 * state file records as done (same content hash) are skipped; each file's progress is recorded before and after it
 * is sent. An abort (Ctrl-C) stops taking files, abandons the waits in flight (their jobs keep running; the state
 * keeps their Idempotency-Keys for the next run) and returns what was done.
 */
export async function runBatch(o: BatchOptions): Promise<{ results: FileResult[]; summary: BatchSummary }> {
  const started = Date.now();
  const results: FileResult[] = new Array(o.files.length);
  const todo: { index: number; file: string; hash: string; key: string; idempotencyKey: string; resumed: boolean }[] = [];
  for (const [index, file] of o.files.entries()) {
    if (o.signal.aborted) break;
    const hash = await sha256File(file);
    const key = BatchState.key(o.label, o.params, file);
    const prev = o.state?.get(key);
    if (prev && prev.hash === hash && prev.status === "succeeded") {
      results[index] = { file, status: "skipped", job_id: prev.job_id };
      continue;
    }
    const reuse = prev && prev.hash === hash && prev.status === "pending";
    todo.push({ index, file, hash, key, idempotencyKey: reuse ? prev.idempotency_key : randomUUID(), resumed: !!reuse });
  }
  const progress = new Progress(o.label, o.files.length, o.files.length - todo.length);
  let next = 0;
  const worker = async () => {
    while (!o.signal.aborted && next < todo.length) {
      const t = todo[next++]!;
      o.state?.set(t.key, { hash: t.hash, status: "pending", idempotency_key: t.idempotencyKey });
      try {
        const send = () =>
          o.client.createJob(o.operation, readFileSync(t.file), o.params as never, {
            idempotencyKey: t.idempotencyKey,
            signal: o.signal,
            timeoutMs: o.timeoutMs,
          });
        const job = await send().catch((e: unknown) => {
          // The interrupted request this key was kept for reached the API as another request (a body cut short by
          // the abort): it made no job for this file's bytes, so the file is sent again under a new key.
          if (!(t.resumed && e instanceof VigilError && e.code === "idempotency_key_reused")) throw e;
          t.idempotencyKey = randomUUID();
          o.state?.set(t.key, { hash: t.hash, status: "pending", idempotency_key: t.idempotencyKey });
          return send();
        });
        const ok = job.status === "succeeded";
        const outputs = ok && o.outDir ? await saveOutputs(o.client, job, t.file, o.outDir, o.signal) : undefined;
        const error = job.error ? `${job.error.type}: ${job.error.message}` : ok ? undefined : job.status;
        o.state?.set(t.key, {
          hash: t.hash,
          status: ok ? "succeeded" : "failed",
          idempotency_key: t.idempotencyKey,
          job_id: job.id,
          ...(error ? { error } : {}),
        });
        results[t.index] = {
          file: t.file,
          status: ok ? "succeeded" : "failed",
          job_id: job.id,
          error,
          outputs,
          output: job.output,
        };
        progress.tick(ok);
      } catch (e) {
        if (o.signal.aborted) {
          results[t.index] = { file: t.file, status: "interrupted" };
          return;
        }
        // A refused request (4xx) made no job: the next run gets a new key. Anything else may have made one.
        const refused = e instanceof VigilError && e.status < 500;
        const error = e instanceof VigilError ? `${e.code}: ${e.detail}` : String((e as Error)?.message ?? e);
        o.state?.set(t.key, { hash: t.hash, status: refused ? "failed" : "pending", idempotency_key: t.idempotencyKey, error });
        results[t.index] = { file: t.file, status: "failed", error };
        progress.tick(false);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, todo.length)) }, worker));
  progress.stop();
  for (const [i, file] of o.files.entries()) results[i] ??= { file, status: "interrupted" };
  const count = (s: FileResult["status"]) => results.filter((r) => r.status === s).length;
  return {
    results,
    summary: {
      total: o.files.length,
      succeeded: count("succeeded"),
      failed: count("failed"),
      skipped: count("skipped"),
      interrupted: count("interrupted"),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    },
  };
}
