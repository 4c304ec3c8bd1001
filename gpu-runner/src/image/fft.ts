/**
 * Radix-2 complex FFT, in place on split real/imaginary arrays, and its 2-D form on row-major planes. Sizes are
 * powers of two. Used by the tiled watermark's synchronisation (autocorrelation and cyclic correlation), where
 * the planes are at most 512 x 1024: a few tens of milliseconds in plain JavaScript.
 */

const twiddles = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function tableFor(n: number) {
  let t = twiddles.get(n);
  if (!t) {
    const cos = new Float64Array(n / 2);
    const sin = new Float64Array(n / 2);
    for (let i = 0; i < n / 2; i++) {
      cos[i] = Math.cos((2 * Math.PI * i) / n);
      sin[i] = Math.sin((2 * Math.PI * i) / n);
    }
    t = { cos, sin };
    twiddles.set(n, t);
  }
  return t;
}

export const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
export const nextPowerOfTwo = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** One transform of length n over re/im at offset `at` with stride `stride`. inverse: no 1/n scaling. */
export function fft1d(re: Float64Array, im: Float64Array, n: number, inverse = false, at = 0, stride = 1): void {
  if (!isPowerOfTwo(n)) throw new RangeError(`FFT length must be a power of two, got ${n}`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const a = at + i * stride;
      const b = at + j * stride;
      let t = re[a]!;
      re[a] = re[b]!;
      re[b] = t;
      t = im[a]!;
      im[a] = im[b]!;
      im[b] = t;
    }
  }
  const { cos, sin } = tableFor(n);
  const sign = inverse ? 1 : -1;
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const step = n / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * step]!;
        const wi = sign * sin[k * step]!;
        const a = at + (i + k) * stride;
        const b = a + half * stride;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
}

/** 2-D FFT of a rows x cols plane (row-major), in place. inverse: no 1/(rows cols) scaling. */
export function fft2d(re: Float64Array, im: Float64Array, rows: number, cols: number, inverse = false): void {
  for (let r = 0; r < rows; r++) fft1d(re, im, cols, inverse, r * cols, 1);
  for (let c = 0; c < cols; c++) fft1d(re, im, rows, inverse, c, cols);
}
