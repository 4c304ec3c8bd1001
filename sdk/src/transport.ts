import { retryAfterSeconds, VigilConnectionError, VigilError } from "./errors.ts";

export interface RetryOptions {
  /** Retries after the first attempt (default 3). 0 turns retrying off. */
  maxRetries?: number;
  /** First backoff ceiling in ms (default 500), doubled per retry. */
  baseDelayMs?: number;
  /** Largest backoff in ms (default 8000). */
  maxDelayMs?: number;
  /** A Retry-After longer than this (default 60 s) is not waited for: the error is thrown at once. */
  maxRetryAfterMs?: number;
}

export interface SendOptions {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  retry: Required<RetryOptions>;
  fetch: typeof fetch;
  /** Called before each retry (attempt 1 is the first retry): for logging and tests. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

/** Statuses worth another attempt: rate limited, or a server/gateway failure that a later attempt may not hit. */
const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/**
 * "Full jitter" backoff: a uniform delay in [0, min(cap, base * 2^n)], which spreads the retries of many clients
 * that failed together (Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
 */
export function backoffMs(retry: number, opts: Required<RetryOptions>, random = Math.random): number {
  return Math.round(random() * Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** retry));
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

/**
 * One HTTP exchange with retries on network errors, 429 and 5xx. The same headers (the Idempotency-Key included)
 * go with every attempt, so a POST retried after a lost answer is answered by the job the first attempt made.
 * Resolves with the final response when it is a success, throws VigilError for an error answer and
 * VigilConnectionError when no attempt got one. An abort is rethrown as is, never retried.
 */
export async function send(opts: SendOptions): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    let res: Response | undefined;
    let failure: unknown;
    try {
      res = await opts.fetch(opts.url, {
        method: opts.method,
        headers: opts.headers,
        body: opts.body as BodyInit | undefined,
        signal: opts.signal,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      failure = e;
    }
    if (res && (res.ok || !RETRY_STATUSES.has(res.status))) {
      if (res.ok) return res;
      throw await VigilError.fromResponse(res);
    }
    const retryAfter = res ? retryAfterSeconds(res.headers.get("retry-after")) : null;
    const tooLong = retryAfter !== null && retryAfter * 1000 > opts.retry.maxRetryAfterMs;
    if (attempt >= opts.retry.maxRetries || tooLong) {
      if (res) throw await VigilError.fromResponse(res);
      throw new VigilConnectionError(
        `${opts.method} ${opts.url} failed after ${attempt + 1} attempts: ${String(failure)}`,
        failure,
      );
    }
    const delayMs = retryAfter !== null ? Math.ceil(retryAfter * 1000) : backoffMs(attempt, opts.retry);
    // The unread body would hold the connection open until garbage collection.
    await res?.body?.cancel().catch(() => {});
    opts.onRetry?.({ attempt: attempt + 1, delayMs, reason: res ? `HTTP ${res.status}` : String(failure) });
    await sleep(delayMs, opts.signal);
  }
}
