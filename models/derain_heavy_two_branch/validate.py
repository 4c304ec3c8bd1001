"""Checkpoint choice on TRAIN photos only, as models/derain_streak_vapor/validate.py: full 640 px renders (seeds
90000+, outside the training stream's draws) of the train photos, one per photo, the three training families
cycling; PSNR per family per checkpoint at d = 1, the physics inversion alone (J0), and the false-veil check on
light rain: the veil probability and the mean opacity 1 - T the model gives each light photo (T must stay 1 there).
The held-out pairs are never used to pick a checkpoint or a threshold.

    /usr/bin/python3 -m models.derain_heavy_two_branch.validate [--n 24] models/derain_heavy_two_branch/runs/main/snap-*.pt
"""

import argparse
import json

import numpy as np
import torch

from models.derain import data
from models.derain.render import TRAIN_FAMILIES, render

from .hooks import chw, load, thumbnail

SEED = 90_000


def pairs(n: int = 24):
    names = data.photo_names("train")[:n]
    for i, name in enumerate(names):
        clean = data.resize_long(data.read_rgb(data.photo_path(name)), data.EVAL_LONG_SIDE)
        fam = TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]
        yield name, fam, render(clean, SEED + i, fam)["I"], clean


def psnr(a, b) -> float:
    return -10 * float(np.log10(max(float(np.mean((np.clip(a, 0, 1) - b) ** 2)), 1e-12)))


def run(model, rainy: np.ndarray, d: float = 1.0) -> dict:
    with torch.no_grad():
        o = model(chw(rainy)[None], chw(thumbnail(rainy))[None], torch.tensor([d]))
    return {"J": o["J"][0].numpy().transpose(1, 2, 0), "J0": o["J0"][0].numpy().transpose(1, 2, 0),
            "T": o["T"][0, 0].numpy(), "veil_p": float(torch.sigmoid(o["veil"])[0])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--per-photo", action="store_true")
    ap.add_argument("ckpts", nargs="+")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    ps = list(pairs(a.n))
    by = {}
    for _, fam, rainy, clean in ps:
        by.setdefault(fam, []).append(psnr(rainy, clean))
    row = {f: round(float(np.mean(v)), 2) for f, v in by.items()}
    print(json.dumps({"ckpt": "input", **row, "mean": round(float(np.mean(list(row.values()))), 2)}), flush=True)
    for ck in a.ckpts:
        model = load(ck)
        by, by0, veil_p, opac = {}, {}, [], []
        for name, fam, rainy, clean in ps:
            o = run(model, rainy)
            by.setdefault(fam, []).append(psnr(o["J"], clean))
            by0.setdefault(fam, []).append(psnr(o["J0"], clean))
            if fam == "light":
                veil_p.append(o["veil_p"])
                opac.append(float(np.mean(1 - o["T"])))
            if a.per_photo:
                print(json.dumps({"photo": name, "fam": fam, "psnr_in": round(psnr(rainy, clean), 2),
                                  "psnr": round(by[fam][-1], 2), "veil_p": round(o["veil_p"], 3),
                                  "T_mean": round(float(o["T"].mean()), 4)}))
        row = {f: round(float(np.mean(v)), 2) for f, v in by.items()}
        row["mean"] = round(float(np.mean(list(row.values()))), 2)
        row["J0"] = {f: round(float(np.mean(v)), 2) for f, v in by0.items()}
        row["light_veil_p_max"] = round(max(veil_p), 3)
        row["light_opacity_mean_max"] = round(max(opac), 4)
        print(json.dumps({"ckpt": ck, **row}), flush=True)


if __name__ == "__main__":
    main()
