import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { encodeImage } from "../../gpu-runner/src/image/encode.ts";
import type { OperationContext, RasterImage } from "../../gpu-runner/src/operations/types.ts";
import {
  DECODE_READINGS,
  WORKING_SIZE,
  decode,
  embed,
  enlargedCanvas,
  watermarkDecodePipeline,
  watermarkEmbedPipeline,
  workingView,
} from "../../gpu-runner/src/operations/watermark.ts";
import { CODE_BITS, channelBits, decodeChannel, presencePValue } from "../../gpu-runner/src/operations/watermark-code.ts";
import {
  ENCODER_GAIN_ID,
  ENCODER_MESSAGE_ID,
  imageEncoder,
  openEncoder,
  type EncoderSessions,
} from "../../gpu-runner/src/operations/watermark-encoder.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const LIMITS = { maxPixels: 50_000_000 };
let enc: EncoderSessions;
let dec: ort.InferenceSession;
let photo: Buffer;

beforeAll(async () => {
  enc = await openEncoder(root("models/watermark/weights"), { intraOpNumThreads: 1 });
  dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), { intraOpNumThreads: 1 });
  photo = await readFile(root("test/fixtures/photo.jpg"));
});

async function image(width: number, height: number, mode: "rgb" | "grey" | "alpha" | "16bit" = "rgb"): Promise<RasterImage> {
  let s = sharp(photo).resize(width, height, { fit: "fill" });
  if (mode === "grey") s = s.greyscale();
  if (mode === "alpha") s = s.ensureAlpha(0.8);
  const bytes = mode === "16bit" ? await s.toColourspace("rgb16").png().toBuffer() : await s.png().toBuffer();
  return decodeImage(bytes, LIMITS);
}

async function viaJpeg(img: RasterImage, quality: number): Promise<RasterImage> {
  return decodeImage(await encodeImage(img, "jpeg", quality), LIMITS);
}

function ctx(params: Record<string, unknown>, inputs: RasterImage[]): OperationContext {
  return {
    params,
    inputs,
    encoded: [],
    session: async (id) => (id === ENCODER_GAIN_ID ? enc.gain : id === ENCODER_MESSAGE_ID ? enc.message : dec),
    timeModel: (fn) => fn(),
    signal: new AbortController().signal,
  };
}

describe("the encoder's two cuts", () => {
  it("compute what the whole exported encoder.onnx computes, for any bit weights", async () => {
    const whole = await ort.InferenceSession.create(root("models/watermark/weights/encoder.onnx"), { intraOpNumThreads: 1 });
    const view = await workingView(await image(900, 600));
    const encode = await imageEncoder(enc, view, WORKING_SIZE);
    const tensor = new ort.Tensor("float32", view, [1, 3, WORKING_SIZE, WORKING_SIZE]);
    // 0/1 bits as in the open loop, and re-weighted amplitudes as the informed loop sends them.
    for (const amplitudes of [
      Float32Array.from(channelBits("0123456789abcdef")),
      Float32Array.from({ length: CODE_BITS }, (_, i) => 0.5 + 0.5 * Math.sin(i * 1.7) * (1 + (i % 5))),
    ]) {
      const expected = (await whole.run({ image: tensor, bits: new ort.Tensor("float32", amplitudes, [1, CODE_BITS]) }))[
        "residual"
      ]!.data as Float32Array;
      const got = await encode(amplitudes);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
      // float32 in onnxruntime vs float64 here, on values of about 1e-2.
      expect(worst).toBeLessThan(1e-6);
    }
  });
});

