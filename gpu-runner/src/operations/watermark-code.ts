import { createHash } from "node:crypto";

/**
 * Channel code of the watermark: 64 payload bits -> extended BCH(128, 64) codeword (a BCH(127, 64) code with
 * designed distance 21, i.e. t = 10 correctable errors, plus an overall parity bit: minimum distance 22), XORed with
 * a keyed whitening sequence so that structured images or an all-zero payload never map to structured patterns.
 *
 * Presence test (exact): for an unmarked image the null hypothesis is that the 128 whitened hard bits are i.i.d.
 * fair coins. Hamming balls of radius d <= 10 around the 2^64 codewords are disjoint (2 * 10 < 22), so the chance
 * that such a random word lies within distance d of SOME codeword is exactly 2^64 * V(128, d) / 2^128, where
 * V(n, d) = sum_{j<=d} C(n, j). That is the p-value reported for a decoded word at distance d. It is larger than
 * the plain binomial tail P[Bin(128, 1/2) >= 128 - d] by the 2^64 codewords the decoder gets to choose from: using
 * the plain tail after error correction would understate the false-positive rate by up to 2^64. Beyond d = 10 the
 * same expression is only a union bound (capped at 1), which is conservative.
 */

export const DATA_BITS = 64;
export const CODE_BITS = 128;
export const T = 10;
const N = 127; // BCH length 2^7 - 1
const PARITY = N - DATA_BITS; // 63
const FIELD = 128;

// GF(2^7) with the primitive polynomial x^7 + x^3 + 1.
const EXP = new Uint8Array(2 * FIELD);
const LOG = new Int16Array(FIELD).fill(-1);
{
  let x = 1;
  for (let i = 0; i < N; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & FIELD) x ^= 0x89;
  }
  for (let i = N; i < 2 * FIELD; i++) EXP[i] = EXP[i - N]!;
}

function mul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!;
}

function pow(i: number): number {
  return EXP[((i % N) + N) % N]!;
}

/** Generator polynomial (coefficients low degree first): product of (x - a^j) over the cyclotomic cosets of 1..2t. */
const GENERATOR: number[] = (() => {
  const roots = new Set<number>();
  for (let j = 1; j <= 2 * T; j++) for (let k = j, s = 0; s < 7; s++, k = (k * 2) % N) roots.add(k);
  let g = [1];
  for (const r of roots) {
    const next = new Array<number>(g.length + 1).fill(0);
    for (let i = 0; i < g.length; i++) {
      next[i + 1]! ^= g[i]!;
      next[i]! ^= mul(g[i]!, pow(r));
    }
    g = next;
  }
  if (g.length !== PARITY + 1 || g.some((c) => c > 1)) throw new Error("BCH generator construction failed");
  return g;
})();

/** 128 whitening bits derived from a fixed key (SHA-256 is just a convenient deterministic bit source). */
export const WHITENING: Uint8Array = (() => {
  const bytes = createHash("sha256").update("vigil/watermark/v1/whitening").digest();
  const out = new Uint8Array(CODE_BITS);
  for (let i = 0; i < CODE_BITS; i++) out[i] = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
})();

export function hexToBits(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex))
    throw new RangeError(`payload must be 1-16 hex digits (64 bits), got ${JSON.stringify(hex)}`);
  const padded = hex.padStart(16, "0");
  const out = new Uint8Array(DATA_BITS);
  for (let i = 0; i < DATA_BITS; i++) out[i] = (parseInt(padded[i >> 2]!, 16) >> (3 - (i & 3))) & 1;
  return out;
}

export function bitsToHex(bits: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < bits.length; i += 4)
    s += ((bits[i]! << 3) | (bits[i + 1]! << 2) | (bits[i + 2]! << 1) | bits[i + 3]!).toString(16);
  return s;
}

/** Systematic encoding: codeword[0..62] = parity, codeword[63..126] = data, codeword[127] = overall parity. */
export function encodePayload(data: Uint8Array): Uint8Array {
  if (data.length !== DATA_BITS) throw new RangeError(`expected ${DATA_BITS} data bits`);
  const cw = new Uint8Array(CODE_BITS);
  // remainder of data(x) * x^63 mod g(x), by long division over GF(2)
  const reg = new Uint8Array(N);
  for (let i = 0; i < DATA_BITS; i++) reg[PARITY + i] = data[i]!;
  for (let i = N - 1; i >= PARITY; i--) {
    if (!reg[i]) continue;
    for (let j = 0; j <= PARITY; j++) reg[i - PARITY + j]! ^= GENERATOR[j]!;
  }
  for (let i = 0; i < PARITY; i++) cw[i] = reg[i]!;
  for (let i = 0; i < DATA_BITS; i++) cw[PARITY + i] = data[i]!;
  let parity = 0;
  for (let i = 0; i < N; i++) parity ^= cw[i]!;
  cw[N] = parity;
  return cw;
}

