import type { RasterImage } from "../operations/types.ts";

/**
 * The one tensor layout every model uses: NCHW float32, values in [0, 1], RGB (grey is replicated, alpha is
 * carried separately so models never see it).
 */
export interface NchwTensor {
  data: Float32Array;
  dims: [1, number, number, number];
}

export function rasterToNchw(image: RasterImage, channels: 1 | 3 = 3): NchwTensor {
  const { width, height, data } = image;
  const plane = width * height;
  const src = image.channels;
  const colour = src >= 3;
  const scale = 1 / (image.bitDepth === 16 ? 65535 : 255);
  const out = new Float32Array(plane * channels);
  for (let p = 0; p < plane; p++) {
    const i = p * src;
    if (channels === 1) {
      // Rec. 601 luma, the same weights libvips uses for colourspace b-w.
      out[p] = colour ? (0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!) * scale : data[i]! * scale;
      continue;
    }
    out[p] = data[i]! * scale;
    out[plane + p] = (colour ? data[i + 1]! : data[i]!) * scale;
    out[2 * plane + p] = (colour ? data[i + 2]! : data[i]!) * scale;
  }
  return { data: out, dims: [1, channels, height, width] };
}

/** Extracts alpha (if any) so a pipeline can put it back after the model changed the colour channels. */
export function alphaOf(image: RasterImage): Uint8Array | Uint16Array | null {
  if (!image.hasAlpha) return null;
  const plane = image.width * image.height;
  const out = image.bitDepth === 16 ? new Uint16Array(plane) : new Uint8Array(plane);
  for (let p = 0; p < plane; p++) out[p] = image.data[p * image.channels + image.channels - 1]!;
  return out;
}

/**
 * Back from NCHW [0, 1] floats to an interleaved raster, clamping and rounding. `like` supplies bit depth and
 * source facts; `alpha` (same depth) is re-attached as the last channel.
 */
export function nchwToRaster(
  tensor: NchwTensor,
  like: Pick<RasterImage, "bitDepth" | "source">,
  alpha: Uint8Array | Uint16Array | null = null,
): RasterImage {
  const [, c, height, width] = tensor.dims;
  if (c !== 1 && c !== 3) throw new RangeError(`expected 1 or 3 channels, got ${c}`);
  const plane = width * height;
  if (tensor.data.length !== plane * c) throw new RangeError(`tensor has ${tensor.data.length} values, dims say ${plane * c}`);
  const out = allocRaster(width, height, c, like, alpha);
  writeRasterRows(tensor.data, height, c, out, 0, 0, height, alpha);
  return out;
}

/** An empty interleaved raster with `colours` colour channels plus alpha when given. */
export function allocRaster(
  width: number,
  height: number,
  colours: 1 | 3,
  like: Pick<RasterImage, "bitDepth" | "source">,
  alpha: Uint8Array | Uint16Array | null,
): RasterImage {
  const channels = (colours + (alpha ? 1 : 0)) as RasterImage["channels"];
  const size = width * height * channels;
  return {
    width,
    height,
    channels,
    bitDepth: like.bitDepth,
    hasAlpha: Boolean(alpha),
    data: like.bitDepth === 16 ? new Uint16Array(size) : new Uint8Array(size),
    source: like.source,
  };
}

/**
 * Writes `count` rows of planar [0, 1] floats (rows `from`.. of a buffer holding `planeRows` rows per channel) into
 * rows `to`.. of `out`, clamping and rounding (NaN -> 0), with alpha (indexed by output pixel) as the last channel.
 */
export function writeRasterRows(
  planar: Float32Array,
  planeRows: number,
  colours: number,
  out: RasterImage,
  from: number,
  to: number,
  count: number,
  alpha: Uint8Array | Uint16Array | null,
): void {
  const { width, channels, data } = out;
  const max = out.bitDepth === 16 ? 65535 : 255;
  const plane = planeRows * width;
  for (let r = 0; r < count; r++) {
    const src = (from + r) * width;
    const dstPixel = (to + r) * width;
    for (let x = 0; x < width; x++) {
      const o = (dstPixel + x) * channels;
      for (let k = 0; k < colours; k++) {
        const v = planar[k * plane + src + x]!;
        data[o + k] = Math.round((v > 1 ? 1 : v > 0 ? v : 0) * max);
      }
      if (alpha) data[o + colours] = alpha[dstPixel + x]!;
    }
  }
}
