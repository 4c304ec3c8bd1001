import { geometryProblem, type GeometryLimits } from "../../../contract/geometry.ts";
import { ApiError } from "../problem.ts";

/**
 * Width and height straight from an image's header bytes, so that a job whose image its operation would refuse
 * for its shape (contract/operations.ts `min_side`, `max_aspect_ratio`) is answered 422 at once, before any
 * object or job exists, instead of failing on a runner later. Small on purpose: PNG, JPEG, GIF, WebP and TIFF;
 * anything it cannot read (AVIF/HEIF, a header past the bytes given, a damaged one) is `null`, and the runner
 * checks the same limits after decoding (gpu-runner/src/execute.ts). EXIF orientation is not read: a rotation
 * swaps width and height, which changes neither the shorter side nor the ratio.
 */
export interface ImageSize {
  format: "png" | "jpeg" | "gif" | "webp" | "tiff";
  width: number;
  height: number;
}

/**
 * Bytes of a signed upload read for its header. A JPEG's frame header (SOF) comes after its APP segments: EXIF is at
 * most 64 KiB, but ICC profiles and XMP can add more, so a little more than that; a header beyond it is left to
 * the runner.
 */
export const HEADER_BYTES = 256 * 1024;

const ascii = (b: Uint8Array, at: number, len: number) => String.fromCharCode(...b.subarray(at, at + len));

export function readImageSize(b: Uint8Array): ImageSize | null {
  const size = (format: ImageSize["format"], width: number, height: number): ImageSize | null =>
    width > 0 && height > 0 ? { format, width, height } : null;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const has = (n: number) => b.length >= n;
  // PNG: the signature, then IHDR first: width, height (big-endian u32).
  if (has(24) && b[0] === 0x89 && ascii(b, 1, 3) === "PNG" && ascii(b, 12, 4) === "IHDR")
    return size("png", view.getUint32(16), view.getUint32(20));
  // GIF: the logical screen (every frame lies inside it), little-endian u16.
  if (has(10) && (ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a"))
    return size("gif", view.getUint16(6, true), view.getUint16(8, true));
  if (has(30) && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") return webpSize(b, view);
  if (has(4) && b[0] === 0xff && b[1] === 0xd8) return jpegSize(b, view);
  if (has(8) && (ascii(b, 0, 4) === "II*\0" || ascii(b, 0, 4) === "MM\0*")) return tiffSize(b, view);
  return null;
}

function webpSize(b: Uint8Array, view: DataView): ImageSize | null {
  const chunk = ascii(b, 12, 4);
  const pick = (width: number, height: number) => (width > 0 && height > 0 ? { format: "webp" as const, width, height } : null);
  // Extended: the canvas, 24-bit little-endian, minus one.
  if (chunk === "VP8X") return pick(1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16)), 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16)));
  // Lossy: a key frame's start code 9d 01 2a, then 14-bit width and height (the top 2 bits are scaling).
  if (chunk === "VP8 " && b[23] === 0x9d && b[24] === 0x01 && b[25] === 0x2a)
    return pick(view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff);
  // Lossless: signature 0x2f, then width-1 and height-1 as 14-bit fields, little-endian bit order.
  if (chunk === "VP8L" && b[20] === 0x2f) {
    const bits = view.getUint32(21, true);
    return pick((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  return null;
}

function jpegSize(b: Uint8Array, view: DataView): ImageSize | null {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Markers without a length: TEM, RSTn, SOI, EOI.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
      i += 2;
      continue;
    }
    const length = view.getUint16(i + 2);
    if (length < 2) return null;
    // SOF0-SOF15 except DHT (c4), JPG (c8) and DAC (cc): precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > b.length) return null;
      const [height, width] = [view.getUint16(i + 5), view.getUint16(i + 7)];
      return width > 0 && height > 0 ? { format: "jpeg", width, height } : null;
    }
    if (marker === 0xda) return null; // scan data before any frame header
    i += 2 + length;
  }
  return null;
}

function tiffSize(b: Uint8Array, view: DataView): ImageSize | null {
  const le = b[0] === 0x49;
  const ifd = view.getUint32(4, le);
  if (ifd + 2 > b.length) return null;
  const count = view.getUint16(ifd, le);
  let [width, height] = [0, 0];
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > b.length) return null;
    const [tag, type] = [view.getUint16(e, le), view.getUint16(e + 2, le)];
    if (tag !== 256 && tag !== 257) continue;
    // SHORT (3) or LONG (4), one value, stored in the entry itself.
    const value = type === 3 ? view.getUint16(e + 8, le) : type === 4 ? view.getUint32(e + 8, le) : 0;
    if (tag === 256) width = value;
    else height = value;
  }
  return width > 0 && height > 0 ? { format: "tiff", width, height } : null;
}

/**
 * 422 `image_too_small` / `unsupported_aspect_ratio` when the header says the image does not fit `limits`; nothing
 * when it fits or the header cannot be read here (the runner then decides).
 */
export function checkImageGeometry(bytes: Uint8Array, limits: GeometryLimits, what: string): void {
  const size = readImageSize(bytes);
  if (!size) return;
  const problem = geometryProblem(limits, size.width, size.height, what);
  if (problem) throw new ApiError(422, problem.code, problem.message);
}
