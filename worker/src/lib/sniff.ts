import { ApiError } from "../problem.ts";

/**
 * Identifies an image by its magic bytes; the client's Content-Type is never trusted.
 * Signatures: JPEG FF D8 FF; PNG 89 50 4E 47 0D 0A 1A 0A; GIF "GIF87a"/"GIF89a"; WebP "RIFF"....“WEBP”;
 * TIFF "II*\0" / "MM\0*"; BMP "BM"; ISO-BMFF "ftyp" box with an AVIF/HEIF brand.
 */
export function sniffImageType(bytes: Uint8Array): string | null {
  const b = (i: number) => bytes[i] ?? -1;
  const ascii = (start: number, len: number) => String.fromCharCode(...bytes.subarray(start, start + len));
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return "image/jpeg";
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b(i) === v)) return "image/png";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "image/gif";
  if (ascii(0, 4) === "RIFF" && ascii(8, 4) === "WEBP") return "image/webp";
  if (
    (b(0) === 0x49 && b(1) === 0x49 && b(2) === 0x2a && b(3) === 0) ||
    (b(0) === 0x4d && b(1) === 0x4d && b(2) === 0 && b(3) === 0x2a)
  ) {
    return "image/tiff";
  }
  if (ascii(0, 2) === "BM" && bytes.length > 26) return "image/bmp";
  if (ascii(4, 4) === "ftyp") {
    const brand = ascii(8, 4);
    if (brand === "avif" || brand === "avis") return "image/avif";
    if (["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"].includes(brand)) return "image/heif";
  }
  return null;
}

/**
 * Types recognised by their bytes that no runner decodes: sharp's libvips has no BMP loader, so every BMP job used
 * to be accepted and then fail with `unsupported_format` (issue 12 defect 6). They are refused up front instead.
 */
const UNDECODABLE: Record<string, string> = { "image/bmp": "BMP" };

export const SUPPORTED_FORMATS = "JPEG, PNG, WebP, GIF, TIFF, AVIF, HEIF";

/**
 * The sniffed type of an image the runners can decode, or 415 `unsupported_image` (the worker's one code for an
 * image it will not take, recognised or not).
 */
export function supportedImageType(bytes: Uint8Array): string {
  const type = sniffImageType(bytes.subarray(0, 64));
  if (type && UNDECODABLE[type])
    throw new ApiError(415, "unsupported_image", `${UNDECODABLE[type]} images are not supported; send ${SUPPORTED_FORMATS}`);
  if (!type) throw new ApiError(415, "unsupported_image", `the body is not a recognised image (${SUPPORTED_FORMATS})`);
  return type;
}
