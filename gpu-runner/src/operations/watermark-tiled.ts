import sharp from "sharp";
import type { TiledGeometry } from "../../../contract/watermark-geometry.ts";
import { mulberry32 } from "../../../contract/random.ts";
import { fft2d, nextPowerOfTwo } from "../image/fft.ts";
import { CODE_BITS } from "./watermark-code.ts";
import type { RasterImage } from "./types.ts";

/**
 * Codec 2: a tiled, self-synchronising mark that survives crops, aspect-changing reframes, mirrors and rescales.
 *
 * Layout. The original is covered by a grid of "chips" tied to its short side S: 128 chips along the short side
 * (CHIPS_PER_SHORT), so a chip is S / 128 px whatever the resolution. The grid is cut into tiles of 32 x 32 chips
 * (4 tiles along the short side) and every tile carries the same 1,024 chip values: 640 payload chips (5 per
 * channel bit, keyed positions and signs), 256 synchronisation chips (a keyed +-1 template) and 128 position chips
 * (a keyed +-1 pattern multiplied by a keyed sign per tile, which tells the repeats apart). The chip values are
 * stretched bilinearly to full resolution and added to luminance (R, G and B alike).
 *
 * Why tiles: a crop keeps whole tiles, so the payload is still there in full; a rescale changes only the tile
 * period. The decoder never needs the original's framing:
 *  1. It reads the copy at a fixed working size (short side 256), high-passes it and divides by the local
 *     contrast (samples in busy texture carry more host noise, so they get less weight).
 *  2. The autocorrelation of that image peaks at the tile period vectors: they give scale, rotation and aspect.
 *  3. Folding every sample onto one tile (modulo the period) adds the tiles' marks coherently; a cyclic
 *     correlation of the fold with the synchronisation template gives the offset within a tile, for the plain and
 *     the mirrored orientation. A local search over scale and angle maximises that correlation's z-score, and a
 *     last polish over scale, angle and offset maximises a sign-agnostic score of all the chips.
 *  4. The folded payload chips give 128 soft channel bits (the BCH code of watermark-code.ts); the per-tile
 *     position chips give the whole-tile part of the offset.
 * The payload is read at READINGS hypotheses: the search's best two and the full frame (the copy taken as the
 * whole original, whose grid its size gives). Nothing in steps 1-3 depends on the payload's signs, so the
 * p-value's union bound counts just those readings (watermark.ts adds the codec-1 fallback's).
 */

export const CODEC = 2;
export const CHIPS_PER_SHORT = 128;
export const TILE = 32;
const TILE_CHIPS = TILE * TILE;
const TILES_PER_SHORT = CHIPS_PER_SHORT / TILE;
/** Working size: the copy's short side in samples (2 samples per chip for an uncropped copy). */
export const DECODE_SHORT = 256;
/** The working view's long side is cut to this (centred): enough tiles, bounded FFT cost. */
const DECODE_LONG_MAX = 1024;
/** Tile periods searched, in working samples: 64 uncropped; a crop keeping 45 % of the short side gives 142. */
const PERIOD_MIN = 48;
const PERIOD_MAX = 150;
/**
 * Payload hypotheses decoded (the search's best two and the full frame, tiledHypotheses): the union bound's share
 * of codec 2.
 */
export const READINGS = 3;
/** Smallest short side that gets codec 2: below it a chip is under 2 px, and the mark would not survive JPEG. */
export const MIN_SIDE = 256;

/**
 * Chips per tile of each part. The synchronisation correlation's z-score cannot exceed sqrt(SYNC_CHIPS) (the
 * payload chips of the same fold are its noise at every wrong shift), so its share sets how much host noise the
 * search survives: with 128 sync chips a macro photo's mark read with 0 bit errors but was not found after a crop.
 */
const SYNC_CHIPS = 256;
const POSITION_CHIPS = 128;
const SEED = 0x76696731; // "vig1": the layout key (the payload's secrecy is the tenant cipher's, not this)

interface Layout {
  /** Per chip of a tile (row-major 32 x 32): 0 = sync, 1 = position, 2 + b = channel bit b. */
  role: Int16Array;
  sign: Float32Array;
  syncChips: Int32Array;
  positionChips: Int32Array;
  /** Chips of each channel bit, CODE_BITS lists of 5. */
  bitChips: Int32Array[];
}

