"""Checkpoint choice on TRAIN photos only, on exactly streak-vapor's validation renders
(models/derain_streak_vapor/validate.py: 12 TRAIN photos at 640 px, seeds 90000+, the three training families
cycling), so the two models' validation rows are comparable. The held-out pairs are never used to pick a checkpoint.

    /usr/bin/python3 -m models.derain_unet.validate models/derain_unet/runs/main/snap-*.pt
"""

import json
import sys

import numpy as np
import torch

from models.derain_streak_vapor.validate import pairs

from .hooks import load, method


def main(argv=None) -> None:
    torch.set_num_threads(1)
    ckpts = argv or sys.argv[1:]
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
