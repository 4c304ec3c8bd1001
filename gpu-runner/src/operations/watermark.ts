import type { InferenceSession } from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { OPERATIONS } from "../../../contract/operations.ts";
import { RunnerError } from "../errors.ts";
import { modelOutput } from "../models/output.ts";
import { definePipeline, type RasterImage } from "./types.ts";
import { CODE_BITS, FALSE_POSITIVE_RATE, channelBits, decodeChannel, type DecodedPayload } from "./watermark-code.ts";
import { informedResidual, rotator, type InformedOptions } from "./watermark-informed.ts";
import { ENCODER_GAIN_ID, ENCODER_MESSAGE_ID, imageEncoder, type EncoderSessions } from "./watermark-encoder.ts";
import { applyResidual } from "./watermark-residual.ts";
import * as tiled from "./watermark-tiled.ts";
import type { WatermarkGeometry } from "../../../contract/watermark-geometry.ts";

/**
 * Invisible watermark at any resolution, two codecs behind one pair of operations.
 *
 * Codec 2 (watermark-tiled.ts), what embedding writes whenever the short side is at least tiled.MIN_SIDE: a mark
 * tiled on a grid tied to the short side, found again after crops, reframes, mirrors and rescales, and the
 * geometry it was found at.
 *
 * Codec 1, for smaller images and for images marked before codec 2: a learned encoder computes a residual from the
 * whole image squeezed to WORKING_SIZE x WORKING_SIZE, stretched back to full resolution and added; decoding
 * squeezes the whole image the same way. Robust to JPEG, rescaling and rotation, but a crop changes the geometry it
 * expects (models/watermark/CARD.md).
 *
 * Decoding is blind: it tries codec 2, then codec 1, and its p-value pays for every reading either may take.
 */
export const WORKING_SIZE = 128;
export const DECODER_ID = "watermark-decoder";
// The contract's limit (execute.ts checks it for jobs); checked here too for direct callers (benches, tests).
const MIN_SIDE = OPERATIONS["watermark.embed"].limits.min_side;

function checkSize(image: RasterImage): void {
  if (Math.min(image.width, image.height) < MIN_SIDE)
    throw new RunnerError(
      "image_too_small",
      `watermarking needs at least ${MIN_SIDE} px per side, got ${image.width}x${image.height}`,
    );
}

/** The whole image squeezed to the working size, NCHW float [0, 1] RGB (grey replicated, alpha ignored). */
export async function workingView(image: RasterImage, size = WORKING_SIZE): Promise<Float32Array> {
  const { data: px, info } = await tiled.resized8(image, size, size);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++)
    for (let c = 0; c < 3; c++) out[c * plane + p] = px[p * info.channels + (info.channels >= 3 ? c : 0)]! / 255;
  return out;
}

/** Logits (count x channel bits) of `count` planar working views laid end to end: one batched decoder run. */
async function decoderLogits(decoder: InferenceSession, views: Float32Array, count = 1): Promise<Float32Array> {
  const out = await decoder.run({ image: new Tensor("float32", views, [count, 3, WORKING_SIZE, WORKING_SIZE]) });
  return modelOutput(out, "logits", DECODER_ID);
}

export interface EmbedOptions {
  informed?: InformedOptions;
  /**
   * Write the marked samples over the input's own (when the layout allows: 8-bit RGB or RGBA). For callers that
   * own the decoded input and are done with it, as the runner's pipeline is: it spares a full-size allocation.
   */
  inPlace?: boolean;
}

/**
 * Embeds 64 payload bits. With the decoder, the residual is found in closed loop (watermark-informed.ts);
 * without it, it is the encoder's open-loop output.
 */
export interface EmbedResult {
  image: RasterImage;
  psnr: number;
  codec: 1 | 2;
}

/**
 * Embeds 64 payload bits: codec 2 when the image is large enough for it, else codec 1 (with the decoder, its
 * residual is found in closed loop, watermark-informed.ts; without it, the encoder's open-loop output).
 */
