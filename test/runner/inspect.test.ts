import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeImage, readEncoded } from "../../gpu-runner/src/image/decode.ts";
import { inspectPipeline } from "../../gpu-runner/src/operations/inspect.ts";
import { hammingHex } from "../../contract/encoding.ts";
import { dHash, pHash } from "../../gpu-runner/src/operations/phash.ts";
import { animatedGif, otherPhotoBytes, photoBytes } from "./helpers.ts";

const LIMIT = { maxPixels: 100_000_000 };

async function inspect(bytes: Uint8Array) {
  const image = await readEncoded(bytes, { ...LIMIT, animated: "first_frame" });
  const ctx = { params: {}, inputs: [], encoded: [image], signal: new AbortController().signal };
  const out = await inspectPipeline.run({
    ...ctx,
    session: () => Promise.reject(new Error("no models")),
    timeModel: (fn) => fn(),
  });
  return out.result as Record<string, unknown>;
}

async function hashOf(bytes: Uint8Array): Promise<string> {
  return pHash(await readEncoded(bytes, LIMIT));
}

describe("inspect on real photos", () => {
  it("reports the facts of a JPEG photo", async () => {
    const bytes = photoBytes();
    const meta = await sharp(bytes).metadata();
    const r = await inspect(bytes);
    expect(r).toMatchObject({
      width: meta.width,
      height: meta.height,
      format: "jpeg",
      color_space: "srgb",
      bit_depth: 8,
      channels: 3,
      has_alpha: false,
      pages: 1,
      animated: false,
      bytes: bytes.length,
    });
    expect(r.phash).toMatch(/^[0-9a-f]{16}$/);
    expect(r.dhash).toMatch(/^[0-9a-f]{16}$/);
  });

  it("reports oriented and raw dimensions, orientation, 16-bit depth, alpha and ICC", async () => {
    const rotated = await sharp(photoBytes())
      .resize(200, 100, { fit: "fill" })
      .withMetadata({ orientation: 8 })
      .jpeg()
      .toBuffer();
    const r = await inspect(rotated);
    expect(r).toMatchObject({ width: 100, height: 200, raw: { width: 200, height: 100 }, orientation: 8, icc_profile: true });
    const rgba16 = await sharp(photoBytes()).resize(64, 64).ensureAlpha(0.5).toColourspace("rgb16").png().toBuffer();
    expect(await inspect(rgba16)).toMatchObject({ bit_depth: 16, channels: 4, has_alpha: true, format: "png" });
  });

  it("reports the sample layout the pipelines decode to, without decoding the raster itself", async () => {
    const photo = photoBytes();
    const inputs = [
      photo,
      await sharp(photo).resize(40, 30).withMetadata({ orientation: 6 }).jpeg().toBuffer(),
      await sharp(photo).resize(32, 32).ensureAlpha(0.5).toColourspace("rgb16").png().toBuffer(),
      await sharp(photo).resize(32, 32).greyscale().png().toBuffer(),
      await sharp(photo).resize(32, 32).greyscale().ensureAlpha(0.5).png().toBuffer(),
      await sharp(photo).resize(32, 32).toColourspace("cmyk").jpeg().toBuffer(),
    ];
    for (const bytes of inputs) {
      const decoded = await decodeImage(bytes, LIMIT);
      expect(await inspect(bytes)).toMatchObject({
        width: decoded.width,
        height: decoded.height,
        bit_depth: decoded.bitDepth,
        channels: decoded.channels,
        has_alpha: decoded.hasAlpha,
      });
    }
  });

  it("describes an animated GIF instead of refusing it", async () => {
    const gif = await animatedGif(20, 10, ["#ff0000", "#0000ff"]);
    expect(await inspect(gif)).toMatchObject({ format: "gif", width: 20, height: 10, pages: 2, animated: true });
  });

  it("pHash is stable under re-encoding and resizing, and differs between photos", async () => {
    const original = photoBytes();
    const h0 = await hashOf(original);
    const variants = [
      await sharp(original).jpeg({ quality: 40 }).toBuffer(),
      await sharp(original).webp({ quality: 60 }).toBuffer(),
      await sharp(original).resize(300).png().toBuffer(),
      // Same picture at 16 bits and with an alpha channel: the hash looks at structure, not sample format.
      await sharp(original).toColourspace("rgb16").png().toBuffer(),
      await sharp(original).ensureAlpha(1).png().toBuffer(),
    ];
    for (const v of variants) expect(hammingHex(h0, await hashOf(v))).toBeLessThanOrEqual(6);
    const other = await hashOf(await otherPhotoBytes());
    expect(hammingHex(h0, other)).toBeGreaterThanOrEqual(20);
    // Same pixels, same hash: it is a pure function of the image.
    expect(await hashOf(original)).toBe(h0);
  });

  it("dHash follows the image's structure: a left-to-right darkening ramp sets every bit, its mirror none", async () => {
    const w = 90;
    const h = 40;
    const ramp = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) ramp.fill(255 - Math.round((x * 255) / (w - 1)), (y * w + x) * 3, (y * w + x) * 3 + 3);
    const png = await sharp(ramp, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer();
    expect(await dHash(await readEncoded(png, LIMIT))).toBe("ffffffffffffffff");
    const mirrored = await sharp(png).flop().png().toBuffer();
    expect(await dHash(await readEncoded(mirrored, LIMIT))).toBe("0000000000000000");
  });
});
