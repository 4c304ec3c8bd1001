"""Photo loading and training batches (clean region -> degraded region, thumbnail, tile crop, roi)."""

import json
import os
import queue
import threading
from typing import Iterator

import cv2
import numpy as np
import torch

from .arch import THUMB
from .degrade import degrade

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "data", "photos")


def photo_names(split: str) -> list[str]:
    with open(os.path.join(HERE, "splits.json")) as f:
        entries = json.load(f)["photos"]
    return sorted(e["file"] for e in entries if e["split"] == split)


def load_rgb(name: str) -> np.ndarray:
    path = os.path.join(PHOTOS, name)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path} missing: run /usr/bin/python3 models/lowlight/prepare_data.py")
    return img[:, :, ::-1].astype(np.float32) / 255.0


def resize_area(img: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def pyramid(img: np.ndarray, cfg: dict, r: int) -> list[np.ndarray]:
    """A few fixed scales per photo, computed once (per-sample resizing of 1024 px photos dominated batch time)."""
    h, w = img.shape[:2]
    out = []
    for s in np.geomspace(cfg["scale_range"][0], cfg["scale_range"][1], 4):
        s = max(float(s), r / min(h, w))
        out.append(resize_area(img, max(r, round(h * s)), max(r, round(w * s))))
    return out


def sample(photos: list[list[np.ndarray]], cfg: dict, rng: np.random.Generator) -> dict:
    scales = photos[int(rng.integers(len(photos)))]
    img = scales[int(rng.integers(len(scales)))]
    r, t = cfg["region"], cfg["tile"]
    y, x = int(rng.integers(img.shape[0] - r + 1)), int(rng.integers(img.shape[1] - r + 1))
    clean = img[y : y + r, x : x + r]
    if rng.random() < 0.5:
        clean = clean[:, ::-1]
    dark = degrade(np.ascontiguousarray(clean), rng)
    ty, tx = int(rng.integers(r - t + 1)), int(rng.integers(r - t + 1))
    return {
        "image": to_tensor(dark[ty : ty + t, tx : tx + t]),
        "thumb": to_tensor(resize_area(dark, THUMB, THUMB)),
        "roi": torch.tensor([ty, tx, r, r], dtype=torch.float32),
        "target": to_tensor(np.ascontiguousarray(clean[ty : ty + t, tx : tx + t])),
    }


def batches(cfg: dict, split: str) -> Iterator[dict]:
    """Batches are produced by one background thread (numpy/OpenCV release the GIL) so that degradation
    overlaps the training step; the order stays deterministic because only that thread draws from rng."""
    rng = np.random.default_rng(cfg["seed"])
    photos = [pyramid(load_rgb(n), cfg, cfg["region"]) for n in photo_names(split)]
    q: queue.Queue = queue.Queue(maxsize=4)

    def produce() -> None:
        while True:
            items = [sample(photos, cfg, rng) for _ in range(cfg["batch"])]
            q.put({k: torch.stack([it[k] for it in items]) for k in items[0]})

    threading.Thread(target=produce, daemon=True).start()
    while True:
        yield q.get()


SHARED = os.path.join(HERE, "..", "data")


def eval_photos() -> list[tuple[str, str]]:
    """Held-out photos: ours, plus the shared corpus's (models/data/splits.json) held-out photos that are not in
    our training split (matched by source sha256), so the numbers also cover the zoo-wide held-out set."""
    with open(os.path.join(HERE, "splits.json")) as f:
        mine = json.load(f)["photos"]
    train = {e["sha256"] for e in mine if e["split"] == "train"}
    held = {e["sha256"] for e in mine if e["split"] == "heldout"}
    out = [(e["file"], os.path.join(PHOTOS, e["file"])) for e in mine if e["split"] == "heldout"]
    shared_path = os.path.join(SHARED, "splits.json")
    if os.path.exists(shared_path):
        with open(shared_path) as f:
            shared = json.load(f)["photos"]
        for e in shared:
            if e["split"] == "heldout" and e["sha256"] not in train and e["sha256"] not in held:
                out.append(("shared:" + e["file"], os.path.join(SHARED, "photos", e["file"])))
    return sorted(out)


def load_any(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path} missing: build the photo caches first (see CARD.md)")
    return img[:, :, ::-1].astype(np.float32) / 255.0


def heldout_pairs(cfg: dict) -> list[dict]:
    """Deterministic held-out set: each held-out photo at long side eval_long_side, eval_variants degradations."""
    out = []
    for i, (name, path) in enumerate(eval_photos()):
        img = load_any(path)
        h, w = img.shape[:2]
        s = cfg["eval_long_side"] / max(h, w)
        clean = resize_area(img, round(h * s), round(w * s)) if s < 1 else img
        for v in range(cfg["eval_variants"]):
            rng = np.random.default_rng(1000 + 17 * i + v)
            out.append({"name": f"{name}#{v}", "clean": clean, "dark": degrade(clean, rng)})
    return out
