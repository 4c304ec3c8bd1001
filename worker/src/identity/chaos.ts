/**
 * Chaotic bit cipher for watermark payloads (design and rationale: docs/identity-crypto.md).
 *
 * The dynamical system is a pair of cross-coupled logistic maps
 *
 *   fx = r1·x·(1−x),  fy = r2·y·(1−y)
 *   x' = (1−ε)·fx + ε·fy,  y' = (1−ε)·fy + ε·fx
 *
 * with r1, r2 ∈ [3.99, 3.9999), ε ∈ [0.05, 0.15) and x0, y0 ∈ [0.05, 0.95), all from HKDF-SHA256.
 * Every step uses only IEEE-754 float64 +, −, ×, Math.floor and % by a power of two, which are exactly
 * rounded on every conforming platform, so the orbit (and the cipher) is bit-for-bit reproducible.
 *
 * Output is taken from mantissa bits 33..40 below the binary point of x and y (XORed): the high bits of
 * a logistic orbit follow the arcsine density and are correlated step to step, the low-order bits are
 * close to uniform and decorrelate after one step (Lyapunov exponent ≈ ln 2 per step).
 */

import { utf8 } from "../../../contract/encoding.ts";

const TWO_40 = 2 ** 40;
const TWO_32 = 2 ** 32;
const TWO_52 = 2 ** 52;
/** Discarded iterations after seeding: 52 bits of initial-condition detail saturate in ≈ 52 steps at λ ≈ ln 2. */
export const BURN_IN = 1000;
/**
 * Ciphertext feedback adds this to x. It is far above bit 40, so the next output bits change at once,
 * and small enough that x stays below r/4 + 2^-20 < 1.
 */
const FEEDBACK = 2 ** -20;

export interface ChaosParams {
  x0: number;
  y0: number;
  r1: number;
  r2: number;
  eps: number;
  /** Extra keyed burn-in (0..255) on top of BURN_IN. */
  extraBurn: number;
}

/** A 52-bit fraction in [0, 1) read big-endian from 7 bytes (top 4 bits of the first byte dropped). */
function fraction52(b: Uint8Array, at: number): number {
  const hi = ((b[at]! & 0x0f) << 16) | (b[at + 1]! << 8) | b[at + 2]!;
  const lo = ((b[at + 3]! << 24) | (b[at + 4]! << 16) | (b[at + 5]! << 8) | b[at + 6]!) >>> 0;
  return (hi * TWO_32 + lo) / TWO_52;
}

function fraction32(b: Uint8Array, at: number): number {
  return (((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0) / TWO_32;
}

/** Maps 32 key-derived bytes to parameters inside the non-degenerate ranges documented above. */
export function paramsFromBytes(b: Uint8Array): ChaosParams {
  if (b.length < 27) throw new RangeError("need 27 bytes of key material");
  return {
    x0: 0.05 + 0.9 * fraction52(b, 0),
    y0: 0.05 + 0.9 * fraction52(b, 7),
    r1: 3.99 + 0.0099 * fraction32(b, 14),
    r2: 3.99 + 0.0099 * fraction32(b, 18),
    eps: 0.05 + 0.1 * fraction32(b, 22),
    extraBurn: b[26]!,
  };
}

/** One coupled chaotic system. Mutable: each call advances the orbit. */
export class CoupledLogistic {
  x: number;
  y: number;
  private readonly r1: number;
  private readonly r2: number;
  private readonly eps: number;

  constructor(p: ChaosParams, burnIn: number = BURN_IN + p.extraBurn) {
    this.x = p.x0;
    this.y = p.y0;
    this.r1 = p.r1;
    this.r2 = p.r2;
    this.eps = p.eps;
    for (let i = 0; i < burnIn; i++) this.step();
  }

  step(): void {
    const fx = this.r1 * this.x * (1 - this.x);
    const fy = this.r2 * this.y * (1 - this.y);
    this.x = (1 - this.eps) * fx + this.eps * fy;
    this.y = (1 - this.eps) * fy + this.eps * fx;
  }

  /** Advances once and returns 8 low-order mantissa bits of x XOR those of y. */
  nextByte(): number {
    this.step();
    return (Math.floor(this.x * TWO_40) % 256) ^ (Math.floor(this.y * TWO_40) % 256);
  }

  nextBit(): number {
    return this.nextByte() & 1;
  }

  /** Ciphertext feedback: a 1 bit nudges the orbit, so every later keystream bit depends on it. */
  feed(bit: number): void {
    if (bit) this.x += FEEDBACK;
  }

  /** Uniform integer in [0, n) by rejection on 16-bit draws (exact, no modulo bias); n ≤ 65536. */
  nextBelow(n: number): number {
    let mask = 1;
    while (mask < n) mask = mask * 2;
    mask -= 1;
    for (;;) {
      const v = ((this.nextByte() << 8) | this.nextByte()) & mask;
      if (v < n) return v;
    }
  }
}

export const HKDF_SALT = utf8("vigil/identity/v1");

export async function importMasterKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length < 16) throw new RangeError("master key must be at least 16 bytes");
  return crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveBits"]);
}

