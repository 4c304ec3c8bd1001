"""Model-zoo hooks for the plain U-Net derainer (models/derain_unet/arch.py), the zoo's no-physics baseline.

Not served (no contract entry, no runner pipeline, no manifest entry): it exists to measure what streak-vapor's
physics structure buys at the same parameter and training budget. Training data is streak-vapor's exact stream
(models.derain_streak_vapor.hooks.make_batches: the same TRAIN photos, families, crops, pool and seeds), of which this
model uses only the rainy crop and its clean J; the loss is L1 on the clamped J and nothing else.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from models.common.onnx_export import export_onnx, spatial_axes
from models.derain_streak_vapor import hooks as sv
from models.derain_streak_vapor.arch import clamp_back

from .arch import UNet, count_macs, count_params

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_ID = "derain-unet"
METHOD = "unet"


def build(cfg: dict) -> torch.nn.Module:
    return UNet(tuple(cfg.get("widths", (9, 18, 36, 72))))


def make_batches(cfg: dict, split: str):
    """streak-vapor's batches, unchanged (same seeds from cfg["seed"], so the same crops in the same order); the
    T_s / T_v / A / thumbnail / veiled labels it also yields are ignored here."""
    return sv.make_batches(cfg, split)


def training_step(model, batch, step: int, cfg: dict):
    dev = next(model.parameters()).device
    image, J = batch["image"].to(dev), batch["J"].to(dev)
    j = model(image)
    # L1 on the served clamp(J, 0, 1); clamp_back (as streak-vapor's J loss) lets a pixel that left [0, 1] learn its
    # way back instead of getting no gradient.
    l_j = (clamp_back(j, 0.0, 1.0, True) - J).abs().mean()
    mse = F.mse_loss(j.detach().clamp(0, 1), J).item()
    return l_j, {"l_j": l_j.item(), "psnr": -10 * math.log10(max(mse, 1e-10))}


class Serving(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image).clamp(0.0, 1.0)


def export(model, out_dir: str | None, cfg: dict) -> dict:
    """The ONNX graph only, into the run directory (for timing with onnxruntime-node); a baseline is never
    published into models/ or models/manifest.json."""
    if not out_dir:
        raise SystemExit("derain_unet is a baseline and is not published: give --out")
    path = os.path.join(out_dir, f"{MODEL_ID}.onnx")
    info = export_onnx(Serving(model).cpu().eval(), (torch.rand(1, 3, 96, 128),), path, ["image"], ["derained"],
                       17, spatial_axes("image", "derained"))
    return {"file": path, **info}


def load(ckpt: str) -> torch.nn.Module:
    ck = torch.load(ckpt, map_location="cpu")
    model = build(ck["cfg"])
    model.load_state_dict(ck["model"])
    return model.eval()


def method(model: torch.nn.Module):
    """HxWx3 float32 RGB in [0, 1] -> derained, one pass over the whole image (the image is its own only tile)."""

    def fn(img: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(sv.chw(img)[None])
        return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)

    return fn


def methods() -> dict:
    """Plugin for models/derain/evaluate.py (--plugin models.derain_unet.hooks:methods); the checkpoint is
    $UNET_CKPT."""
    return {METHOD: method(load(os.environ["UNET_CKPT"]))}


def evaluate(cfg: dict, args) -> int:
    """--ckpt CKPT [--limit N] [--sets light,heavy,heldout] [--root DIR] [--out results.json] [--threads N]
    [--baselines input,...] [--baselines-json models/derain/results_baselines.json]: as streak-vapor's evaluate hook
    (models/derain/evaluate.py's run_evaluation on the same held-out pairs; the baselines' rows merged from
    --baselines-json when it was measured on the same pairs)."""
    import argparse

    from models.derain import data
    from models.derain import evaluate as ev
    from models.derain.baselines import METHODS

    ap = argparse.ArgumentParser(prog="evaluate --model derain_unet")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--sets", default=",".join(data.EVAL_SETS))
    ap.add_argument("--baselines", default="input")
    ap.add_argument("--baselines-json", default=os.path.join(os.path.dirname(HERE), "derain", "results_baselines.json"))
    ap.add_argument("--root", default=os.path.join(data.DATA, "eval"),
                    help="evaluation pairs written by models.derain.prepare_data (same seeds wherever they are)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(args)
    torch.set_num_threads(a.threads)
    model = load(a.ckpt)
    fns = {m: METHODS[m] for m in a.baselines.split(",") if m}
    fns[METHOD] = method(model)
    res = {
        **ev.run_evaluation(fns, a.root, a.sets.split(","), a.limit),
        "ckpt": os.path.relpath(os.path.abspath(a.ckpt), os.path.dirname(os.path.dirname(HERE))),
        "params": count_params(model),
        "macs_per_mp": count_macs(model, 1000, 1000),
        "torch_threads": a.threads,
    }
    if a.baselines_json and os.path.exists(a.baselines_json) and not a.limit:
        with open(a.baselines_json) as f:
            base = json.load(f)
        if base["pairs"] == res["pairs"] and base["input_psnr_from_index"] == res["input_psnr_from_index"]:
            merged = {**base["methods"], **res["methods"]}  # base's order (input first), rows run here win
            res["methods"] = {m: merged[m] for m in [*base["methods"], *res["methods"]] if m in merged}
            res["baselines_from"] = os.path.relpath(a.baselines_json, os.path.dirname(os.path.dirname(HERE)))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(ev.markdown(res))
    print(json.dumps({k: res[k] for k in ("pairs", "params", "macs_per_mp", "seconds")}))
    return 0
