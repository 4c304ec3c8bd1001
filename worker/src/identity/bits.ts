/**
 * Bit vectors as Uint8Array of 0/1, bit 0 first. Hex uses the runner's convention
 * (gpu-runner/src/face/identity-code.ts): bit 0 is the most significant bit of the first nibble.
 */

export function bitsToHex(bits: ArrayLike<number>): string {
  let out = "";
  for (let i = 0; i < bits.length; i += 4) {
    let nibble = 0;
    for (let k = 0; k < 4; k++) nibble = (nibble << 1) | (i + k < bits.length ? bits[i + k]! & 1 : 0);
    out += nibble.toString(16);
  }
  return out;
}

/** Throws RangeError on anything but exactly ceil(n/4) hex digits. */
export function hexToBits(hex: string, n: number): Uint8Array {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== Math.ceil(n / 4)) {
    throw new RangeError(`expected ${Math.ceil(n / 4)} hex digits for ${n} bits`);
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (parseInt(hex[i >> 2]!, 16) >> (3 - (i & 3))) & 1;
  return out;
}

/** Unsigned integer → `width` bits, most significant first (width ≤ 32). */
export function uintToBits(value: number, width: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** width) throw new RangeError(`${value} does not fit ${width} bits`);
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) out[i] = Math.floor(value / 2 ** (width - 1 - i)) % 2;
  return out;
}

export function bitsToUint(bits: ArrayLike<number>): number {
  let v = 0;
  for (let i = 0; i < bits.length; i++) v = v * 2 + (bits[i]! & 1);
  return v;
}

/** Packs bits MSB-first into bytes (last byte zero-padded). */
export function packBits(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  for (let i = 0; i < bits.length; i++) if (bits[i]) out[i >> 3]! |= 0x80 >> (i & 7);
  return out;
}

export function unpackBits(bytes: Uint8Array, n: number = bytes.length * 8): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
}

export function hamming(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError("length mismatch");
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i]! ^ b[i]!) & 1;
  return d;
}

export function concatBits(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(Array.from(p), at);
    at += p.length;
  }
  return out;
}
