import sharp from "sharp";
import { RunnerError } from "../errors.ts";
import type { RasterImage } from "../operations/types.ts";

// libvips keeps recent operations and their results in a cache in case the very same operation runs again. A
// runner never sees the same pixels twice, so the cache only costs: with it off, a sharp call took about 0.3 ms
// less CPU here (0.9 -> 0.7 ms for a tiny image, 2.2 -> 1.8 ms for a 1 MP thumbnail). Every runner path (serve,
// the CLI, the benches and the evaluation) decodes through this module, so they all run with the same setting.
sharp.cache(false);

/**
 * Decoding policy for animated inputs (GIF, animated WebP/AVIF): pipelines that change pixels reject them
 * with `animated_image_unsupported`, because processing one frame and returning a still would silently
 * drop the animation. Read-only operations (inspect) may take the first frame.
 */
export type AnimatedPolicy = "reject" | "first_frame";

export interface DecodeOptions {
  /** Decompression-bomb guard: width x height (after nothing, straight from the header) must not exceed this. */
  maxPixels: number;
  animated?: AnimatedPolicy;
}

export const IMAGE_ERROR_CODES = [
  "empty_input",
  "truncated_image",
  "unsupported_format",
  "image_too_large",
  "corrupt_image",
  "animated_image_unsupported",
] as const;

const DECODABLE = new Set(["jpeg", "png", "webp", "gif", "tiff", "avif", "heif", "jp2k", "jxl"]);

/** sharp/libvips report problems as free text; map them onto our stable codes. */
function classify(e: unknown): RunnerError {
  const msg = e instanceof Error ? e.message : String(e);
  const firstLine = msg.split("\n")[0]!;
  if (/unsupported image format/i.test(msg))
    return new RunnerError("unsupported_format", "the input is not a supported image format");
  if (/pixel limit/i.test(msg)) return new RunnerError("image_too_large", firstLine);
  // sharp's own verdict on the header stage, whatever libvips text follows it: that text is read from libvips'
  // process-wide error buffer, and a failure elsewhere (a thread of an earlier call still winding down) can leave
  // "libpng read error" in it. Classified by that text, the same corrupt header came out truncated_image for 2
  // of 10,000 fuzzed images (npm run bench -- fuzz).
  if (/^Input (buffer|file) has corrupt header/.test(msg))
    return new RunnerError("corrupt_image", "the image could not be decoded: its header is not readable");
  if (/premature end|truncated|unexpected end|not enough (image )?data|short read|end of file|read error|incomplete/i.test(msg)) {
    return new RunnerError("truncated_image", `the image data ends early: ${firstLine}`);
  }
  return new RunnerError("corrupt_image", `the image could not be decoded: ${firstLine}`);
}

const lostMessage = (e: unknown): boolean => {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.trim() === "" || /^Unknown error/.test(msg);
};

/** Verdicts sharp states itself (format, pixel limit, unreadable header), not read from libvips' error text. */
const sharpVerdict = (e: RunnerError): boolean =>
  e.code === "unsupported_format" || e.code === "image_too_large" || e.message.endsWith("its header is not readable");

/**
 * Runs a sharp call; its failure comes out as a RunnerError whose code does not change from one call to the next.
 * libvips keeps one process-wide error buffer, and sharp clears it after every operation on whichever thread, so a
 * failure's text can be lost ("Unknown error": its message cleared by another call) or mixed with another call's
 * (a thread of an earlier failure still winding down). Classified from that text, the same broken image got
 * `corrupt_image` on one call and `truncated_image` on the next: 11 of 1,000 fuzzed images with one run per failure
 * (inspect's two thumbnails run side by side), 1 of 10,000 with a re-run of lost messages only, 0 of 10,000 with
 * this (bench/results/fuzz.json). So a failure that is not one of sharp's own verdicts is run again (the input is
 * the same, so it fails again) until two runs agree, at most three; the cost is a second decode of an image that
 * cannot be decoded.
 */
async function vips<T>(call: () => Promise<T>): Promise<T> {
  const seen: RunnerError[] = [];
  for (let run = 0; run < 3; run++) {
    try {
      return await call();
    } catch (e) {
      if (lostMessage(e) && run < 2) continue;
      const err = classify(e);
      if (sharpVerdict(err) || seen.some((s) => s.code === err.code)) throw err;
      seen.push(err);
    }
  }
  throw seen[0] ?? new RunnerError("corrupt_image", "the image could not be decoded");
}

export interface HeaderFacts {
  format: string;
  width: number;
  height: number;
  space: string | null;
  icc: boolean;
  pages: number;
  orientation: number | null;
  depth: string | null;
  channels: number;
  hasAlpha: boolean;
}