const LAYOUT: Layout = (() => {
  const next = mulberry32(SEED);
  const order = Array.from({ length: TILE_CHIPS }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const role = new Int16Array(TILE_CHIPS);
  const sign = new Float32Array(TILE_CHIPS);
  const bitChips: number[][] = Array.from({ length: CODE_BITS }, () => []);
  const sync: number[] = [];
  const position: number[] = [];
  order.forEach((chip, rank) => {
    sign[chip] = next() & 1 ? 1 : -1;
    if (rank < SYNC_CHIPS) {
      role[chip] = 0;
      sync.push(chip);
    } else if (rank < SYNC_CHIPS + POSITION_CHIPS) {
      role[chip] = 1;
      position.push(chip);
    } else {
      const b = (rank - SYNC_CHIPS - POSITION_CHIPS) % CODE_BITS;
      role[chip] = 2 + b;
      bitChips[b]!.push(chip);
    }
  });
  return {
    role,
    sign,
    syncChips: Int32Array.from(sync),
    positionChips: Int32Array.from(position),
    bitChips: bitChips.map((c) => Int32Array.from(c)),
  };
})();

/** Chips per channel bit in a tile (640 payload chips over 128 bits). */
const CHIPS_PER_BIT = LAYOUT.bitChips[0]!.length;

/** The keyed sign of tile (i, j) of the original (column, row): the position code. */
export function tileSign(i: number, j: number): number {
  let h = Math.imul(i | 0, 0x9e3779b1) ^ Math.imul(j | 0, 0x85ebca77) ^ SEED;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  return h & 1 ? 1 : -1;
}

/** The chip grid of an image: CHIPS_PER_SHORT along the short side, the long side in proportion. */
export function chipGrid(width: number, height: number): { cols: number; rows: number } {
  const s = Math.min(width, height);
  return {
    cols: width === s ? CHIPS_PER_SHORT : Math.round((CHIPS_PER_SHORT * width) / s),
    rows: height === s ? CHIPS_PER_SHORT : Math.round((CHIPS_PER_SHORT * height) / s),
  };
}

/** Amplitudes of the three parts: per channel bit, the sync chips, the position chips. */
export interface Amplitudes {
  bits: Float32Array;
  sync: number;
  position: number;
}

export const defaultAmplitudes = (): Amplitudes => ({ bits: new Float32Array(CODE_BITS).fill(1), sync: 1, position: 1 });

/** The chip values (cols x rows, row-major) of a whitened 128-bit channel word at the given amplitudes. */
export function chipValues(cols: number, rows: number, sent: Uint8Array, amp: Amplitudes): Float32Array {
  const tileValues = new Float32Array(TILE_CHIPS);
  const posValues = new Float32Array(TILE_CHIPS);
  for (let k = 0; k < TILE_CHIPS; k++) {
    const r = LAYOUT.role[k]!;
    const s = LAYOUT.sign[k]!;
    if (r === 0) tileValues[k] = s * amp.sync;
    else if (r === 1) posValues[k] = s * amp.position;
    else tileValues[k] = s * amp.bits[r - 2]! * (sent[r - 2] ? 1 : -1);
  }
  const out = new Float32Array(cols * rows);
  for (let y = 0; y < rows; y++) {
    const ty = Math.floor(y / TILE);
    const ly = y % TILE;
    for (let x = 0; x < cols; x++) {
      const k = ly * TILE + (x % TILE);
      out[y * cols + x] = tileValues[k]! + posValues[k]! * tileSign(Math.floor(x / TILE), ty);
    }
  }
  return out;
}

/** Bilinear, half-pixel centred stretch of a cols x rows plane to w x h (the residual's own stretch). */
export function stretchPlane(src: Float32Array, cols: number, rows: number, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  const xs = new Int32Array(w);
  const xw = new Float32Array(w);
  for (let x = 0; x < w; x++) {
    const s = Math.min(cols - 1, Math.max(0, ((x + 0.5) * cols) / w - 0.5));
    xs[x] = Math.min(cols - 2, Math.floor(s));
    xw[x] = s - xs[x]!;
  }
  const wide = new Float32Array(w * rows);
  for (let r = 0; r < rows; r++)
    for (let x = 0; x < w; x++) {
      const a = src[r * cols + xs[x]!]!;
      wide[r * w + x] = a + (src[r * cols + xs[x]! + 1]! - a) * xw[x]!;
    }
  for (let y = 0; y < h; y++) {
    const s = Math.min(rows - 1, Math.max(0, ((y + 0.5) * rows) / h - 0.5));
    const y0 = Math.min(rows - 2, Math.floor(s));
    const wy = s - y0;
    for (let x = 0; x < w; x++) {
      const a = wide[y0 * w + x]!;
      out[y * w + x] = a + (wide[(y0 + 1) * w + x]! - a) * wy;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The working view

export interface WorkingView {
  /** High-passed, contrast-normalised luminance, w x h. */
  data: Float32Array;
  w: number;
  h: number;
  /** The copy's size in pixels. */
  width: number;
  height: number;
  /** Copy pixels per working sample, per axis, and the working view's top-left in copy pixels (the centre cut). */
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
}

/** An image resized to w x h (fit: fill) as 8-bit samples without alpha: both codecs' working views start here. */
export async function resized8(image: RasterImage, w: number, h: number) {
  const { width, height, channels } = image;
  let data: Uint8Array;
  if (image.bitDepth === 16) {
    data = new Uint8Array(image.data.length);
    for (let i = 0; i < data.length; i++) data[i] = image.data[i]! >> 8;
  } else data = image.data as Uint8Array;
  let p = sharp(data, { raw: { width, height, channels } });
  if (image.hasAlpha) p = p.removeAlpha();
  return p.resize(w, h, { fit: "fill" }).raw().toBuffer({ resolveWithObject: true });
}

/**
 * The chroma direction the mark also uses: orthogonal both to (1, 1, 1) (so the luminance part of the mark does
 * not show in it) and to the luminance weights (so the chroma part does not show in luminance).
 */
export const CHROMA = (() => {
  const l = [0.299, 0.587, 0.114];
  const c = [l[2]! - l[1]!, l[0]! - l[2]!, l[1]! - l[0]!];
  const n = Math.hypot(...c);
  return c.map((v) => v / n) as [number, number, number];
})();
/**
 * Share of the mark's energy (mean square over R, G, B) in the chroma direction; 0 ships (luminance only). A unit of
 * chroma costs a third of the mean square of a unit of luminance, and photos' fine texture is mostly luminance, so
 * chroma helps against host texture: on the 24 training photos x 7 edits, exact recovery 143/168 with luminance
 * only, 158/168 at 0.5 (every crop edit 21/24 -> 24/24). On the 109 held-out photos (models/watermark/CARD.md,
 * "chroma ablation") 0.5 lifted every crop row to 98-99 % but JPEG q75 fell from 98.2 % to 92.7 % and resize 0.5 +
 * JPEG q75 from 89.9 % to 62.4 %: on small photos 4:2:0 subsampling removes the chroma part, and the decoder's fixed
 * plane weight then adds the chroma plane's noise to the luminance reading. A downscale plus JPEG is what every
 * platform's ingest does, so the chroma part stays off until the decoder weighs the planes per copy.
 */
export const CHROMA_SHARE: number = 0;
const LUMA_GAIN = Math.sqrt(1 - CHROMA_SHARE);
const CHROMA_GAIN = Math.sqrt(3 * CHROMA_SHARE);
/** Weight of the whitened chroma plane in the decoder's view: the two parts' amplitude ratio. */
const CHROMA_WEIGHT = CHROMA_GAIN / LUMA_GAIN;

/**
 * 8-bit luminance and, when the mark has a chroma part, chroma (CHROMA) planes of an image at w x h (sharp's
 * resize, one kernel for embedder and decoder). Without a chroma part the chroma plane is empty.
 */
export async function planesAt(image: RasterImage, w: number, h: number): Promise<{ lum: Float32Array; chroma: Float32Array }> {
  const { data: px, info } = await resized8(image, w, h);
  const lum = new Float32Array(w * h);
  const withChroma = CHROMA_SHARE > 0;
  const chroma = new Float32Array(withChroma ? w * h : 0);
  const c = info.channels;
  const [cr, cg, cb] = CHROMA;
  for (let i = 0; i < w * h; i++) {
    if (c >= 3) {
      const r = px[i * c]!;
      const g = px[i * c + 1]!;
      const b = px[i * c + 2]!;
      lum[i] = 0.299 * r + 0.587 * g + 0.114 * b;
      if (withChroma) chroma[i] = cr * r + cg * g + cb * b;
    } else lum[i] = px[i * c]!;
  }
  return { lum, chroma };
}

/** Working size of a w x h image: short side DECODE_SHORT. */
export function workingSize(width: number, height: number): { w: number; h: number } {
  const s = Math.min(width, height);
  return {
    w: Math.max(1, Math.round((width * DECODE_SHORT) / s)),
    h: Math.max(1, Math.round((height * DECODE_SHORT) / s)),
  };
}

/** Box blur of radius r along rows then columns, edges clamped (three passes approximate a Gaussian of sigma ~ r). */
function boxBlur(src: Float32Array, w: number, h: number, r: number): Float32Array {
  const tmp = new Float32Array(w * h);
  const out = new Float32Array(w * h);
  const n = 2 * r + 1;
  const inv = 1 / n;
  // Each line is copied with r + 1 edge values on either side, so the running sum needs no clamping.
  const line = new Float32Array(Math.max(w, h) + 2 * r + 2);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let i = 0; i <= r; i++) line[i] = src[row]!;
    for (let i = 0; i < w; i++) line[i + r + 1] = src[row + i]!;
    for (let i = 0; i <= r; i++) line[w + r + 1 + i] = src[row + w - 1]!;
    let acc = 0;
    for (let i = 0; i < n; i++) acc += line[i]!;
    for (let i = 0; i < w; i++) {
      acc += line[i + n]! - line[i]!;
      tmp[row + i] = acc * inv;
    }
  }
  for (let x = 0; x < w; x++) {
    for (let i = 0; i <= r; i++) line[i] = tmp[x]!;
    for (let i = 0; i < h; i++) line[i + r + 1] = tmp[i * w + x]!;
    for (let i = 0; i <= r; i++) line[h + r + 1 + i] = tmp[(h - 1) * w + x]!;
    let acc = 0;
    for (let i = 0; i < n; i++) acc += line[i]!;
    for (let i = 0; i < h; i++) {
      acc += line[i + n]! - line[i]!;
      out[i * w + x] = acc * inv;
    }
  }
  return out;
}

const blur3 = (src: Float32Array, w: number, h: number, r: number) => boxBlur(boxBlur(boxBlur(src, w, h, r), w, h, r), w, h, r);

/** The image minus a blur of half a chip: what carries the mark, with the host's low frequencies removed. */
export function highPass(lum: Float32Array, w: number, h: number): Float32Array {
  // The low-pass is the 5-tap binomial (1 4 6 4 1) / 16 along rows and columns, a Gaussian of sigma 1 sample
  // (half a chip), with edges clamped.
  const tmp = new Float32Array(w * h);
  const at = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);
  for (let y = 0; y < h; y++) {
    const r = y * w;
    for (let x = 0; x < w; x++) {
      if (x >= 2 && x < w - 2)
        tmp[r + x] = (lum[r + x - 2]! + 4 * lum[r + x - 1]! + 6 * lum[r + x]! + 4 * lum[r + x + 1]! + lum[r + x + 2]!) / 16;
      else
        tmp[r + x] =
          (lum[r + at(x - 2, w)]! +
            4 * lum[r + at(x - 1, w)]! +
            6 * lum[r + x]! +
            4 * lum[r + at(x + 1, w)]! +
            lum[r + at(x + 2, w)]!) /
          16;
    }
  }
  const hp = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const m2 = at(y - 2, h) * w;
    const m1 = at(y - 1, h) * w;
    const r = y * w;
    const p1 = at(y + 1, h) * w;
    const p2 = at(y + 2, h) * w;
    for (let x = 0; x < w; x++)
      hp[r + x] = lum[r + x]! - (tmp[m2 + x]! + 4 * tmp[m1 + x]! + 6 * tmp[r + x]! + 4 * tmp[p1 + x]! + tmp[p2 + x]!) / 16;
  }
  return hp;
}

/** 1 / local RMS of a high-passed image (plus `floor` of variance), the whitening weight of each sample. */
export function localWeights(hp: Float32Array, w: number, h: number, floor = 1): Float32Array {
  // The local energy is smooth (a blur of sigma ~3 samples), so it is taken on a grid of 2 x 2 sample cells and
  // read back by cell: a quarter of the blur's work, in a step that both embedding and decoding pay for.
  const hw = Math.ceil(w / 2);
  const hh = Math.ceil(h / 2);
  const sq = new Float32Array(hw * hh);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = hp[y * w + x]!;
      sq[(y >> 1) * hw + (x >> 1)]! += v * v;
    }
  for (let y = 0; y < hh; y++) for (let x = 0; x < hw; x++) sq[y * hw + x]! /= Math.min(2, h - 2 * y) * Math.min(2, w - 2 * x);
  const energy = blur3(sq, hw, hh, 1);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) out[y * w + x] = 1 / Math.sqrt(energy[(y >> 1) * hw + (x >> 1)]! + floor);
  return out;
}

/**
 * High-pass (minus a blur of about one chip) and divide by the local RMS of the result: the matched detector
 * for a mark of even amplitude in host noise whose strength varies across the image. Clipped at +-4 so that a
 * few hard edges do not dominate a correlation.
 */
export function whiten(lum: Float32Array, w: number, h: number): Float32Array {
  const hp = highPass(lum, w, h);
  const weight = localWeights(hp, w, h);
  for (let i = 0; i < hp.length; i++) {
    const v = hp[i]! * weight[i]!;
    hp[i] = v > 4 ? 4 : v < -4 ? -4 : v;
  }
  return hp;
}

