import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { encodeImage } from "../../gpu-runner/src/image/encode.ts";
import { alphaOf, nchwToRaster, rasterToNchw } from "../../gpu-runner/src/image/tensor.ts";
import { animatedGif, gradientPng, gradientRaw, photoBytes } from "./helpers.ts";

const LIMIT = { maxPixels: 50_000_000 };

async function decodeError(bytes: Uint8Array, opts = LIMIT): Promise<RunnerError> {
  try {
    await decodeImage(bytes, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(RunnerError);
    return e as RunnerError;
  }
  throw new Error("decode unexpectedly succeeded");
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

/** A well-formed PNG header claiming width x height, with one tiny IDAT: what a decompression bomb looks like up front. */
function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(Buffer.alloc(64))),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Rewrites the SOF0 frame dimensions of a real JPEG so its header claims width x height. */
function bombJpeg(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i < out.length - 8;) {
    if (out[i] !== 0xff) throw new Error("not at a marker");
    const marker = out[i + 1]!;
    const len = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + len;
  }
  throw new Error("no SOF marker");
}

describe("decoding hostile or unusual images gives typed errors, never a crash", () => {
  it("0 bytes → empty_input", async () => {
    expect((await decodeError(new Uint8Array(0))).code).toBe("empty_input");
  });

  it("random bytes → unsupported_format", async () => {
    const bytes = new Uint8Array(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    expect((await decodeError(bytes)).code).toBe("unsupported_format");
  });

  it("a JPEG cut in half → truncated_image", async () => {
    const jpeg = photoBytes();
    const err = await decodeError(jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    expect(err.code).toBe("truncated_image");
    expect(err.retryable).toBe(false);
  });

  it("a PNG header claiming 100000x100000 → image_too_large before any pixel is allocated", async () => {
    const before = process.memoryUsage().rss;
    const err = await decodeError(bombPng(100_000, 100_000));
    expect(err.code).toBe("image_too_large");
    expect(err.message).toContain("100000x100000");
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it("a JPEG header claiming 60000x60000 → image_too_large", async () => {
    const err = await decodeError(bombJpeg(photoBytes(), 60_000, 60_000));
    expect(err.code).toBe("image_too_large");
  });

  it("the pixel limit is the caller's: a 512x512 photo fails under a 100k-pixel limit", async () => {
    expect((await decodeError(photoBytes(), { maxPixels: 100_000 })).code).toBe("image_too_large");
  });

  it("an animated GIF → animated_image_unsupported, or its first frame when the pipeline asks", async () => {
    const gif = await animatedGif(16, 12, ["#ff0000", "#0000ff", "#00ff00"]);
    expect((await decodeError(gif)).code).toBe("animated_image_unsupported");
    const first = await decodeImage(gif, { ...LIMIT, animated: "first_frame" });
    expect([first.width, first.height, first.source.pages]).toEqual([16, 12, 3]);
    expect(first.data[0]).toBeGreaterThan(200); // red frame
    expect(first.data[2]).toBeLessThan(50);
  });

  it("a CMYK JPEG decodes to sRGB with the right colour", async () => {
    const cmyk = await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 200, g: 40, b: 60 } } })
      .toColourspace("cmyk")
      .jpeg({ quality: 95 })
      .toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe("cmyk");
    const img = await decodeImage(cmyk, LIMIT);
    expect(img.channels).toBe(3);
    expect(img.source.space).toBe("cmyk");
    const [r, g, b] = [img.data[0]!, img.data[1]!, img.data[2]!];
    expect(Math.abs(r - 200)).toBeLessThan(25);
    expect(Math.abs(g - 40)).toBeLessThan(25);
    expect(Math.abs(b - 60)).toBeLessThan(25);
  });
});

describe("decode keeps what matters", () => {
  it("applies EXIF orientation (6 = rotate 90° clockwise)", async () => {
    // 40 wide, 20 tall, left half red, right half blue; orientation 6 means display rotated 90° CW.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const jpeg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    const img = await decodeImage(jpeg, LIMIT);
    expect([img.width, img.height, img.source.orientation]).toEqual([20, 40, 6]);
    // After a 90° CW turn the stored left (red) half is on top.
    expect(img.data[0]).toBeGreaterThan(200);
    const bottom = (39 * 20 + 10) * 3;
    expect(img.data[bottom + 2]).toBeGreaterThan(200);
    expect(img.data[bottom]).toBeLessThan(60);
  });

  it("keeps alpha through decode → tensor → raster → PNG → decode", async () => {
    const png = await gradientPng(64, 48, 4);
    const img = await decodeImage(png, LIMIT);
    expect([img.channels, img.hasAlpha, img.bitDepth]).toEqual([4, true, 8]);
    const t = rasterToNchw(img);
    expect(t.dims).toEqual([1, 3, 48, 64]);
    const back = nchwToRaster(t, img, alphaOf(img));
    expect(Buffer.from(back.data as Uint8Array).equals(Buffer.from(img.data as Uint8Array))).toBe(true);
    const again = await decodeImage(await encodeImage(back, "png"), LIMIT);
    expect(Buffer.from(again.data as Uint8Array).equals(Buffer.from(img.data as Uint8Array))).toBe(true);
    expect(again.data[3 + 4 * 63]).toBe((await gradientRaw(64, 48, 4))[3 + 4 * 63]);
  });

  it("a 16-bit PNG decodes as 16-bit and round-trips exactly", async () => {
    const w = 37;
    const h = 23;
    const samples = new Uint16Array(w * h * 3);
    for (let i = 0; i < samples.length; i++) samples[i] = (i * 7919) % 65536;
    const png16 = await sharp(samples, { raw: { width: w, height: h, channels: 3 } })
      .toColourspace("rgb16")
      .png()
      .toBuffer();
    const img = await decodeImage(png16, LIMIT);
    expect(img.bitDepth).toBe(16);
    expect(img.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(img.data)).toEqual(Array.from(samples));
    const again = await decodeImage(await encodeImage(img, "png"), LIMIT);
    expect(again.bitDepth).toBe(16);
    expect(Array.from(again.data)).toEqual(Array.from(samples));
    // NCHW keeps 16-bit precision: float32 has 24 bits of mantissa.
    const back = nchwToRaster(rasterToNchw(img), img);
    expect(Array.from(back.data)).toEqual(Array.from(samples));
  });

  it("encodes JPEG and WebP from 16-bit and alpha sources (8-bit formats)", async () => {
    const img = await decodeImage(await gradientPng(30, 20, 4), LIMIT);
    const jpeg = await encodeImage(img, "jpeg", 85);
    const webp = await encodeImage(img, "webp", 85);
    expect((await sharp(jpeg).metadata()).format).toBe("jpeg");
    expect((await sharp(webp).metadata()).hasAlpha).toBe(true);
  });
});
