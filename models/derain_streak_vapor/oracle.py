"""What the inversion can give at best, per floor on T: the renderer's own T and A (the labels) inverted as the
model inverts, J = (I - (1 - T) A) / max(T, floor), on validate.py's renders of TRAIN photos. It chose T_MIN: a floor
trades the pixels whose T is below it (left partly veiled) against noise and JPEG amplified by 1 / T. For the
additive families (light, heavy) it also inverts with the T_s label that hooks.equivalent_t_s gives them.

    /usr/bin/python3 -m models.derain_streak_vapor.oracle
"""

import json

import numpy as np

from models.derain import data
from models.derain.render import TRAIN_FAMILIES, render

from .hooks import equivalent_t_s
from .validate import SEED


def main() -> None:
    floors = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    by: dict = {}
    below: dict = {}
    eq: dict = {}
    for i, name in enumerate(data.photo_names("train")[:12]):
        clean = data.resize_long(data.read_rgb(data.photo_path(name)), data.EVAL_LONG_SIDE)
        fam = TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]
        r = render(clean, SEED + i, fam)
        t, A = r["T"][..., None], r["A"]
        for f in floors:
            j = np.clip((r["I"] - (1 - t) * A) / np.maximum(t, f), 0, 1)
            mse = float(np.mean((j - clean) ** 2))
            by.setdefault(fam, {}).setdefault(f, []).append(-10 * np.log10(max(mse, 1e-12)))
        below.setdefault(fam, []).append({f: float(np.mean(r["T"] < f)) for f in floors})
        if fam != "streak_vapor":
            te = (equivalent_t_s(r["J"], r["S"], A) * r["T_v"])[..., None]
            j = np.clip((r["I"] - (1 - te) * A) / np.maximum(te, 0.1), 0, 1)
            eq.setdefault(fam, []).append(-10 * np.log10(max(float(np.mean((j - clean) ** 2)), 1e-12)))
    for fam, row in by.items():
        out = {"family": fam, **{f"floor {f}": round(float(np.mean(v)), 2) for f, v in row.items()}}
        out["share of pixels below"] = {f: round(float(np.mean([b[f] for b in below[fam]])), 4) for f in floors}
        if fam in eq:
            out["equivalent T_s x T_v, floor 0.1"] = round(float(np.mean(eq[fam])), 2)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