/** The centred part of a full.w x full.h working plane that the decoder reads: at most DECODE_LONG_MAX a side. */
export function centreCut(full: { w: number; h: number }) {
  const w = Math.min(full.w, DECODE_LONG_MAX);
  const h = Math.min(full.h, DECODE_LONG_MAX);
  const x0 = Math.floor((full.w - w) / 2);
  const y0 = Math.floor((full.h - h) / 2);
  const cut = (plane: Float32Array) => {
    if (w === full.w && h === full.h) return plane;
    const out = new Float32Array(w * h);
    for (let y = 0; y < h; y++) out.set(plane.subarray((y + y0) * full.w + x0, (y + y0) * full.w + x0 + w), y * w);
    return out;
  };
  return { w, h, x0, y0, cut };
}

/** The decoder's view of a copy: luminance at short side 256, long side cut to DECODE_LONG_MAX, whitened. */
export async function workingViewOf(image: RasterImage): Promise<WorkingView> {
  const full = workingSize(image.width, image.height);
  const { w, h, x0, y0, cut } = centreCut(full);
  const planes = await planesAt(image, full.w, full.h);
  const lum = cut(planes.lum);
  const scaleX = image.width / full.w;
  const scaleY = image.height / full.h;
  const data = whiten(lum, w, h);
  if (CHROMA_SHARE > 0) {
    const chroma = whiten(cut(planes.chroma), w, h);
    for (let i = 0; i < data.length; i++) data[i]! += CHROMA_WEIGHT * chroma[i]!;
  }
  return { data, w, h, width: image.width, height: image.height, scaleX, scaleY, offsetX: x0 * scaleX, offsetY: y0 * scaleY };
}

// ---------------------------------------------------------------------------------------------------------------
// Geometry hypotheses

/**
 * A hypothesis: working-view sample (x + 0.5, y + 0.5) lies at original chip coordinates
 *   U = TILE * (flip * a + ta),  V = TILE * (b + tb),   where (a, b) = E^-1 (x + 0.5, y + 0.5)
 * and E's columns e1, e2 are the tile period vectors in working samples.
 */
export interface Lattice {
  e1: [number, number];
  e2: [number, number];
}

export interface Hypothesis {
  lattice: Lattice;
  flip: 1 | -1;
  ta: number;
  tb: number;
  z: number;
}

function inverse(l: Lattice): [number, number, number, number] {
  const [a, c] = l.e1;
  const [b, d] = l.e2;
  const det = a * d - b * c;
  return [d / det, -b / det, -c / det, a / det];
}

/** Autocorrelation of the view at lags up to PERIOD_MAX, normalised by the overlap (a mean product per sample). */
function autocorrelation(view: WorkingView): { at: (dx: number, dy: number) => number } {
  const ph = nextPowerOfTwo(view.h + PERIOD_MAX + 2);
  const pw = nextPowerOfTwo(view.w + PERIOD_MAX + 2);
  const re = new Float64Array(ph * pw);
  const im = new Float64Array(ph * pw);
  for (let y = 0; y < view.h; y++) for (let x = 0; x < view.w; x++) re[y * pw + x] = view.data[y * view.w + x]!;
  fft2d(re, im, ph, pw);
  for (let i = 0; i < re.length; i++) {
    re[i] = re[i]! * re[i]! + im[i]! * im[i]!;
    im[i] = 0;
  }
  fft2d(re, im, ph, pw, true);
  const n = ph * pw;
  return {
    at(dx: number, dy: number) {
      const ox = view.w - Math.abs(dx);
      const oy = view.h - Math.abs(dy);
      if (ox <= 0 || oy <= 0) return 0;
      const i = (((dy % ph) + ph) % ph) * pw + (((dx % pw) + pw) % pw);
      return re[i]! / n / (ox * oy);
    },
  };
}

/** Sub-sample peak position from the 3 x 3 neighbourhood (separable parabola fit). */
function refinePeak(at: (dx: number, dy: number) => number, x: number, y: number): [number, number] {
  const c = at(x, y);
  const fit = (m: number, p: number) => {
    const d = m - 2 * c + p;
    return d < 0 ? Math.max(-0.5, Math.min(0.5, (0.5 * (m - p)) / d)) : 0;
  };
  return [x + fit(at(x - 1, y), at(x + 1, y)), y + fit(at(x, y - 1), at(x, y + 1))];
}

/** The strongest autocorrelation lag near one axis, with the period range and +-12 degrees. */
function axisPeak(at: (dx: number, dy: number) => number, axis: 0 | 1): { lag: [number, number]; value: number } {
  const slope = Math.tan((12 * Math.PI) / 180);
  let best = { x: 0, y: 0, v: -Infinity };
  for (let along = PERIOD_MIN; along <= PERIOD_MAX; along++) {
    const span = Math.ceil(along * slope);
    for (let across = -span; across <= span; across++) {
      const [x, y] = axis === 0 ? [along, across] : [across, along];
      const v = at(x, y);
      if (v > best.v) best = { x, y, v };
    }
  }
  return { lag: refinePeak(at, best.x, best.y), value: best.v };
}

/**
 * Square lattices scored by the comb of the autocorrelation: the sum of its raw (overlap-weighted) values at the
 * lattice points (1,0), (0,1), (1,1), (1,-1), (2,0), (0,2), (2,1), (1,2) for every period and angle on a grid. A
 * periodic mark peaks at all of them, while a host's own texture rarely lines up with more than one: on a photo
 * whose fine texture beat the mark's single strongest lag, the comb still found the period. Computed on the view
 * halved (one sample per chip), which keeps the lags up to two periods inside one FFT of the usual size.
 */
function combCandidates(view: WorkingView, count: number): Lattice[] {
  const w = Math.floor(view.w / 2);
  const h = Math.floor(view.h / 2);
  if (w < 8 || h < 8) return [];
  const half = new Float32Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = 2 * y * view.w + 2 * x;
      half[y * w + x] = view.data[i]! + view.data[i + 1]! + view.data[i + view.w]! + view.data[i + view.w + 1]!;
    }
  const maxLag = PERIOD_MAX + 2; // two periods at half resolution
  const ph = nextPowerOfTwo(h + maxLag);
  const pw = nextPowerOfTwo(w + maxLag);
  const re = new Float64Array(ph * pw);
  const im = new Float64Array(ph * pw);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) re[y * pw + x] = half[y * w + x]!;
  fft2d(re, im, ph, pw);
  for (let i = 0; i < re.length; i++) {
    re[i] = re[i]! * re[i]! + im[i]! * im[i]!;
    im[i] = 0;
  }
  fft2d(re, im, ph, pw, true);
  const raw = (dx: number, dy: number) => {
    if (Math.abs(dx) >= w - 4 || Math.abs(dy) >= h - 4) return 0;
    return re[(((dy % ph) + ph) % ph) * pw + (((dx % pw) + pw) % pw)]!;
  };
  const at = (x: number, y: number) => {
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const fx = x - x0;
    const fy = y - y0;
    return (
      (1 - fy) * ((1 - fx) * raw(x0, y0) + fx * raw(x0 + 1, y0)) + fy * ((1 - fx) * raw(x0, y0 + 1) + fx * raw(x0 + 1, y0 + 1))
    );
  };
  const points = [
    [1, 0],
    [0, 1],
    [1, 1],
    [1, -1],
    [2, 0],
    [0, 2],
    [2, 1],
    [1, 2],
  ] as const;
  const scores: { p: number; deg: number; s: number }[] = [];
  for (let p = PERIOD_MIN / 2; p <= PERIOD_MAX / 2; p += 0.25)
    for (let deg = -12; deg <= 12; deg += 0.5) {
      const c = Math.cos((deg * Math.PI) / 180) * p;
      const n = Math.sin((deg * Math.PI) / 180) * p;
      let s = 0;
      for (const [i, j] of points) s += at(c * i - n * j, n * i + c * j);
      scores.push({ p, deg, s });
    }
  scores.sort((a, b) => b.s - a.s);
  const picked: { p: number; deg: number }[] = [];
  for (const c of scores) {
    if (picked.some((q) => Math.abs(q.p - c.p) < 1.5 && Math.abs(q.deg - c.deg) < 2)) continue;
    picked.push(c);
    if (picked.length === count) break;
  }
  return picked.map(({ p, deg }) => {
    const c = Math.cos((deg * Math.PI) / 180) * 2 * p;
    const n = Math.sin((deg * Math.PI) / 180) * 2 * p;
    return { e1: [c, n], e2: [-n, c] };
  });
}

/**
 * Lattice candidates from the autocorrelation: as measured, and the isotropic ones from either axis, each also at
 * half and double its period along the axes (with few tiles along an axis, a lag of two periods or the image's
 * own structure at half a period can be the stronger peak). The synchronisation z-score picks among them.
 */
