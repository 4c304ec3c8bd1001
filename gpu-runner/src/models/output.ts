import type { InferenceSession } from "onnxruntime-node";
import { RunnerError } from "../errors.ts";

/** The float32 data of a session run's output `name`; a model without it fails the job with `model_output_missing`. */
export function modelOutput(out: InferenceSession.OnnxValueMapType, name: string, model: string): Float32Array {
  const t = out[name];
  if (!t) throw new RunnerError("model_output_missing", `${model} returned no '${name}' output`);
  return t.data as Float32Array;
}
