"""Parity fixture for test/runner/lowlight-parity.test.ts: a real degraded held-out photo (one tile of it, with
its whole-image thumbnail and roi) and the PyTorch output of the checkpoint that was exported.

    /usr/bin/python3 -m models.lowlight.make_fixture --ckpt models/lowlight/runs/main/last.pt
"""

import argparse
import hashlib
import json
import os

import numpy as np
import torch

from . import data
from .arch import THUMB
from .degrade import degrade
from .evaluate import load

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "lowlight-parity")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--onnx", default="models/lowlight/weights/lowlight-iagc.onnx")
    args = ap.parse_args()
    torch.set_num_threads(1)
    name = data.photo_names("heldout")[0]
    clean = data.resize_area(data.load_rgb(name), 192, 256)
    dark = degrade(clean, np.random.default_rng(7))
    top, left, h, w = 40, 100, 64, 96
    tile = data.to_tensor(np.ascontiguousarray(dark[top : top + h, left : left + w]))[None]
    thumb = data.to_tensor(data.resize_area(dark, THUMB, THUMB))[None]
    roi = torch.tensor([[top, left, 192, 256]], dtype=torch.float32)
    with torch.no_grad():
        out = load(args.ckpt)(tile, thumb, roi)[0].clamp(0, 1)
    os.makedirs(OUT, exist_ok=True)
    for key, t in (("image", tile), ("thumb", thumb), ("expected", out)):
        t.numpy().astype("<f4").tofile(os.path.join(OUT, f"{key}.f32"))
    with open(args.onnx, "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()
    meta = {
        "source_photo": name,
        "image_dims": list(tile.shape),
        "thumb_dims": list(thumb.shape),
        "roi": roi[0].tolist(),
        "expected_dims": list(out.shape),
        "onnx_sha256": onnx_sha,
        "torch": torch.__version__,
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
