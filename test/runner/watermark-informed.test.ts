import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { encodeImage } from "../../gpu-runner/src/image/encode.ts";
import type { RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { WORKING_SIZE, embed, workingView } from "../../gpu-runner/src/operations/watermark.ts";
import { CODE_BITS, channelBits } from "../../gpu-runner/src/operations/watermark-code.ts";
import { INFORMED_DEFAULT, distortion, informedResidual } from "../../gpu-runner/src/operations/watermark-informed.ts";
import { imageEncoder, openEncoder, type EncoderSessions } from "../../gpu-runner/src/operations/watermark-encoder.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const LIMITS = { maxPixels: 50_000_000 };
const PAYLOADS = ["0123456789abcdef", "fedcba9876543210", "c0ffee0123456789", "a5a5a5a55a5a5a5a"];
let enc: EncoderSessions;
let dec: ort.InferenceSession;
let input: RasterImage;

beforeAll(async () => {
  enc = await openEncoder(root("models/watermark/weights"), { intraOpNumThreads: 1 });
  dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), { intraOpNumThreads: 1 });
  input = await decodeImage(await sharp(root("test/fixtures/photo.jpg")).resize(960, 640).png().toBuffer(), LIMITS);
});

/** Channel bits the decoder reads wrong from an image (hard decisions on its logits). */
async function rawErrors(img: RasterImage, hex: string): Promise<number> {
  const view = new ort.Tensor("float32", await workingView(img), [1, 3, WORKING_SIZE, WORKING_SIZE]);
  const logits = (await dec.run({ image: view }))["logits"]!.data as Float32Array;
  const sent = channelBits(hex);
  let wrong = 0;
  for (let i = 0; i < CODE_BITS; i++) wrong += (logits[i]! > 0 ? 1 : 0) === sent[i] ? 0 : 1;
  return wrong;
}

async function viaJpeg(img: RasterImage, quality: number): Promise<RasterImage> {
  return decodeImage(await encodeImage(img, "jpeg", quality), LIMITS);
}

describe("informed (closed-loop) embedding", () => {
  it("reads back with no more raw bit errors than the open-loop residual, after JPEG q50, at the same PSNR", async () => {
    let open = 0;
    let informed = 0;
    for (const hex of PAYLOADS) {
      // Codec 1's closed loop against its own open loop (codec 2 has its own, watermark-tiled.ts).
      const a = await embed(enc, input, hex, 1, null, { codec: 1 });
      const b = await embed(enc, input, hex, 1, dec, { codec: 1 });
      // Re-weighting bits keeps the residual's RMS: the PSNR moves only by clipping and rounding.
      expect(Math.abs(a.psnr - b.psnr)).toBeLessThan(0.1);
      open += await rawErrors(await viaJpeg(a.image, 50), hex);
      informed += await rawErrors(await viaJpeg(b.image, 50), hex);
    }
    console.log(`raw errors after JPEG q50 over ${PAYLOADS.length} payloads: open-loop ${open}, informed ${informed}`);
    expect(informed).toBeLessThan(open);
    expect(informed).toBeLessThanOrEqual(1);
  });

  it("is the open-loop residual when rounds = 0, and deterministic otherwise", async () => {
    const view = await workingView(input);
    const sent = channelBits(PAYLOADS[0]!);
    const models = {
      encode: await imageEncoder(enc, view, WORKING_SIZE),
      logits: async (v: Float32Array, count: number) =>
        (await dec.run({ image: new ort.Tensor("float32", v, [count, 3, WORKING_SIZE, WORKING_SIZE]) }))["logits"]!
          .data as Float32Array,
    };
    const plain = await models.encode(Float32Array.from(sent));
    const zero = await informedResidual(models, view, WORKING_SIZE, sent, 1, 1.5, { ...INFORMED_DEFAULT, rounds: 0 });
    expect(Array.from(zero)).toEqual(Array.from(plain));
    const once = await informedResidual(models, view, WORKING_SIZE, sent, 1, 1.5);
    const twice = await informedResidual(models, view, WORKING_SIZE, sent, 1, 1.5);
    expect(Array.from(once)).toEqual(Array.from(twice));
    // Same energy as the open-loop residual (the encoder normalises the RMS), different distribution over bits.
    const rms = (r: Float32Array) => Math.sqrt(r.reduce((s, v) => s + v * v, 0) / r.length);
    expect(rms(once)).toBeCloseTo(rms(plain), 5);
  });

  it("models a full-resolution rotation of a non-square image on the squeezed working view", async () => {
    const rotated = await sharp(await encodeImage(input, "png"))
      .rotate(2, { background: "#000" })
      .toBuffer({ resolveWithObject: true });
    const left = Math.floor((rotated.info.width - input.width) / 2);
    const top = Math.floor((rotated.info.height - input.height) / 2);
    const png = await sharp(rotated.data).extract({ left, top, width: input.width, height: input.height }).png().toBuffer();
    const truth = await workingView(await decodeImage(png, LIMITS));
    const view = await workingView(input);
    const mad = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
    const out = new Float32Array(view.length);
    const aspect = input.width / input.height;
    const modelled = mad(distortion({ kind: "rotate", degrees: 2 }, WORKING_SIZE, aspect)(view, out), truth);
    const naive = mad(distortion({ kind: "rotate", degrees: 2 }, WORKING_SIZE, 1)(view, out), truth);
    expect(modelled).toBeLessThan(0.02);
    expect(modelled).toBeLessThan(naive);
    expect(modelled).toBeLessThan(mad(view, truth) / 2);
  });
});
