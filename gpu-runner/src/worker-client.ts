import { createHash, createHmac } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { runnerRequestHeaders, runnerRequestToSign } from "../../contract/runner-auth.ts";
import { LeaseLostError } from "./errors.ts";
import { discard, isOk, readText, request } from "./http-client.ts";

export class WorkerHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    path: string,
  ) {
    super(`worker answered ${status} to ${path}: ${body.slice(0, 300)}`);
    this.name = "WorkerHttpError";
  }
}

export interface WorkerClientOptions {
  /** The worker's base URL, or a function returning the current one (see followUrlFile). */
  apiUrl: string | (() => string);
  runnerId: string;
  secret: string;
  /** Attempts for network errors, 429 and 5xx (each freshly signed: nonces are single-use). */
  attempts?: number;
  baseDelayMs?: number;
  /** Told about every reachable / unreachable outcome (for /healthz). */
  onReachability?: (reachable: boolean) => void;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with full jitter, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs = 10_000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}

/**
 * The base URL kept in `path` (scripts/dev-server.ts rewrites it when `wrangler dev` moves the worker to a new
 * port on a hot reload), re-read when the file's mtime or size changes; `fallback` while it is missing or holds
 * no URL. A stat per request costs microseconds, next to milliseconds for the request itself.
 */
export function followUrlFile(path: string, fallback: string): () => string {
  let seen = "";
  let url = fallback;
  return () => {
    let stamp = "";
    try {
      const st = statSync(path);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      /* not written yet */
    }
    if (stamp !== seen) {
      seen = stamp;
      url = fallback;
      if (stamp) {
        const text = readFileSync(path, "utf8").trim().replace(/\/+$/, "");
        if (URL.canParse(text)) url = text;
      }
    }
    return url;
  };
}

/**
 * contract/runner-auth.ts's signRunnerRequest with node:crypto, synchronously: WebCrypto's digest and HMAC are libuv
 * thread-pool jobs in Node, and the pool is shared with sharp (0.57-0.88 ms p50 against 0.10-0.13 ms measured per
 * signature, with multi-ms tails). Every completion report is signed on the job's critical path.
 */
export function signRunnerRequestSync(p: { runnerId: string; secret: string; method: string; url: string; body: string }) {
  const r = runnerRequestToSign({ ...p, bodySha256Hex: createHash("sha256").update(p.body).digest("hex") });
  return runnerRequestHeaders(p.runnerId, r, createHmac("sha256", p.secret).update(r.toSign).digest("hex"));
}

/** Signed JSON calls to the worker's runner routes, retried on transient failures. */
export class WorkerClient {
  constructor(private readonly o: WorkerClientOptions) {}

  private baseUrl(): string {
    return typeof this.o.apiUrl === "string" ? this.o.apiUrl : this.o.apiUrl();
  }

  async call<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const attempts = this.o.attempts ?? 5;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(backoffMs(attempt, this.o.baseDelayMs ?? 250), signal);
      try {
        return await this.once<T>(method, path, body, signal);
      } catch (e) {
        if (e instanceof LeaseLostError || signal?.aborted) throw e;
        if (e instanceof WorkerHttpError && e.status !== 429 && e.status < 500) throw e;
        lastError = e;
      }
    }
    throw lastError;
  }

  private async once<T>(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const url = this.baseUrl() + path;
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers = signRunnerRequestSync({ runnerId: this.o.runnerId, secret: this.o.secret, method, url, body: text });
    let status: number;
    let responseText: string;
    try {
      const res = await request(url, {
        method,
        headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : text,
        signal,
      });
      status = res.statusCode ?? 0;
      responseText = await readText(res);
    } catch (e) {
      if (!signal?.aborted) this.o.onReachability?.(false);
      throw e;
    }
    this.o.onReachability?.(status < 500);
    if (status === 409) throw new LeaseLostError(`worker answered 409 to ${path}: ${responseText.slice(0, 200)}`);
    if (!isOk(status)) throw new WorkerHttpError(status, responseText, path);
    return (responseText ? JSON.parse(responseText) : {}) as T;
  }

  /** Unsigned reachability probe of the worker's public health route. */
  async ping(signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await request(this.baseUrl() + "/healthz", { signal });
      discard(res);
      const ok = res.statusCode === 200;
      this.o.onReachability?.(ok);
      return ok;
    } catch {
      this.o.onReachability?.(false);
      return false;
    }
  }
}
