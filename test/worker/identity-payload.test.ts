import { describe, expect, it } from "vitest";
import vectors from "../fixtures/identity-vectors.json";
import { bitsToHex, hexToBits } from "../../worker/src/identity/bits.ts";
import {
  CoupledSkewTent,
  deriveCipherKeys,
  encryptBits,
  importMasterKey,
  paramsFromBytes,
} from "../../worker/src/identity/chaos.ts";
import {
  checkLayout,
  DEFAULT_LAYOUT,
  encodePayload,
  openPayload,
  parseHeader,
  tagBits,
  type PayloadLayout,
} from "../../worker/src/identity/payload.ts";

const fromHex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const hexOf = (b: Uint8Array) => Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
/** xorshift32 (Marsaglia 2003): seeded inputs, so the statistical assertions below are reproducible. */
let state = 0x9e3779b9;
function next(): number {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state;
}
const randomBits = (n: number) => Uint8Array.from({ length: n }, () => next() >>> 31);
const randomKey = () => importMasterKey(Uint8Array.from({ length: 32 }, () => next() & 0xff));

/** Wilson score interval for k successes in n trials (z = 1.96: 95 %, 3.29: 99.9 %). */
function wilson(k: number, n: number, z = 1.96): [number, number] {
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [c - h, c + h];
}

describe("published test vectors (test/fixtures/identity-vectors.json)", () => {
  it("chaotic system: parameters, first 32 output bytes and the float64 state afterwards", () => {
    for (const v of vectors.chaos) {
      const p = paramsFromBytes(fromHex(v.params_bytes_hex));
      expect(p).toEqual(v.params);
      const sys = new CoupledSkewTent(p);
      expect(hexOf(Uint8Array.from({ length: 32 }, () => sys.nextByte()))).toBe(v.first_bytes_hex);
      expect(sys.x).toBe(v.x_after);
      expect(sys.y).toBe(v.y_after);
    }
  });

  it("cipher: HKDF-derived keys, permutation and both feedback passes", async () => {
    for (const v of vectors.cipher) {
      const keys = await deriveCipherKeys(await importMasterKey(fromHex(v.master_key_hex)), fromHex(v.nonce_hex));
      expect(bitsToHex(encryptBits(keys, hexToBits(v.plain_hex, v.bits)))).toBe(v.cipher_hex);
    }
  });

  it("payloads: layout, tag and encryption; each opens back to its fields", async () => {
    for (const v of vectors.payload) {
      const key = await importMasterKey(fromHex(v.master_key_hex));
      const code = v.code_hex ? hexToBits(v.code_hex, DEFAULT_LAYOUT.codeBits) : null;
      const bits = await encodePayload(key, DEFAULT_LAYOUT, { slot: v.slot, ref: v.ref, code });
      expect(bitsToHex(bits)).toBe(v.payload_hex);
      const opened = await openPayload(key, DEFAULT_LAYOUT, bits);
      expect(opened?.mode).toBe(code ? "face" : "provenance");
      expect(opened?.code ? bitsToHex(opened.code) : null).toBe(v.code_hex);
    }
  });

  it("the same identity code under two refs encrypts to unrelated bodies", () => {
    const [a, b] = [vectors.payload[1]!, vectors.payload[3]!];
    expect(a.code_hex).toBe(b.code_hex);
    const body = (h: string) => hexToBits(h, 64).subarray(24);
    let d = 0;
    for (let i = 0; i < 40; i++) d += body(a.payload_hex)[i]! ^ body(b.payload_hex)[i]!;
    expect(d).toBeGreaterThan(8);
  });
});