export function latticeCandidates(view: WorkingView): Lattice[] {
  const ac = autocorrelation(view);
  const x = axisPeak(ac.at, 0).lag;
  const y = axisPeak(ac.at, 1).lag;
  const fromX: Lattice = { e1: x, e2: [-x[1], x[0]] };
  const fromY: Lattice = { e1: [y[1], -y[0]], e2: y };
  const out: Lattice[] = [];
  const add = (l: Lattice) => {
    const n1 = Math.hypot(...l.e1);
    const n2 = Math.hypot(...l.e2);
    if (Math.min(n1, n2) < PERIOD_MIN * 0.75 || Math.max(n1, n2) > PERIOD_MAX * 1.5) return;
    const same = (a: Lattice) => Math.hypot(a.e1[0] - l.e1[0], a.e1[1] - l.e1[1], a.e2[0] - l.e2[0], a.e2[1] - l.e2[1]) < 1;
    if (!out.some(same)) out.push(l);
  };
  const times = (v: [number, number], k: number): [number, number] => [v[0] * k, v[1] * k];
  for (const l of [{ e1: x, e2: y }, fromX, fromY])
    for (const [k1, k2] of [
      [1, 1],
      [0.5, 1],
      [1, 0.5],
      [0.5, 0.5],
      [2, 1],
      [1, 2],
    ])
      add({ e1: times(l.e1, k1!), e2: times(l.e2, k2!) });
  for (const l of combCandidates(view, 4)) add(l);
  return out;
}

/** Fold bins per tile side in the synchronisation search (2 per chip). */
const FOLD = 2 * TILE;

/** The synchronisation template at fold resolution (FOLD x FOLD, cyclic), as the bilinear stretch renders it. */
const SYNC_TEMPLATE: Float32Array = (() => {
  const chips = new Float32Array(TILE_CHIPS);
  for (const k of LAYOUT.syncChips) chips[k] = LAYOUT.sign[k]!;
  const out = new Float32Array(FOLD * FOLD);
  const at = (i: number, j: number) => chips[(((j % TILE) + TILE) % TILE) * TILE + (((i % TILE) + TILE) % TILE)]!;
  for (let bv = 0; bv < FOLD; bv++)
    for (let bu = 0; bu < FOLD; bu++) {
      const u = (bu + 0.5) / 2 - 0.5;
      const v = (bv + 0.5) / 2 - 0.5;
      const i = Math.floor(u);
      const j = Math.floor(v);
      const fu = u - i;
      const fv = v - j;
      out[bv * FOLD + bu] =
        (1 - fv) * ((1 - fu) * at(i, j) + fu * at(i + 1, j)) + fv * ((1 - fu) * at(i, j + 1) + fu * at(i + 1, j + 1));
    }
  return out;
})();

const SYNC_SPECTRUM = (() => {
  const spectrum = (flip: boolean) => {
    const re = new Float64Array(FOLD * FOLD);
    const im = new Float64Array(FOLD * FOLD);
    for (let v = 0; v < FOLD; v++)
      for (let u = 0; u < FOLD; u++) re[v * FOLD + u] = SYNC_TEMPLATE[v * FOLD + (flip ? FOLD - 1 - u : u)]!;
    fft2d(re, im, FOLD, FOLD);
    return { re, im };
  };
  return { plain: spectrum(false), mirrored: spectrum(true) };
})();

/**
 * Every sample of the view splatted (bilinear weights) onto a cyclic size x size grid at grid coordinates
 * u = ua px + ub py + uc, v = va px + vb py + vc of the sample centre (px, py) = (x + 0.5, y + 0.5). size is a power
 * of two, so a cell's place is a bit mask of its index, and (u, v) advance by a constant step along a row.
 */
function splatCyclic(
  view: WorkingView,
  size: number,
  [ua, ub, uc]: readonly [number, number, number],
  [va, vb, vc]: readonly [number, number, number],
): Float64Array {
  const { w, h, data } = view;
  const out = new Float64Array(size * size);
  const mask = size - 1;
  for (let y = 0; y < h; y++) {
    const py = y + 0.5;
    let u = ua * 0.5 + ub * py + uc;
    let v = va * 0.5 + vb * py + vc;
    const row = y * w;
    for (let x = 0; x < w; x++, u += ua, v += va) {
      const u0 = Math.floor(u);
      const v0 = Math.floor(v);
      const fu = u - u0;
      const fv = v - v0;
      const s = data[row + x]!;
      const c0 = u0 & mask;
      const c1 = (u0 + 1) & mask;
      const r0 = (v0 & mask) * size;
      const r1 = ((v0 + 1) & mask) * size;
      const sv = s * fv;
      const s0 = s - sv;
      out[r0 + c0]! += s0 - s0 * fu;
      out[r0 + c1]! += s0 * fu;
      out[r1 + c0]! += sv - sv * fu;
      out[r1 + c1]! += sv * fu;
    }
  }
  return out;
}

/** Every sample folded onto one tile of the lattice (bilinear splat into FOLD x FOLD bins). */
function fold(view: WorkingView, lattice: Lattice): Float64Array {
  const [i00, i01, i10, i11] = inverse(lattice);
  return splatCyclic(view, FOLD, [i00 * FOLD, i01 * FOLD, -0.5], [i10 * FOLD, i11 * FOLD, -0.5]);
}

/** One orientation's cyclic correlation over all FOLD^2 shifts, with its mean and spread (z = (value - mean) / sd). */
interface CorrelationMap {
  map: Float64Array;
  mean: number;
  sd: number;
}

/**
 * The cyclic phase correlation of a fold with the synchronisation template, plain (index 0) and mirrored (1), from
 * one forward and one inverse transform: both maps are real, so the plain one is computed as the real part and
 * the mirrored one as the imaginary part of a single inverse transform.
 */
function correlationMaps(bins: Float64Array): [CorrelationMap, CorrelationMap] {
  const n = FOLD * FOLD;
  const re = Float64Array.from(bins);
  const im = new Float64Array(n);
  fft2d(re, im, FOLD, FOLD);
  const p = SYNC_SPECTRUM.plain;
  const m = SYNC_SPECTRUM.mirrored;
  for (let i = 0; i < n; i++) {
    // C(s) = sum_x F(x) T(x + s): the spectrum is conj(F) * T. Phase correlation (the fold's spectrum flattened):
    // structured host residue in the fold (a smooth fold of a dark, clipped or out-of-focus background) would
    // otherwise set the spread of the correlation over shifts.
    const mag = Math.sqrt(re[i]! * re[i]! + im[i]! * im[i]!) + 1e-12;
    const fr = re[i]! / mag;
    const fi = -im[i]! / mag;
    const pr = fr * p.re[i]! - fi * p.im[i]!;
    const pi = fr * p.im[i]! + fi * p.re[i]!;
    const mr = fr * m.re[i]! - fi * m.im[i]!;
    const mi = fr * m.im[i]! + fi * m.re[i]!;
    // plain + i * mirrored
    re[i] = pr - mi;
    im[i] = pi + mr;
  }
  fft2d(re, im, FOLD, FOLD, true);
  const stats = (map: Float64Array): CorrelationMap => {
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      sum += map[i]!;
      sq += map[i]! * map[i]!;
    }
    const mean = sum / n;
    return { map, mean, sd: Math.sqrt(Math.max(1e-30, sq / n - mean * mean)) };
  };
  return [stats(re), stats(im)];
}

const mapAt = (map: Float64Array, u: number, v: number) =>
  map[(((v % FOLD) + FOLD) % FOLD) * FOLD + (((u % FOLD) + FOLD) % FOLD)]!;

/** The fold-bin shift (su, sv) at which the correlation map of a hypothesis peaks (see synchronise). */
const shiftOf = (flip: 1 | -1, ta: number, tb: number): [number, number] => [flip === 1 ? FOLD * ta : -FOLD * ta, FOLD * tb];

/**
 * The best cyclic alignment of the fold with the synchronisation template, plain and mirrored: offsets (ta, tb)
 * in tiles and the peak's z-score over all FOLD^2 shifts.
 */
function synchronise(bins: Float64Array, lattice: Lattice): Hypothesis[] {
  const out: Hypothesis[] = [];
  const maps = correlationMaps(bins);
  for (const flip of [1, -1] as const) {
    const { map, mean, sd } = maps[flip === 1 ? 0 : 1];
    let best = 0;
    for (let i = 1; i < map.length; i++) if (map[i]! > map[best]!) best = i;
    const [su, sv] = refinePeak((u, v) => mapAt(map, u, v), best % FOLD, Math.floor(best / FOLD));
    // Plain: the original's u-bin is the fold bin + FOLD ta, so the peak is at s = FOLD ta. Mirrored (U = TILE
    // (ta - a)): the original's u-bin is -1 - (fold bin) + FOLD ta, and T'(x) = T(FOLD - 1 - x) peaks at s = -FOLD ta.
    const ta = flip === 1 ? su / FOLD : (FOLD - su) / FOLD;
    out.push({ lattice, flip, ta, tb: sv / FOLD, z: (map[best]! - mean) / sd });
  }
  return out;
}

/**
 * The full-frame hypothesis: the copy is the whole original, rescaled (no crop), plain or mirrored, so its chip
 * grid is the one its own size implies and every offset is known. Of the two orientations, the one whose
 * correlation at that known shift is the higher (a payload-independent test). Why: on photos whose own texture
 * is strong at the chip scale (a chessboard, gravel) the search's z-score sits in its noise, yet at the true
 * geometry the payload reads with 0-5 bit errors; an uncropped copy is what JPEG, resizing, brightness and blur
 * leave, so this one reading recovers all of them.
 */