export async function embed(
  encoder: EncoderSessions,
  image: RasterImage,
  hex: string,
  strength: number,
  decoder: InferenceSession | null = null,
  options: EmbedOptions & { codec?: 1 | 2 } = {},
): Promise<EmbedResult> {
  checkSize(image);
  const sent = channelBits(hex);
  const codec = options.codec ?? (Math.min(image.width, image.height) >= tiled.MIN_SIDE ? 2 : 1);
  if (codec === 2) {
    const t = await tiled.tiledResidual(image, sent, strength);
    return { ...applyResidual(image, t.residual, 1, { cols: t.cols, rows: t.rows }, options.inPlace), codec: 2 };
  }
  const view = await workingView(image);
  const models = {
    encode: await imageEncoder(encoder, view, WORKING_SIZE),
    logits: (views: Float32Array, count: number) => decoderLogits(decoder!, views, count),
  };
  const residual = decoder
    ? await informedResidual(models, view, WORKING_SIZE, sent, strength, image.width / image.height, options.informed)
    : await models.encode(Float32Array.from(sent));
  return { ...applyResidual(image, residual, strength, WORKING_SIZE, options.inPlace), codec: 1 };
}

/**
 * Rotations (degrees) that codec-1 decoding tries to undo, in order. A re-shared photo is sometimes straightened
 * or slightly rotated; the codec-1 decoder reads the 128-bit word at one geometry, so a rotation of a degree or two
 * costs it most of its margin. Trying derotations in 1-degree steps is cheap at the working size (0.5 ms a
 * reading). With codec 2's three readings, twelve is the most a decode can take while d <= 8 still counts as
 * detected (12 x 8.3e-8 = 9.95e-7 <= 1e-6); codec 2 finds rotation itself, so codec 1 keeps +-4 degrees (its +-5
 * readings went to codec 2).
 */
export const DECODE_ROTATIONS = [0, 1, -1, 2, -2, 3, -3, 4, -4] as const;
/** Every reading a decode may take: the union bound's factor on the exact single-reading p-value. */
export const DECODE_READINGS = tiled.READINGS + DECODE_ROTATIONS.length;

/** A decoded payload, which codec read it, and where (the geometry) or at which derotation. */
export type WatermarkReading = DecodedPayload & {
  rotation_deg: number;
  codec: 1 | 2 | null;
  geometry: WatermarkGeometry | null;
};

/**
 * Decodes at each of DECODE_ROTATIONS until a word is detected. The presence test then accounts for the search:
 * the false-positive probability of "any of H readings lies within d of a codeword" is at most H times that of
 * one reading (union bound), so the reported p-value is H x the exact single-reading one, and `detected` is that
 * adjusted p-value <= 1e-6 (still d <= 8 for H = 12: 12 x 8.3e-8 = 9.95e-7).
 */
/**
 * Whether the image looks rotated onto an enlarged canvas (sharp's and many libraries' default rotate): the
 * rotated photo touches each edge of the canvas at one vertex only, so every edge row and column is almost all
 * fill colour. A rotation cropped back to the frame with a fill leaves flat corners too, but its edges are about
 * half photo, and an ordinary photo's edges are not one flat colour. Decoding then tries its derotations as
 * "enlarged" ones; either way an image gets the same readings count, so the p-value's union bound holds.
 */
export function enlargedCanvas(image: RasterImage): boolean {
  const { width, height, channels } = image;
  if (width < 32 || height < 32) return false;
  const shift = image.bitDepth === 16 ? 8 : 0;
  const bands = Math.min(3, channels);
  const at = (x: number, y: number, c: number) => image.data[(y * width + x) * channels + c]! >> shift;
  const fill = Array.from({ length: bands }, (_, c) => at(0, 0, c));
  const isFill = (x: number, y: number) => {
    for (let c = 0; c < bands; c++) if (Math.abs(at(x, y, c) - fill[c]!) > 10) return false;
    return true;
  };
  const share = (n: number, pixel: (i: number) => [number, number]) => {
    let k = 0;
    for (let i = 0; i < n; i++) k += isFill(...pixel(i)) ? 1 : 0;
    return k / n;
  };
  return (
    share(width, (i) => [i, 0]) >= 0.8 &&
    share(width, (i) => [i, height - 1]) >= 0.8 &&
    share(height, (i) => [0, i]) >= 0.8 &&
    share(height, (i) => [width - 1, i]) >= 0.8
  );
}