describe("payload", () => {
  it("round-trips face and provenance payloads with the default 64-bit layout", async () => {
    const key = await randomKey();
    for (let t = 0; t < 50; t++) {
      const code = randomBits(32);
      const face = await encodePayload(key, DEFAULT_LAYOUT, { slot: t % 16, ref: t * 20_000, code });
      expect(face.length).toBe(64);
      expect(parseHeader(DEFAULT_LAYOUT, face)).toEqual({ slot: t % 16, ref: t * 20_000 });
      const opened = await openPayload(key, DEFAULT_LAYOUT, face);
      expect(opened?.mode).toBe("face");
      expect(Array.from(opened!.code!)).toEqual(Array.from(code));
      const prov = await encodePayload(key, DEFAULT_LAYOUT, { slot: 1, ref: t, code: null });
      expect(await openPayload(key, DEFAULT_LAYOUT, prov)).toEqual({ mode: "provenance", slot: 1, ref: t, code: null });
    }
  });

  it("works with other layouts (a 128-bit codec carrying 64-bit codes)", async () => {
    const layout: PayloadLayout = { totalBits: 128, keySlotBits: 6, refBits: 26, codeBits: 64 };
    expect(tagBits(layout)).toBe(32);
    const key = await randomKey();
    const code = randomBits(64);
    const bits = await encodePayload(key, layout, { slot: 63, ref: 2 ** 26 - 1, code });
    expect(Array.from((await openPayload(key, layout, bits))!.code!)).toEqual(Array.from(code));
  });

  it("rejects layouts and fields that do not fit, with clear errors", async () => {
    expect(() => checkLayout({ totalBits: 48, keySlotBits: 4, refBits: 20, codeBits: 32 })).toThrow(/tag bits/);
    expect(() => checkLayout({ totalBits: 64.5, keySlotBits: 4, refBits: 20, codeBits: 32 })).toThrow(/integers/);
    const key = await randomKey();
    await expect(encodePayload(key, DEFAULT_LAYOUT, { slot: 16, ref: 0, code: null })).rejects.toThrow(/fit 4 bits/);
    await expect(encodePayload(key, DEFAULT_LAYOUT, { slot: 0, ref: 2 ** 20, code: null })).rejects.toThrow(/fit 20 bits/);
    await expect(encodePayload(key, DEFAULT_LAYOUT, { slot: 0, ref: 0, code: randomBits(31) })).rejects.toThrow(/32 bits/);
    expect(() => parseHeader(DEFAULT_LAYOUT, randomBits(63))).toThrow(/64 bits/);
  });

  it("another key (another tenant) does not open it; false accepts match the 8-bit tag's 2^-8", async () => {
    const owner = await randomKey();
    const n = 4000;
    let accepted = 0;
    for (let t = 0; t < n; t++) {
      const bits = await encodePayload(owner, DEFAULT_LAYOUT, { slot: 0, ref: t, code: randomBits(32) });
      if (await openPayload(await randomKey(), DEFAULT_LAYOUT, bits)) accepted++;
    }
    const [lo, hi] = wilson(accepted, n);
    console.log(
      `wrong-key false accept: ${accepted}/${n} = ${(accepted / n).toFixed(4)} [${lo.toFixed(4)}, ${hi.toFixed(4)}]; 2^-8 = 0.0039`,
    );
    expect(lo).toBeLessThanOrEqual(2 ** -8);
    expect(hi).toBeGreaterThanOrEqual(2 ** -8);
  });

  it("single-bit tampering anywhere is rejected except at the tag's 2^-8 rate; provenance payloads never", async () => {
    const key = await randomKey();
    let faceTrials = 0;
    let faceAccepted = 0;
    for (let t = 0; t < 60; t++) {
      const face = await encodePayload(key, DEFAULT_LAYOUT, { slot: 2, ref: 1000 + t, code: randomBits(32) });
      const prov = await encodePayload(key, DEFAULT_LAYOUT, { slot: 2, ref: 5000 + t, code: null });
      for (let i = 0; i < 64; i++) {
        const f = face.slice();
        f[i]! ^= 1;
        faceTrials++;
        if (await openPayload(key, DEFAULT_LAYOUT, f)) faceAccepted++;
        const p = prov.slice();
        p[i]! ^= 1;
        // 2^-40 per try when read as provenance, 2^-8 when read as a face payload.
        const o = await openPayload(key, DEFAULT_LAYOUT, p);
        expect(o?.mode).not.toBe("provenance");
      }
    }
    const [, hi] = wilson(faceAccepted, faceTrials);
    console.log(`tampered face payloads accepted: ${faceAccepted}/${faceTrials}`);
    expect(hi).toBeLessThan(0.02);
  });

  it("random bits (no watermark, decoder noise) are rejected at about the same rate", async () => {
    const key = await randomKey();
    let accepted = 0;
    for (let t = 0; t < 2000; t++) if (await openPayload(key, DEFAULT_LAYOUT, randomBits(64))) accepted++;
    expect(wilson(accepted, 2000)[0]).toBeLessThanOrEqual(2 ** -8);
    expect(accepted / 2000).toBeLessThan(0.02);
  });
});
