import * as ort from "onnxruntime-node";
import { Tensor, type InferenceSession } from "onnxruntime-node";
import { modelOutput } from "../models/output.ts";
import { CODE_BITS } from "./watermark-code.ts";
import { stretchTaps } from "./watermark-residual.ts";

/**
 * The watermark encoder as the runner runs it: two cuts of the exported encoder.onnx (models/watermark/
 * runtime_graphs.py). The encoder is residual = t * v / sqrt(mean(v^2) + eps), v = up(pattern(bits)) * gain(image),
 * and informed embedding re-encodes one image with new bit weights up to seven times; so the image-only gain map
 * is computed once per image, the bits-only pattern once per round, and the combination (an upsampling, a
 * product and a normalisation, slow as ONNX Resize and cheap here) in JavaScript.
 */
export const ENCODER_GAIN_ID = "watermark-encoder-gain";
export const ENCODER_MESSAGE_ID = "watermark-encoder-message";

/**
 * RMS of the residual at strength 1, in [0, 1] units: the encoder's target_rms (models/watermark/config.json)
 * times the gain export.py baked into encoder.onnx (manifest export_gain). test/runner/watermark.test.ts checks the
 * combination below against the whole encoder.onnx, so a new export with other values fails there.
 */
const TARGET_RMS = 0.0089125;
const EXPORT_GAIN = 1.1;
const EPSILON = 1e-12;

export interface EncoderSessions {
  gain: InferenceSession;
  message: InferenceSession;
}

/**
 * The encoder for one image (planar 3 x size x size view in [0, 1]): a function from per-bit amplitudes in [0, 1]
 * (the encoder's bit inputs; 2b - 1 is each bit's signed weight) to the unit-strength residual, planar 3 x size x size,
 * written into `out` when given (the informed loop reuses two buffers across its rounds).
 */
export async function imageEncoder(
  sessions: EncoderSessions,
  view: Float32Array,
  size: number,
): Promise<(amplitudes: Float32Array, out?: Float32Array) => Promise<Float32Array>> {
  const gain = modelOutput(
    await sessions.gain.run({ image: new Tensor("float32", view, [1, 3, size, size]) }),
    "gain",
    ENCODER_GAIN_ID,
  );
  const q = size / 4;
  const taps = stretchTaps(q, size);
  const wide = new Float32Array(q * size);
  return async (amplitudes, residual = new Float32Array(3 * size * size)) => {
    const pattern = modelOutput(
      await sessions.message.run({ bits: new Tensor("float32", amplitudes, [1, CODE_BITS]) }),
      "pattern",
      ENCODER_MESSAGE_ID,
    );
    let sq = 0;
    // The taps as locals: read through the object inside these loops, they cost more than the arithmetic.
    const { i0, i1, w } = taps;
    for (let c = 0; c < 3; c++) {
      // Bilinear, half-pixel centres, edges clamped: ONNX Resize "linear" / "half_pixel", as in the graph.
      const p = c * q * q;
      for (let r = 0; r < q; r++) {
        const row = p + r * q;
        for (let x = 0, o = r * size; x < size; x++, o++) {
          const a = pattern[row + i0[x]!]!;
          wide[o] = a + (pattern[row + i1[x]!]! - a) * w[x]!;
        }
      }
      for (let y = 0; y < size; y++) {
        const r0 = i0[y]! * size;
        const r1 = i1[y]! * size;
        const wy = w[y]!;
        const o = c * size * size + y * size;
        const g = y * size;
        for (let x = 0; x < size; x++) {
          const a = wide[r0 + x]!;
          const v = (a + (wide[r1 + x]! - a) * wy) * gain[g + x]!;
          residual[o + x] = v;
          sq += v * v;
        }
      }
    }
    const scale = (TARGET_RMS / Math.sqrt(sq / residual.length + EPSILON)) * EXPORT_GAIN;
    for (let i = 0; i < residual.length; i++) residual[i]! *= scale;
    return residual;
  };
}

/** Both cuts straight from the weights folder, for scripts and tests that run without a ticket or session cache. */
export async function openEncoder(weightsDir: string, options: InferenceSession.SessionOptions = {}): Promise<EncoderSessions> {
  const [gain, message] = await Promise.all([
    ort.InferenceSession.create(`${weightsDir}/encoder-gain.onnx`, options),
    ort.InferenceSession.create(`${weightsDir}/encoder-message.onnx`, options),
  ]);
  return { gain, message };
}
