import { hex, sha256Hex, timingSafeEqual, utf8 } from "./encoding.ts";

/**
 * Runner request signing: HMAC-SHA256 over "v1\n<runner id>\n<unix seconds>\n<nonce>\n<METHOD>\n<path+query>\n<sha256(body)>".
 * The worker rejects timestamps outside REPLAY_WINDOW_SECONDS and nonces it has seen inside the window.
 */

export const REPLAY_WINDOW_SECONDS = 300;
export const RUNNER_HEADERS = {
  id: "x-vigil-runner",
  timestamp: "x-vigil-timestamp",
  nonce: "x-vigil-nonce",
  signature: "x-vigil-signature",
} as const;

async function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", utf8(secret) as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

export async function runnerStringToSign(p: {
  runnerId: string;
  timestamp: number;
  nonce: string;
  method: string;
  pathAndQuery: string;
  body: string | Uint8Array;
}): Promise<string> {
  return runnerStringToSignFromHash({ ...p, bodySha256Hex: await sha256Hex(p.body) });
}

function runnerStringToSignFromHash(p: {
  runnerId: string;
  timestamp: number;
  nonce: string;
  method: string;
  pathAndQuery: string;
  bodySha256Hex: string;
}): string {
  return ["v1", p.runnerId, String(p.timestamp), p.nonce, p.method.toUpperCase(), p.pathAndQuery, p.bodySha256Hex].join("\n");
}

/**
 * A runner request's timestamp, fresh nonce and string to sign, for a body whose SHA-256 the caller computed: with
 * WebCrypto (signRunnerRequest), or synchronously with node:crypto in the Node runner (gpu-runner/src/worker-client.ts).
 */
export function runnerRequestToSign(p: { runnerId: string; method: string; url: string; bodySha256Hex: string; now?: number }) {
  const timestamp = p.now ?? Math.floor(Date.now() / 1000);
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const u = new URL(p.url);
  const toSign = runnerStringToSignFromHash({ ...p, timestamp, nonce, pathAndQuery: u.pathname + u.search });
  return { timestamp, nonce, toSign };
}

/** The headers of a runner request signed with `macHex`, the hex HMAC-SHA256 of its string to sign. */
export function runnerRequestHeaders(
  runnerId: string,
  r: { timestamp: number; nonce: string },
  macHex: string,
): Record<string, string> {
  return {
    [RUNNER_HEADERS.id]: runnerId,
    [RUNNER_HEADERS.timestamp]: String(r.timestamp),
    [RUNNER_HEADERS.nonce]: r.nonce,
    [RUNNER_HEADERS.signature]: `v1=${macHex}`,
  };
}

/** Headers a runner adds to a request. */
export async function signRunnerRequest(p: {
  runnerId: string;
  secret: string;
  method: string;
  url: string;
  body?: string;
  now?: number;
}): Promise<Record<string, string>> {
  const r = runnerRequestToSign({ ...p, bodySha256Hex: await sha256Hex(p.body ?? "") });
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(p.secret), utf8(r.toSign) as BufferSource);
  return runnerRequestHeaders(p.runnerId, r, hex(mac));
}

export type RunnerAuthFailure = "missing_headers" | "stale_timestamp" | "bad_signature";

/** Checks signature and timestamp window. Nonce replay is checked by the caller (it needs storage). */
export async function verifyRunnerSignature(p: {
  headers: Headers;
  secret: string;
  method: string;
  url: string;
  body: string | Uint8Array;
  now?: number;
}): Promise<{ ok: true; runnerId: string; nonce: string; timestamp: number } | { ok: false; reason: RunnerAuthFailure }> {
  const runnerId = p.headers.get(RUNNER_HEADERS.id);
  const ts = p.headers.get(RUNNER_HEADERS.timestamp);
  const nonce = p.headers.get(RUNNER_HEADERS.nonce);
  const sig = p.headers.get(RUNNER_HEADERS.signature);
  if (!runnerId || !ts || !nonce || !sig || !/^\d+$/.test(ts) || !/^[0-9a-f]{16,64}$/.test(nonce)) {
    return { ok: false, reason: "missing_headers" };
  }
  const timestamp = Number(ts);
  const now = p.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > REPLAY_WINDOW_SECONDS) return { ok: false, reason: "stale_timestamp" };
  const m = /^v1=([0-9a-f]{64})$/.exec(sig);
  if (!m) return { ok: false, reason: "bad_signature" };
  const u = new URL(p.url);
  const toSign = await runnerStringToSign({
    runnerId,
    timestamp,
    nonce,
    method: p.method,
    pathAndQuery: u.pathname + u.search,
    body: p.body,
  });
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(p.secret), utf8(toSign) as BufferSource));
  const given = Uint8Array.from(m[1]!.match(/../g)!.map((h) => parseInt(h, 16)));
  if (!timingSafeEqual(expected, given)) return { ok: false, reason: "bad_signature" };
  return { ok: true, runnerId, nonce, timestamp };
}
