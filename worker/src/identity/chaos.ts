/**
 * Chaotic bit cipher for watermark payloads (design and rationale: docs/identity-crypto.md).
 *
 * The dynamical system is a pair of cross-coupled skew tent maps, a 2-D hyperchaotic map:
 *
 *   T_p(u) = u/p for u < p, (1−u)/(1−p) otherwise
 *   x' = (1−ε)·T_p1(x) + ε·T_p2(y),  y' = (1−ε)·T_p2(y) + ε·T_p1(x)
 *
 * with p1, p2 ∈ [0.3, 0.45) ∪ [0.55, 0.7), ε ∈ [0.02, 0.1) and x0, y0 ∈ [0.05, 0.95), all from HKDF-SHA256.
 * Every |slope| is ≥ 1/0.7, and the coupling matrix has singular values 1 and 1−2ε ≥ 0.8, so the Jacobian
 * stretches every direction by ≥ 0.8/0.7 ≈ 1.14 per step: both Lyapunov exponents are ≥ 0.13 for every key,
 * and no periodic orbit can be stable. (Coupled logistic maps, tried first, fell into stable period-2..32
 * orbits for 12.5 % of keys: the logistic map's zero slope at x = 1/2 lets coupling create attractors.)
 *
 * Every step uses only IEEE-754 float64 +, −, ×, /, Math.floor and % by a power of two, which are exactly
 * rounded on every conforming platform, so the orbit (and the cipher) is bit-for-bit reproducible.
 * Output is mantissa bits 33..40 below the binary point of x and y, XORed.
 */

import { utf8 } from "../../../contract/encoding.ts";

const TWO_40 = 2 ** 40;
const TWO_32 = 2 ** 32;
const TWO_52 = 2 ** 52;
/** Discarded iterations after seeding: ≥ 52 bits of initial-condition detail saturate in ≈ 52/0.13 = 400 steps at worst. */
export const BURN_IN = 1000;
/**
 * Ciphertext feedback moves x by this much. It is far above bit 40, so the next output bits change at
 * once, and it is applied towards the middle of (0, 1) so that x never leaves the interval.
 */
const FEEDBACK = 2 ** -20;
/** Bounded rejection sampling: with a live orbit each draw is accepted with probability > 1/2. */
const MAX_DRAWS = 200;

export interface ChaosParams {
  x0: number;
  y0: number;
  p1: number;
  p2: number;
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

/**
 * Skew point from u ∈ [0, 1): [0.3, 0.45) ∪ [0.55, 0.7). The gap keeps p away from 1/2, where the tent
 * map's slope 2 only shifts mantissa bits out and a float orbit decays to 0.
 */
function skew(u: number): number {
  return u < 0.5 ? 0.3 + 0.3 * u : 0.55 + 0.3 * (u - 0.5);
}

/** Maps 27 key-derived bytes to parameters inside the non-degenerate ranges documented above. */
export function paramsFromBytes(b: Uint8Array): ChaosParams {
  if (b.length < 27) throw new RangeError("need 27 bytes of key material");
  return {
    x0: 0.05 + 0.9 * fraction52(b, 0),
    y0: 0.05 + 0.9 * fraction52(b, 7),
    p1: skew(fraction32(b, 14)),
    p2: skew(fraction32(b, 18)),
    eps: 0.02 + 0.08 * fraction32(b, 22),
    extraBurn: b[26]!,
  };
}

function tent(u: number, p: number): number {
  return u < p ? u / p : (1 - u) / (1 - p);
}

/** One coupled chaotic system. Mutable: each call advances the orbit. */
export class CoupledSkewTent {
  x: number;
  y: number;
  private readonly p: ChaosParams;

  constructor(p: ChaosParams, burnIn: number = BURN_IN + p.extraBurn) {
    this.p = p;
    this.x = p.x0;
    this.y = p.y0;
    for (let i = 0; i < burnIn; i++) this.step();
  }

  step(): void {
    const { p1, p2, eps } = this.p;
    const tx = tent(this.x, p1);
    const ty = tent(this.y, p2);
    this.x = (1 - eps) * tx + eps * ty;
    this.y = (1 - eps) * ty + eps * tx;
    // 0 is a fixed point and 1 maps to 0; exact hits are measure-zero but possible in float64.
    // Re-entering at the keyed start keeps the orbit alive and the arithmetic deterministic.
    if (!(this.x > 0 && this.x < 1)) this.x = this.p.y0;
    if (!(this.y > 0 && this.y < 1)) this.y = this.p.x0;
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
    if (bit) this.x = this.x < 0.5 ? this.x + FEEDBACK : this.x - FEEDBACK;
  }

  /** Uniform integer in [0, n) by rejection on 16-bit draws (exact, no modulo bias); n ≤ 65536. */
  nextBelow(n: number): number {
    let mask = 1;
    while (mask < n) mask = mask * 2;
    mask -= 1;
    for (let i = 0; i < MAX_DRAWS; i++) {
      const v = ((this.nextByte() << 8) | this.nextByte()) & mask;
      if (v < n) return v;
    }
    throw new Error("chaotic stream is degenerate (rejection sampling did not terminate)");
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
export function chaoticPermutation(sys: CoupledSkewTent, n: number): Uint16Array {
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
  const a = new CoupledSkewTent(keys.a);
  const perm = chaoticPermutation(a, n);
  const mid = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = plain[perm[i]!]! ^ a.nextBit();
    mid[i] = c;
    a.feed(c);
  }
  const b = new CoupledSkewTent(keys.b);
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
  const b = new CoupledSkewTent(keys.b);
  const mid = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    mid[i] = cipher[i]! ^ b.nextBit();
    b.feed(cipher[i]!);
  }
  const a = new CoupledSkewTent(keys.a);
  const perm = chaoticPermutation(a, n);
  const plain = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    plain[perm[i]!] = mid[i]! ^ a.nextBit();
    a.feed(mid[i]!);
  }
  return plain;
}
