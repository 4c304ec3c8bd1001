"""Checkpoint choice on TRAIN photos only: full 640 px renders (seeds outside the training stream's draws) of the
train split, one per photo, the three training families cycling; PSNR per family per checkpoint. The held-out pairs
are never used to pick a checkpoint.

    /usr/bin/python3 -m models.derain_streak_vapor.validate models/derain_streak_vapor/runs/main/snap-*.pt
"""

import json
import sys

import numpy as np
import torch

from models.derain import data
from models.derain.render import TRAIN_FAMILIES, render

from .hooks import load, method

SEED = 90_000


def pairs(n: int = 12):
    names = data.photo_names("train")[:n]
    for i, name in enumerate(names):
        clean = data.resize_long(data.read_rgb(data.photo_path(name)), data.EVAL_LONG_SIDE)
        fam = TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]
        yield fam, render(clean, SEED + i, fam)["I"], clean


def main(argv=None) -> None:
    torch.set_num_threads(1)
    ckpts = (argv or sys.argv[1:])
    ps = list(pairs())
    for ck in ["input", *ckpts]:
        fn = (lambda x: x) if ck == "input" else method(load(ck))
        by = {}
        for fam, rainy, clean in ps:
            out = np.clip(fn(rainy), 0, 1)
            by.setdefault(fam, []).append(-10 * np.log10(max(float(np.mean((out - clean) ** 2)), 1e-12)))
        row = {f: round(float(np.mean(v)), 2) for f, v in by.items()}
        row["mean"] = round(float(np.mean(list(row.values()))), 2)
        print(json.dumps({"ckpt": ck, **row}), flush=True)


if __name__ == "__main__":
    main()
