import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { referenceInputs, runReferenceCases } from "../fixtures/lowlight-reference/cases.ts";
import { ROOT } from "./helpers.ts";

/**
 * enhance.lowlight's output against the committed reference (test/fixtures/lowlight-reference, made by the
 * implementation that predates gpu-runner/src/restoration): the pipeline at the runner's own tiling, and the raster
 * path with small tiles on a 16-bit RGBA image. On the machine that made the fixture the outputs are identical; the
 * bound below only leaves room for onnxruntime's CPU kernels rounding differently on another CPU (the parity
 * tests' 1e-4), far below anything a change to tiling, feeds or blending would move.
 */
const DIR = `${ROOT}/test/fixtures/lowlight-reference`;

interface Meta {
  width: number;
  height: number;
  channels: number;
  bit_depth: 8 | 16;
}

let outputs: Awaited<ReturnType<typeof runReferenceCases>>;
let meta: Record<string, Meta>;
beforeAll(async () => {
  const session = await ort.InferenceSession.create(`${ROOT}/models/lowlight/weights/lowlight-iagc.onnx`, {
    intraOpNumThreads: 1,
  });
  outputs = await runReferenceCases(session, await referenceInputs(await readFile(`${DIR}/input.png`)));
  meta = JSON.parse(await readFile(`${DIR}/meta.json`, "utf8"));
});

async function reference(name: string, bitDepth: 8 | 16): Promise<Uint8Array | Uint16Array> {
  const raw = gunzipSync(await readFile(`${DIR}/${name}.raw.gz`));
  const bytes = new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  return bitDepth === 16 ? new Uint16Array(bytes.buffer) : bytes;
}

describe("enhance.lowlight output is unchanged from the reference", () => {
  for (const [name, maxStep] of [
    ["a-rgb8", 1],
    ["b-rgba16", 7],
  ] as const) {
    it(`${name}: same shape, same samples`, async () => {
      const m = meta[name]!;
      const out = outputs[name];
      expect(m).toMatchObject({ width: out.width, height: out.height, channels: out.channels, bit_depth: out.bitDepth });
      const expected = await reference(name, m.bit_depth);
      expect(out.data.length).toBe(expected.length);
      let differing = 0;
      let max = 0;
      let sum = 0;
      for (let i = 0; i < expected.length; i++) {
        sum += expected[i]!;
        const d = Math.abs(out.data[i]! - expected[i]!);
        if (d) differing++;
        if (d > max) max = d;
      }
      if (differing) console.warn(`lowlight reference ${name}: ${differing} samples differ, max ${max} steps`);
      expect(max).toBeLessThanOrEqual(maxStep);
      expect(differing / expected.length).toBeLessThan(m.bit_depth === 8 ? 1e-3 : 0.2);
      // The reference is not flat: the model brightened the 15 % photo, so a pass-through would fail above.
      expect(sum / expected.length).toBeGreaterThan(0.25 * (m.bit_depth === 8 ? 255 : 65535));
    });
  }
});
