import { readFileSync } from "node:fs";
import type { RasterImage } from "./types.ts";

/**
 * Full-resolution application of the watermark residual: the working-size residual is stretched bilinearly to
 * the image and added, with rounding and clipping. This is the one step of embedding whose cost grows with the
 * image, so the common case (8-bit RGB or RGBA) runs in a SIMD WebAssembly kernel (watermark-residual.wat);
 * grey and 16-bit images take the scalar JavaScript path, which computes the same function.
 */

/** Source index pairs and weights of a bilinear (half-pixel centred) stretch from `src` to `dst` samples. */
export function stretchTaps(src: number, dst: number): { i0: Int32Array; i1: Int32Array; w: Float32Array } {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w = new Float32Array(dst);
  for (let o = 0; o < dst; o++) {
    const s = Math.min(src - 1, Math.max(0, ((o + 0.5) * src) / dst - 0.5));
    i0[o] = Math.floor(s);
    i1[o] = Math.min(src - 1, i0[o]! + 1);
    w[o] = s - i0[o]!;
  }
  return { i0, i1, w };
}

/** A residual's grid: a side for codec 1's square working size, or columns and rows (codec 2's chip grid). */
export type ResidualSize = number | { cols: number; rows: number };
const residualGrid = (size: ResidualSize) => (typeof size === "number" ? { cols: size, rows: size } : size);

export interface MarkedImage {
  image: RasterImage;
  /** PSNR of the change, dB (Infinity when nothing changed). */
  psnr: number;
}

const psnrOf = (sq: number, samples: number, max: number) => (sq === 0 ? Infinity : 10 * Math.log10((max * max * samples) / sq));

/**
 * Adds `strength` x the residual (planar 3 x rows x cols, in [0, 1] units), stretched to full resolution,
 * to the image. Output is RGB (+ alpha) at the input bit depth. Also returns the PSNR of the change. With
 * `inPlace`, 8-bit RGB(A) input is overwritten and returned (grey and 16-bit input always get a new raster).
 */
export function applyResidual(
  image: RasterImage,
  residual: Float32Array,
  strength: number,
  size: ResidualSize,
  inPlace = false,
): MarkedImage {
  return image.bitDepth === 8 && (image.channels === 3 || image.channels === 4)
    ? applyResidualSimd(image, residual, strength, size, inPlace)
    : applyResidualScalar(image, residual, strength, size);
}

/** Any channel count and bit depth; grey input comes out as RGB. */
export function applyResidualScalar(
  image: RasterImage,
  residual: Float32Array,
  strength: number,
  size: ResidualSize,
): MarkedImage {
  const { width, height, channels, hasAlpha } = image;
  const { cols: sizeW, rows: sizeH } = residualGrid(size);
  const max = image.bitDepth === 16 ? 65535 : 255;
  const outChannels = hasAlpha ? 4 : 3;
  const out =
    image.bitDepth === 16 ? new Uint16Array(width * height * outChannels) : new Uint8Array(width * height * outChannels);
  const grey = channels <= 2;
  const cols = stretchTaps(sizeW, width);
  const rows = stretchTaps(sizeH, height);
  const k = strength * max;
  // Separable stretch, horizontal pass first on the S residual rows (3 x S x width values, small), so each output
  // pixel costs one vertical lerp instead of a full bilinear tap.
  const wide = new Float32Array(3 * sizeH * width);
  for (let r = 0; r < 3 * sizeH; r++) {
    const src = r * sizeW;
    const dst = r * width;
    for (let x = 0; x < width; x++) {
      const a = residual[src + cols.i0[x]!]!;
      wide[dst + x] = (a + (residual[src + cols.i1[x]!]! - a) * cols.w[x]!) * k;
    }
  }
  const data = image.data;
  let sq = 0;
  for (let y = 0; y < height; y++) {
    const wy = rows.w[y]!;
    const r0 = rows.i0[y]! * width;
    const r1 = rows.i1[y]! * width;
    const g0 = r0 + sizeH * width;
    const g1 = r1 + sizeH * width;
    const b0 = g0 + sizeH * width;
    const b1 = g1 + sizeH * width;
    let i = y * width * channels;
    let o = y * width * outChannels;
    // One pass per pixel over its three channels (grey input is read once and replicated). `(v + 0.5) | 0`
    // truncates toward zero, which differs from Math.round only below zero, where the clamp gives 0 either way.
    for (let x = 0; x < width; x++, i += channels, o += outChannels) {
      const sr = data[i]!;
      const sg = grey ? sr : data[i + 1]!;
      const sb = grey ? sr : data[i + 2]!;
      let a = wide[r0 + x]!;
      let v = (sr + a + (wide[r1 + x]! - a) * wy + 0.5) | 0;
      v = v < 0 ? 0 : v > max ? max : v;
      out[o] = v;
      sq += (v - sr) * (v - sr);
      a = wide[g0 + x]!;
      v = (sg + a + (wide[g1 + x]! - a) * wy + 0.5) | 0;
      v = v < 0 ? 0 : v > max ? max : v;
      out[o + 1] = v;
      sq += (v - sg) * (v - sg);
      a = wide[b0 + x]!;
      v = (sb + a + (wide[b1 + x]! - a) * wy + 0.5) | 0;
      v = v < 0 ? 0 : v > max ? max : v;
      out[o + 2] = v;
      sq += (v - sb) * (v - sb);
      if (hasAlpha) out[o + 3] = data[i + channels - 1]!;
    }
  }
  return { image: { ...image, channels: outChannels, data: out }, psnr: psnrOf(sq, width * height * 3, max) };
}

