"""Held-out evaluation of the low-light model and every baseline on the same degraded pairs.

    /usr/bin/python3 -m models.lowlight.evaluate --ckpt models/lowlight/runs/main/last.pt \
        --zerodce models/lowlight/runs/zerodce/last.pt --out models/lowlight/results.json --figure models/lowlight/side_by_side.png

Baselines: the input itself; global gamma y = x**g (oracle g per image, and the single g that is best on
degraded *training* photos); CLAHE on the L channel of CIELAB (clip limit chosen on training photos);
the Zero-DCE++-style curve model trained on the same batches.
"""

import argparse
import json
import time

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from . import data
from .arch import THUMB, count_params
from .degrade import degrade
from .flops import flops_report
from .hooks import build

GAMMAS = np.round(np.arange(0.10, 1.501, 0.02), 2)
CLIPS = [1.0, 2.0, 3.0, 4.0, 6.0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(b, np.clip(a, 0, 1), data_range=1.0))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(b, np.clip(a, 0, 1).astype(np.float32), channel_axis=2, data_range=1.0))


def gamma(x: np.ndarray, g: float) -> np.ndarray:
    return np.power(np.clip(x, 0, 1), g)


def clahe(x: np.ndarray, clip: float) -> np.ndarray:
    u8 = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(u8, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(8, 8)).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


def load(ckpt: str) -> torch.nn.Module:
    ck = torch.load(ckpt, map_location="cpu")
    m = build(ck["cfg"])
    m.load_state_dict(ck["model"])
    return m.eval()


@torch.no_grad()
def run_model(m: torch.nn.Module, dark: np.ndarray) -> np.ndarray:
    h, w = dark.shape[:2]
    image = data.to_tensor(dark)[None]
    thumb = data.to_tensor(data.resize_area(dark, THUMB, THUMB))[None]
    roi = torch.tensor([[0.0, 0.0, h, w]])
    return m(image, thumb, roi)[0][0].clamp(0, 1).numpy().transpose(1, 2, 0)


def training_pairs(cfg: dict, n: int = 12) -> list[dict]:
    """Degraded training photos (never held-out) for choosing the global gamma and the CLAHE clip limit."""
    out = []
    for i, name in enumerate(data.photo_names("train")[:n]):
        img = data.load_rgb(name)
        h, w = img.shape[:2]
        s = cfg["eval_long_side"] / max(h, w)
        clean = data.resize_area(img, round(h * s), round(w * s)) if s < 1 else img
        out.append({"clean": clean, "dark": degrade(clean, np.random.default_rng(500 + i))})
    return out


def summarize(rows: list[dict], key: str) -> dict:
    p = [r[key]["psnr"] for r in rows]
    s = [r[key]["ssim"] for r in rows]
    return {"psnr": round(float(np.mean(p)), 3), "ssim": round(float(np.mean(s)), 4), "psnr_std": round(float(np.std(p)), 3)}


def figure(pair: dict, outs: dict, path: str, width: int = 256) -> None:
    cols = [pair["dark"], *outs.values(), pair["clean"]]
    labels = ["input", *outs.keys(), "ground truth"]
    h, w = pair["clean"].shape[:2]
    th = round(h * width / w)
    tiles = []
    for img, lab in zip(cols, labels):
        t = cv2.resize(np.clip(img, 0, 1), (width, th), interpolation=cv2.INTER_AREA)
        t = (t * 255).round().astype(np.uint8)[:, :, ::-1].copy()
        cv2.rectangle(t, (0, 0), (width, 18), (0, 0, 0), -1)
        cv2.putText(t, lab, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(t)
    cv2.imwrite(path, np.hstack(tiles), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def run(cfg: dict, args) -> dict:
    if isinstance(args, list):  # called from models/common/evaluate.py with the remaining argv
        args = parse(args)
    pairs = data.heldout_pairs(cfg)
    train = training_pairs(cfg)
    g_single = float(max(GAMMAS, key=lambda g: np.mean([psnr(gamma(p["dark"], g), p["clean"]) for p in train])))
    clip = float(max(CLIPS, key=lambda c: np.mean([psnr(clahe(p["dark"], c), p["clean"]) for p in train])))
    models = {"zero_dce_pp": load(args.zerodce)} if args.zerodce else {}
    models["ours_iagc"] = load(args.ckpt)
    rows, keep = [], None
    for i, p in enumerate(pairs):
        dark, clean = p["dark"], p["clean"]
        g_oracle = float(max(GAMMAS, key=lambda g: psnr(gamma(dark, g), clean)))
        outs = {
            "input": dark,
            f"gamma_single_{g_single}": gamma(dark, g_single),
            "gamma_oracle": gamma(dark, g_oracle),
            f"clahe_clip{clip:g}": clahe(dark, clip),
        }
        for k, m in models.items():
            outs[k] = run_model(m, dark)
        rows.append({"name": p["name"], "gamma_oracle_g": g_oracle, **{k: {"psnr": psnr(v, clean), "ssim": ssim(v, clean)} for k, v in outs.items()}})
        if i == args.figure_index:
            keep = (p, {k: v for k, v in outs.items() if k != "input"})
        print(json.dumps({k: (round(v["psnr"], 2) if isinstance(v, dict) else v) for k, v in rows[-1].items()}), flush=True)
    methods = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    ours = models["ours_iagc"]
    h, w = pairs[0]["clean"].shape[:2]
    t0 = time.time()
    for p in pairs[:6]:
        run_model(ours, p["dark"])
    result = {
        "heldout_pairs": len(pairs),
        "heldout_photos": [n for n, _ in data.eval_photos()],
        "eval_long_side": cfg["eval_long_side"],
        "gamma_single": g_single,
        "clahe_clip": clip,
        "summary": {k: summarize(rows, k) for k in methods},
        "params": {k: count_params(m) for k, m in models.items()},
        "flops": {k: flops_report(m) for k, m in models.items()},
        "pytorch_cpu_s_per_eval_image": round((time.time() - t0) / 6, 3),
        "rows": rows,
    }
    if args.figure and keep:
        figure(keep[0], keep[1], args.figure)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="models/lowlight/config.json")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--zerodce")
    ap.add_argument("--out")
    ap.add_argument("--figure")
    ap.add_argument("--figure-index", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args(argv)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    res = run(json.load(open(args.config)), args)
    print(json.dumps({k: res[k] for k in ("summary", "params", "flops", "gamma_single", "clahe_clip")}, indent=1))


if __name__ == "__main__":
    main()
