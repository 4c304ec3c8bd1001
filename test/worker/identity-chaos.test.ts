import { describe, expect, it } from "vitest";
import {
  BURN_IN,
  CoupledSkewTent,
  chaoticPermutation,
  decryptBits,
  deriveCipherKeys,
  encryptBits,
  importMasterKey,
  paramsFromBytes,
  type ChaosParams,
} from "../../worker/src/identity/chaos.ts";
import { hamming, packBits } from "../../worker/src/identity/bits.ts";

/** xorshift32 (Marsaglia, J. Stat. Softw. 8(14), 2003), seeded: deterministic test inputs, so results are reproducible. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    u32: next,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => next() & 0xff),
    bits: (n: number) => Uint8Array.from({ length: n }, () => next() >>> 31),
    below: (n: number) => next() % n,
  };
}

/** erfc for x ≥ 0, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7). */
function erfc(x: number): number {
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return poly * Math.exp(-x * x);
}

/** NIST SP 800-22 rev. 1a, §2.1: frequency (monobit) test p-value. */
function monobitP(bits: Uint8Array): number {
  let s = 0;
  for (const b of bits) s += b ? 1 : -1;
  return erfc(Math.abs(s) / Math.sqrt(bits.length) / Math.SQRT2);
}

/** NIST SP 800-22 rev. 1a, §2.3: runs test p-value (0 when the frequency prerequisite fails). */
function runsP(bits: Uint8Array): number {
  const n = bits.length;
  let ones = 0;
  for (const b of bits) ones += b;
  const pi = ones / n;
  if (Math.abs(pi - 0.5) >= 2 / Math.sqrt(n)) return 0;
  let v = 1;
  for (let i = 1; i < n; i++) if (bits[i] !== bits[i - 1]) v++;
  return erfc(Math.abs(v - 2 * n * pi * (1 - pi)) / (2 * Math.sqrt(2 * n) * pi * (1 - pi)));
}

/** Pearson χ² over the 256 byte values; p from the Wilson–Hilferty normal approximation (k = 255 dof). */
function byteChiSquare(bytes: Uint8Array): { chi2: number; p: number } {
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const e = bytes.length / 256;
  let chi2 = 0;
  for (const c of counts) chi2 += ((c - e) * (c - e)) / e;
  const k = 255;
  const z = (Math.cbrt(chi2 / k) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k));
  return { chi2, p: z >= 0 ? 0.5 * erfc(z / Math.SQRT2) : 1 - 0.5 * erfc(-z / Math.SQRT2) };
}

/** Mean and 95 % normal CI of per-trial fractions. */
function meanCi(xs: number[]): { mean: number; lo: number; hi: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
  const h = (1.96 * sd) / Math.sqrt(xs.length);
  return { mean, lo: mean - h, hi: mean + h };
}

const NONCE = Uint8Array.of(64, 4, 20, 32, 0, 1, 0, 0, 0, 42);

async function keysFor(seed: number, nonce = NONCE) {
  return deriveCipherKeys(await importMasterKey(rng(seed).bytes(32)), nonce);
}

