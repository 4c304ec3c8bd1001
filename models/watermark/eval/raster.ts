import sharp, { type Sharp } from "sharp";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";

/** Raster helpers shared by the watermark evaluations: sharp output as the runner's RasterImage and back. */

export function raster(data: Buffer | Uint8Array, info: { width: number; height: number; channels: number }): RasterImage {
  return {
    width: info.width,
    height: info.height,
    channels: info.channels as RasterImage["channels"],
    bitDepth: 8,
    hasAlpha: false,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    source: { format: "raw", bytes: data.byteLength, orientation: null, space: "srgb", icc: false, pages: 1 },
  };
}

export async function toRaster(s: Sharp): Promise<RasterImage> {
  const { data, info } = await s.removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  return raster(data, info);
}

export const sh = (img: RasterImage) =>
  sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
