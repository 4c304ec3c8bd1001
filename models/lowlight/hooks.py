"""Model-zoo hooks for the low-light model (and its Zero-DCE++-style baseline, chosen by cfg["arch"])."""

import json
import math
import os

import torch
import torch.nn.functional as F

from . import data
from .arch import IAGC
from .zerodce import ZeroDCEpp


def build(cfg: dict) -> torch.nn.Module:
    return ZeroDCEpp() if cfg.get("arch") == "zerodce" else IAGC()


def make_batches(cfg: dict, split: str):
    return data.batches(cfg, split)


def lr_at(step: int, cfg: dict) -> float:
    # Cosine decay from lr to lr_min over cfg["steps"].
    p = min(step / max(cfg["steps"], 1), 1.0)
    return cfg["lr_min"] + 0.5 * (cfg["lr"] - cfg["lr_min"]) * (1 + math.cos(math.pi * p))


def training_step(model, batch, step: int, cfg: dict):
    dev = next(model.parameters()).device
    batch = {k: v.to(dev) for k, v in batch.items()}
    out, base = model(batch["image"], batch["thumb"], batch["roi"])
    target = batch["target"]
    l1 = (out - target).abs().mean()
    loss = l1 + cfg.get("base_loss_weight", 0.0) * (base - target).abs().mean()
    mse = F.mse_loss(out.clamp(0, 1), target).item()
    return loss, {"l1": l1.item(), "psnr": -10 * math.log10(max(mse, 1e-10))}


def export(model, out_dir: str, cfg: dict) -> str:
    from .export import export_onnx

    name = "zerodce-pp.onnx" if cfg.get("arch") == "zerodce" else "lowlight-iagc.onnx"
    return export_onnx(model.cpu(), out_dir, cfg, name)


def evaluate(cfg: dict, args) -> int:
    """args: the argv left over by models/common/evaluate.py (see models/lowlight/evaluate.py --help)."""
    from .evaluate import run

    res = run(cfg, args)
    print(json.dumps({k: res[k] for k in ("summary", "params", "flops")}, indent=1))
    return 0
