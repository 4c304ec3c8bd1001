import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";

/**
 * onnxruntime-node vs PyTorch on fixed inputs (fixture written by models/watermark/export.py from the same
 * checkpoint as the committed ONNX files). Tolerance: 1e-5 absolute on the residual (its values are ~1e-2, so
 * that is ~0.1 % relative; one 8-bit level is 3.9e-3) and 1e-3 absolute on the logits (values of order 1-10).
 */
const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const FIXTURE = root("test/fixtures/watermark-parity");

async function f32(name: string): Promise<Float32Array> {
  const buf = await readFile(`${FIXTURE}/${name}.f32`);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("watermark ONNX parity with PyTorch", () => {
  it("encoder residual and decoder logits match within tolerance", async () => {
    const opts = { intraOpNumThreads: 1 };
    const enc = await ort.InferenceSession.create(root("models/watermark/weights/encoder.onnx"), opts);
    const dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), opts);
    const image = await f32("image");
    const bits = await f32("bits");
    const out = await enc.run({
      image: new ort.Tensor("float32", image, [1, 3, 128, 128]),
      bits: new ort.Tensor("float32", bits, [1, 128]),
    });
    const residual = out["residual"]!.data as Float32Array;
    expect(maxAbsDiff(residual, await f32("residual"))).toBeLessThan(1e-5);

    const marked = image.map((v, i) => Math.min(1, Math.max(0, v + residual[i]!)));
    const logits = (await dec.run({ image: new ort.Tensor("float32", marked, [1, 3, 128, 128]) }))["logits"]!
      .data as Float32Array;
    expect(maxAbsDiff(logits, await f32("logits"))).toBeLessThan(1e-3);
    // and the decoded bits are the embedded ones (the fixture is an unattacked round trip)
    let agree = 0;
    for (let i = 0; i < 128; i++) agree += (logits[i]! > 0 ? 1 : 0) === bits[i] ? 1 : 0;
    expect(agree).toBeGreaterThanOrEqual(120);
  });
});
