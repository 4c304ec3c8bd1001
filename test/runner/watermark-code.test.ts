import { describe, expect, it } from "vitest";
import {
  CODE_BITS,
  FALSE_POSITIVE_RATE,
  WHITENING,
  bitsToHex,
  channelBits,
  decodeChannel,
  encodePayload,
  hexToBits,
  presencePValue,
} from "../../gpu-runner/src/operations/watermark-code.ts";
import { uniform as rng } from "../../contract/random.ts";

function softFrom(bits: Uint8Array, flips: number, rand: () => number): number[] {
  const probs = Array.from(bits, (b): number => (b ? 0.8 : 0.2));
  const chosen = new Set<number>();
  while (chosen.size < flips) chosen.add(Math.floor(rand() * CODE_BITS));
  for (const i of chosen) probs[i] = 1 - probs[i]!;
  return probs;
}

function binom(n: number, k: number): bigint {
  let c = 1n;
  for (let j = 0; j < k; j++) c = (c * BigInt(n - j)) / BigInt(j + 1);
  return c;
}

describe("watermark channel code (extended BCH(128, 64), t = 10)", () => {
  it("hex payloads round-trip and bad payloads are rejected clearly", () => {
    expect(bitsToHex(hexToBits("0123456789abcdef"))).toBe("0123456789abcdef");
    expect(bitsToHex(hexToBits("ff"))).toBe("00000000000000ff");
    expect(() => hexToBits("0123456789abcdef0")).toThrow(/1-16 hex digits/);
    expect(() => hexToBits("xyz")).toThrow(/hex/);
  });

  it("codewords are linear: the XOR of two codewords is the codeword of the XOR", () => {
    const a = hexToBits("0123456789abcdef");
    const b = hexToBits("fedcba9876543210");
    const sum = encodePayload(a).map((v, i) => v ^ encodePayload(b)[i]!);
    expect(Array.from(sum)).toEqual(Array.from(encodePayload(a.map((v, i) => v ^ b[i]!))));
  });

  it("corrects every pattern of up to 10 errors and reports the distance", () => {
    const rand = rng(7);
    for (let flips = 0; flips <= 10; flips++)
      for (let trial = 0; trial < 20; trial++) {
        const hex = Array.from({ length: 16 }, () => Math.floor(rand() * 16).toString(16)).join("");
        const r = decodeChannel(softFrom(channelBits(hex), flips, rand));
        expect(r.bits).toBe(hex);
        expect(r.corrected).toBe(true);
        expect(r.errors).toBe(flips);
        expect(r.detected).toBe(flips <= 8);
      }
  });

  it("beyond the decoding radius it fails safe (never claims detection)", () => {
    const rand = rng(11);
    for (let trial = 0; trial < 50; trial++) {
      const r = decodeChannel(softFrom(channelBits("00000000000000ff"), 20 + Math.floor(rand() * 30), rand));
      expect(r.detected).toBe(false);
    }
  });

  it("the p-value is exactly 2^64 V(128, d) / 2^128 and the 1e-6 threshold falls between 8 and 9 errors", () => {
    for (const d of [0, 3, 8, 10]) {
      let v = 0n;
      for (let j = 0; j <= d; j++) v += binom(128, j);
      expect(presencePValue(d)).toBeCloseTo(Number(v) / 2 ** 64, 30);
      expect(presencePValue(d) / (Number(v) / 2 ** 64)).toBeCloseTo(1, 12);
    }
    expect(presencePValue(8)).toBeLessThanOrEqual(FALSE_POSITIVE_RATE);
    expect(presencePValue(9)).toBeGreaterThan(FALSE_POSITIVE_RATE);
    expect(presencePValue(60)).toBe(1);
  });

  it("uniformly random soft bits are not detected (expected decodable rate 1.3e-5)", () => {
    const rand = rng(3);
    let detected = 0;
    for (let k = 0; k < 3000; k++) if (decodeChannel(Array.from({ length: CODE_BITS }, rand)).detected) detected++;
    expect(detected).toBe(0);
  });

  it("whitening is balanced enough to break up an all-zero payload", () => {
    const ones = WHITENING.reduce((s, b) => s + b, 0);
    expect(ones).toBeGreaterThan(40);
    expect(ones).toBeLessThan(88);
    expect(channelBits("0").reduce((s, b) => s + b, 0)).toBe(ones);
  });
});
