import * as ort from "onnxruntime-node";
import { alphaOf, nchwToRaster, rasterToNchw } from "../../gpu-runner/src/image/tensor.ts";
import type { OperationPipeline } from "../../gpu-runner/src/operations/types.ts";

/**
 * A test-only operation shaped like the real model pipelines: decode → NCHW → the tiny ONNX model
 * (y = 1 - x) → raster → PNG artifact "image". It goes through the same session cache and checks.
 */
export const invertPipeline: OperationPipeline = {
  name: "test.invert",
  async run(ctx) {
    const image = ctx.inputs[0]!;
    const session = await ctx.session("tiny-invert");
    const x = rasterToNchw(image);
    const out = await ctx.timeModel(() => session.run({ x: new ort.Tensor("float32", x.data, x.dims) }));
    const y = out.y!;
    const raster = nchwToRaster({ data: y.data as Float32Array, dims: x.dims }, image, alphaOf(image));
    return { result: { width: image.width, height: image.height }, images: [{ name: "image", image: raster, format: "png" }] };
  },
};
