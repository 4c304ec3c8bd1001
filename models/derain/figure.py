"""The README's picture of the renderer: one held-out photo under each family, and the label maps.

    /usr/bin/python3 -m models.derain.figure --photo palapeli_castle-maintenon.jpg --out models/derain/families.jpg
"""

import argparse

import cv2
import numpy as np

from . import data
from .render import FAMILIES, render, to_u8


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = to_u8(img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)).copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", default="palapeli_castle-maintenon.jpg", help="a held-out photo of models/data")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--long-side", type=int, default=480)
    ap.add_argument("--out", default="models/derain/families.jpg")
    a = ap.parse_args(argv)
    J = data.resize_long(data.read_rgb(data.photo_path(a.photo)), a.long_side)
    r = {f: render(J, a.seed, f) for f in FAMILIES}
    top = [label(J, "clean J")] + [label(r[f]["I"], f"{f}" + (" (held out)" if f == "screen" else "")) for f in FAMILIES]
    bottom = [
        label(r["heavy"]["depth"], "depth proxy"),
        label(np.clip(r["light"]["S"] * 2, 0, 1), "light: S x2"),
        label(r["streak_vapor"]["T_s"], "streak_vapor: T_s"),
        label(r["heavy"]["T"], "heavy: T"),
        label(r["heavy"]["mask"].astype(np.float32), "heavy: rain mask"),
    ]
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    assert cv2.imwrite(a.out, grid[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