describe("parameters", () => {
  it("stay inside the documented non-degenerate ranges for any key bytes", () => {
    const extremes = [new Uint8Array(32), new Uint8Array(32).fill(255)];
    const r = rng(7);
    const all: ChaosParams[] = [...extremes, ...Array.from({ length: 2000 }, () => r.bytes(32))].map(paramsFromBytes);
    for (const p of all) {
      expect(p.x0).toBeGreaterThanOrEqual(0.05);
      expect(p.x0).toBeLessThan(0.95);
      expect(p.y0).toBeGreaterThanOrEqual(0.05);
      expect(p.y0).toBeLessThan(0.95);
      for (const q of [p.p1, p.p2]) {
        expect(q).toBeGreaterThanOrEqual(0.3);
        expect(q).toBeLessThan(0.7);
        expect(q < 0.45 || q >= 0.55).toBe(true);
      }
      expect(p.eps).toBeGreaterThanOrEqual(0.02);
      expect(p.eps).toBeLessThan(0.1);
      // The expansion bound of docs/identity-crypto.md: (1 − 2ε) / max(p, 1 − p) > 1.
      expect((1 - 2 * p.eps) / Math.max(p.p1, 1 - p.p1, p.p2, 1 - p.p2)).toBeGreaterThan(1.14);
    }
  });

  it("rejects short key material", () => {
    expect(() => paramsFromBytes(new Uint8Array(10))).toThrow(RangeError);
  });

  it("keeps the orbit inside (0, 1) and has no cycle within 2^20 steps (Brent's cycle detection)", () => {
    for (const seed of [1, 2]) {
      const p = paramsFromBytes(rng(seed).bytes(32));
      const hare = new CoupledSkewTent(p, BURN_IN);
      const tortoise = { x: hare.x, y: hare.y };
      let power = 1;
      let lam = 0;
      let cycle = false;
      for (let step = 0; step < 2 ** 20; step++) {
        hare.step();
        lam++;
        if (!(hare.x > 0 && hare.x < 1 && hare.y > 0 && hare.y < 1)) throw new Error(`orbit left (0,1) at ${step}`);
        if (hare.x === tortoise.x && hare.y === tortoise.y) {
          cycle = true;
          break;
        }
        if (lam === power) {
          tortoise.x = hare.x;
          tortoise.y = hare.y;
          power *= 2;
          lam = 0;
        }
      }
      expect(cycle).toBe(false);
    }
  });

  it("no key of 300 falls into a periodic orbit within 2^14 steps (coupled logistic maps did for 12.5 %)", () => {
    const r = rng(9);
    for (let k = 0; k < 300; k++) {
      const s = new CoupledSkewTent(paramsFromBytes(r.bytes(32)));
      let tx = s.x;
      let ty = s.y;
      let power = 1;
      let lam = 0;
      for (let i = 0; i < 2 ** 14; i++) {
        s.step();
        lam++;
        if (s.x === tx && s.y === ty) throw new Error(`key ${k}: cycle of length ${lam}`);
        if (lam === power) {
          tx = s.x;
          ty = s.y;
          power *= 2;
          lam = 0;
        }
      }
    }
  });

  it("the two coupled maps do not synchronise (|x - y| stays large on average)", () => {
    const sys = new CoupledSkewTent(paramsFromBytes(rng(11).bytes(32)));
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      sys.step();
      sum += Math.abs(sys.x - sys.y);
    }
    // For independent uniform x, y (the skew tent map's invariant density) the mean |x − y| is 1/3; synchronised, 0.
    expect(sum / 100_000).toBeGreaterThan(0.2);
  });
});

