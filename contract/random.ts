/**
 * mulberry32 (Tommy Ettinger, public domain): a 32-bit-state PRNG with period 2^32, exact in JS integer arithmetic,
 * so a seed gives the same sequence on every platform. Used where a sequence must be reproducible: the identity
 * code's projection (gpu-runner/src/face/identity-code.ts), the fuzz corpus, the kill storm, evaluations and tests.
 * Not for secrets.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** mulberry32 scaled to [0, 1). */
export function uniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}