export function fullFrameHypothesis(view: WorkingView): Hypothesis {
  const { cols, rows } = chipGrid(view.width, view.height);
  const fullW = view.width / view.scaleX;
  const fullH = view.height / view.scaleY;
  const px = (TILE * fullW) / cols;
  const py = (TILE * fullH) / rows;
  const lattice: Lattice = { e1: [px, 0], e2: [0, py] };
  const x0 = view.offsetX / view.scaleX;
  const y0 = view.offsetY / view.scaleY;
  const maps = correlationMaps(fold(view, lattice));
  let best: Hypothesis | null = null;
  for (const flip of [1, -1] as const) {
    const ta = flip === 1 ? x0 / px : cols / TILE - x0 / px;
    const tb = y0 / py;
    const { map, mean, sd } = maps[flip === 1 ? 0 : 1];
    const [su, sv] = shiftOf(flip, ta, tb);
    // Bilinear read of the map at the fractional shift.
    const u0 = Math.floor(su);
    const v0 = Math.floor(sv);
    const fu = su - u0;
    const fv = sv - v0;
    const value =
      (1 - fv) * ((1 - fu) * mapAt(map, u0, v0) + fu * mapAt(map, u0 + 1, v0)) +
      fv * ((1 - fu) * mapAt(map, u0, v0 + 1) + fu * mapAt(map, u0 + 1, v0 + 1));
    const z = (value - mean) / sd;
    if (!best || z > best.z) best = { lattice, flip, ta, tb, z };
  }
  return best!;
}

const scaled = (l: Lattice, s: number, degrees: number): Lattice => {
  const r = (degrees * Math.PI) / 180;
  const c = Math.cos(r) * s;
  const n = Math.sin(r) * s;
  const rot = (v: [number, number]): [number, number] => [c * v[0] - n * v[1], n * v[0] + c * v[1]];
  return { e1: rot(l.e1), e2: rot(l.e2) };
};