// Codec 1 (the whole-frame learned mark): what small images get, and what images marked before codec 2 carry.
// Codec 2 has its own suite (watermark-tiled.test.ts); decoding tries it first, so these also check the fallback.
describe("codec 1 embed/decode through real codecs", () => {
  it("round-trips a payload through PNG and through JPEG q75, with PSNR >= 40 dB", async () => {
    const input = await image(1024, 768);
    const { image: marked, psnr } = await embed(enc, input, "c0ffee0123456789", 1, dec, { codec: 1 });
    expect(psnr).toBeGreaterThanOrEqual(40);
    expect(marked.width).toBe(1024);
    const png = await decode(dec, await decodeImage(await encodeImage(marked, "png"), LIMITS));
    expect(png).toMatchObject({ bits: "c0ffee0123456789", detected: true });
    expect(png.p_value).toBeLessThanOrEqual(1e-6);
    const jpg = await decode(dec, await viaJpeg(marked, 75));
    expect(jpg.bits).toBe("c0ffee0123456789");
    expect(jpg.detected).toBe(true);
  });

  it("reads a copy rotated by 2 degrees (and cropped back) by undoing the rotation, with the search in the p-value", async () => {
    const input = await image(1024, 768);
    // Open-loop embedding: the informed one is usually read without derotating, which would not test the search.
    const { image: marked } = await embed(enc, input, "0123456789abcdef", 1, null, { codec: 1 });
    const png = await encodeImage(marked, "png");
    let searched = 0;
    for (const degrees of [2, -2]) {
      const rotated = await sharp(png).rotate(degrees, { background: "#000" }).toBuffer({ resolveWithObject: true });
      const left = Math.floor((rotated.info.width - 1024) / 2);
      const top = Math.floor((rotated.info.height - 768) / 2);
      const copy = await decodeImage(
        await sharp(rotated.data).extract({ left, top, width: 1024, height: 768 }).png().toBuffer(),
        LIMITS,
      );
      // Cropped back to the frame: black corners, but not an enlarged canvas.
      expect(enlargedCanvas(copy)).toBe(false);
      const r = await decode(dec, copy);
      expect(r).toMatchObject({ bits: "0123456789abcdef", detected: true });
      // Every geometry of the search counts: the p-value is H times the exact one of the reading that was kept.
      expect(r.codec).toBe(1);
      expect(r.p_value / (DECODE_READINGS * presencePValue(r.errors!))).toBeCloseTo(1, 9);
      const view = new ort.Tensor("float32", await workingView(copy), [1, 3, 128, 128]);
      const logits = (await dec.run({ image: view }))["logits"]!.data as Float32Array;
      const unrotated = decodeChannel(Array.from(logits, (z) => 1 / (1 + Math.exp(-z))));
      if (!unrotated.detected) {
        expect(Math.sign(r.rotation_deg)).toBe(Math.sign(degrees));
        searched++;
      }
    }
    expect(searched, "at least one copy needs the derotation search").toBeGreaterThan(0);
  });

  it("reads a copy rotated onto an enlarged canvas (sharp's default rotate) and re-encoded as JPEG", async () => {
    const input = await image(1024, 768);
    expect(enlargedCanvas(input)).toBe(false);
    const { image: marked } = await embed(enc, input, "0123456789abcdef", 1, dec, { codec: 1 });
    const png = await encodeImage(marked, "png");
    for (const degrees of [4, -4]) {
      const rotated = await sharp(png).rotate(degrees, { background: "#808080" }).jpeg({ quality: 85 }).toBuffer();
      const copy = await decodeImage(rotated, LIMITS);
      expect(copy.width).toBeGreaterThan(1024);
      expect(enlargedCanvas(copy)).toBe(true);
      const r = await decode(dec, copy);
      expect(r, `${degrees} deg`).toMatchObject({ bits: "0123456789abcdef", detected: true });
      expect(r.p_value / (DECODE_READINGS * presencePValue(r.errors!))).toBeCloseTo(1, 9);
    }
  });

  it("an unmarked photo is not detected", async () => {
    const r = await decode(dec, await image(1024, 768));
    expect(r.detected).toBe(false);
    expect(r.p_value).toBeGreaterThan(1e-6);
  });

  it("works at 128 px, at extreme aspect ratios, on grey, alpha and 16-bit images", async () => {
    for (const [w, h, mode] of [
      [128, 128, "rgb"],
      [2000, 160, "rgb"],
      [150, 1800, "rgb"],
      [640, 480, "grey"],
      [640, 480, "alpha"],
      [640, 480, "16bit"],
    ] as const) {
      const input = await image(w, h, mode);
      const { image: marked } = await embed(enc, input, "0123456789abcdef", 1, dec, { codec: 1 });
      expect(marked.bitDepth).toBe(input.bitDepth);
      expect(marked.hasAlpha).toBe(input.hasAlpha);
      const r = await decode(dec, await decodeImage(await encodeImage(marked, "png"), LIMITS));
      expect(r.bits, `${w}x${h} ${mode}`).toBe("0123456789abcdef");
      expect(r.detected, `${w}x${h} ${mode}`).toBe(true);
    }
  });

  it("pipelines: embed returns the image artifact, decode returns bits, confidence, p_value, detected", async () => {
    const input = await image(800, 600);
    const out = await watermarkEmbedPipeline.run(ctx({ bits: "ABCDEF", format: "png" }, [input]));
    // 800 x 600 is large enough for codec 2: the result says so, with the size that verify maps boxes from.
    expect(out.result).toMatchObject({ bits: "0000000000abcdef", strength: 1, codec: 2, width: 800, height: 600 });
    const artifact = out.images![0]!;
    expect(artifact.name).toBe("image");
    const res = await watermarkDecodePipeline.run(ctx({}, [artifact.image]));
    expect(res.result).toMatchObject({ bits: "0000000000abcdef", detected: true, codec: 2, geometry: { codec: 2 } });
    expect((res.result.confidence as number[]).length).toBe(64);
  });

  it("bad input gets clear errors", async () => {
    const input = await image(200, 200);
    await expect(watermarkEmbedPipeline.run(ctx({ bits: "xyz" }, [input]))).rejects.toThrow(RunnerError);
    await expect(watermarkEmbedPipeline.run(ctx({ bits: "0".repeat(17) }, [input]))).rejects.toThrow(/at most 16 hex/);
    await expect(watermarkEmbedPipeline.run(ctx({ bits: "01", strength: 9 }, [input]))).rejects.toThrow(RunnerError);
    await expect(watermarkDecodePipeline.run(ctx({}, [await image(20, 20)]))).rejects.toThrow(/at least 32 px/);
    await expect(watermarkDecodePipeline.run(ctx({}, []))).rejects.toThrow(/one input/);
  });
});
