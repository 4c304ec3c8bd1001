import { greyThumbnail, type EncodedImage } from "../image/decode.ts";

function bitsToHex(bits: boolean[]): string {
  let hexOut = "";
  for (let i = 0; i < bits.length; i += 4) {
    const nibble = (bits[i] ? 8 : 0) | (bits[i + 1] ? 4 : 0) | (bits[i + 2] ? 2 : 0) | (bits[i + 3] ? 1 : 0);
    hexOut += nibble.toString(16);
  }
  return hexOut;
}

/** Orthonormal DCT-II basis, cos((2x+1) u pi / 2N) scaled; only the first `keep` rows are needed. */
function dctRows(n: number, keep: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let u = 0; u < keep; u++) {
    const row = new Float64Array(n);
    const s = u === 0 ? Math.sqrt(1 / n) : Math.sqrt(2 / n);
    for (let x = 0; x < n; x++) row[x] = s * Math.cos(((2 * x + 1) * u * Math.PI) / (2 * n));
    rows.push(row);
  }
  return rows;
}

const N = 32;
const K = 8;
const BASIS = dctRows(N, K);

/**
 * 64-bit DCT perceptual hash (Zauner 2010, "Implementation and Benchmarking of Perceptual Image Hash
 * Functions"): 32x32 grey thumbnail, 2-D DCT, the 8x8 lowest frequencies, each bit = coefficient > median
 * (median taken without the DC term, which only says how bright the image is). 16 hex digits.
 */
export async function pHash(image: EncodedImage): Promise<string> {
  const px = await greyThumbnail(image, N, N);
  const coeffs: number[] = [];
  // Separable DCT: rows first (N x K), then columns of that (K x K).
  const tmp = new Float64Array(N * K);
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let x = 0; x < N; x++) s += BASIS[u]![x]! * px[y * N + x]!;
      tmp[y * K + u] = s;
    }
  }
  for (let v = 0; v < K; v++) {
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += BASIS[v]![y]! * tmp[y * K + u]!;
      coeffs.push(s);
    }
  }
  const ac = coeffs.slice(1).sort((a, b) => a - b);
  const median = (ac[31]! + ac[32]!) / 2;
  return bitsToHex(coeffs.map((c) => c > median));
}

/** 64-bit difference hash: 9x8 grey thumbnail, each bit = pixel brighter than its right neighbour. */
export async function dHash(image: EncodedImage): Promise<string> {
  const px = await greyThumbnail(image, 9, 8);
  const bits: boolean[] = [];
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) bits.push(px[y * 9 + x]! > px[y * 9 + x + 1]!);
  return bitsToHex(bits);
}
