import sharp from "sharp";
import { RunnerError } from "../errors.ts";
import type { RasterImage } from "../operations/types.ts";

export type ImageFormat = "png" | "jpeg" | "webp";

export const CONTENT_TYPES: Record<ImageFormat, string> = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };

export function formatFromPath(path: string): ImageFormat | null {
  const ext = path.toLowerCase().split(".").pop();
  if (ext === "png") return "png";
  if (ext === "jpg" || ext === "jpeg") return "jpeg";
  if (ext === "webp") return "webp";
  return null;
}

function checkRaster(image: RasterImage): void {
  const expected = image.width * image.height * image.channels;
  if (image.data.length !== expected) {
    throw new RunnerError("internal_error", `raster has ${image.data.length} samples, expected ${expected}`, true);
  }
}

/**
 * Encodes a raster. PNG keeps 16 bits and alpha; JPEG and WebP are 8-bit only (libjpeg/libwebp limits), and
 * JPEG has no alpha, so alpha is flattened onto white there rather than dropped to black.
 */
export async function encodeImage(image: RasterImage, format: ImageFormat, quality = 90): Promise<Buffer> {
  checkRaster(image);
  const grey = image.channels <= 2;
  const sixteen = image.bitDepth === 16 && format === "png";
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
  if (image.bitDepth === 16) pipeline = pipeline.toColourspace(sixteen ? (grey ? "grey16" : "rgb16") : grey ? "b-w" : "srgb");
  if (format === "png") return pipeline.png({ compressionLevel: 6 }).toBuffer();
  if (format === "webp") return pipeline.webp({ quality }).toBuffer();
  if (image.hasAlpha) pipeline = pipeline.flatten({ background: "#ffffff" });
  return pipeline.jpeg({ quality, chromaSubsampling: quality >= 90 ? "4:4:4" : "4:2:0" }).toBuffer();
}
