/**
 * The watermark payload (bit budget and false-accept rates: docs/identity-crypto.md).
 *
 *   | key slot (clear) | asset ref (clear) | body (chaos-encrypted)                      |
 *   face mode:                               identity code (codeBits) ‖ tag (tagBits)
 *   provenance mode:                         tag (codeBits + tagBits)
 *
 * The tag is HMAC-SHA256 under a per-tenant-key MAC key over (layout, mode, slot, ref, code), truncated.
 * It is computed on the plaintext and encrypted with it (MAC-then-encrypt): with a one-time keystream
 * per (key, ref) this is a secure composition (Krawczyk, CRYPTO 2001), and it leaves no tag bits in the
 * clear at fixed positions. Images without a face get the provenance mode, whose long tag makes a false
 * accept negligible; the verifier tries provenance first, then face mode.
 */

import { utf8 } from "../../../contract/encoding.ts";
import { bitsToUint, concatBits, packBits, uintToBits } from "./bits.ts";
import { decryptBits, deriveCipherKeys, encryptBits, hkdf } from "./chaos.ts";

export interface PayloadLayout {
  totalBits: number;
  keySlotBits: number;
  refBits: number;
  codeBits: number;
}

/** 64 data bits (the codec's default capacity); 32-bit identity codes from face.analyze. */
export const DEFAULT_LAYOUT: PayloadLayout = { totalBits: 64, keySlotBits: 4, refBits: 20, codeBits: 32 };

export const MIN_TAG_BITS = 8;

export function tagBits(l: PayloadLayout): number {
  return l.totalBits - l.keySlotBits - l.refBits - l.codeBits;
}

export function checkLayout(l: PayloadLayout): void {
  const ints = [l.totalBits, l.keySlotBits, l.refBits, l.codeBits];
  if (!ints.every((v) => Number.isInteger(v) && v >= 1)) throw new RangeError("layout fields must be positive integers");
  if (l.totalBits > 256) throw new RangeError("payload over 256 bits");
  if (l.keySlotBits > 8 || l.refBits > 30) throw new RangeError("key slot ≤ 8 bits and ref ≤ 30 bits");
  if (tagBits(l) < MIN_TAG_BITS) throw new RangeError(`layout leaves ${tagBits(l)} tag bits; at least ${MIN_TAG_BITS} needed`);
}

function layoutBytes(l: PayloadLayout): Uint8Array {
  return Uint8Array.of(l.totalBits, l.keySlotBits, l.refBits, l.codeBits);
}

/** Per-asset nonce: the keystream differs for every (tenant key, slot, ref), so equal codes encrypt differently. */
export function assetNonce(l: PayloadLayout, slot: number, ref: number): Uint8Array {
  const out = new Uint8Array(10);
  out.set(layoutBytes(l));
  new DataView(out.buffer).setUint16(4, slot);
  new DataView(out.buffer).setUint32(6, ref);
  return out;
}

export type PayloadMode = "face" | "provenance";

async function tag(master: CryptoKey, l: PayloadLayout, mode: PayloadMode, slot: number, ref: number, code: Uint8Array | null) {
  const macKey = await crypto.subtle.importKey(
    "raw",
    await hkdf(master, utf8("mac"), 32),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const head = concatBits(uintToBits(mode === "face" ? 1 : 0, 8), uintToBits(slot, 16), uintToBits(ref, 32));
  const msg = concatBits(utf8("tag"), layoutBytes(l), packBits(head), code ? packBits(code) : []);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", macKey, msg));
  const width = mode === "face" ? tagBits(l) : tagBits(l) + l.codeBits;
  const out = new Uint8Array(width);
  for (let i = 0; i < width; i++) out[i] = (mac[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
}

export interface PayloadFields {
  slot: number;
  ref: number;
  /** Identity code bits (face mode) or null (provenance only). */
  code: Uint8Array | null;
}

export async function encodePayload(master: CryptoKey, l: PayloadLayout, f: PayloadFields): Promise<Uint8Array> {
  checkLayout(l);
  if (f.code && f.code.length !== l.codeBits) throw new RangeError(`identity code must have ${l.codeBits} bits`);
  const mode: PayloadMode = f.code ? "face" : "provenance";
  const header = concatBits(uintToBits(f.slot, l.keySlotBits), uintToBits(f.ref, l.refBits));
  const t = await tag(master, l, mode, f.slot, f.ref, f.code);
  const body = f.code ? concatBits(f.code, t) : t;
  const keys = await deriveCipherKeys(master, assetNonce(l, f.slot, f.ref));
  return concatBits(header, encryptBits(keys, body));
}

/** The clear part: what a verifier reads before it knows which key to use. */
export function parseHeader(l: PayloadLayout, bits: Uint8Array): { slot: number; ref: number } {
  checkLayout(l);
  if (bits.length !== l.totalBits) throw new RangeError(`payload must have ${l.totalBits} bits`);
  return {
    slot: bitsToUint(bits.subarray(0, l.keySlotBits)),
    ref: bitsToUint(bits.subarray(l.keySlotBits, l.keySlotBits + l.refBits)),
  };
}

function equalBits(a: Uint8Array, b: Uint8Array): boolean {
  // Not secret-dependent timing in any useful way: the attacker sees only accept/reject anyway.
  let d = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export interface OpenedPayload extends PayloadFields {
  mode: PayloadMode;
}

/** Decrypts and authenticates under one key; null when the tag does not match (wrong key, tampering, no payload). */
export async function openPayload(master: CryptoKey, l: PayloadLayout, bits: Uint8Array): Promise<OpenedPayload | null> {
  const { slot, ref } = parseHeader(l, bits);
  const keys = await deriveCipherKeys(master, assetNonce(l, slot, ref));
  const body = decryptBits(keys, bits.subarray(l.keySlotBits + l.refBits));
  if (equalBits(body, await tag(master, l, "provenance", slot, ref, null))) return { mode: "provenance", slot, ref, code: null };
  const code = body.slice(0, l.codeBits);
  if (equalBits(body.subarray(l.codeBits), await tag(master, l, "face", slot, ref, code)))
    return { mode: "face", slot, ref, code };
  return null;
}