describe("cipher", () => {
  it("decrypts what it encrypts, for every block size the payload layouts use", async () => {
    const r = rng(3);
    for (const n of [2, 8, 33, 40, 64, 128, 256]) {
      const keys = await keysFor(100 + n);
      for (let t = 0; t < 20; t++) {
        const plain = r.bits(n);
        expect(Array.from(decryptBits(keys, encryptBits(keys, plain)))).toEqual(Array.from(plain));
      }
    }
  });

  it("draws a valid permutation, different per key", async () => {
    const a = chaoticPermutation(new CoupledSkewTent((await keysFor(1)).a), 40);
    const b = chaoticPermutation(new CoupledSkewTent((await keysFor(2)).a), 40);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it("rejects non-bit input with a clear error", async () => {
    const keys = await keysFor(1);
    expect(() => encryptBits(keys, Uint8Array.of(0, 2, 1))).toThrow(/0 or 1/);
    expect(() => encryptBits(keys, Uint8Array.of(1))).toThrow(/2\.\.4096/);
  });

  it("avalanche on the plaintext: one flipped input bit flips about half of the 40 output bits", async () => {
    const r = rng(21);
    const fractions: number[] = [];
    for (let t = 0; t < 400; t++) {
      const keys = await keysFor(1000 + t);
      const plain = r.bits(40);
      const c1 = encryptBits(keys, plain);
      plain[r.below(40)]! ^= 1;
      fractions.push(hamming(c1, encryptBits(keys, plain)) / 40);
    }
    const ci = meanCi(fractions);
    console.log(`plaintext avalanche: ${ci.mean.toFixed(4)} [${ci.lo.toFixed(4)}, ${ci.hi.toFixed(4)}] (n=400)`);
    expect(ci.mean).toBeGreaterThan(0.47);
    expect(ci.mean).toBeLessThan(0.53);
    expect(ci.hi - ci.lo).toBeLessThan(0.05);
  });

  it("avalanche on the key: one flipped master-key bit flips about half of the output bits", async () => {
    const r = rng(22);
    const fractions: number[] = [];
    for (let t = 0; t < 400; t++) {
      const key = r.bytes(32);
      const plain = r.bits(40);
      const c1 = encryptBits(await deriveCipherKeys(await importMasterKey(key), NONCE), plain);
      const bit = r.below(256);
      key[bit >> 3]! ^= 1 << (bit & 7);
      const c2 = encryptBits(await deriveCipherKeys(await importMasterKey(key), NONCE), plain);
      fractions.push(hamming(c1, c2) / 40);
    }
    const ci = meanCi(fractions);
    console.log(`key avalanche: ${ci.mean.toFixed(4)} [${ci.lo.toFixed(4)}, ${ci.hi.toFixed(4)}] (n=400)`);
    expect(ci.mean).toBeGreaterThan(0.47);
    expect(ci.mean).toBeLessThan(0.53);
  });

  it("avalanche on the per-asset nonce: equal plaintexts under consecutive refs share no structure", async () => {
    const master = await importMasterKey(rng(5).bytes(32));
    const plain = new Uint8Array(40);
    const fractions: number[] = [];
    for (let ref = 0; ref < 300; ref++) {
      const n1 = Uint8Array.of(64, 4, 20, 32, 0, 0, 0, 0, ref >> 8, ref & 255);
      const n2 = Uint8Array.of(64, 4, 20, 32, 0, 0, 0, 0, (ref + 1) >> 8, (ref + 1) & 255);
      const c1 = encryptBits(await deriveCipherKeys(master, n1), plain);
      const c2 = encryptBits(await deriveCipherKeys(master, n2), plain);
      fractions.push(hamming(c1, c2) / 40);
    }
    const ci = meanCi(fractions);
    expect(ci.lo).toBeGreaterThan(0.46);
    expect(ci.hi).toBeLessThan(0.54);
  });

  it("a wrong key decrypts to garbage: about half the bits wrong", async () => {
    const r = rng(23);
    const fractions: number[] = [];
    for (let t = 0; t < 300; t++) {
      const plain = r.bits(40);
      const c = encryptBits(await keysFor(5000 + t), plain);
      fractions.push(hamming(plain, decryptBits(await keysFor(9000 + t), c)) / 40);
    }
    const ci = meanCi(fractions);
    expect(ci.lo).toBeGreaterThan(0.46);
    expect(ci.hi).toBeLessThan(0.54);
  });
});

describe("keystream statistics (NIST SP 800-22 style, α = 0.01)", () => {
  const N = 2 ** 20;

  for (const seed of [31, 32]) {
    it(`1 Mbit of keystream from key ${seed} passes monobit, runs and byte χ²`, async () => {
      const sys = new CoupledSkewTent((await keysFor(seed)).a);
      const bits = new Uint8Array(N);
      for (let i = 0; i < N; i++) bits[i] = sys.nextBit();
      const mono = monobitP(bits);
      const runs = runsP(bits);
      const chi = byteChiSquare(packBits(bits));
      console.log(
        `key ${seed}: monobit p=${mono.toFixed(4)} runs p=${runs.toFixed(4)} χ²=${chi.chi2.toFixed(1)} p=${chi.p.toFixed(4)}`,
      );
      expect(mono).toBeGreaterThanOrEqual(0.01);
      expect(runs).toBeGreaterThanOrEqual(0.01);
      expect(chi.p).toBeGreaterThanOrEqual(0.01);
    });
  }

  it("ciphertexts of an all-zero payload across 16384 nonces (1 Mbit) pass the same tests", async () => {
    const master = await importMasterKey(rng(34).bytes(32));
    const bits = new Uint8Array(16384 * 64);
    for (let i = 0; i < 16384; i++) {
      const keys = await deriveCipherKeys(master, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, i >> 8, i & 255));
      bits.set(encryptBits(keys, new Uint8Array(64)), i * 64);
    }
    const mono = monobitP(bits);
    const runs = runsP(bits);
    const chi = byteChiSquare(packBits(bits));
    console.log(`ciphertexts: monobit p=${mono.toFixed(4)} runs p=${runs.toFixed(4)} χ² p=${chi.p.toFixed(4)}`);
    expect(mono).toBeGreaterThanOrEqual(0.01);
    expect(runs).toBeGreaterThanOrEqual(0.01);
    expect(chi.p).toBeGreaterThanOrEqual(0.01);
  });

  it("the tests have power: they reject a biased and a correlated stream", () => {
    const r = rng(35);
    const biased = Uint8Array.from({ length: N }, () => (r.u32() % 100 < 51 ? 1 : 0));
    expect(monobitP(biased)).toBeLessThan(0.01);
    let prev = 0;
    const sticky = Uint8Array.from({ length: N }, () => (prev = r.u32() % 100 < 55 ? prev : prev ^ 1));
    expect(runsP(sticky)).toBeLessThan(0.01);
    // High-order bits of a plain logistic orbit (arcsine density) are far from uniform bytes.
    let x = 0.3;
    const top = Uint8Array.from({ length: N / 8 }, () => {
      x = 3.99 * x * (1 - x);
      return Math.floor(x * 256);
    });
    expect(byteChiSquare(top).p).toBeLessThan(0.01);
  });
});