/** Local search over scale and angle around a lattice, maximising the synchronisation z-score. */
function refineLattice(view: WorkingView, start: Lattice): Hypothesis[] {
  const evaluate = (l: Lattice) => synchronise(fold(view, l), l);
  const bestOf = (hs: Hypothesis[]) => hs.reduce((a, b) => (b.z > a.z ? b : a));
  let all = evaluate(start);
  let best = bestOf(all);
  const tryAll = (ls: Lattice[]) => {
    for (const l of ls) {
      const hs = evaluate(l);
      all = all.concat(hs);
      const b = bestOf(hs);
      if (b.z > best.z) best = b;
    }
  };
  for (const [ds, dd] of [
    [0.004, 0.4],
    [0.0015, 0.15],
    [0.0005, 0.05],
  ] as const) {
    const centre = best.lattice;
    tryAll([-2, -1, 1, 2].map((k) => scaled(centre, 1 + k * ds, 0)));
    const c2 = best.lattice;
    tryAll([-2, -1, 1, 2].map((k) => scaled(c2, 1, k * dd)));
  }
  return all;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the chips

export interface ChipReading {
  /** Soft channel statistic per bit (positive = 1), before whitening is undone. */
  bitStats: Float64Array;
  /** Position-code statistic per tile, keyed "i,j" in the hypothesis' tile frame, and the tiles' sample weights. */
  tiles: Map<string, { i: number; j: number; stat: number; weight: number }>;
}

/** Per channel bit, its chips' keyed signs times their folded values (positive = 1). */
function bitStatistics(folded: Float64Array): Float64Array {
  const out = new Float64Array(CODE_BITS);
  LAYOUT.bitChips.forEach((chips, bit) => {
    let t = 0;
    for (const k of chips) t += LAYOUT.sign[k]! * folded[k]!;
    out[bit] = t;
  });
  return out;
}

/**
 * Every sample splatted onto the chips of one tile under a hypothesis (bilinear weights), without the per-tile
 * split: the fast path of readChips for scoring alignments.
 */
function foldChips(view: WorkingView, hyp: Pick<Hypothesis, "lattice" | "flip" | "ta" | "tb">): Float64Array {
  const [i00, i01, i10, i11] = inverse(hyp.lattice);
  const f = hyp.flip;
  return splatCyclic(
    view,
    TILE,
    [TILE * f * i00, TILE * f * i01, TILE * hyp.ta - 0.5],
    [TILE * i10, TILE * i11, TILE * hyp.tb - 0.5],
  );
}

/** Splats every sample into its chip under a hypothesis (bilinear weights: the matched filter of the stretch). */
export function readChips(
  view: WorkingView,
  hyp: Pick<Hypothesis, "lattice" | "flip" | "ta" | "tb">,
  positions = true,
): ChipReading {
  if (!positions) return { bitStats: bitStatistics(foldChips(view, hyp)), tiles: new Map() };
  const [i00, i01, i10, i11] = inverse(hyp.lattice);
  const { w, h, data } = view;
  const folded = new Float64Array(TILE_CHIPS);
  const perTile = new Map<number, Float64Array>();
  const weights = new Map<number, number>();
  const key = (ti: number, tj: number) => (ti + 4096) * 8192 + (tj + 4096);
  const isPosition = new Uint8Array(TILE_CHIPS);
  if (positions) for (const k of LAYOUT.positionChips) isPosition[k] = 1;
  for (let y = 0; y < h; y++) {
    const py = y + 0.5;
    for (let x = 0; x < w; x++) {
      const px = x + 0.5;
      const a = i00 * px + i01 * py;
      const b = i10 * px + i11 * py;
      const u = TILE * (hyp.flip * a + hyp.ta) - 0.5;
      const v = TILE * (b + hyp.tb) - 0.5;
      const u0 = Math.floor(u);
      const v0 = Math.floor(v);
      const fu = u - u0;
      const fv = v - v0;
      const s = data[y * w + x]!;
      if (positions) {
        const own = key(Math.floor((u + 0.5) / TILE), Math.floor((v + 0.5) / TILE));
        weights.set(own, (weights.get(own) ?? 0) + 1);
      }
      for (let dv = 0; dv <= 1; dv++) {
        const cv = v0 + dv;
        const wv = dv ? fv : 1 - fv;
        const tj = Math.floor(cv / TILE);
        const lv = cv - tj * TILE;
        for (let du = 0; du <= 1; du++) {
          const cu = u0 + du;
          const wt = (du ? fu : 1 - fu) * wv;
          const ti = Math.floor(cu / TILE);
          const k = lv * TILE + (cu - ti * TILE);
          folded[k]! += s * wt;
          if (isPosition[k]) {
            const tk = key(ti, tj);
            let acc = perTile.get(tk);
            if (!acc) {
              acc = new Float64Array(TILE_CHIPS);
              perTile.set(tk, acc);
            }
            acc[k]! += s * wt;
          }
        }
      }
    }
  }
  const bitStats = bitStatistics(folded);
  const tiles = new Map<string, { i: number; j: number; stat: number; weight: number }>();
  for (const [tk, acc] of perTile) {
    const i = Math.floor(tk / 8192) - 4096;
    const j = (tk % 8192) - 4096;
    let stat = 0;
    for (const k of LAYOUT.positionChips) stat += LAYOUT.sign[k]! * acc[k]!;
    tiles.set(`${i},${j}`, { i, j, stat, weight: weights.get(tk) ?? 0 });
  }
  return { bitStats, tiles };
}

/**
 * Sign-agnostic alignment score of a hypothesis: the synchronisation chips' statistic plus the magnitudes of the
 * 128 bit statistics, as a z-score against what it would be on a fold of pure noise of the same spread. Every chip
 * of the tile counts (the payload's 640 as well as the 256 synchronisation chips), yet the score does not depend on
 * the payload's signs: under no mark, flipping the sign of any bit statistic leaves it unchanged, so choosing a
 * geometry by it does not favour any word, and the p-value's count of readings still holds. Why the
 * normalisation: the sum of magnitudes grows with the fold's own spread, so the raw score also rewards lining the
 * fold up with the host's texture; on the training photos' uncropped copies the raw score's polish moved off the
 * true geometry (0 bit errors there) to one that read 6-13, the normalised one stays at 0.
 */
function alignmentScore(view: WorkingView, hyp: Pick<Hypothesis, "lattice" | "flip" | "ta" | "tb">): number {
  const folded = foldChips(view, hyp);
  let s = 0;
  for (const k of LAYOUT.syncChips) s += LAYOUT.sign[k]! * folded[k]!;
  for (const v of bitStatistics(folded)) s += Math.abs(v);
  let sum = 0;
  let sq = 0;
  for (const v of folded) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / folded.length;
  const sigma = Math.sqrt(Math.max(1e-30, sq / folded.length - mean * mean));
  // Under noise of spread sigma per chip: a bit statistic is N(0, 5 sigma^2), its magnitude has mean
  // sqrt(5) sigma sqrt(2 / pi) and variance 5 sigma^2 (1 - 2 / pi); the sync statistic is N(0, 256 sigma^2).
  const mu0 = CODE_BITS * Math.sqrt(CHIPS_PER_BIT) * sigma * Math.sqrt(2 / Math.PI);
  const sd0 = sigma * Math.sqrt(SYNC_CHIPS + CODE_BITS * CHIPS_PER_BIT * (1 - 2 / Math.PI));
  return (s - mu0) / sd0;
}

/**
 * The template's chips for cyclic shifts: for every sync chip and then every bit chip in bit order, its row, column
 * and keyed sign. Bits are runs of 5 (CHIPS_PER_BIT) in this order.
 */
const TEMPLATE = (() => {
  const order = [...LAYOUT.syncChips, ...LAYOUT.bitChips.flatMap((c) => [...c])];
  return {
    row: Int32Array.from(order, (k) => Math.floor(k / TILE)),
    col: Int32Array.from(order, (k) => k % TILE),
    sign: Float64Array.from(order, (k) => LAYOUT.sign[k]!),
  };
})();

/**
 * The alignment score of a hypothesis as a z-score: its value at the hypothesis' own chip phase against the same
 * score with the template shifted cyclically by each of the other 1,023 whole-chip shifts over the same folded
 * tile. The shifted scores are what the fold gives where the template does not line up, so the z-score needs no
 * model of the host's residue in the fold. Like the score, it does not depend on the payload's signs.
 */
export function alignmentZ(view: WorkingView, hyp: Pick<Hypothesis, "lattice" | "flip" | "ta" | "tb">): number {
  const F = foldChips(view, hyp);
  const { row, col, sign } = TEMPLATE;
  const n = row.length;
  const idx = new Int32Array(n);
  let sum = 0;
  let sq = 0;
  let own = 0;
  for (let dv = 0; dv < TILE; dv++)
    for (let du = 0; du < TILE; du++) {
      for (let i = 0; i < n; i++) idx[i] = ((row[i]! + dv) & (TILE - 1)) * TILE + ((col[i]! + du) & (TILE - 1));
      let s = 0;
      let i = 0;
      for (; i < SYNC_CHIPS; i++) s += sign[i]! * F[idx[i]!]!;
      for (; i < n; i += CHIPS_PER_BIT) {
        let t = 0;
        for (let j = i; j < i + CHIPS_PER_BIT; j++) t += sign[j]! * F[idx[j]!]!;
        s += t < 0 ? -t : t;
      }
      if (dv === 0 && du === 0) own = s;
      else {
        sum += s;
        sq += s * s;
      }
    }
  const m = TILE_CHIPS - 1;
  const mean = sum / m;
  return (own - mean) / Math.sqrt(Math.max(1e-30, sq / m - mean * mean));
}

/**
 * Local ascent of alignmentScore over scale, angle and offset, about the view's centre (so that a change of scale
 * or angle leaves the centre's original coordinates in place). Why: the synchronisation search maximises a z-score
 * of 256 chips that sits at 5-7 on textured photos, and its maximum is off the truth by a few tenths of a percent
 * of scale, a tenth of a degree or a tenth of a chip, which at the far edge of a wide copy is most of a chip; with
 * all 896 chips the score pins the geometry down: on the training photos' crops, bit errors at the searched
 * geometry fell from 12-14 to the 4-7 of the true geometry.
 */
export function polish(view: WorkingView, start: Hypothesis): Hypothesis {
  const cx = view.w / 2;
  const cy = view.h / 2;
  const centreOf = (l: Lattice) => {
    const [i00, i01, i10, i11] = inverse(l);
    return [i00 * cx + i01 * cy, i10 * cx + i11 * cy] as const;
  };
  // A new lattice with the offsets moved so the view's centre keeps its original chip coordinates.
  const around = (h: Hypothesis, l: Lattice): Hypothesis => {
    const [a0, b0] = centreOf(h.lattice);
    const [a1, b1] = centreOf(l);
    return { ...h, lattice: l, ta: h.ta + h.flip * (a0 - a1), tb: h.tb + (b0 - b1) };
  };
  let best = start;
  let score = alignmentScore(view, best);
  const tryMove = (h: Hypothesis) => {
    const s = alignmentScore(view, h);
    if (s > score) {
      score = s;
      best = h;
      return true;
    }
    return false;
  };
  for (const step of [1, 0.5, 0.25]) {
    for (let pass = 0; pass < 3; pass++) {
      let moved = false;
      for (const sign of [1, -1]) {
        const d = sign * step;
        // Offsets in quarter chips, scale in 0.1 % and angle in 0.05 degree units (times the step).
        moved = tryMove({ ...best, ta: best.ta + (d * 0.25) / TILE }) || moved;
        moved = tryMove({ ...best, tb: best.tb + (d * 0.25) / TILE }) || moved;
        moved = tryMove(around(best, scaled(best.lattice, 1 + d * 0.001, 0))) || moved;
        moved = tryMove(around(best, scaled(best.lattice, 1, d * 0.05))) || moved;
      }
      if (!moved) break;
    }
  }
  return best;
}

/**
 * The whole-tile shift (di, dj): tile (i, j) of the hypothesis frame is tile (i + di, j + dj) of the original.
 * Every tile of the original has index >= 0, and along its short side there are exactly TILES_PER_SHORT. Among
 * the shifts allowed by that, the one whose keyed signs agree best with the measured per-tile statistics wins;
 * its z-score is over the other allowed shifts.
 */
export function tileShift(tiles: ChipReading["tiles"]): { di: number; dj: number; z: number } {
  // Tiles cut to a sliver by the copy's edge carry little and would widen the span that the range checks use.
  const full = Math.max(0, ...[...tiles.values()].map((t) => t.weight));
  const list = [...tiles.values()].filter((t) => t.weight >= 0.2 * full);
  if (list.length === 0) return { di: 0, dj: 0, z: 0 };
  const minI = Math.min(...list.map((t) => t.i));
  const minJ = Math.min(...list.map((t) => t.j));
  const maxI = Math.max(...list.map((t) => t.i));
  const maxJ = Math.max(...list.map((t) => t.j));
  const LONG_TILES = 64 * TILES_PER_SHORT; // a 16:1 original has 64 tiles along its long side
  const scores: { di: number; dj: number; s: number }[] = [];
  const consider = (di: number, dj: number) => {
    let s = 0;
    for (const t of list) s += t.stat * tileSign(t.i + di, t.j + dj);
    scores.push({ di, dj, s });
  };
  const seen = new Set<string>();
  const add = (di: number, dj: number) => {
    const k = `${di},${dj}`;
    if (!seen.has(k)) {
      seen.add(k);
      consider(di, dj);
    }
  };
  // Landscape originals: rows 0..3, columns 0..LONG_TILES; portrait: the other way round.
  for (let dj = -minJ; maxJ + dj < TILES_PER_SHORT; dj++) for (let di = -minI; di <= LONG_TILES - maxI; di++) add(di, dj);
  for (let di = -minI; maxI + di < TILES_PER_SHORT; di++) for (let dj = -minJ; dj <= LONG_TILES - maxJ; dj++) add(di, dj);
  if (scores.length === 0) return { di: -minI, dj: -minJ, z: 0 };
  if (scores.length === 1) return { di: scores[0]!.di, dj: scores[0]!.dj, z: 0 };
  let best = scores[0]!;
  for (const c of scores) if (c.s > best.s) best = c;
  const others = scores.filter((c) => c !== best).map((c) => c.s);
  const mean = others.reduce((a, b) => a + b, 0) / others.length;
  const sd = Math.sqrt(others.reduce((a, b) => a + (b - mean) ** 2, 0) / others.length) || 1;
  return { di: best.di, dj: best.dj, z: (best.s - mean) / sd };
}

/** Soft channel probabilities from the bit statistics: a Gaussian fit of |stat| gives the log-likelihood ratio. */
export function softBits(stats: Float64Array): number[] {
  const abs = Array.from(stats, Math.abs);
  const mean = abs.reduce((a, b) => a + b, 0) / abs.length;
  const variance = abs.reduce((a, b) => a + (b - mean) ** 2, 0) / abs.length || mean * mean || 1;
  return Array.from(stats, (s) => 1 / (1 + Math.exp(Math.max(-50, Math.min(50, (-2 * mean * s) / variance)))));
}

const sameLattice = (a: Hypothesis, b: Hypothesis) =>
  a.flip === b.flip &&
  Math.abs(a.lattice.e1[0] - b.lattice.e1[0]) < 0.5 &&
  Math.abs(a.lattice.e1[1] - b.lattice.e1[1]) < 0.5 &&
  Math.abs(a.lattice.e2[0] - b.lattice.e2[0]) < 0.5 &&
  Math.abs(a.lattice.e2[1] - b.lattice.e2[1]) < 0.5;

/**
 * The scale scan's period ratio: at 0.5 % the scanned period is within 0.25 % of any true one, a misregistration of
 * a quarter chip 100 chips from the fold's reference, which the synchronisation still sees.
 */
const SCAN_STEP = 1.005;
/** Scan hypotheses kept for the alignment z-score (its cost: a fold of the view and 1,024 template shifts each). */
const SCAN_KEEP = 12;

/**
 * Axis-aligned square lattices at every period from PERIOD_MIN to PERIOD_MAX in 0.5 % steps, each synchronised:
 * the SCAN_KEEP distinct best by synchronisation z. A crop or a resize keeps the mark's grid square and upright, so
 * its lattice is one of these, whatever the host's own autocorrelation says.
 */
function scaleScan(view: WorkingView): Hypothesis[] {
  const all: Hypothesis[] = [];
  for (let p = PERIOD_MIN; p <= PERIOD_MAX; p *= SCAN_STEP) {
    const l: Lattice = { e1: [p, 0], e2: [0, p] };
    all.push(...synchronise(fold(view, l), l));
  }
  all.sort((a, b) => b.z - a.z);
  const out: Hypothesis[] = [];
  for (const h of all) {
    if (out.some((d) => sameLattice(d, h))) continue;
    out.push(h);
    if (out.length === SCAN_KEEP) break;
  }
  return out;
}

/**
 * Below this alignment z-score, the search's own hypotheses are joined by the scale scan's. On the training
 * photos' crops the true geometry scored 8-13 where its payload read, and wrong geometries 3-6.
 */
const SCAN_BELOW_Z = 7;

/**
 * The READINGS hypotheses of a copy whose payload is read: the READINGS - 1 best by alignment z-score, polished,
 * then the full-frame one. [] when the copy is too small to hold a tile. The candidates are the search's (lattices
 * from the autocorrelation, refined by synchronisation z) and, when none of them aligns, the scale scan's. Why the
 * alignment z-score chooses: the synchronisation z-score sees 256 chips and sat at 4.5-6 on crops of textured
 * photos, inside the range that wrong geometries reach over a search this wide, while the alignment z-score sees
 * all 896 and put the true geometry at 8-13 against 3-6. Both are payload independent, so READINGS still counts
 * every reading.
 */
export function tiledHypotheses(view: WorkingView): Hypothesis[] {
  if (view.w < PERIOD_MIN * 1.5 || view.h < PERIOD_MIN * 1.5) return [];
  // One synchronisation per candidate, then the local search from the two best.
  const starts = latticeCandidates(view)
    .map((l) => ({ l, z: Math.max(...synchronise(fold(view, l), l).map((h) => h.z)) }))
    .sort((a, b) => b.z - a.z)
    .slice(0, 2);
  const found: Hypothesis[] = [];
  for (const { l } of starts) found.push(...refineLattice(view, l));
  found.sort((a, b) => b.z - a.z);

  const distinct: Hypothesis[] = [];
  for (const h of found) if (!distinct.some((d) => sameLattice(d, h))) distinct.push(h);
  const pool = distinct.slice(0, READINGS + 1).map((h) => ({ h, az: alignmentZ(view, h) }));
  if (Math.max(...pool.map((p) => p.az)) < SCAN_BELOW_Z)
    for (const h of scaleScan(view)) if (!pool.some((p) => sameLattice(p.h, h))) pool.push({ h, az: alignmentZ(view, h) });
  pool.sort((a, b) => b.az - a.az);
  const picked: Hypothesis[] = [];
  for (const { h } of pool) {
    if (picked.some((d) => sameLattice(d, h))) continue;
    picked.push(h);
    if (picked.length === READINGS - 1) break;
  }
  // The full frame is read even when the search found nearly the same alignment: its lattice is exact, where a
  // refined one can be off by a fraction of a sample per period and lose bits across a wide copy.
  return [...picked.map((h) => polish(view, h)), fullFrameHypothesis(view)];
}

/** Geometry of a hypothesis with its whole-tile shift, in the contract's terms (contract/watermark-geometry.ts). */
export function geometryOf(view: WorkingView, hyp: Hypothesis, shift: { di: number; dj: number; z: number }): TiledGeometry {
  // Original (u, v) in short-side units: U = CHIPS_PER_SHORT u = TILE (flip a + ta + di) => a = flip (4u - ta - di),
  // b = 4v - tb - dj; working position p = E (a, b); copy = offset + scale * p.
  const f = hyp.flip;
  const ta = hyp.ta + shift.di;
  const tb = hyp.tb + shift.dj;
  const { e1, e2 } = hyp.lattice;
  const k = TILES_PER_SHORT;
  const m00 = view.scaleX * e1[0] * f * k;
  const m01 = view.scaleX * e2[0] * k;
  const m10 = view.scaleY * e1[1] * f * k;
  const m11 = view.scaleY * e2[1] * k;
  const tx = view.offsetX - view.scaleX * (e1[0] * f * ta + e2[0] * tb);
  const ty = view.offsetY - view.scaleY * (e1[1] * f * ta + e2[1] * tb);
  const short = (Math.hypot(m00, m10) + Math.hypot(m01, m11)) / 2;
  // Rotation from the image of the original's +v axis (0, 1): R(theta) (0, 1) = (-sin theta, cos theta).
  const rotation = (Math.atan2(-m01, m11) * 180) / Math.PI;
  const r = (n: number, d = 4) => Number(n.toFixed(d));
  return {
    codec: 2,
    matrix: [
      [r(m00), r(m01), r(tx)],
      [r(m10), r(m11), r(ty)],
    ],
    short_side_px: r(short, 2),
    origin_x: r(tx, 2),
    origin_y: r(ty, 2),
    rotation_deg: r(rotation, 2),
    flipped: f === -1,
    position_z: r(shift.z, 2),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding

/** Default-strength PSNR of the mark, dB (luminance, the same change on R, G and B). */
export const TARGET_PSNR_DB = 41;
/** Re-weighting rounds of the informed embedding after the open-loop one. */
const INFORMED_ROUNDS = 6;

export interface TiledEmbedding {
  /** Planar 3 x rows x cols residual in [0, 1] units, for applyResidual at strength 1. */
  residual: Float32Array;
  cols: number;
  rows: number;
  /** The weakest bit margin on the unedited image, over the median margin (diagnostics, tests). */
  weakest: number;
}

/**
 * Mean square of the bilinear surface through a cols x rows grid of values (between the outer chip centres; the
 * stretch holds the edge half-chips flat, a share of the area too small to matter). Exact per cell:
 * [(a^2 + ab + b^2) / 3 + (2ac + ad + bc + 2bd) / 6 + (c^2 + cd + d^2) / 3] / 3 for corners a b / c d.
 */
export function bilinearMeanSquare(v: Float32Array, cols: number, rows: number): number {
  let sum = 0;
  for (let y = 0; y + 1 < rows; y++)
    for (let x = 0; x + 1 < cols; x++) {
      const a = v[y * cols + x]!;
      const b = v[y * cols + x + 1]!;
      const c = v[(y + 1) * cols + x]!;
      const d = v[(y + 1) * cols + x + 1]!;
      sum += ((a * a + a * b + b * b) / 3 + (2 * a * c + a * d + b * c + 2 * b * d) / 6 + (c * c + c * d + d * d) / 3) / 3;
    }
  return sum / Math.max(1, (cols - 1) * (rows - 1));
}

/**
 * The chip residual for an image: informed (closed-loop) amplitudes against the image's own interference. The
 * decoder's statistic of a bit on an unedited copy is, to first order, the host's part plus the bit's amplitude
 * times its own chips' part (whitened with the host's local contrast): both are measured once, exactly as the
 * decoder reads them (working view, high-pass, chip splat at the known geometry), and the amplitudes are then
 * re-weighted on that model: the bits whose margin is under half the median are boosted, the energy renormalised
 * so the PSNR is unchanged, and the round with the fewest weak bits wins. Why a model and not a re-read per
 * round: a re-read costs a whitening and a splat of the working view (~10 ms at 1 MP), which alone doubled the
 * cost of embedding at 1 MP.
 */
/**
 * The decoder's response to one chip, measured once on a random chip field at the working view's 2 samples per
 * chip with unit weights: the mean of (chip sign) x (its splatted high-passed value) per sample of the chip. With
 * it, the embedder models the mark's part of every bit's statistic from the weights alone. Also the high-passed
 * field's variance per unit chip mean square, which sets the mark's share of the local contrast.
 */
const { CHIP_RESPONSE, HP_MARK_VARIANCE, UNIT_CHIP_MEAN_SQUARE } = (() => {
  const n = 64;
  const next = mulberry32(SEED ^ 0x5eed);
  const chips = Float32Array.from({ length: n * n }, () => (next() & 1 ? 1 : -1));
  const field = highPass(stretchPlane(chips, n, n, 2 * n, 2 * n), 2 * n, 2 * n);
  let variance = 0;
  for (const v of field) variance += v * v;
  const acc = new Float64Array(n * n);
  for (let y = 0; y < 2 * n; y++)
    for (let x = 0; x < 2 * n; x++) {
      const u = (x + 0.5) / 2 - 0.5;
      const v = (y + 0.5) / 2 - 0.5;
      const u0 = Math.floor(u);
      const v0 = Math.floor(v);
      for (const [cu, cv, wt] of [
        [u0, v0, (1 - (u - u0)) * (1 - (v - v0))],
        [u0 + 1, v0, (u - u0) * (1 - (v - v0))],
        [u0, v0 + 1, (1 - (u - u0)) * (v - v0)],
        [u0 + 1, v0 + 1, (u - u0) * (v - v0)],
      ] as const)
        if (cu >= 0 && cv >= 0 && cu < n && cv < n) acc[cv * n + cu]! += field[y * 2 * n + x]! * wt;
    }
  let response = 0;
  let count = 0;
  for (let cy = 2; cy < n - 2; cy++)
    for (let cx = 2; cx < n - 2; cx++) {
      response += chips[cy * n + cx]! * acc[cy * n + cx]!;
      count++;
    }
  return {
    CHIP_RESPONSE: response / count / 4,
    HP_MARK_VARIANCE: variance / field.length,
    UNIT_CHIP_MEAN_SQUARE: bilinearMeanSquare(chips, n, n),
  };
})();

/**
 * Whether an image is grey: one channel, or R, G and B within 2 levels of each other at 99.5 % of a sample of
 * pixels (every 7th; a grey photo saved as RGB, or its JPEG with slight chroma noise).
 */
export function looksGrey(image: RasterImage): boolean {
  if (image.channels < 3) return true;
  const { data, channels } = image;
  const shift = image.bitDepth === 16 ? 8 : 0;
  let n = 0;
  let grey = 0;
  for (let i = 0; i + 2 < data.length; i += 7 * channels) {
    const r = data[i]! >> shift;
    const g = data[i + 1]! >> shift;
    const b = data[i + 2]! >> shift;
    n++;
    if (Math.abs(r - g) <= 2 && Math.abs(g - b) <= 2) grey++;
  }
  return grey >= 0.995 * n;
}

export async function tiledResidual(image: RasterImage, sent: Uint8Array, strength: number): Promise<TiledEmbedding> {
  const { cols, rows } = chipGrid(image.width, image.height);
  const full = workingSize(image.width, image.height);
  const planes = await planesAt(image, full.w, full.h);
  const { w, h, x0, y0, cut } = centreCut(full);
  // Grey images stay grey: their mark is luminance only (chroma noise on a black-and-white photo would show).
  const colour = CHROMA_SHARE > 0 && !looksGrey(image);
  const lumaGain = colour ? LUMA_GAIN : 1;
  const chromaGain = colour ? CHROMA_GAIN : 0;
  const target = 255 * strength * 10 ** (-TARGET_PSNR_DB / 20);

  const amp = defaultAmplitudes();
  const gainOf = (chips: Float32Array) => target / Math.sqrt(bilinearMeanSquare(chips, cols, rows));
  // The decoder's view of the host: each plane high-passed and divided by its local RMS (whose floor includes the
  // mark's own high-passed variance in that plane), the chroma plane weighted as the decoder weights it.
  const unitVar = (HP_MARK_VARIANCE * gainOf(chipValues(cols, rows, sent, amp)) ** 2) / UNIT_CHIP_MEAN_SQUARE;
  const lumHp = highPass(cut(planes.lum), w, h);
  const lumWeight = localWeights(lumHp, w, h, 1 + unitVar * lumaGain ** 2);
  const hostHp = new Float32Array(w * h);
  // Per sample, the decoder's response to a unit of mark there (both planes): what the chip weights sum.
  const weight = new Float32Array(w * h);
  for (let i = 0; i < hostHp.length; i++) {
    hostHp[i] = lumHp[i]! * lumWeight[i]!;
    weight[i] = lumaGain * lumWeight[i]!;
  }
  if (CHROMA_SHARE > 0) {
    const chromaHp = highPass(cut(planes.chroma), w, h);
    const chromaWeight = localWeights(chromaHp, w, h, 1 + unitVar * chromaGain ** 2);
    for (let i = 0; i < hostHp.length; i++) {
      hostHp[i]! += CHROMA_WEIGHT * chromaHp[i]! * chromaWeight[i]!;
      weight[i]! += CHROMA_WEIGHT * chromaGain * chromaWeight[i]!;
    }
  }
  // The decoder's chip splat at the known, axis-aligned geometry, done on the chip grid directly (per-column and
  // per-row taps), with each chip's summed weight alongside: a chip of unit amplitude adds CHIP_RESPONSE x that
  // sum to its bit's statistic on an unedited copy, so the mark's part needs no rendering of the mark.
  const taps = (n: number, offset: number, chips: number, span: number) => {
    const i0 = new Int32Array(n);
    const f = new Float32Array(n);
    const near = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = ((i + offset + 0.5) * chips) / span;
      const u = c - 0.5;
      i0[i] = Math.floor(u);
      f[i] = u - i0[i]!;
      near[i] = Math.min(chips - 1, Math.floor(c));
    }
    return { i0, f, near };
  };
  const tx = taps(w, x0, cols, full.w);
  const ty = taps(h, y0, rows, full.h);
  const acc = new Float64Array(cols * rows);
  const chipWeight = new Float64Array(cols * rows);
  for (let y = 0; y < h; y++) {
    const v0 = ty.i0[y]!;
    const fv = ty.f[y]!;
    const rowA = v0 >= 0 ? v0 * cols : -1;
    const rowB = v0 + 1 < rows ? (v0 + 1) * cols : -1;
    const near = ty.near[y]! * cols;
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const wt = weight[i]!;
      const sample = hostHp[i]!;
      const u0 = tx.i0[x]!;
      const fu = tx.f[x]!;
      chipWeight[near + tx.near[x]!]! += wt;
      if (u0 >= 0) {
        if (rowA >= 0) acc[rowA + u0]! += sample * (1 - fu) * (1 - fv);
        if (rowB >= 0) acc[rowB + u0]! += sample * (1 - fu) * fv;
      }
      if (u0 + 1 < cols) {
        if (rowA >= 0) acc[rowA + u0 + 1]! += sample * fu * (1 - fv);
        if (rowB >= 0) acc[rowB + u0 + 1]! += sample * fu * fv;
      }
    }
  }
  const hostPart = new Array<number>(CODE_BITS).fill(0);
  const markPart = new Array<number>(CODE_BITS).fill(0);
  for (let y = 0; y < rows; y++)
    for (let x = 0; x < cols; x++) {
      const k = (y % TILE) * TILE + (x % TILE);
      const r = LAYOUT.role[k]!;
      if (r < 2) continue;
      const c = y * cols + x;
      hostPart[r - 2]! += (sent[r - 2] ? 1 : -1) * LAYOUT.sign[k]! * acc[c]!;
      markPart[r - 2]! += CHIP_RESPONSE * chipWeight[c]!;
    }

  let best: { bits: Float32Array; weak: number; weakest: number } | null = null;
  // Per round, the energy from the amplitudes alone (keyed signs: the cross terms of neighbouring chips average
  // out, so the mean square is the unit field's times the mean squared amplitude); the exact gain is set at the end.
  const chipCounts = new Float64Array(CODE_BITS);
  for (let k = 0; k < TILE_CHIPS; k++) if (LAYOUT.role[k]! >= 2) chipCounts[LAYOUT.role[k]! - 2]! += 1;
  const gainFromAmplitudes = () => {
    let sq = SYNC_CHIPS * amp.sync ** 2 + POSITION_CHIPS * amp.position ** 2;
    for (let b = 0; b < CODE_BITS; b++) sq += chipCounts[b]! * amp.bits[b]! ** 2;
    return target / Math.sqrt((UNIT_CHIP_MEAN_SQUARE * sq) / TILE_CHIPS);
  };
  for (let round = 0; round <= INFORMED_ROUNDS; round++) {
    const gain = gainFromAmplitudes();
    const m = hostPart.map((hv, b) => hv + amp.bits[b]! * gain * markPart[b]!);
    const median = [...m].sort((a, b) => a - b)[m.length >> 1]!;
    const floor = 0.5 * Math.max(median, 1e-9);
    const weak = m.filter((v) => v < floor).length;
    if (!best || weak < best.weak)
      best = { bits: Float32Array.from(amp.bits), weak, weakest: Math.min(...m) / Math.max(median, 1e-9) };
    if (weak === 0) break;
    m.forEach((v, b) => {
      if (v < floor) amp.bits[b] = Math.min(4, amp.bits[b]! * (v < 0 ? 2 : 1.5));
    });
  }
  amp.bits = best!.bits;
  const chips = chipValues(cols, rows, sent, amp);
  const k = gainOf(chips) / 255;
  const plane = cols * rows;
  const residual = new Float32Array(3 * plane);
  const [cr, cg, cb] = CHROMA;
  for (let i = 0; i < plane; i++) {
    const v = chips[i]! * k;
    residual[i] = v * (lumaGain + chromaGain * cr);
    residual[i + plane] = v * (lumaGain + chromaGain * cg);
    residual[i + 2 * plane] = v * (lumaGain + chromaGain * cb);
  }
  return { residual, cols, rows, weakest: best!.weakest };
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

export interface TiledRead {
  /** Channel soft bits (P(bit = 1)) of one hypothesis, and its geometry. */
  probs: number[];
  geometry: TiledGeometry;
  syncZ: number;
}

/** Up to READINGS readings of a copy, best synchronisation first; [] when no tiled mark is found. */
export async function readTiled(image: RasterImage): Promise<TiledRead[]> {
  const view = await workingViewOf(image);
  return tiledHypotheses(view).map((hyp) => {
    const reading = readChips(view, hyp);
    const shift = tileShift(reading.tiles);
    return { probs: softBits(reading.bitStats), geometry: geometryOf(view, hyp, shift), syncZ: hyp.z };
  });
}
