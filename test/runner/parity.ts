import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as ort from "onnxruntime-node";

/**
 * Parity fixtures as models/common/export_hook.py writes them: every input and output of one PyTorch run as
 * <name>.f32 (little-endian float32) and meta.json with their dims, the ONNX file's sha256 and the tolerance.
 */
export interface ParityMeta {
  model: string;
  inputs: Record<string, number[]>;
  outputs: Record<string, number[]>;
  tolerance: number;
  onnx_sha256: string;
  torch: string;
}

export async function readF32(path: string): Promise<Float32Array> {
  const buf = await readFile(path);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export async function sha256File(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

export async function readParityMeta(dir: string): Promise<ParityMeta> {
  return JSON.parse(await readFile(`${dir}/meta.json`, "utf8")) as ParityMeta;
}

/**
 * Runs `session` on the fixture's inputs (or on `dims`-shaped files in another directory of the same layout) and
 * returns the largest |onnxruntime - PyTorch| per output.
 */
export async function parityDiffs(
  session: ort.InferenceSession,
  dir: string,
  shapes: Pick<ParityMeta, "inputs" | "outputs">,
): Promise<Record<string, number>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, dims] of Object.entries(shapes.inputs))
    feeds[name] = new ort.Tensor("float32", await readF32(`${dir}/${name}.f32`), dims);
  const out = await session.run(feeds);
  const diffs: Record<string, number> = {};
  for (const [name, dims] of Object.entries(shapes.outputs)) {
    const got = out[name];
    if (!got) throw new Error(`${dir}: the model returned no '${name}'`);
    if (got.dims.join("x") !== dims.join("x")) throw new Error(`${name}: dims ${got.dims.join("x")}, expected ${dims.join("x")}`);
    diffs[name] = maxAbsDiff(got.data as Float32Array, await readF32(`${dir}/${name}.f32`));
  }
  return diffs;
}
