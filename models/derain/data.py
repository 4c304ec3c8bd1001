"""Photos (the shared corpus, models/data/) and rain pairs: training crops rendered from the TRAIN split,
evaluation pairs rendered from the HELD-OUT split, and the readers for what prepare_data.py wrote."""

import json
import os
from typing import Iterator

import cv2
import numpy as np

from .render import HELDOUT_FAMILY, TRAIN_FAMILIES, render

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(REPO, "models", "data")
PHOTOS = os.path.join(SHARED, "photos")
DATA = os.path.join(HERE, "data")  # git-ignored (models/**/data/)

EVAL_LONG_SIDE = 640
TRAIN_LONG_SIDE = (480, 800)  # photos are rescaled to this range before cropping, so streak sizes in px match eval
CROP = (128, 256)
# The evaluation sets: which families each renders. "heavy" alternates the two veiled training families per photo.
EVAL_SETS = {"light": ("light",), "heavy": ("heavy", "streak_vapor"), "heldout": (HELDOUT_FAMILY,)}
EVAL_SEED = 14_000  # pair seed = EVAL_SEED + 1000 * set index + photo index
TRAIN_SEED = 14


def split_entries() -> list[dict]:
    with open(os.path.join(SHARED, "splits.json")) as f:
        return json.load(f)["photos"]


def photo_names(split: str) -> list[str]:
    """Photo files of one split ("train" or "heldout"); the split is by photo, never by crop."""
    if split not in ("train", "heldout"):
        raise ValueError(split)
    return sorted(e["file"] for e in split_entries() if e["split"] == split)


def photo_path(name: str) -> str:
    path = os.path.join(PHOTOS, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: run /usr/bin/python3 models/data/build_photos.py")
    return path


def read_rgb(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return img[:, :, ::-1].astype(np.float32) / 255.0


def resize_long(img: np.ndarray, long_side: int) -> np.ndarray:
    """Area downscale to long_side (never upscales), quantised to 8 bits so that a clean label is exactly the PNG
    it is stored as."""
    h, w = img.shape[:2]
    if max(h, w) > long_side:
        s = long_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(img, 0, 1) * 255.0).astype(np.float32) / 255.0


def train_crop(photos: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One clean crop: a random training photo at a random scale, a random square crop, a random flip."""
    k = int(rng.integers(len(photos)))
    img = photos[k]
    scaled = resize_long(img, int(rng.integers(TRAIN_LONG_SIDE[0], TRAIN_LONG_SIDE[1] + 1)))
    h, w = scaled.shape[:2]
    c = min(int(rng.integers(CROP[0], CROP[1] + 1)), h, w)
    y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
    crop = scaled[y : y + c, x : x + c]
    flip = bool(rng.random() < 0.5)
    if flip:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop), {"photo_index": k, "size": c, "y": y, "x": x, "flip": flip, "scaled": [h, w]}


def train_samples(seed: int = TRAIN_SEED, families=TRAIN_FAMILIES) -> Iterator[tuple[str, dict, dict]]:
    """Endless (family, rendering, crop info) from TRAIN photos only, deterministic from seed; the families
    cycle so that every batch mixes them. Held-out photos and the held-out family never appear."""
    for f in families:
        if f == HELDOUT_FAMILY:
            raise ValueError(f"{f} is the held-out family")
    names = photo_names("train")
    # Kept at the largest training scale: some wallpapers are 5312 px wide, 24 of them at full size are 4 GB.
    photos = [resize_long(read_rgb(photo_path(n)), TRAIN_LONG_SIDE[1]) for n in names]
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        fam = families[i % len(families)]
        crop, info = train_crop(photos, rng)
        info["photo"] = names[info.pop("photo_index")]
        r = render(crop, int(rng.integers(2**31)), fam)
        yield fam, r, info
        i += 1


def eval_pairs_spec() -> list[dict]:
    """The deterministic evaluation list: every HELD-OUT photo once per set, with its family and seed."""
    names = photo_names("heldout")
    out = []
    for si, (set_name, fams) in enumerate(EVAL_SETS.items()):
        for pi, name in enumerate(names):
            out.append({"set": set_name, "photo": name, "family": fams[pi % len(fams)],
                        "seed": EVAL_SEED + 1000 * si + pi, "stem": os.path.splitext(name)[0]})
    return out


def _index(root: str, key: str) -> list[dict]:
    path = os.path.join(root, "index.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing: run /usr/bin/python3 -m models.derain.prepare_data")
    with open(path) as f:
        return json.load(f)[key]


def eval_index(root: str = os.path.join(DATA, "eval")) -> list[dict]:
    return _index(root, "pairs")


def load_eval_pair(entry: dict, root: str = os.path.join(DATA, "eval")) -> tuple[np.ndarray, np.ndarray]:
    """(rainy, clean) float32 RGB in [0, 1]."""
    return read_rgb(os.path.join(root, entry["rainy"])), read_rgb(os.path.join(root, entry["clean"]))


def train_index(root: str = os.path.join(DATA, "train")) -> list[dict]:
    return _index(root, "crops")


def load_train_crop(entry: dict, root: str = os.path.join(DATA, "train")) -> dict:
    """One stored training crop as float32 arrays: I, J, S (HxWx3), T_s, T_v, T, depth (HxW), A (3), mask (bool)."""
    with np.load(os.path.join(root, entry["file"])) as z:
        out = {k: z[k] for k in z.files}
    for k in ("I", "J"):
        out[k] = out[k].astype(np.float32) / 255.0
    for k in ("S", "T_s", "T_v", "T", "depth"):
        out[k] = out[k].astype(np.float32)
    return out
