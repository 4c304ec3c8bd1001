"""Builds the derain data under models/derain/data/ (git-ignored), deterministically from the seeds in data.py.

train/<family>/<n>.npz  crops (128-256 px) of TRAIN-split photos, families light, streak_vapor and heavy
                        (I and J as uint8; S, T_s, T_v, T as float16; A; mask), train/index.json
eval/clean/<photo>.png  each HELD-OUT photo at a 640 px long side (the ground truth J)
eval/<set>/<photo>.png  its rainy version per set: light, heavy (+ veil), heldout (the screen family)
eval/<set>/<photo>.npz  that rendering's labels; eval/index.json lists every pair with its seed and params

    /usr/bin/python3 -m models.derain.prepare_data [--train-per-family 300] [--eval-limit N] [--skip-train]

The photos come from models/data/ (`/usr/bin/python3 models/data/build_photos.py` if missing).
"""

import argparse
import json
import os
import time

import numpy as np

from . import data
from .render import HELDOUT_FAMILY, TRAIN_FAMILIES, render, to_u8, write_png


def check_split() -> None:
    """Held-out photos must never reach training: disjoint by file name and by content hash."""
    entries = data.split_entries()
    train = [e for e in entries if e["split"] == "train"]
    held = [e for e in entries if e["split"] == "heldout"]
    assert not {e["file"] for e in train} & {e["file"] for e in held}
    assert not {e["sha256"] for e in train} & {e["sha256"] for e in held}, "a held-out photo is also in train"


def labels(r: dict) -> dict:
    return {"S": r["S"].astype(np.float16), "T_s": r["T_s"].astype(np.float16), "T_v": r["T_v"].astype(np.float16),
            "T": r["T"].astype(np.float16), "A": r["A"], "mask": r["mask"], "depth": r["depth"].astype(np.float16)}


def summary(p: dict) -> dict:
    return {"wind": round(p["wind"], 3), "layers": len(p["layers"]), "beta": round(p["beta"], 4),
            "A": [round(a, 4) for a in p["A"]], "jpeg_q": p["jpeg_q"]}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(max(float(np.mean((a - b) ** 2)), 1e-12)))


def build_train(out: str, per_family: int, seed: int) -> None:
    entries = []
    counts = {f: 0 for f in TRAIN_FAMILIES}
    t = time.time()
    for fam, r, info in data.train_samples(seed):
        if counts[fam] >= per_family:
            if all(c >= per_family for c in counts.values()):
                break
            continue
        assert fam != HELDOUT_FAMILY and info["photo"] in TRAIN_NAMES
        d = os.path.join(out, "train", fam)
        os.makedirs(d, exist_ok=True)
        name = f"{counts[fam]:05d}.npz"
        np.savez_compressed(os.path.join(d, name), I=to_u8(r["I"]), J=to_u8(r["J"]), **labels(r))
        entries.append({"file": f"{fam}/{name}", "family": fam, **info, **summary(r["params"])})
        counts[fam] += 1
    with open(os.path.join(out, "train", "index.json"), "w") as f:
        json.dump({"seed": seed, "families": list(TRAIN_FAMILIES), "crops": entries}, f, indent=0)
    print(f"train: {len(entries)} crops from {len(TRAIN_NAMES)} train photos in {time.time() - t:.0f} s")


def build_eval(out: str, limit: int | None) -> None:
    root = os.path.join(out, "eval")
    spec = data.eval_pairs_spec()
    if limit:
        keep = set(data.photo_names("heldout")[:limit])
        spec = [s for s in spec if s["photo"] in keep]
    spec.sort(key=lambda s: (s["photo"], s["set"]))  # each photo decoded once
    clean_cache: dict[str, np.ndarray] = {}
    pairs = []
    t = time.time()
    for s in spec:
        assert s["photo"] not in TRAIN_NAMES
        if s["photo"] not in clean_cache:
            clean_cache = {s["photo"]: data.resize_long(data.read_rgb(data.photo_path(s["photo"])), data.EVAL_LONG_SIDE)}
            os.makedirs(os.path.join(root, "clean"), exist_ok=True)
            write_png(os.path.join(root, "clean", s["stem"] + ".png"), clean_cache[s["photo"]])
        J = clean_cache[s["photo"]]
        r = render(J, s["seed"], s["family"])
        os.makedirs(os.path.join(root, s["set"]), exist_ok=True)
        write_png(os.path.join(root, s["set"], s["stem"] + ".png"), r["I"])
        np.savez_compressed(os.path.join(root, s["set"], s["stem"] + ".npz"), **labels(r))
        pairs.append({**s, "rainy": f"{s['set']}/{s['stem']}.png", "clean": f"clean/{s['stem']}.png",
                      "labels": f"{s['set']}/{s['stem']}.npz", "size": list(J.shape[:2]),
                      "psnr_input": round(psnr(to_u8(r["I"]) / 255.0, J), 3), **summary(r["params"])})
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"long_side": data.EVAL_LONG_SIDE, "sets": {k: list(v) for k, v in data.EVAL_SETS.items()},
                   "pairs": pairs}, f, indent=0)
    for name in data.EVAL_SETS:
        v = [p["psnr_input"] for p in pairs if p["set"] == name]
        if v:
            print(f"eval {name}: {len(v)} pairs, input PSNR {np.mean(v):.2f} dB")
    print(f"eval: {len(pairs)} pairs in {time.time() - t:.0f} s")


TRAIN_NAMES = set(data.photo_names("train"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=data.DATA)
    ap.add_argument("--train-per-family", type=int, default=300)
    ap.add_argument("--seed", type=int, default=data.TRAIN_SEED)
    ap.add_argument("--eval-limit", type=int, default=0, help="only the first N held-out photos (a quick run)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-eval", action="store_true")
    a = ap.parse_args(argv)
    check_split()
    if not a.skip_train:
        build_train(a.out, a.train_per_family, a.seed)
    if not a.skip_eval:
        build_eval(a.out, a.eval_limit or None)


if __name__ == "__main__":
    main()
