import type { RasterImage } from "../operations/types.ts";

/**
 * The whole-image thumbnail a tiled model sees next to every tile (its global context: exposure, colour cast,
 * atmospheric light), by area averaging. Built once per image, from planar floats or straight from the raster.
 */

/**
 * Exact area-weighted resize of one axis (each output sample averages the source interval it covers), the
 * same definition as OpenCV's INTER_AREA used for the thumbnails at training time.
 */
function areaWeights(src: number, dst: number): { start: number; weights: number[] }[] {
  const scale = src / dst;
  return Array.from({ length: dst }, (_, o) => {
    const a = o * scale;
    const b = a + scale;
    const start = Math.floor(a);
    const weights: number[] = [];
    for (let i = start; i < Math.min(src, Math.ceil(b)); i++) weights.push((Math.min(b, i + 1) - Math.max(a, i)) / scale);
    return { start, weights };
  });
}

/** Second half of the separable area resize: 3*size rows of `width` samples -> 3 x size x size. */
function columnPass(rows: Float32Array, width: number, size: number): Float32Array {
  const wx = areaWeights(width, size);
  const out = new Float32Array(3 * size * size);
  for (let r = 0; r < 3 * size; r++)
    for (let ox = 0; ox < size; ox++) {
      const { start, weights } = wx[ox]!;
      let acc = 0;
      for (let k = 0; k < weights.length; k++) acc += weights[k]! * rows[r * width + start + k]!;
      out[r * size + ox] = acc;
    }
  return out;
}

/** Planar CHW (3 channels) -> 3 x size x size by area averaging; rows first, then columns. */
export function areaThumbnail(src: Float32Array, height: number, width: number, size: number): Float32Array {
  const wy = areaWeights(height, size);
  const rows = new Float32Array(3 * size * width);
  for (let c = 0; c < 3; c++)
    for (let oy = 0; oy < size; oy++) {
      const { start, weights } = wy[oy]!;
      const dst = (c * size + oy) * width;
      for (let k = 0; k < weights.length; k++) {
        const from = (c * height + start + k) * width;
        const w = weights[k]!;
        for (let x = 0; x < width; x++) rows[dst + x]! += w * src[from + x]!;
      }
    }
  return columnPass(rows, width, size);
}

/**
 * The same area thumbnail straight from an interleaved 8/16-bit raster (grey replicated, alpha ignored), so the
 * serving path never builds a full-resolution float copy of the photo.
 */
export function areaThumbnailRaster(image: RasterImage, size: number): Float32Array {
  const { width, height, data, channels } = image;
  const colour = channels >= 3;
  const scale = 1 / (image.bitDepth === 16 ? 65535 : 255);
  const wy = areaWeights(height, size);
  // Row pass: each source row adds into the (at most two) thumbnail rows whose interval covers it.
  const rows = new Float32Array(3 * size * width);
  for (let oy = 0; oy < size; oy++) {
    const { start, weights } = wy[oy]!;
    for (let k = 0; k < weights.length; k++) {
      const w = weights[k]! * scale;
      const from = (start + k) * width * channels;
      const r = oy * width;
      const g = (size + oy) * width;
      const b = (2 * size + oy) * width;
      for (let x = 0, i = from; x < width; x++, i += channels) {
        const red = data[i]!;
        rows[r + x]! += w * red;
        rows[g + x]! += w * (colour ? data[i + 1]! : red);
        rows[b + x]! += w * (colour ? data[i + 2]! : red);
      }
    }
  }
  return columnPass(rows, width, size);
}
