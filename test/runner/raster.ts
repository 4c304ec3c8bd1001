import sharp from "sharp";
import type { RasterImage } from "../../gpu-runner/src/operations/types.ts";

/** An image file or buffer as the runner's 8-bit RGB raster (alpha dropped), for tests that call pipelines directly. */
export async function raster(input: Buffer | string): Promise<RasterImage> {
  const { data, info } = await sharp(input).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    channels: 3,
    bitDepth: 8,
    hasAlpha: false,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    source: { format: "test", bytes: data.length, orientation: null, space: "srgb", icc: false, pages: 1 },
  };
}