/** Reads only the header: cheap, and lets us refuse oversized images before any pixel is allocated. */
export async function readHeader(bytes: Uint8Array): Promise<HeaderFacts> {
  if (bytes.length === 0) throw new RunnerError("empty_input", "the input is empty (0 bytes)");
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;
  try {
    meta = await vips(() => sharp(bytes, { animated: true, limitInputPixels: false }).metadata());
  } catch (e) {
    throw e instanceof RunnerError ? e : classify(e);
  }
  if (!meta.format || !DECODABLE.has(meta.format)) {
    throw new RunnerError("unsupported_format", `image format ${meta.format ?? "unknown"} is not supported`);
  }
  if (!meta.width || !meta.height) throw new RunnerError("corrupt_image", "the image header has no dimensions");
  const pages = meta.pages ?? 1;
  // With animated: true, sharp reports the stacked height of all pages; the frame height is pageHeight.
  const height = pages > 1 && meta.pageHeight ? meta.pageHeight : meta.height;
  return {
    format: meta.format,
    width: meta.width,
    height,
    space: meta.space ?? null,
    icc: Boolean(meta.icc),
    pages,
    orientation: meta.orientation ?? null,
    depth: meta.depth ?? null,
    channels: meta.channels ?? 0,
    hasAlpha: meta.hasAlpha ?? false,
  };
}

export function checkPixelLimit(width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new RunnerError("image_too_large", `image is ${width}x${height} = ${width * height} pixels; the limit is ${maxPixels}`);
  }
}

/**
 * How decodeImage lays out an image with this header: 16-bit sources stay 16-bit, grey stays grey and every other
 * colour space becomes sRGB, alpha is kept.
 */
export function decodedLayout(header: HeaderFacts): { bitDepth: 8 | 16; grey: boolean; channels: number } {
  const sixteen = header.depth === "ushort" || header.depth === "short" || header.depth === "uint" || header.depth === "float";
  const grey = header.space === "b-w" || header.space === "grey16";
  return { bitDepth: sixteen ? 16 : 8, grey, channels: (grey ? 1 : 3) + (header.hasAlpha ? 1 : 0) };
}

/** The header, checked against the pixel limit and the animation policy before any pixel is decoded. */
async function checkedHeader(bytes: Uint8Array, options: DecodeOptions): Promise<HeaderFacts> {
  const header = await readHeader(bytes);
  checkPixelLimit(header.width, header.height, options.maxPixels);
  if (header.pages > 1 && (options.animated ?? "reject") === "reject") {
    throw new RunnerError("animated_image_unsupported", `the image is animated (${header.pages} frames); send a still image`);
  }
  return header;
}

/**
 * An input that is still encoded, for operations that never need its full-resolution pixels (inspect): the
 * header is read and checked as decodeImage checks it, and pixels are only ever decoded small (`greyThumbnail`).
 */
export interface EncodedImage {
  bytes: Uint8Array;
  header: HeaderFacts;
  maxPixels: number;
}

export async function readEncoded(bytes: Uint8Array, options: DecodeOptions): Promise<EncodedImage> {
  return { bytes, header: await checkedHeader(bytes, options), maxPixels: options.maxPixels };
}

/**
 * An 8-bit grey w x h thumbnail of the first frame, EXIF orientation applied (libvips: alpha dropped, Rec.
 * 601-style luma, 16-bit scaled down), resampled with a cubic kernel. Straight from the encoded bytes, so
 * libvips can shrink while decoding (JPEG and WebP decode at 1/2, 1/4 or 1/8 scale): a 512 x 512 JPEG's two hash
 * thumbnails took 5 ms this way against 9.5 ms through a full decode, which also allocates the whole raster.
 */
export async function greyThumbnail(image: EncodedImage, w: number, h: number): Promise<Uint8Array> {
  let buf: Buffer;
  try {
    buf = await vips(() =>
      sharp(image.bytes, { limitInputPixels: image.maxPixels, failOn: "error", pages: 1 })
        .rotate()
        .removeAlpha()
        .toColourspace("b-w")
        .resize(w, h, { fit: "fill", kernel: "cubic" })
        .raw({ depth: "uchar" })
        .toBuffer(),
    );
  } catch (e) {
    throw e instanceof RunnerError ? e : classify(e);
  }
  if (buf.length !== w * h) throw new RangeError(`grey thumbnail has ${buf.length} bytes, expected ${w * h}`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Decodes to interleaved HWC samples: EXIF orientation applied, CMYK/Lab/etc. converted to sRGB, grey kept
 * as grey, alpha kept, 16-bit sources kept at 16 bits. Every failure is a RunnerError with a stable code.
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeOptions): Promise<RasterImage> {
  const header = await checkedHeader(bytes, options);
  const { bitDepth, grey } = decodedLayout(header);
  const sixteen = bitDepth === 16;
  const target = grey ? (sixteen ? "grey16" : "b-w") : sixteen ? "rgb16" : "srgb";
  try {
    const { data, info } = await vips(() =>
      sharp(bytes, { limitInputPixels: options.maxPixels, failOn: "error", pages: 1 })
        .rotate()
        .toColourspace(target)
        .raw({ depth: sixteen ? "ushort" : "uchar" })
        .toBuffer({ resolveWithObject: true }),
    );
    const samples = sixteen
      ? new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return {
      width: info.width,
      height: info.height,
      channels: info.channels as RasterImage["channels"],
      bitDepth,
      hasAlpha: info.channels === 2 || info.channels === 4,
      data: samples,
      source: {
        format: header.format,
        bytes: bytes.length,
        orientation: header.orientation,
        space: header.space,
        icc: header.icc,
        pages: header.pages,
      },
    };
  } catch (e) {
    throw e instanceof RunnerError ? e : classify(e);
  }
}
