"""ONNX export of the low-light model: opset 17 (GridSample needs >= 16; 17 exports LayerNorm as one op, so the graph has no Pow node at all), dynamic tile height/width,
fixed 128x128 thumbnail (no adaptive pooling with dynamic sizes anywhere in the graph).

    /usr/bin/python3 -m models.lowlight.export --ckpt models/lowlight/runs/main/last.pt --out models/lowlight/weights
"""

import argparse
import hashlib
import json
import os

import onnx
import torch

from .arch import THUMB

OPSET = 17


class Serving(torch.nn.Module):
    """Only the final image leaves the graph, clamped to [0, 1]."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image, thumb, roi):
        return self.model(image, thumb, roi)[0].clamp(0.0, 1.0)


def export_onnx(model: torch.nn.Module, out_dir: str, cfg: dict, name: str = "lowlight-iagc.onnx") -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    model.eval()
    args = (torch.rand(1, 3, 96, 128), torch.rand(1, 3, THUMB, THUMB), torch.tensor([[0.0, 0.0, 96.0, 128.0]]))
    torch.onnx.export(
        Serving(model),
        args,
        path,
        opset_version=OPSET,
        input_names=["image", "thumb", "roi"],
        output_names=["enhanced"],
        dynamic_axes={"image": {2: "height", 3: "width"}, "enhanced": {2: "height", 3: "width"}},
    )
    ops = {n.op_type for n in onnx.load(path).graph.node}
    # The card promises gamma without pow: fail the export rather than ship a graph that breaks the promise.
    assert "Pow" not in ops, f"exported graph contains Pow: {sorted(ops)}"
    return path


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    from .hooks import build

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="lowlight-iagc.onnx")
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu")
    model = build(ck["cfg"])
    model.load_state_dict(ck["model"])
    path = export_onnx(model, args.out, ck["cfg"], args.name)
    print(json.dumps({"file": path, "bytes": os.path.getsize(path), "sha256": sha256(path), "opset": OPSET}))


if __name__ == "__main__":
    main()