export async function hkdf(key: CryptoKey, info: Uint8Array, bytes: number): Promise<Uint8Array> {
  const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: HKDF_SALT, info }, key, bytes * 8);
  return new Uint8Array(bits);
}

/** Key material for one asset: system A (permutation + forward pass) and system B (backward pass). */
export interface CipherKeys {
  a: ChaosParams;
  b: ChaosParams;
}

/** HKDF-SHA256(master, salt, info = "chaos" ‖ nonce) → 64 bytes → two parameter sets. */
export async function deriveCipherKeys(master: CryptoKey, nonce: Uint8Array): Promise<CipherKeys> {
  const label = utf8("chaos");
  const info = new Uint8Array(label.length + nonce.length);
  info.set(label);
  info.set(nonce, label.length);
  const okm = await hkdf(master, info, 64);
  return { a: paramsFromBytes(okm.subarray(0, 32)), b: paramsFromBytes(okm.subarray(32, 64)) };
}

function checkBits(bits: Uint8Array): void {
  if (bits.length < 2 || bits.length > 4096) throw new RangeError("bit block must have 2..4096 bits");
  for (const v of bits) if (v !== 0 && v !== 1) throw new RangeError("bits must be 0 or 1");
}

/** Fisher–Yates permutation of [0, n) driven by the chaotic system. */
export function chaoticPermutation(sys: CoupledLogistic, n: number): Uint16Array {
  const p = new Uint16Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = sys.nextBelow(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/**
 * Encrypts a block of bits: keyed permutation, then a forward keystream pass with ciphertext feedback
 * (system A), then a backward pass with feedback (system B). The two feedback passes spread a change in
 * any plaintext bit over the whole block, which a plain XOR keystream cannot do.
 */
export function encryptBits(keys: CipherKeys, plain: Uint8Array): Uint8Array {
  checkBits(plain);
  const n = plain.length;
  const a = new CoupledLogistic(keys.a);
  const perm = chaoticPermutation(a, n);
  const mid = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = plain[perm[i]!]! ^ a.nextBit();
    mid[i] = c;
    a.feed(c);
  }
  const b = new CoupledLogistic(keys.b);
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const c = mid[i]! ^ b.nextBit();
    out[i] = c;
    b.feed(c);
  }
  return out;
}

export function decryptBits(keys: CipherKeys, cipher: Uint8Array): Uint8Array {
  checkBits(cipher);
  const n = cipher.length;
  const b = new CoupledLogistic(keys.b);
  const mid = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    mid[i] = cipher[i]! ^ b.nextBit();
    b.feed(cipher[i]!);
  }
  const a = new CoupledLogistic(keys.a);
  const perm = chaoticPermutation(a, n);
  const plain = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    plain[perm[i]!] = mid[i]! ^ a.nextBit();
    a.feed(mid[i]!);
  }
  return plain;
}
