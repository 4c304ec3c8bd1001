"""Model-zoo hooks for the two-branch heavy-rain derainer (models/derain_heavy_two_branch/arch.py).

Training data: rain rendered on the fly by models/derain/render.py onto TRAIN photos only (the three training
families cycling; the held-out family and the held-out photos never reach training). Unlike streak-vapor, which
rendered 128-256 px crops (models.derain.data.train_samples) and gave each crop the thumbnail of the crop itself,
every rendering here is a WHOLE train photo at a 480-800 px long side (data.TRAIN_LONG_SIDE), and the training crops
are cut from it afterwards with the whole rendering's thumbnail: the thumbnail that decides A and the veil then
looks like the one the runner gives a served photo (a whole photo area-resized to 128 px), not like an upsampled
crop. (streak-vapor's photo-level veil classifier, trained on crop thumbnails, gave 22 of 109 held-out light-rain
photos a false veil.)

Labels, in the formation model I = T (J + S) + (1 - T) A, per family:
- light (I = J + S): T = 1, S = the renderer's S;
- heavy (I = T (J + S) + (1 - T) A, T = T_v): the renderer's T and S;
- streak_vapor (I = J T_s T_v + (1 - T_s T_v) A): T = T_v, and the streak layer that reproduces its streaks under
  this model, S = (1 - T_s) (A - J) (J T_s + (1 - T_s) A = J + S), clipped at 0 (a streak over a background
  brighter than A would darken it; S >= 0 here);
- the rain mask: the renderer's (max_c S > 0.02); veiled = the family is not light; A on the veiled families only
  (a light photo's A is the streaks' tint and is never inverted).
The target of the refined output for a dehaze degree d is J_d = (T / T_d) J + (1 - T / T_d) A, T_d = 1 - d (1 - T).
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
from models.derain_streak_vapor.arch import clamp_back

from .arch import OPACITY_MAX, THUMB, HeavyTwoBranch, count_macs, count_params

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_ID = "derain-heavy-two-branch"


def build(cfg: dict) -> torch.nn.Module:
    return HeavyTwoBranch(tuple(cfg.get("streak", (16, 24, 48, 64))), tuple(cfg.get("loc", (12, 24))),
                          cfg.get("trans", 24), cfg.get("refine", 16))


def thumbnail(img: np.ndarray) -> np.ndarray:
    """The whole image, area-resized to THUMB x THUMB (what the runner's thumbnail feed gives every tile)."""
    return cv2.resize(img, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def chw(x: np.ndarray) -> torch.Tensor:
    x = x[..., None] if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


def labels(fam: str, r: dict) -> dict:
    """(T, S) in this model's formation, from a rendering (module doc)."""
    A = np.asarray(r["A"], np.float32)
    if fam == "light":
        T = np.ones(r["J"].shape[:2], np.float32)
        S = r["S"]
    elif fam == "heavy":
        T, S = r["T"], r["S"]
    elif fam == "streak_vapor":
        T = r["T_v"]
        S = np.maximum((1.0 - r["T_s"])[..., None] * (A - r["J"]), 0.0)
    else:
        raise ValueError(f"{fam} is not a training family")
    return {"T": T.astype(np.float32), "S": np.asarray(S, np.float32)}


def whole_photo_samples(seed: int):
    """Endless (family, rendering) of whole TRAIN photos at a random 480-800 px long side, the training families
    cycling, deterministic from seed (the same photos and families as data.train_samples; only no crop before the
    rendering)."""
    from models.derain import data
    from models.derain.render import HELDOUT_FAMILY, TRAIN_FAMILIES, render

    assert HELDOUT_FAMILY not in TRAIN_FAMILIES
    names = data.photo_names("train")
    photos = [data.resize_long(data.read_rgb(data.photo_path(n)), data.TRAIN_LONG_SIDE[1]) for n in names]
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        fam = TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]
        img = photos[int(rng.integers(len(photos)))]
        img = data.resize_long(img, int(rng.integers(data.TRAIN_LONG_SIDE[0], data.TRAIN_LONG_SIDE[1] + 1)))
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
        yield fam, render(img, int(rng.integers(2**31)), fam)
        i += 1


def make_batches(cfg: dict, split: str):
    """Endless batches from a pool of crops: each step renders cfg["fresh"] whole photos (0.2-0.35 s each here),
    cuts cfg["crops_per_render"] crops of crop + 32 px from each into the pool, and samples the batch from the pool
    (a random crop-sized sub-crop of one)."""
    from models.derain import data  # noqa: F401  (TRAIN photos only, through whole_photo_samples)

    assert split == "train", "training draws TRAIN photos only"
    rng = np.random.default_rng(cfg.get("seed", 0) + 1)
    stream = whole_photo_samples(14 + cfg.get("seed", 0))
    size, pool_n, bs = cfg.get("crop", 128), cfg.get("pool", 96), cfg.get("batch", 8)
    fresh, per = cfg.get("fresh", 1), cfg.get("crops_per_render", 4)
    big = size + 32

    def entries():
        fam, r = next(stream)
        lab = labels(fam, r)
        th = thumbnail(r["I"])
        h, w = r["I"].shape[:2]
        out = []
        for _ in range(per):
            y, x = int(rng.integers(max(1, h - big + 1))), int(rng.integers(max(1, w - big + 1)))
            sl = (slice(y, y + big), slice(x, x + big))
            out.append({"I": r["I"][sl], "J": r["J"][sl], "S": lab["S"][sl], "T": lab["T"][sl],
                        "mask": r["mask"][sl].astype(np.float32), "A": np.asarray(r["A"], np.float32), "fam": fam,
                        "thumb": th})
        return out

    pool = []
    while len(pool) < pool_n:
        pool.extend(entries())
    pool = pool[:pool_n]
    k = 0
    while True:
        for _ in range(fresh):
            for e in entries():
                pool[k % pool_n] = e
                k += 1
        items = [pool[i] for i in rng.integers(pool_n, size=bs)]
        b = {n: [] for n in ("image", "J", "S", "T", "mask", "thumb")}
        A, veiled = [], []
        for e in items:
            hh, ww = e["I"].shape[:2]
            y, x = int(rng.integers(hh - size + 1)), int(rng.integers(ww - size + 1))
            for n, src in (("image", "I"), ("J", "J"), ("S", "S"), ("T", "T"), ("mask", "mask")):
                b[n].append(chw(e[src][y : y + size, x : x + size]))
            b["thumb"].append(chw(e["thumb"]))
            A.append(torch.from_numpy(e["A"]))
            veiled.append(float(e["fam"] != "light"))
        out = {n: torch.stack(v) for n, v in b.items()}
        out.update(A=torch.stack(A), veiled=torch.tensor(veiled))
        yield out


def dehaze_target(J: torch.Tensor, T: torch.Tensor, A: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """J_d = (T / T_d) J + (1 - T / T_d) A, T_d = 1 - d (1 - T): the streak-free image with the veil lifted by d."""
    t_d = 1.0 - d.view(-1, 1, 1, 1) * (1.0 - T)
    r = T / t_d
    return r * J + (1.0 - r) * A[:, :, None, None]


def training_step(model, batch, step: int, cfg: dict):
    dev = next(model.parameters()).device
    b = {k: v.to(dev) for k, v in batch.items()}
    bs = b["image"].shape[0]
    # Half the batch at the default d = 1 (what a caller gets without asking), the rest uniform in [0, 1].
    d = torch.where(torch.rand(bs, device=dev) < cfg.get("d_one", 0.5), torch.ones(bs, device=dev),
                    torch.rand(bs, device=dev))
    o = model(b["image"], b["thumb"], d)
    target = dehaze_target(b["J"], b["T"], b["A"], d)
    # Bounded J losses (streak-vapor's lesson 1): L1 on clamp(J, 0, 1), clamp_back keeping a pixel that left [0, 1]
    # learning its way back. J0 (the physics inversion) is supervised too, so that the branches carry the physics
    # and the refinement only corrects it.
    l_j = (clamp_back(o["J"], 0.0, 1.0, True) - target).abs().mean()
    l_j0 = (clamp_back(o["J0"], 0.0, 1.0, True) - target).abs().mean()
    # The mask weights the streak loss: a rain pixel's streak error counts 5x (rain covers 2-30 % of a photo). The
    # ungated streak output is supervised as well, so the streak branch learns while the mask gate is still closed.
    w = 1.0 + 4.0 * b["mask"]
    l_s = (w * (o["S"] - b["S"]).abs()).mean() + 0.5 * (w * (clamp_back(o["S_raw"], 0.0, 1.0, True) - b["S"]).abs()).mean()
    l_m = F.binary_cross_entropy_with_logits(o["mask_logit"], b["mask"], pos_weight=torch.tensor(cfg.get("mask_pos", 3.0), device=dev))
    # Transmission: the ungated per-pixel estimate against T on every family (T = 1 on light rain, so the dense map
    # learns "no veil" too, not only the photo-level gate), at full and 1/4 resolution, and the gated T.
    t_raw = 1.0 - clamp_back(o["opacity"], 0.0, OPACITY_MAX, True)
    t_rc = 1.0 - clamp_back(o["opacity_coarse"], 0.0, OPACITY_MAX, True)
    coarse_label = F.avg_pool2d(b["T"], 4, 4, ceil_mode=True, count_include_pad=False)
    l_t = (t_raw - b["T"]).abs().mean() + 0.5 * (t_rc - coarse_label).abs().mean() + (o["T"] - b["T"]).abs().mean()
    veiled = b["veiled"]
    l_a = ((o["A"] - b["A"]).abs().mean(dim=1) * veiled).sum() / veiled.sum().clamp(min=1.0)
    l_v = F.binary_cross_entropy_with_logits(o["veil"], veiled)
    wt = cfg.get("weights", {})
    loss = (l_j + wt.get("J0", 0.5) * l_j0 + wt.get("S", 2.0) * l_s + wt.get("mask", 0.5) * l_m
            + wt.get("T", 2.0) * l_t + wt.get("A", 1.0) * l_a + wt.get("veil", 1.0) * l_v)
    mse = F.mse_loss(o["J"].detach().clamp(0, 1), target).item()
    return loss, {"l_j": l_j.item(), "l_j0": l_j0.item(), "l_s": l_s.item(), "l_m": l_m.item(), "l_t": l_t.item(),
                  "l_a": l_a.item(), "l_v": l_v.item(), "psnr": -10 * math.log10(max(mse, 1e-10))}


class Serving(torch.nn.Module):
    """The served outputs: the derained tile for the dehaze feed, the transmission T_d that was inverted, the rain
    mask (the localisation subnetwork's probability), and the photo's atmospheric light A."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image, thumb, dehaze):
        o = self.model(image, thumb, dehaze)
        return o["J"].clamp(0.0, 1.0), o["T_d"], torch.sigmoid(o["mask_logit"]), o["A"]


OUTPUTS = ["derained", "transmission", "rain_mask", "atmospheric_light"]


def heldout_photo(index: int = 0) -> tuple[str, np.ndarray]:
    from models.derain import data

    name = data.photo_names("heldout")[index]
    return name, data.resize_long(data.read_rgb(data.photo_path(name)), data.EVAL_LONG_SIDE)


def parity_inputs():
    """An odd-sized tile (75 x 101) of a held-out photo under heavy rain, with the whole rainy photo's thumbnail and
    a partial dehaze (0.6): the graph must accept any tile size and use the feed."""
    from models.derain.render import render

    name, clean = heldout_photo(0)
    rainy = render(clean, 7, "heavy")["I"]
    top, left, h, w = 37, 120, 75, 101
    feeds = {"image": chw(rainy[top : top + h, left : left + w])[None], "thumb": chw(thumbnail(rainy))[None],
             "dehaze": torch.tensor([0.6])}
    return feeds, {"source_photo": name, "family": "heavy", "seed": 7, "tile": [top, left, h, w]}


def export_spec(cfg: dict) -> ExportSpec:
    unit = {"dtype": "float32", "range": [0, 1]}
    return ExportSpec(
        id=MODEL_ID,
        version="1.0.0",
        file=f"derain_heavy_two_branch/weights/{MODEL_ID}.onnx",
        example={"image": torch.rand(1, 3, 96, 128), "thumb": torch.rand(1, 3, THUMB, THUMB), "dehaze": torch.ones(1)},
        outputs=OUTPUTS,
        dynamic_axes=spatial_axes("image", "derained", "transmission", "rain_mask"),
        io={
            "image": {**unit, "note": "one tile, RGB (sRGB-encoded)"},
            "thumb": {**unit, "note": f"whole photo area-resized to {THUMB}x{THUMB}: A and the veil gate come from it once per photo"},
            "dehaze": {**unit, "note": "haze-removal degree d: 0 keeps the veil (streaks removed), 1 removes it"},
            "derained": unit,
            "transmission": {**unit, "note": "T_d = 1 - d (1 - T), the transmission the inversion used"},
            "rain_mask": {**unit, "note": "rain-localisation probability (1 = streak)"},
            "atmospheric_light": {**unit, "note": "A, RGB, the same for every tile of a photo"},
        },
        entry={
            "working_size": {"thumb": [THUMB, THUMB], "tile": "any (odd sizes too)"},
            "license": "Apache-2.0 (weights trained here on GPL-2+/CC-BY(-SA) Debian wallpaper photos; see CARD.md)",
            "card": "derain_heavy_two_branch/CARD.md",
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


def method(model: torch.nn.Module, dehaze: float = 1.0, key: str = "J"):
    """HxWx3 float32 RGB in [0, 1] -> derained, one pass over the whole image (the image is its own only tile)."""

    def fn(img: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(chw(img)[None], chw(thumbnail(img))[None], torch.tensor([float(dehaze)]))[key]
        return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)

    return fn


def methods() -> dict:
    """Plugin for models/derain/evaluate.py (--plugin models.derain_heavy_two_branch.hooks:methods); the checkpoint
    is $HEAVY_TWO_BRANCH_CKPT."""
    return {"heavy-two-branch": method(load(os.environ["HEAVY_TWO_BRANCH_CKPT"]))}


def evaluate(cfg: dict, args) -> int:
    """--ckpt CKPT [--limit N] [--sets light,heavy,heldout] [--root DIR] [--out results.json] [--threads N]
    [--baselines input,...] [--baselines-json models/derain/results_baselines.json] [--dehaze 1[,0,0.5]]:
    this model and models/derain's baselines on the same held-out pairs (models/derain/evaluate.py), as
    streak-vapor's hook. --dehaze lists the d values to run (rows "heavy-two-branch" for d = 1, "heavy-two-branch
    d=<d>" for the others); --j0 adds the physics inversion without the refinement as a row."""
    import argparse

    from models.derain import data
    from models.derain import evaluate as ev
    from models.derain.baselines import METHODS

    ap = argparse.ArgumentParser(prog="evaluate --model derain_heavy_two_branch")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--sets", default=",".join(data.EVAL_SETS))
    ap.add_argument("--baselines", default="input")
    ap.add_argument("--baselines-json", default=os.path.join(os.path.dirname(HERE), "derain", "results_baselines.json"))
    ap.add_argument("--root", default=os.path.join(data.DATA, "eval"),
                    help="evaluation pairs written by models.derain.prepare_data (same seeds wherever they are)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dehaze", default="1")
    ap.add_argument("--j0", action="store_true")
    a = ap.parse_args(args)
    torch.set_num_threads(a.threads)
    model = load(a.ckpt)
    fns = {m: METHODS[m] for m in a.baselines.split(",") if m}
    for d in (float(x) for x in a.dehaze.split(",")):
        fns["heavy-two-branch" if d == 1 else f"heavy-two-branch d={d:g}"] = method(model, d)
    if a.j0:
        fns["heavy-two-branch J0 (no refinement)"] = method(model, 1.0, "J0")
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
