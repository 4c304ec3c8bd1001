"""Model-zoo hooks for the streak-vapour derainer (models/derain_streak_vapor/arch.py).

Training data: rain rendered on the fly by models/derain/render.py onto TRAIN photos (models.derain.data.train_samples,
the three training families cycling); the held-out family and the held-out photos never reach training.
Labels, per family (the network's formation model I = J T_s T_v + (1 - T_s T_v) A holds exactly only for
streak_vapor):
- J (through the inversion), T_v (the light family has no veil: T_v = 1) and A (the renderer draws one for every
  family; light rain uses it for the streaks' tint) on every family;
- T_s: the renderer's on streak_vapor; on light and heavy, where the streaks are additive, the equivalent T_s that
  reproduces them under this formation model (equivalent_t_s). Left to the J loss alone, SNet learnt nothing in 300
  steps (head weight norm 0.024, T_s >= 0.9998 everywhere);
- the veil decision (veil_gate): veiled = the family is not light.
"""

import json
import math
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.common.export_hook import ExportSpec, export_model
from models.common.onnx_export import spatial_axes

from .arch import THUMB, StreakVapor, clamp_back, count_macs, count_params

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_ID = "derain-streak-vapor"


def build(cfg: dict) -> torch.nn.Module:
    return StreakVapor(tuple(cfg.get("snet", (16, 32, 64, 96))), cfg.get("vnet", 24))