interface Kernel {
  memory: WebAssembly.Memory;
  addRow(w0: number, w1: number, src: number, dst: number, n: number, wy: number): number;
}

let kernel: Kernel | undefined;

/** Compiled once per process; its memory grows to the largest image seen (a few MB per 1000 px of width). */
function simdKernel(): Kernel {
  if (!kernel) {
    const bytes = readFileSync(new URL("./watermark-residual.wasm", import.meta.url));
    const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
    kernel = {
      memory: exports["memory"] as WebAssembly.Memory,
      addRow: exports["add_row"] as Kernel["addRow"],
    };
  }
  return kernel;
}

/** Samples per add_row call: keeps its four i32 lanes of squared changes from overflowing (see the .wat). */
const CALL_SAMPLES = 65536;
/** Rows are copied through the kernel's memory in bands of about this many bytes. */
const BAND_BYTES = 4 << 20;

function applyResidualSimd(
  image: RasterImage,
  residual: Float32Array,
  strength: number,
  size: ResidualSize,
  inPlace: boolean,
): MarkedImage {
  const { width, height, channels } = image;
  const { cols: sizeW, rows: sizeH } = residualGrid(size);
  const data = image.data as Uint8Array;
  const rowLen = width * channels;
  const cols = stretchTaps(sizeW, width);
  const rows = stretchTaps(sizeH, height);
  const band = Math.max(1, Math.min(height, Math.floor(BAND_BYTES / rowLen)));
  // Memory: the S residual rows stretched to the image's width (f32, interleaved like the image), then one band
  // of input and one of output samples.
  const wideBytes = sizeH * rowLen * 4;
  const srcAt = wideBytes;
  const dstAt = srcAt + ((band * rowLen + 15) & ~15);
  const k = simdKernel();
  const needed = dstAt + band * rowLen;
  if (k.memory.buffer.byteLength < needed) k.memory.grow(Math.ceil((needed - k.memory.buffer.byteLength) / 65536));
  const wide = new Float32Array(k.memory.buffer, 0, sizeH * rowLen);
  const bytes = new Uint8Array(k.memory.buffer);
  const scale = strength * 255;
  const plane = sizeW * sizeH;
  const { i0, i1, w } = cols;
  for (let r = 0; r < sizeH; r++) {
    const red = r * sizeW;
    const green = red + plane;
    const blue = green + plane;
    // One pass per residual row, all three channels per output column: the taps are read once, not three times
    // (this stretch was half the cost of applying the residual at 1 MP). +0.5 makes the kernel's truncation round
    // half up, as the scalar path does.
    for (let x = 0, o = r * rowLen; x < width; x++, o += channels) {
      const j0 = i0[x]!;
      const j1 = i1[x]!;
      const wx = w[x]!;
      let a = residual[red + j0]!;
      wide[o] = (a + (residual[red + j1]! - a) * wx) * scale + 0.5;
      a = residual[green + j0]!;
      wide[o + 1] = (a + (residual[green + j1]! - a) * wx) * scale + 0.5;
      a = residual[blue + j0]!;
      wide[o + 2] = (a + (residual[blue + j1]! - a) * wx) * scale + 0.5;
      if (channels === 4) wide[o + 3] = 0.5;
    }
  }
  // In place is safe band by band: each band of input is copied into the kernel's memory before it is overwritten.
  const out = inPlace ? data : new Uint8Array(width * height * channels);
  let sq = 0;
  for (let y0 = 0; y0 < height; y0 += band) {
    const y1 = Math.min(height, y0 + band);
    bytes.set(data.subarray(y0 * rowLen, y1 * rowLen), srcAt);
    for (let y = y0; y < y1; y++) {
      const w0 = rows.i0[y]! * rowLen * 4;
      const w1 = rows.i1[y]! * rowLen * 4;
      const at = (y - y0) * rowLen;
      for (let j = 0; j < rowLen; j += CALL_SAMPLES)
        sq += k.addRow(w0 + j * 4, w1 + j * 4, srcAt + at + j, dstAt + at + j, Math.min(CALL_SAMPLES, rowLen - j), rows.w[y]!);
    }
    out.set(bytes.subarray(dstAt, dstAt + (y1 - y0) * rowLen), y0 * rowLen);
  }
  return { image: { ...image, data: out }, psnr: psnrOf(sq, width * height * 3, 255) };
}
