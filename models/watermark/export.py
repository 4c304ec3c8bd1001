"""Exports a trained checkpoint: ONNX weights, manifest entries, and the parity fixture for the runner test.

    /usr/bin/python3 models/watermark/export.py --ckpt models/watermark/runs/final/last.pt

Writes models/watermark/weights/{encoder,decoder}.onnx (fixed 1x3x128x128 input, opset from config) and the
graphs the runner runs (runtime_graphs.py: batched decoder, the encoder's two cuts), upserts their models/manifest.json entries, and writes
test/fixtures/watermark-parity/ (a fixed input built from a real photo, fixed bits, and PyTorch's outputs
as raw little-endian float32) so test/runner/watermark-parity.test.ts can compare onnxruntime-node to PyTorch.
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from models.common.onnx_export import upsert_manifest  # noqa: E402
from models.common.registry import REPO  # noqa: E402
from models.watermark import hooks, runtime_graphs  # noqa: E402

WEIGHTS = os.path.join(REPO, "models", "watermark", "weights")
FIXTURE = os.path.join(REPO, "test", "fixtures", "watermark-parity")


def parity_fixture(model, cfg: dict) -> None:
    os.makedirs(FIXTURE, exist_ok=True)
    s = cfg["size"]
    photo = cv2.imread("/usr/lib/python3/dist-packages/skimage/data/astronaut.png")[:, :, ::-1]
    image = torch.from_numpy(cv2.resize(photo, (s, s), interpolation=cv2.INTER_AREA).copy()).permute(2, 0, 1)[None].float() / 255
    bits = torch.from_numpy((np.arange(cfg["n_bits"]) * 7919 % 3 == 0).astype(np.float32))[None]
    with torch.no_grad():
        residual = hooks.EncoderExport(model, cfg["export_gain"])(image, bits)
        logits = model.decoder((image + residual).clamp(0, 1))
    for name, t in {"image": image, "bits": bits, "residual": residual, "logits": logits}.items():
        t.numpy().astype("<f4").tofile(os.path.join(FIXTURE, f"{name}.f32"))
    meta = {"size": s, "n_bits": cfg["n_bits"], "decoder_input": "clamp(image + residual, 0, 1)", "source": "skimage astronaut, INTER_AREA"}
    with open(os.path.join(FIXTURE, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gain", type=float, default=1.0, help="default-strength gain baked into the encoder graph")
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu")
    cfg = ck["cfg"]
    cfg["export_gain"] = args.gain
    model = hooks.build(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    info = hooks.export(model, WEIGHTS, cfg)
    common = {"version": "1.0.0", "export_gain": args.gain, "working_size": [cfg["size"], cfg["size"]], "license": "trained here from the corpus in models/data (photo licenses there); same terms as this repository",
              "card": "watermark/CARD.md"}
    upsert_manifest({"id": "watermark-encoder", "file": "watermark/weights/encoder.onnx", **common, **info["encoder"]})
    upsert_manifest({"id": "watermark-decoder", "file": "watermark/weights/decoder.onnx", **common, **info["decoder"]})
    parity_fixture(model, cfg)
    runtime_graphs.main()  # the graphs the runner runs (runtime_graphs.py)
    print(json.dumps({"step": ck["step"], "encoder": info["encoder"]["sha256"], "decoder": info["decoder"]["sha256"]}))


if __name__ == "__main__":
    main()
