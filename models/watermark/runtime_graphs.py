"""The graphs the runner runs, derived from the exported ones without changing a weight or an op.

    /usr/bin/python3 models/watermark/runtime_graphs.py        (export.py also runs it after every export)

1. The decoder gets a symbolic batch dimension (its graph is batch-agnostic: convs, a flatten from axis 1, a
   Gemm), so the informed loop reads the marked view and its distortions in one run instead of three.
2. The encoder is split into the two parts the informed loop runs at different rates:

The linear encoder (arch.py LinearEncoder) is residual = t * v / rms(v), v = up(W (2b - 1)) * gain(image): an
image-only gain map and a bits-only message pattern, combined by an upsampling, a product and an RMS
normalisation. The informed loop (gpu-runner/src/operations/watermark-informed.ts) re-encodes the same image with
new bit weights up to seven times, so it runs the gain part once per image and the message part once per round,
and does the cheap combination itself (watermark.ts). Both parts are cut out of encoder.onnx unchanged (same
weights, same ops), so they compute exactly what the whole graph computes; test/runner/watermark.test.ts checks
the runner's combination against the whole encoder.

Rewrites models/watermark/weights/decoder.onnx (image Nx3xSxS -> logits NxK), writes encoder-gain.onnx
(image 1x3xSxS -> gain 1x1xSxS) and encoder-message.onnx (bits 1xK -> pattern 1x3x(S/4)x(S/4)), and upserts their
models/manifest.json entries. Idempotent.
"""

import json
import os
import sys
import tempfile

import onnx
from onnx import utils

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from models.common.onnx_export import MANIFEST, sha256_file, upsert_manifest  # noqa: E402
from models.common.registry import REPO  # noqa: E402

WEIGHTS = os.path.join(REPO, "models", "watermark", "weights")
# Tensor names in the exported LinearEncoder graph: the gain map after its upsampling to the working size, and
# the message pattern after its reshape to 3 x S/4 x S/4 (before its upsampling).
GAIN = "/encoder/Resize_1_output_0"
PATTERN = "/encoder/Reshape_output_0"


def cut(source: str, inputs: list, outputs: list, rename: dict, target: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        part = os.path.join(tmp, "part.onnx")
        utils.extract_model(source, part, inputs, outputs)
        model = onnx.load(part)
    for node in model.graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = rename.get(value.name, value.name)
    model.producer_name = "models/watermark/runtime_graphs.py"
    onnx.checker.check_model(model)
    onnx.save(model, target)

    return entry_fields(model, target)


def entry_fields(model: onnx.ModelProto, path: str) -> dict:
    def io(values):
        dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
        return [{"name": v.name, "shape": dims(v), "dtype": "float32"} for v in values]

    return {"sha256": sha256_file(path), "opset": model.opset_import[0].version, "inputs": io(model.graph.input), "outputs": io(model.graph.output)}


def batch_decoder(path: str) -> dict:
    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    # Intermediate shapes were inferred for batch 1; onnxruntime re-infers them.
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return entry_fields(model, path)


def main() -> None:
    source = os.path.join(WEIGHTS, "encoder.onnx")
    with open(MANIFEST) as f:
        models = json.load(f)["models"]
    whole = next(m for m in models if m["id"] == "watermark-encoder")
    decoder = next(m for m in models if m["id"] == "watermark-decoder")
    if sha256_file(source) != whole["sha256"]:
        raise SystemExit("encoder.onnx does not match its manifest entry: export first")
    common = {k: whole[k] for k in ("version", "export_gain", "working_size", "license", "card")}
    common["derived_from"] = {"id": "watermark-encoder", "sha256": whole["sha256"], "by": "models/watermark/runtime_graphs.py"}
    gain = cut(source, ["image"], [GAIN], {GAIN: "gain"}, os.path.join(WEIGHTS, "encoder-gain.onnx"))
    message = cut(source, ["bits"], [PATTERN], {PATTERN: "pattern"}, os.path.join(WEIGHTS, "encoder-message.onnx"))
    upsert_manifest({**decoder, **batch_decoder(os.path.join(WEIGHTS, "decoder.onnx"))})
    upsert_manifest({"id": "watermark-encoder-gain", "file": "watermark/weights/encoder-gain.onnx", **common, **gain})
    upsert_manifest({"id": "watermark-encoder-message", "file": "watermark/weights/encoder-message.onnx", **common, **message})
    print(json.dumps({"decoder": sha256_file(os.path.join(WEIGHTS, "decoder.onnx")), "encoder-gain": gain["sha256"], "encoder-message": message["sha256"]}))


if __name__ == "__main__":
    main()
