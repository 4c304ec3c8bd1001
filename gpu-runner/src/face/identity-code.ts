import { REFERENCE_MEAN } from "./reference-mean.ts";
import { mulberry32 } from "../../../contract/random.ts";

/**
 * Keyless, stable binarisation of a 128-d face descriptor into K bits (sign random projections,
 * Charikar 2002): bit j = [ r_j · (d − μ) ≥ 0 ]. For two centred descriptors at angle θ, each bit
 * differs with probability θ/π, so the Hamming distance estimates the angle and small descriptor
 * changes (benign edits) flip few bits while different people flip about K/2 at random.
 *
 * Reproducible by construction: r_j are ±1 (Rademacher) entries drawn from mulberry32 seeded with
 * IDENTITY_CODE_SEED, row by row, one 32-bit draw per entry, entry = +1 when the draw's top bit is 0.
 * Integer entries and a fixed summation order make the code identical on every platform, except for a
 * projection that lands within float rounding of zero, which is as rare as it is harmless.
 *
 * μ (REFERENCE_MEAN) centres the descriptors: face-api descriptors share a large common component, so
 * uncentred projections would give bits that are nearly constant across people. μ is the mean over a
 * reference set of faces disjoint from the evaluation people (see models/identity/CARD.md).
 */

export const DESCRIPTOR_LENGTH = 128;
/** "VIGI" in ASCII. Changing it, K or μ invalidates every stored identity code. */
export const IDENTITY_CODE_SEED = 0x56494749;
export const IDENTITY_CODE_BITS = 32;

/** K rows of 128 entries in {−1, +1}, row-major. */
export function projectionMatrix(bits: number, seed: number = IDENTITY_CODE_SEED): Int8Array {
  if (!Number.isInteger(bits) || bits < 1 || bits > 256) throw new RangeError("bits must be an integer in 1..256");
  const next = mulberry32(seed);
  const m = new Int8Array(bits * DESCRIPTOR_LENGTH);
  for (let i = 0; i < m.length; i++) m[i] = next() >>> 31 === 0 ? 1 : -1;
  return m;
}

const cache = new Map<string, Int8Array>();
function cachedMatrix(bits: number, seed: number): Int8Array {
  const key = `${bits}:${seed}`;
  let m = cache.get(key);
  if (!m) cache.set(key, (m = projectionMatrix(bits, seed)));
  return m;
}

export interface IdentityCodeOptions {
  bits?: number;
  seed?: number;
  mean?: ArrayLike<number>;
}

/** The K projections r_j · (d − μ), before taking signs (their magnitudes say how reliable each bit is). */
export function projectDescriptor(descriptor: ArrayLike<number>, options: IdentityCodeOptions = {}): Float64Array {
  const bits = options.bits ?? IDENTITY_CODE_BITS;
  const mean = options.mean ?? REFERENCE_MEAN;
  if (descriptor.length !== DESCRIPTOR_LENGTH) throw new RangeError(`descriptor must have ${DESCRIPTOR_LENGTH} values`);
  if (mean.length !== DESCRIPTOR_LENGTH) throw new RangeError(`mean must have ${DESCRIPTOR_LENGTH} values`);
  const m = cachedMatrix(bits, options.seed ?? IDENTITY_CODE_SEED);
  const centred = new Float64Array(DESCRIPTOR_LENGTH);
  for (let i = 0; i < DESCRIPTOR_LENGTH; i++) {
    const v = descriptor[i]! - mean[i]!;
    if (!Number.isFinite(v)) throw new RangeError("descriptor has a non-finite value");
    centred[i] = v;
  }
  const out = new Float64Array(bits);
  for (let j = 0; j < bits; j++) {
    let s = 0;
    for (let i = 0; i < DESCRIPTOR_LENGTH; i++) s += m[j * DESCRIPTOR_LENGTH + i]! * centred[i]!;
    out[j] = s;
  }
  return out;
}

/** K bits, bit 0 first, as 0/1 bytes. */
export function identityBits(descriptor: ArrayLike<number>, options: IdentityCodeOptions = {}): Uint8Array {
  return Uint8Array.from(projectDescriptor(descriptor, options), (v) => (v >= 0 ? 1 : 0));
}

/** Bits to hex, bit 0 as the most significant bit of the first nibble; a partial last nibble is zero-padded. */
export function bitsToHex(bits: ArrayLike<number>): string {
  let hex = "";
  for (let i = 0; i < bits.length; i += 4) {
    let nibble = 0;
    for (let k = 0; k < 4; k++) nibble = (nibble << 1) | (i + k < bits.length ? bits[i + k]! & 1 : 0);
    hex += nibble.toString(16);
  }
  return hex;
}

export function hexToBits(hex: string, bits: number): Uint8Array {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== Math.ceil(bits / 4)) {
    throw new RangeError(`identity code must be ${Math.ceil(bits / 4)} hex digits`);
  }
  const out = new Uint8Array(bits);
  for (let i = 0; i < bits; i++) out[i] = (parseInt(hex[i >> 2]!, 16) >> (3 - (i & 3))) & 1;
  return out;
}

/** The identity code of a descriptor as hex (IDENTITY_CODE_BITS bits by default). */
export function identityCode(descriptor: ArrayLike<number>, options: IdentityCodeOptions = {}): string {
  return bitsToHex(identityBits(descriptor, options));
}

/** Number of differing bits between two identity codes. */
export { hammingHex } from "../../../contract/encoding.ts";