def thumbnail(img: np.ndarray) -> np.ndarray:
    """The whole image, area-resized to THUMB x THUMB (what the runner's thumbnail feed gives every tile)."""
    return cv2.resize(img, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def chw(x: np.ndarray) -> torch.Tensor:
    x = x[..., None] if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


def equivalent_t_s(J: np.ndarray, S: np.ndarray, A) -> np.ndarray:
    """The streak transmission that reproduces additive streaks under this model's formation. In light rain
    (I = J + S) and in heavy rain (I = T (J + S) + (1 - T) A, with T_s T_v for T) both give the same
    T_s = (A - J - S) / (A - J), per channel, averaged. Where J + S >= A no transmission toward A can remove the streak
    (any T_s < 1 brightens the pixel further): the label is 1 there, do nothing. Clipped to the renderer's [0.05, 1]."""
    A = np.asarray(A, np.float32)
    num, den = A - J - S, A - J
    ok = (num > 0) & (S > 1e-4)
    t = np.where(ok, num / np.maximum(den, 1e-6), 1.0).mean(axis=2)
    return np.clip(t, 0.05, 1.0).astype(np.float32)


def make_batches(cfg: dict, split: str):
    """Endless batches from a pool of renderings: rendering costs about 40 ms a crop on this CPU, as much as a
    training step, so each step renders cfg["fresh"] new crops into the pool and samples the batch from the pool
    (random sub-crop and flip), every rendering being used about batch / fresh times."""
    from models.derain import data

    assert split == "train", "training draws TRAIN photos only"
    rng = np.random.default_rng(cfg.get("seed", 0) + 1)
    stream = data.train_samples(data.TRAIN_SEED + cfg.get("seed", 0))
    size, pool_n, fresh, bs = cfg.get("crop", 128), cfg.get("pool", 96), cfg.get("fresh", 2), cfg.get("batch", 8)

    def entry():
        fam, r, _ = next(stream)
        t_s = r["T_s"] if fam == "streak_vapor" else equivalent_t_s(r["J"], r["S"], r["A"])
        return {"I": r["I"], "J": r["J"], "T_s": t_s, "T_v": r["T_v"], "A": r["A"], "fam": fam,
                "thumb": thumbnail(r["I"])}

    pool = [entry() for _ in range(pool_n)]
    k = 0
    while True:
        for _ in range(fresh):
            pool[k % pool_n] = entry()
            k += 1
        items = [pool[i] for i in rng.integers(pool_n, size=bs)]
        b = {n: [] for n in ("image", "J", "T_s", "T_v", "thumb")}
        A, veiled = [], []
        for e in items:
            h, w = e["I"].shape[:2]
            y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
            flip = rng.random() < 0.5
            for n, src in (("image", "I"), ("J", "J"), ("T_s", "T_s"), ("T_v", "T_v")):
                c = e[src][y : y + size, x : x + size]
                b[n].append(chw(c[:, ::-1] if flip else c))
            b["thumb"].append(chw(e["thumb"][:, ::-1] if flip else e["thumb"]))
            A.append(torch.from_numpy(np.asarray(e["A"], np.float32)))
            veiled.append(float(e["fam"] != "light"))
        out = {n: torch.stack(v) for n, v in b.items()}
        out.update(A=torch.stack(A), veiled=torch.tensor(veiled))
        yield out


def training_step(model, batch, step: int, cfg: dict):
    dev = next(model.parameters()).device
    b = {k: v.to(dev) for k, v in batch.items()}
    j, t, t_s, t_v, a, t_v_coarse, veil = model(b["image"], b["thumb"])
    # L1 on the served output clamp(J, 0, 1): the unclamped inversion's error is divided by T, so a few pixels with a
    # small wrong T dominated the old loss (batch loss swinging 0.5-4); clamped, one pixel's J error is at most 1, and
    # clamp_back keeps a pixel that left [0, 1] learning its way back without pushing it further out.
    jc = clamp_back(j, 0.0, 1.0, True)
    l_j = (jc - b["J"]).abs().mean()
    l_v = (t_v - b["T_v"]).abs().mean()
    coarse_label = F.avg_pool2d(b["T_v"], 4, 4, ceil_mode=True, count_include_pad=False)
    l_vc = (t_v_coarse - coarse_label).abs().mean()
    l_s = (t_s - b["T_s"]).abs().mean()
    l_a = (a - b["A"]).abs().mean()
    l_g = F.binary_cross_entropy_with_logits(veil, b["veiled"])
    w = cfg.get("weights", {})
    loss = (l_j + w.get("T_s", 1.0) * l_s + w.get("T_v", 1.0) * (l_v + 0.5 * l_vc) + w.get("A", 1.0) * l_a
            + w.get("veil", 1.0) * l_g)
    mse = F.mse_loss(j.detach().clamp(0, 1), b["J"]).item()
    return loss, {"l_j": l_j.item(), "l_s": l_s.item(), "l_v": l_v.item(), "l_a": l_a.item(), "l_g": l_g.item(),
                  "psnr": -10 * math.log10(max(mse, 1e-10))}


class Serving(torch.nn.Module):
    """The served outputs: the derained tile in [0, 1], the transmission T = T_s T_v and its two factors (the maps
    a caller may ask for), and the photo's atmospheric light A."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image, thumb):
        j, t, t_s, t_v, a = self.model(image, thumb)[:5]
        return j.clamp(0.0, 1.0), t, t_s, t_v, a


OUTPUTS = ["derained", "transmission", "t_streak", "t_vapor", "atmospheric_light"]


def heldout_photo(index: int = 0) -> tuple[str, np.ndarray]:
    from models.derain import data

    name = data.photo_names("heldout")[index]
    return name, data.resize_long(data.read_rgb(data.photo_path(name)), data.EVAL_LONG_SIDE)


def parity_inputs():
    """An odd-sized tile (75 x 101) of a held-out photo under streak_vapor rain, with the whole rainy photo's
    thumbnail: the graph must accept any tile size, and tiles need the photo's thumbnail, not their own."""
    from models.derain.render import render

    name, clean = heldout_photo(0)
    rainy = render(clean, 7, "streak_vapor")["I"]
    top, left, h, w = 37, 120, 75, 101
    feeds = {"image": chw(rainy[top : top + h, left : left + w])[None], "thumb": chw(thumbnail(rainy))[None]}
    return feeds, {"source_photo": name, "family": "streak_vapor", "seed": 7, "tile": [top, left, h, w]}


def export_spec(cfg: dict) -> ExportSpec:
    unit = {"dtype": "float32", "range": [0, 1]}
    return ExportSpec(
        id=MODEL_ID,
        version="1.0.0",
        file=f"derain_streak_vapor/weights/{MODEL_ID}.onnx",
        example={"image": torch.rand(1, 3, 96, 128), "thumb": torch.rand(1, 3, THUMB, THUMB)},
        outputs=OUTPUTS,
        dynamic_axes=spatial_axes("image", "derained", "transmission", "t_streak", "t_vapor"),
        io={
            "image": {**unit, "note": "one tile, RGB (sRGB-encoded)"},
            "thumb": {**unit, "note": f"whole photo area-resized to {THUMB}x{THUMB}: A is estimated from it once per photo"},
            "derained": unit,
            "transmission": {**unit, "note": "T = T_s * T_v, the inversion's transmission"},
            "t_streak": {**unit, "note": "streak transmission T_s"},
            "t_vapor": {**unit, "note": "vapour transmission T_v"},
            "atmospheric_light": {**unit, "note": "A, RGB, the same for every tile of a photo"},
        },
        entry={
            "working_size": {"thumb": [THUMB, THUMB], "tile": "any (odd sizes too)"},
            "license": "Apache-2.0 (weights trained here on GPL-2+/CC-BY(-SA) Debian wallpaper photos; see CARD.md)",
            "card": "derain_streak_vapor/CARD.md",
        },
        fixture=parity_inputs,
    )


def export(model, out_dir: str | None, cfg: dict) -> dict:
    return export_model(Serving(model), export_spec(cfg), out_dir)


def load(ckpt: str) -> torch.nn.Module:
    ck = torch.load(ckpt, map_location="cpu")
    model = build(ck["cfg"])
    model.load_state_dict(ck["model"])
    return model.eval()


def method(model: torch.nn.Module):
    """HxWx3 float32 RGB in [0, 1] -> derained, one pass over the whole image (the image is its own only tile)."""

    def fn(img: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(chw(img)[None], chw(thumbnail(img))[None])[0]
        return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)

    return fn


def methods() -> dict:
    """Plugin for models/derain/evaluate.py (--plugin models.derain_streak_vapor.hooks:methods); the checkpoint is
    $STREAK_VAPOR_CKPT."""
    return {"streak-vapor": method(load(os.environ["STREAK_VAPOR_CKPT"]))}


def evaluate(cfg: dict, args) -> int:
    """--ckpt CKPT [--limit N] [--sets light,heavy,heldout] [--root DIR] [--out results.json] [--threads N]
    [--baselines input,...] [--baselines-json models/derain/results_baselines.json]:
    this model and models/derain's baselines on the same held-out pairs (models/derain/evaluate.py). Baselines named
    in --baselines are run here; the others' rows are taken from --baselines-json when it was measured on the same
    pairs (same count and the same input PSNR per set), so the classical methods are not rerun for every model."""
    import argparse

    from models.derain import data
    from models.derain import evaluate as ev
    from models.derain.baselines import METHODS

    ap = argparse.ArgumentParser(prog="evaluate --model derain_streak_vapor")
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
    fns["streak-vapor"] = method(model)
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
