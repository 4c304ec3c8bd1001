"""Model-zoo hooks for the low-light model (and its Zero-DCE++-style baseline, chosen by cfg["arch"])."""

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from models.common.export_hook import ExportSpec, export_model
from models.common.onnx_export import spatial_axes

from . import data
from .arch import IAGC, THUMB
from .degrade import degrade
from .zerodce import ZeroDCEpp


def build(cfg: dict) -> torch.nn.Module:
    return ZeroDCEpp() if cfg.get("arch") == "zerodce" else IAGC()


def make_batches(cfg: dict, split: str):
    return data.batches(cfg, split)


def training_step(model, batch, step: int, cfg: dict):
    dev = next(model.parameters()).device
    batch = {k: v.to(dev) for k, v in batch.items()}
    out, base = model(batch["image"], batch["thumb"], batch["roi"])
    target = batch["target"]
    l1 = (out - target).abs().mean()
    loss = l1 + cfg.get("base_loss_weight", 0.0) * (base - target).abs().mean()
    mse = F.mse_loss(out.clamp(0, 1), target).item()
    return loss, {"l1": l1.item(), "psnr": -10 * math.log10(max(mse, 1e-10))}


class Serving(torch.nn.Module):
    """Only the final image leaves the graph, clamped to [0, 1]."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image, thumb, roi):
        return self.model(image, thumb, roi)[0].clamp(0.0, 1.0)


def no_pow(graph) -> None:
    # The card promises gamma without pow: fail the export rather than ship a graph that breaks the promise.
    ops = {n.op_type for n in graph.graph.node}
    assert "Pow" not in ops, f"exported graph contains Pow: {sorted(ops)}"


def parity_inputs():
    """One tile of a real degraded held-out photo, with the whole photo's thumbnail and the tile's roi."""
    name = data.photo_names("heldout")[0]
    clean = data.resize_area(data.load_rgb(name), 192, 256)
    dark = degrade(clean, np.random.default_rng(7))
    top, left, h, w = 40, 100, 64, 96
    feeds = {
        "image": data.to_tensor(np.ascontiguousarray(dark[top : top + h, left : left + w]))[None],
        "thumb": data.to_tensor(data.resize_area(dark, THUMB, THUMB))[None],
        "roi": torch.tensor([[top, left, 192, 256]], dtype=torch.float32),
    }
    return feeds, {"source_photo": name}


def export_spec(cfg: dict) -> ExportSpec:
    """opset 17: GridSample needs >= 16, and 17 exports LayerNorm as one op, so the graph has no Pow node at all.
    Tiles have any height and width; the thumbnail is fixed (no adaptive pooling with dynamic sizes in the graph)."""
    zerodce = cfg.get("arch") == "zerodce"
    model_id = "zerodce-pp" if zerodce else "lowlight-iagc"
    unit = {"dtype": "float32", "range": [0, 1]}
    return ExportSpec(
        id=model_id,
        version="1.0.0" if zerodce else "1.1.0",
        file=f"lowlight/weights/{model_id}.onnx",
        example={"image": torch.rand(1, 3, 96, 128), "thumb": torch.rand(1, 3, THUMB, THUMB),
                 "roi": torch.tensor([[0.0, 0.0, 96.0, 128.0]])},
        outputs=["enhanced"],
        dynamic_axes=spatial_axes("image", "enhanced"),
        io={
            "image": {**unit, "note": "one tile, RGB"},
            "thumb": {**unit, "note": "area-resized whole photo"},
            "roi": {"note": "tile top, left, photo height, photo width (pixels)"},
            "enhanced": unit,
        },
        entry={
            "working_size": {"thumb": [THUMB, THUMB], "tile": "any (runner uses 1024 with 32 px overlap)"},
            "license": "Apache-2.0 (weights trained here on GPL-2+/CC-BY(-SA) Debian wallpaper photos; see CARD.md)",
            "card": "lowlight/CARD.md",
        },
        fixture=None if zerodce else parity_inputs,
        check=no_pow,
    )


def export(model, out_dir: str | None, cfg: dict) -> dict:
    """models/common/export_hook.py: the ONNX file, its manifest entry and the parity fixture."""
    return export_model(Serving(model), export_spec(cfg), out_dir)


def evaluate(cfg: dict, args) -> int:
    """args: the argv left over by models/common/evaluate.py (see models/lowlight/evaluate.py --help)."""
    from .evaluate import run

    res = run(cfg, args)
    print(json.dumps({k: res[k] for k in ("summary", "params", "flops")}, indent=1))
    return 0