export async function decode(session: InferenceSession, image: RasterImage): Promise<WatermarkReading> {
  return (await readWatermark(session, image)).reading;
}

/**
 * `decode`, plus the channel soft bits (P(bit = 1)) of the reading it kept (the evaluation scores raw channel bits
 * on them). Codec 2's readings first, then codec 1's derotations; the first detected reading wins. The presence
 * test accounts for the search: "any of H readings lies within d of a codeword" has at most H times the
 * probability of one (union bound), so the reported p-value is DECODE_READINGS x the exact single-reading one.
 */
export async function readWatermark(
  session: InferenceSession,
  image: RasterImage,
): Promise<{ reading: WatermarkReading; probs: number[] }> {
  checkSize(image);
  const searched = DECODE_READINGS;
  let best: { reading: WatermarkReading; probs: number[] } | null = null;
  const consider = (probs: number[], codec: 1 | 2, geometry: WatermarkGeometry) => {
    const r = decodeChannel(probs);
    const p = Math.min(1, r.p_value * searched);
    const detected = p <= FALSE_POSITIVE_RATE;
    const reading: WatermarkReading = {
      ...r,
      p_value: p,
      detected,
      rotation_deg: geometry.rotation_deg,
      codec: detected ? codec : null,
      geometry: detected ? geometry : null,
    };
    if (!best || reading.p_value < best.reading.p_value) best = { reading, probs };
    return detected;
  };
  for (const t of await tiled.readTiled(image)) if (consider(t.probs, 2, t.geometry)) return best!;

  const view = await workingView(image);
  const aspect = image.width / image.height;
  const scratch = new Float32Array(view.length);
  const rotate = rotator(WORKING_SIZE, aspect, enlargedCanvas(image));
  for (const degrees of DECODE_ROTATIONS) {
    const v = degrees === 0 ? view : rotate(view, -degrees, scratch);
    const logits = await decoderLogits(session, v);
    if (
      consider(
        Array.from(logits, (z) => 1 / (1 + Math.exp(-z))),
        1,
        { codec: 1, rotation_deg: degrees },
      )
    )
      break;
  }
  return best!;
}

export const watermarkEmbedPipeline = definePipeline("watermark.embed", async (ctx) => {
  const p = ctx.params;
  if (p.bits.length > 16) throw new RunnerError("invalid_params", `bits: at most 16 hex digits (64 bits), got ${p.bits.length}`);
  const input = ctx.inputs[0];
  if (!input) throw new RunnerError("invalid_input", "watermark.embed needs one input image");
  const [gain, message, decoder] = await Promise.all([
    ctx.session(ENCODER_GAIN_ID),
    ctx.session(ENCODER_MESSAGE_ID),
    ctx.session(DECODER_ID),
  ]);
  const encoder = { gain, message };
  // The decoded input belongs to this job and is not read again: mark it in place.
  const { width, height } = input;
  const { image, psnr, codec } = await ctx.timeModel(() => embed(encoder, input, p.bits, p.strength, decoder, { inPlace: true }));
  return {
    result: {
      bits: p.bits.toLowerCase().padStart(16, "0"),
      strength: p.strength,
      psnr_db: Number(psnr.toFixed(2)),
      codec,
      width,
      height,
      ...(codec === 1 ? { working_size: WORKING_SIZE } : {}),
    },
    images: [{ name: "image", image, format: p.format }],
  };
});

export const watermarkDecodePipeline = definePipeline("watermark.decode", async (ctx) => {
  const input = ctx.inputs[0];
  if (!input) throw new RunnerError("invalid_input", "watermark.decode needs one input image");
  const session = await ctx.session(DECODER_ID);
  const r = await ctx.timeModel(() => decode(session, input));
  return { result: { ...r, confidence: r.confidence.map((c) => Number(c.toFixed(4))) } };
});
