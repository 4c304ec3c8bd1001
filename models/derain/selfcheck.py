"""Checks renderer outputs written by `python3 -m models.derain.render` and prints one JSON report (numpy only).

    /usr/bin/python3 -m models.derain.selfcheck DIR [DIR ...]            # each DIR: labels.npz + params.json
    /usr/bin/python3 -m models.derain.selfcheck --same DIR_A DIR_B       # are two renderings identical?

For every DIR: the largest deviation of the formed image from its family's equation evaluated on the saved labels,
and of the rainy image from the clipped formed image (0 when noise and JPEG were off), the transmission range,
whether the mask is exactly "max over channels of S > MASK_THRESHOLD", the rain fraction, the mean change, the
wind angle and whether it lies in the training range.
"""

import argparse
import json
import os

import numpy as np

from .render import HELDOUT_FAMILY, LAYER_JITTER, MASK_THRESHOLD, WIND_TRAIN

KEYS = ("I", "J", "formed", "S", "T_s", "T_v", "T", "A", "mask", "depth")


def load(d: str) -> tuple[dict, dict]:
    with np.load(os.path.join(d, "labels.npz")) as z:
        arrays = {k: z[k] for k in KEYS}
    with open(os.path.join(d, "params.json")) as f:
        return arrays, json.load(f)


def equation(z: dict, family: str) -> np.ndarray:
    J, S, A = z["J"].astype(np.float64), z["S"].astype(np.float64), z["A"].astype(np.float64)
    if family == "light":
        return J + S
    if family == "streak_vapor":
        t = (z["T_s"].astype(np.float64) * z["T_v"])[..., None]
        return J * t + (1 - t) * A
    t = z["T"].astype(np.float64)[..., None]
    inner = J + S if family == "heavy" else J + S - J * S
    return t * inner + (1 - t) * A


def check(d: str) -> dict:
    z, p = load(d)
    fam = p["family"]
    T_used = z["T_s"].astype(np.float64) * z["T_v"] if fam == "streak_vapor" else z["T"]
    angles = [layer["angle"] for layer in p["layers"]]
    return {
        "dir": d,
        "family": fam,
        "formation_err": float(np.abs(equation(z, fam) - z["formed"]).max()),
        "T_matches_family": bool(np.allclose(T_used, z["T"], atol=1e-6)),
        "camera_err": float(np.abs(np.clip(z["formed"], 0, 1) - z["I"]).max()),
        "T_min": float(min(z["T"].min(), z["T_s"].min(), z["T_v"].min())),
        "T_max": float(max(z["T"].max(), z["T_s"].max(), z["T_v"].max())),
        "A": z["A"].tolist(),
        "mask_exact": bool(np.array_equal(z["mask"], z["S"].max(axis=2) > MASK_THRESHOLD)),
        "rain_fraction": float(z["mask"].mean()),
        "S_max": float(z["S"].max()),
        "mean_change": float(np.abs(z["I"] - z["J"]).mean()),
        "wind": p["wind"],
        "max_layer_tilt": float(max(abs(a) for a in angles)),
        "in_training_wind_range": bool(abs(p["wind"]) <= WIND_TRAIN and max(abs(a) for a in angles) <= WIND_TRAIN + LAYER_JITTER),
        "held_out_family": fam == HELDOUT_FAMILY,
        "shape": list(z["I"].shape),
    }


def same(a: str, b: str) -> dict:
    za, pa = load(a)
    zb, pb = load(b)
    diff = {k: float(np.abs(za[k].astype(np.float64) - zb[k]).max()) for k in KEYS}
    return {"identical": all(v == 0 for v in diff.values()) and pa == pb, "max_diff": diff}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--same", nargs=2, metavar=("A", "B"))
    ap.add_argument("dirs", nargs="*")
    a = ap.parse_args(argv)
    out = {"checks": [check(d) for d in a.dirs]}
    if a.same:
        out["same"] = same(*a.same)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
