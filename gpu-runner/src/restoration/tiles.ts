/**
 * Tiling for full-resolution restoration: overlapping tiles, each blended in with a separable linear ramp over the
 * overlap, so every output pixel is a convex combination of tile outputs whose weights sum to 1.
 *
 * A tile's output differs from a whole-image pass only within the model's receptive field of a tile edge (zero
 * padding there); those pixels (`margin`) get zero weight, so where the model is otherwise position-independent
 * (or told its position, as lowlight's roi does) overlapping tiles agree and the blend leaves no seam.
 */

export interface Tile {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * Start offsets of tiles of `size` covering `length` with at least `overlap` shared pixels between neighbours.
 *
 * With `align` > 1 every start is a multiple of `align` (a graph's total stride), so each tile samples its strided
 * layers on the same grid as its neighbours: unaligned, two tiles' outputs differ everywhere, not only near their
 * edges (derain's stride-8 graph: up to 1.5 levels inside the tiles). The last tile then ends up to `align` - 1 px
 * past the border, read as the edge pixels repeated (cropRaster / cropPlanar) and cut off when blended.
 */
export function tileStarts(length: number, size: number, overlap: number, align = 1): number[] {
  if (length <= size) return [0];
  const step = size - overlap;
  if (align === 1) {
    const n = Math.ceil((length - overlap) / step);
    // Spread the tiles evenly so the last one ends exactly at the border (no thin remainder tile).
    const stride = (length - size) / (n - 1);
    return Array.from({ length: n }, (_, i) => Math.round(i * stride));
  }
  if (size % align !== 0) throw new RangeError(`tile size ${size} must be a multiple of the alignment ${align}`);
  const last = Math.ceil((length - size) / align) * align;
  // Evenly spread, then rounded to the grid: add tiles until rounding leaves no pair sharing less than `overlap`.
  for (let n = Math.ceil((last + size - overlap) / step); ; n++) {
    const starts = Array.from({ length: n }, (_, i) => Math.round((i * last) / (n - 1) / align) * align);
    if (starts.every((s, i) => i === 0 || s - starts[i - 1]! <= step)) return starts;
  }
}

export function planTiles(height: number, width: number, size: number, overlap: number, align = 1): Tile[] {
  const tiles: Tile[] = [];
  for (const top of tileStarts(height, size, overlap, align))
    for (const left of tileStarts(width, size, overlap, align))
      tiles.push({ top, left, height: Math.min(size, height), width: Math.min(size, width) });
  return tiles;
}

/**
 * 1-D blending weight of position i in a tile of `length` whose start is `start` within an axis of `total`:
 * 0 for `margin` pixels, then a linear ramp to 1 across the rest of the overlap on every side that has a
 * neighbour; 1 on image borders. Neighbours overlap by at least `overlap` > 2 * `margin`, so weights never
 * all vanish.
 */
export function rampWeight(i: number, length: number, start: number, total: number, overlap: number, margin: number): number {
  const span = overlap - 2 * margin;
  const ramp = (d: number) => Math.min(1, Math.max(0, (d - margin + 0.5) / span));
  let w = 1;
  if (start > 0) w = Math.min(w, ramp(i));
  if (start + length < total) w = Math.min(w, ramp(length - 1 - i));
  return w;
}

/**
 * Per-axis blend weights for each tile start, normalised so that at every position the weights of the tiles
 * covering it sum to exactly 1. The 2-D weight of a tile is (row weight) x (column weight); because the tiles form a
 * grid, those products also sum to 1 at every pixel, so no weight buffer or normalisation pass is needed.
 */
export function axisWeights(starts: number[], size: number, total: number, overlap: number, margin: number): Float32Array[] {
  if (overlap <= 2 * margin) throw new RangeError(`tile overlap ${overlap} must exceed twice the edge margin ${margin}`);
  const len = Math.min(size, total);
  // Positions past the border (an aligned last tile's overhang) get no weight.
  const raw = starts.map((s) =>
    Float32Array.from({ length: len }, (_, i) => (s + i < total ? rampWeight(i, len, s, total, overlap, margin) : 0)),
  );
  const sum = new Float64Array(total);
  starts.forEach((s, k) => raw[k]!.forEach((w, i) => s + i < total && (sum[s + i]! += w)));
  starts.forEach((s, k) => {
    const r = raw[k]!;
    for (let i = 0; i < len && s + i < total; i++) r[i] = r[i]! / sum[s + i]!;
  });
  return raw;
}

export interface BlendTile extends Tile {
  rowWeights: Float32Array;
  colWeights: Float32Array;
}

export function planBlend(height: number, width: number, size: number, overlap: number, margin: number, align = 1): BlendTile[] {
  const rows = tileStarts(height, size, overlap, align);
  const cols = tileStarts(width, size, overlap, align);
  const wy = axisWeights(rows, size, height, overlap, margin);
  const wx = axisWeights(cols, size, width, overlap, margin);
  const tiles: BlendTile[] = [];
  rows.forEach((top, r) =>
    cols.forEach((left, c) =>
      tiles.push({
        top,
        left,
        height: Math.min(size, height),
        width: Math.min(size, width),
        rowWeights: wy[r]!,
        colWeights: wx[c]!,
      }),
    ),
  );
  return tiles;
}

/** The column span [from, to) where a tile's column weight is exactly 1 (no neighbour shares those pixels). */
function soleSpan(weights: Float32Array): [number, number] {
  let from = 0;
  while (from < weights.length && weights[from] !== 1) from++;
  let to = from;
  while (to < weights.length && weights[to] === 1) to++;
  return [from, to];
}

/**
 * Adds weight x a tile's planar CHW output (`channels` planes) into the planar CHW output image (weights already sum
 * to 1). Where a pixel belongs to this tile alone (both weights 1) no other tile writes it, so it is copied instead
 * of blended.
 */
export function blendInto(
  out: Float32Array,
  tileOut: Float32Array,
  tile: BlendTile,
  height: number,
  width: number,
  channels = 3,
): void {
  const plane = height * width;
  const tilePlane = tile.height * tile.width;
  // An aligned last tile may reach past the border: only its columns and rows inside the image are blended.
  const cols = Math.min(tile.width, width - tile.left);
  const rows = Math.min(tile.height, height - tile.top);
  const wx = tile.colWeights.subarray(0, cols);
  const [soleFrom, soleTo] = soleSpan(wx);
  for (let y = 0; y < rows; y++) {
    const wy = tile.rowWeights[y]!;
    if (wy === 0) continue;
    const row = (tile.top + y) * width + tile.left;
    const trow = y * tile.width;
    for (let c = 0; c < channels; c++) {
      const o = c * plane + row;
      const t = c * tilePlane + trow;
      if (wy === 1) {
        for (let x = 0; x < soleFrom; x++) out[o + x]! += wx[x]! * tileOut[t + x]!;
        out.set(tileOut.subarray(t + soleFrom, t + soleTo), o + soleFrom);
        for (let x = soleTo; x < cols; x++) out[o + x]! += wx[x]! * tileOut[t + x]!;
      } else {
        for (let x = 0; x < cols; x++) out[o + x]! += wy * wx[x]! * tileOut[t + x]!;
      }
    }
  }
}

/**
 * Fills `into` with a tile of an interleaved 8/16-bit raster as planar CHW floats in [0, 1] (grey replicated,
 * alpha dropped): the tile's share of the raster-to-tensor conversion, without a full-image float copy.
 */
export function cropRaster(
  image: { width: number; height: number; channels: number; bitDepth: 8 | 16; data: Uint8Array | Uint16Array },
  tile: Tile,
  into?: Float32Array,
): Float32Array {
  const { width, channels, data } = image;
  const colour = channels >= 3;
  const scale = 1 / (image.bitDepth === 16 ? 65535 : 255);
  const plane = tile.height * tile.width;
  const out = into ?? new Float32Array(3 * plane);
  // Past the border (an aligned last tile) the last row and column repeat.
  const inside = Math.min(tile.width, width - tile.left);
  for (let y = 0; y < tile.height; y++) {
    const row = Math.min(tile.top + y, image.height - 1);
    let i = (row * width + tile.left) * channels;
    const o = y * tile.width;
    for (let x = 0; x < tile.width; x++, i += x < inside ? channels : 0) {
      const red = data[i]! * scale;
      out[o + x] = red;
      out[plane + o + x] = colour ? data[i + 1]! * scale : red;
      out[2 * plane + o + x] = colour ? data[i + 2]! * scale : red;
    }
  }
  return out;
}

/** Copies a tile out of a planar CHW (3-channel) image into `into` (reused across tiles of the same size). */
export function cropPlanar(src: Float32Array, height: number, width: number, tile: Tile, into?: Float32Array): Float32Array {
  const plane = height * width;
  const out = into ?? new Float32Array(3 * tile.height * tile.width);
  // Past the border (an aligned last tile) the last row and column repeat.
  const inside = Math.min(tile.width, width - tile.left);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < tile.height; y++) {
      const from = c * plane + Math.min(tile.top + y, height - 1) * width + tile.left;
      const to = (c * tile.height + y) * tile.width;
      out.set(src.subarray(from, from + inside), to);
      out.fill(src[from + inside - 1]!, to + inside, to + tile.width);
    }
  return out;
}