/** Bounded-distance BCH decoding of the first 127 bits (Berlekamp-Massey + Chien search); null if > t errors. */
function correct(word: Uint8Array): Uint8Array | null {
  const synd = new Array<number>(2 * T + 1).fill(0);
  let any = false;
  for (let j = 1; j <= 2 * T; j++) {
    let s = 0;
    for (let i = 0; i < N; i++) if (word[i]) s ^= pow(i * j);
    synd[j] = s;
    if (s) any = true;
  }
  const out = word.slice(0, N);
  if (!any) return out;
  // Berlekamp-Massey over GF(2^7)
  let lambda = [1];
  let prev = [1];
  let l = 0;
  let m = 1;
  let b = 1;
  for (let k = 1; k <= 2 * T; k++) {
    let d = synd[k]!;
    for (let i = 1; i <= l; i++) d ^= mul(lambda[i] ?? 0, synd[k - i]!);
    if (d === 0) {
      m++;
      continue;
    }
    const coef = mul(d, EXP[N - LOG[b]!]!);
    const next = lambda.slice();
    for (let i = 0; i < prev.length; i++) {
      while (next.length <= i + m) next.push(0);
      next[i + m]! ^= mul(coef, prev[i]!);
    }
    if (2 * l <= k - 1) {
      prev = lambda;
      l = k - l;
      b = d;
      m = 1;
    } else m++;
    lambda = next;
  }
  while (lambda.length > 1 && lambda[lambda.length - 1] === 0) lambda.pop();
  if (l > T || lambda.length - 1 !== l) return null;
  let found = 0;
  for (let i = 0; i < N; i++) {
    // error at position i <=> lambda(a^-i) = 0
    let v = 0;
    for (let k = 0; k < lambda.length; k++) v ^= mul(lambda[k]!, pow(-i * k));
    if (v === 0) {
      out[i]! ^= 1;
      found++;
    }
  }
  return found === l ? out : null;
}

/** log2 of V(128, d) / 2^64 computed exactly with BigInt, then the exact p-value (capped at 1). */
export function presencePValue(distance: number): number {
  if (distance < 0 || !Number.isInteger(distance)) throw new RangeError("distance must be a non-negative integer");
  let c = 1n;
  let v = 0n;
  for (let j = 0; j <= Math.min(distance, CODE_BITS); j++) {
    v += c;
    c = (c * BigInt(CODE_BITS - j)) / BigInt(j + 1);
  }
  return Math.min(1, Number(v) / 2 ** (CODE_BITS - DATA_BITS));
}

export const FALSE_POSITIVE_RATE = 1e-6;

export interface DecodedPayload {
  /** 16 hex digits (64 bits): the corrected payload, or the raw systematic bits when correction failed. */
  bits: string;
  /** Whether a codeword lay within t = 10 errors (bounded-distance BCH decoding succeeded). */
  corrected: boolean;
  /** Per payload bit: the decoder's probability that the returned bit is right (from its own channel bit). */
  confidence: number[];
  /** Hamming distance between the received hard bits and the decoded codeword (128 bits), or null. */
  errors: number | null;
  p_value: number;
  detected: boolean;
}

/** Whitened codeword to embed for a payload given as hex. */
export function channelBits(hex: string): Uint8Array {
  const cw = encodePayload(hexToBits(hex));
  return cw.map((b, i) => b ^ WHITENING[i]!);
}

/** probs[i] = decoder's P(channel bit i = 1). */
export function decodeChannel(probs: ArrayLike<number>): DecodedPayload {
  if (probs.length !== CODE_BITS) throw new RangeError(`expected ${CODE_BITS} soft bits, got ${probs.length}`);
  const p = Float64Array.from({ length: CODE_BITS }, (_, i) => (WHITENING[i] ? 1 - probs[i]! : probs[i]!));
  const hard = Uint8Array.from(p, (v) => (v > 0.5 ? 1 : 0));
  const fixed = correct(hard);
  if (!fixed) {
    const confidence = Array.from(p.subarray(PARITY, N), (v) => Math.max(v, 1 - v));
    return { bits: bitsToHex(hard.subarray(PARITY, N)), corrected: false, confidence, errors: null, p_value: 1, detected: false };
  }
  const data = fixed.subarray(PARITY, N);
  const cw = encodePayload(Uint8Array.from(data));
  let errors = 0;
  for (let i = 0; i < CODE_BITS; i++) errors += cw[i] === hard[i] ? 0 : 1;
  const pValue = presencePValue(errors);
  const confidence = Array.from(data, (bit, i) => (bit ? p[PARITY + i]! : 1 - p[PARITY + i]!));
  return { bits: bitsToHex(data), corrected: true, confidence, errors, p_value: pValue, detected: pValue <= FALSE_POSITIVE_RATE };
}
