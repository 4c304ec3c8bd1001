import { dHash, pHash } from "./phash.ts";
import type { OperationPipeline } from "./types.ts";

/** EXIF orientations 5-8 transpose the image, so the stored (raw) width and height are swapped. */
function rawSize(width: number, height: number, orientation: number | null): { width: number; height: number } {
  return orientation !== null && orientation >= 5 && orientation <= 8 ? { width: height, height: width } : { width, height };
}

export const inspectPipeline: OperationPipeline = {
  name: "inspect",
  // Facts about an animation are still facts; the hash describes its first frame.
  animated: "first_frame",
  async run({ inputs }) {
    const image = inputs[0]!;
    const { source } = image;
    // Two independent libvips pipelines: run them side by side on sharp's thread pool.
    const [phash, dhash] = await Promise.all([pHash(image), dHash(image)]);
    return {
      result: {
        width: image.width,
        height: image.height,
        raw: rawSize(image.width, image.height, source.orientation),
        format: source.format,
        orientation: source.orientation,
        color_space: source.space,
        icc_profile: source.icc,
        bit_depth: image.bitDepth,
        channels: image.channels,
        has_alpha: image.hasAlpha,
        pages: source.pages,
        animated: source.pages > 1,
        bytes: source.bytes,
        phash,
        dhash,
      },
    };
  },
};
