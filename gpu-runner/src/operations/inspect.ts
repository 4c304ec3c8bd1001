import { decodedLayout } from "../image/decode.ts";
import { dHash, pHash } from "./phash.ts";
import { definePipeline } from "./types.ts";

/** EXIF orientations 5-8 transpose the image, so the oriented width and height are the stored ones swapped. */
const transposed = (orientation: number | null) => orientation !== null && orientation >= 5 && orientation <= 8;

/**
 * Facts about an image and its perceptual hashes, from the header and two small thumbnails: the full-resolution
 * raster is never decoded. The sample facts (bit depth, channels) describe the image as the runner's pipelines
 * receive it (decodedLayout).
 */
export const inspectPipeline = definePipeline(
  "inspect",
  async ({ encoded }) => {
    const image = encoded[0]!;
    const { header } = image;
    // Two independent libvips pipelines: run them side by side on sharp's thread pool.
    const [phash, dhash] = await Promise.all([pHash(image), dHash(image)]);
    const swap = transposed(header.orientation);
    const layout = decodedLayout(header);
    return {
      result: {
        width: swap ? header.height : header.width,
        height: swap ? header.width : header.height,
        raw: { width: header.width, height: header.height },
        format: header.format,
        orientation: header.orientation,
        color_space: header.space,
        icc_profile: header.icc,
        bit_depth: layout.bitDepth,
        channels: layout.channels,
        has_alpha: header.hasAlpha,
        pages: header.pages,
        animated: header.pages > 1,
        bytes: image.bytes.length,
        phash,
        dhash,
      },
    };
  },
  // Facts about an animation are still facts; the hash describes its first frame.
  { animated: "first_frame", input: "encoded" },
);
