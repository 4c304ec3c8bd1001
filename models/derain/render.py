"""Rain renderer: a clean photo J -> a rainy photo I and every label the deraining methods train on.

All values are sRGB-encoded in [0, 1], the domain in which the cited papers synthesise their data.
I: rainy image, J: clean photo, S: streak layer (sum of the depth layers S_i), T_s: streak transmission,
T_v: vapour transmission, T: the transmission the family's equation uses, A: global atmospheric light (RGB).

Formation families:
  light         I = J + S                                 streaks only (light rain)
  streak_vapor  I = J*T_s*T_v + (1 - T_s*T_v)*A           streaks as a transmission medium together with vapour:
                                                           Wang, Song, Ma, Zeng, "Rethinking image deraining via
                                                           rain streaks and vapors", ECCV 2020
  heavy         I = T*(J + sum_i S_i) + (1 - T)*A         the heavy-rain model: Li, Cheong, Tan, "Heavy rain image
                                                           restoration: integrating physics model and conditional
                                                           adversarial learning", CVPR 2019 (T = T_v)
  screen        I = T*(J + S - J*S) + (1 - T)*A           HELD OUT of training: the screen-blend rain model of
                                                           Luo, Xu, Ji, "Removing rain from a single image via
                                                           discriminative sparse coding", ICCV 2015, under a
                                                           lighter veil, with the wind 32-50 deg from vertical
                                                           (training families never exceed 25 deg)
The formed image is clipped to [0, 1], then camera noise (Poisson-Gaussian, in linear light) and JPEG.

Streaks: 1-5 depth layers. Each layer has a distance z in (0, 1) (0 at the camera); nearer layers get longer,
wider, brighter and sparser streaks, and the nearest are defocused. A layer is the classic synthesis: random
impulses, a Gaussian cross-section, then a motion-blur line kernel at the layer's angle (the wind direction
plus a small per-layer jitter). A far layer is hidden where the scene is nearer than the layer.
Vapour: T_v = exp(-beta * d) with d a depth proxy (the photo's vertical position and bright, unsaturated
regions as "far", plus a smooth random field, made to follow the photo's edges with a guided filter).

    /usr/bin/python3 -m models.derain.render --photo PATH --family heavy --seed 3 --out /tmp/x [--no-noise] [--no-jpeg]
"""

import argparse
import json
import math
import os

import cv2
import numpy as np

from .filters import gray, guided_filter, linear_to_srgb, srgb_to_linear

FAMILIES = ("light", "streak_vapor", "heavy", "screen")
TRAIN_FAMILIES = ("light", "streak_vapor", "heavy")
HELDOUT_FAMILY = "screen"
ALIASES = {"a": "light", "b": "streak_vapor", "c": "heavy", "d": "screen", "streak-vapor": "streak_vapor",
           "streaks": "light", "heldout": "screen"}

WIND_TRAIN = 20.0  # |wind| <= 20 deg from vertical in the training families
WIND_HELDOUT = (32.0, 50.0)  # |wind| in the held-out family: a range no training image shows
LAYER_JITTER = 5.0  # each layer's angle = wind +- 5 deg, so training streaks stay within 25 deg
MASK_THRESHOLD = 0.02  # rain mask: max over channels of S above this

# Per family: number of layers, drops per 10^4 px (farthest layer), nearest layer's streak length (px at a
# 640 px long side), cross-section sigma (px), peak brightness, veil strength beta (None: no vapour),
# streak opacity for T_s (streak_vapor only).
RANGES = {
    "light": {"layers": (1, 3), "density": (4.0, 12.0), "length": (12.0, 40.0), "sigma": (0.4, 0.9),
              "brightness": (0.25, 0.6), "beta": None},
    "streak_vapor": {"layers": (2, 4), "density": (8.0, 24.0), "length": (15.0, 50.0), "sigma": (0.5, 1.1),
                     "brightness": (0.4, 0.8), "beta": (0.8, 2.0), "opacity": (0.5, 0.9)},
    "heavy": {"layers": (3, 5), "density": (8.0, 24.0), "length": (15.0, 60.0), "sigma": (0.5, 1.2),
              "brightness": (0.35, 0.8), "beta": (0.8, 2.2)},
    "screen": {"layers": (2, 4), "density": (8.0, 24.0), "length": (15.0, 50.0), "sigma": (0.5, 1.2),
               "brightness": (0.4, 0.8), "beta": (0.3, 1.2)},
}
NEAREST_VEIL = 0.15  # even the nearest scene point sits behind some rain in a veiled image
FULL_WELL = (5000.0, 50000.0)  # photo-electrons at linear 1.0 (daylight exposures), log-uniform
READ_NOISE = (1e-4, 8e-4)  # std in linear units, log-uniform
JPEG_Q = (85, 97)


def family_name(name: str) -> str:
    f = ALIASES.get(name, name)
    if f not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)} (or a, b, c, d)")
    return f


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_params(rng: np.random.Generator, family: str) -> dict:
    """Every scalar of one rendering, drawn in a fixed order so that a seed fixes the whole image."""
    r = RANGES[family]
    if family == HELDOUT_FAMILY:
        wind = float(rng.uniform(*WIND_HELDOUT)) * (1.0 if rng.random() < 0.5 else -1.0)
    else:
        wind = float(rng.uniform(-WIND_TRAIN, WIND_TRAIN))
    n_layers = int(rng.integers(r["layers"][0], r["layers"][1] + 1))
    z = np.sort(rng.uniform(0.05, 0.9, n_layers))
    length0 = float(rng.uniform(*r["length"]))
    sigma0 = float(rng.uniform(*r["sigma"]))
    bright0 = float(rng.uniform(*r["brightness"]))
    density0 = loguniform(rng, *r["density"])
    layers = []
    for zk in z:
        near = 1.0 - float(zk)
        layers.append({
            "z": float(zk),
            "angle": wind + float(rng.uniform(-LAYER_JITTER, LAYER_JITTER)),
            "length": length0 * (0.3 + 0.7 * near),
            "sigma": sigma0 * (0.4 + 0.6 * near),
            "brightness": bright0 * (0.45 + 0.55 * near),
            "density": density0 * (0.5 + 1.0 * float(zk)),
            "defocus": max(0.0, near - 0.75) * 6.0,  # only the nearest layers are out of the scene's focus
        })
    a = float(rng.uniform(0.75, 1.0))
    tint = np.exp(rng.normal(0.0, 0.03, 3) + np.array([0.0, 0.0, 0.02]))  # mostly grey, slightly cool
    p = {
        "family": family,
        "wind": wind,
        "layers": layers,
        "A": np.clip(a * tint, 0.0, 1.0).astype(np.float32).tolist(),
        "beta": float(rng.uniform(*r["beta"])) if r["beta"] else 0.0,
        "opacity": float(rng.uniform(*r["opacity"])) if "opacity" in r else 0.0,
        "depth_weights": rng.dirichlet([2.0, 1.5, 1.5]).tolist(),
        "depth_gamma": float(rng.uniform(0.7, 1.5)),
        "field_grid": int(rng.integers(3, 8)),
        "full_well": loguniform(rng, *FULL_WELL),
        "read_noise": loguniform(rng, *READ_NOISE),
        "jpeg_q": int(rng.integers(JPEG_Q[0], JPEG_Q[1] + 1)),
    }
    return p


def normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo)).astype(np.float32) if hi - lo > 1e-6 else np.zeros_like(x, np.float32)


def depth_proxy(clean: np.ndarray, rng: np.random.Generator, p: dict) -> np.ndarray:
    """Relative distance in [0, 1] (0 near): the photo's structure plus a smooth random field."""
    h, w = clean.shape[:2]
    vertical = np.repeat(np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None], w, axis=1) ** p["depth_gamma"]
    mx, mn = clean.max(axis=2), clean.min(axis=2)
    unsaturated_bright = gray(clean) * (1.0 - (mx - mn) / (mx + 1e-3))  # sky, distant haze, white walls
    s = max(h, w) / 50.0
    cue = normalise(cv2.GaussianBlur(unsaturated_bright, (0, 0), s))
    g = p["field_grid"]
    field = normalise(cv2.resize(rng.normal(size=(g, g)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC))
    wv, wc, wr = p["depth_weights"]
    d = wv * vertical + wc * cue + wr * field
    # Edge-aware smoothing with the photo as guide so that transmission changes at object boundaries.
    d = guided_filter(gray(clean), d.astype(np.float32), max(2, max(h, w) // 40), 1e-2)
    return np.clip(normalise(d), 0.0, 1.0)


def gaussian_peak1(sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    return np.exp(-x * x / (2 * sigma * sigma)).astype(np.float32)


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A drop's path during the exposure: a line of the given length, tilted angle_deg from vertical,
    drawn with bilinear splats so that it is about 1 along its length (ends ramp over 15 % each)."""
    half = length / 2.0
    size = 2 * int(math.ceil(half)) + 3
    c = size // 2
    k = np.zeros((size, size), np.float32)
    th = math.radians(angle_deg)
    step = 0.25
    for t in np.arange(-half, half + 1e-6, step):
        u = (t + half) / max(length, 1e-6)
        wgt = min(1.0, u / 0.15, (1.0 - u) / 0.15) * step
        x, y = c + t * math.sin(th), c + t * math.cos(th)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        k[y0, x0] += wgt * (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += wgt * fx * (1 - fy)
        k[y0 + 1, x0] += wgt * (1 - fx) * fy
        k[y0 + 1, x0 + 1] += wgt * fx * fy
    return k


def streak_layer(h: int, w: int, rng: np.random.Generator, layer: dict) -> np.ndarray:
    pad = int(math.ceil(layer["length"] / 2)) + 4  # streaks may start outside the frame
    hh, ww = h + 2 * pad, w + 2 * pad
    n = int(rng.poisson(layer["density"] * hh * ww / 1e4))
    canvas = np.zeros((hh, ww), np.float32)
    ys, xs = rng.integers(0, hh, n), rng.integers(0, ww, n)
    np.add.at(canvas, (ys, xs), rng.uniform(0.6, 1.0, n).astype(np.float32))
    g = gaussian_peak1(layer["sigma"])
    canvas = cv2.sepFilter2D(canvas, -1, g, g, borderType=cv2.BORDER_CONSTANT)
    canvas = cv2.filter2D(canvas, -1, line_kernel(layer["length"], layer["angle"]), borderType=cv2.BORDER_CONSTANT)
    if layer["defocus"] > 0.05:
        canvas = cv2.GaussianBlur(canvas, (0, 0), layer["defocus"])
    return np.clip(canvas[pad : pad + h, pad : pad + w], 0.0, 1.0) * layer["brightness"]


def camera(img: np.ndarray, rng: np.random.Generator, p: dict, noise: bool, jpeg: bool) -> np.ndarray:
    out = img
    if noise:
        lin = srgb_to_linear(np.clip(out, 0.0, 1.0))
        e = rng.poisson(lin * p["full_well"]).astype(np.float32) / p["full_well"]
        out = linear_to_srgb(e + rng.normal(0.0, p["read_noise"], lin.shape).astype(np.float32))
    if jpeg:
        u8 = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, p["jpeg_q"]])
        assert ok
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
    return out.astype(np.float32)


def render(clean: np.ndarray, seed: int, family: str, noise: bool = True, jpeg: bool = True,
           params: dict | None = None) -> dict:
    """clean: HxWx3 float32 RGB in [0, 1]. Returns the rainy image and its labels (see the module doc)."""
    family = family_name(params["family"] if params else family)
    rng = np.random.default_rng(seed)
    p = params or sample_params(rng, family)
    J = np.ascontiguousarray(clean[..., :3], dtype=np.float32)
    h, w = J.shape[:2]
    d = depth_proxy(J, rng, p)
    A = np.array(p["A"], np.float32)
    colour = 0.5 + 0.5 * A / A.max()  # streaks reflect the ambient light: white, a little of A's tint
    s = np.zeros((h, w), np.float32)
    for layer in p["layers"]:
        visible = np.clip((d - layer["z"]) / 0.15 + 0.5, 0.0, 1.0)  # a layer behind the scene is hidden
        s += streak_layer(h, w, rng, layer) * visible
    s = np.minimum(s, 1.0)
    S = (s[..., None] * colour).astype(np.float32)
    ones = np.ones((h, w), np.float32)
    T_v = np.exp(-p["beta"] * (NEAREST_VEIL + (1 - NEAREST_VEIL) * d)).astype(np.float32) if p["beta"] > 0 else ones
    if family == "streak_vapor":
        # Opacity relative to the brightest layer's peak: the nearest streaks' cores transmit 1 - opacity, fainter
        # (farther) streaks proportionally more.
        peak = max(layer["brightness"] for layer in p["layers"])
        T_s = np.clip(1.0 - p["opacity"] * S.max(axis=2) / peak, 0.05, 1.0).astype(np.float32)
    else:
        T_s = ones
    if family == "light":
        T = ones
        formed = J + S
    elif family == "streak_vapor":
        T = (T_s * T_v).astype(np.float32)
        formed = J * T[..., None] + (1.0 - T[..., None]) * A
    elif family == "heavy":
        T = T_v
        formed = T[..., None] * (J + S) + (1.0 - T[..., None]) * A
    else:
        T = T_v
        formed = T[..., None] * (J + S - J * S) + (1.0 - T[..., None]) * A
    formed = formed.astype(np.float32)
    I = camera(np.clip(formed, 0.0, 1.0), rng, p, noise, jpeg)
    return {
        "I": I, "J": J, "formed": formed, "S": S, "T_s": T_s, "T_v": T_v, "T": T, "A": A,
        "mask": S.max(axis=2) > MASK_THRESHOLD, "depth": d, "params": p,
    }


def load_photo(path: str, long_side: int = 0) -> np.ndarray:
    """RGB float32 in [0, 1], downscaled (area) to long_side if larger, and quantised to 8 bits so that the
    clean label is exactly the PNG it is stored as."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    h, w = img.shape[:2]
    if long_side and max(h, w) > long_side:
        s = long_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img[:, :, ::-1].astype(np.float32) / 255.0  # cv2.resize of uint8 stays uint8: J is exactly clean.png


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str, img: np.ndarray) -> None:
    u8 = to_u8(img)
    assert cv2.imwrite(path, u8[:, :, ::-1] if u8.ndim == 3 else u8)


def save(out: str, r: dict) -> None:
    os.makedirs(out, exist_ok=True)
    write_png(os.path.join(out, "rainy.png"), r["I"])
    write_png(os.path.join(out, "clean.png"), r["J"])
    write_png(os.path.join(out, "streaks.png"), r["S"])
    for k in ("T_s", "T_v", "T", "depth"):
        write_png(os.path.join(out, f"{k}.png"), r[k])
    write_png(os.path.join(out, "mask.png"), r["mask"].astype(np.float32))
    np.savez_compressed(os.path.join(out, "labels.npz"), **{k: r[k] for k in
                        ("I", "J", "formed", "S", "T_s", "T_v", "T", "A", "mask", "depth")})
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(r["params"], f, indent=1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Render rain on one photo; writes PNGs, labels.npz and params.json.")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--family", default="heavy", help=", ".join(FAMILIES) + " (or a, b, c, d)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--long-side", type=int, default=640, help="downscale to this long side first (0: keep)")
    ap.add_argument("--no-noise", action="store_true", help="skip the camera noise")
    ap.add_argument("--no-jpeg", action="store_true", help="skip the JPEG round trip")
    a = ap.parse_args(argv)
    r = render(load_photo(a.photo, a.long_side), a.seed, a.family, noise=not a.no_noise, jpeg=not a.no_jpeg)
    save(a.out, r)
    err = np.abs(r["I"] - r["J"])
    print(json.dumps({"family": r["params"]["family"], "size": list(r["I"].shape[:2]), "wind": round(r["params"]["wind"], 2),
                      "layers": len(r["params"]["layers"]), "mean_abs_change": round(float(err.mean()), 4),
                      "psnr_input": round(float(-10 * np.log10(np.mean(err ** 2) + 1e-12)), 2),
                      "rain_fraction": round(float(r["mask"].mean()), 4), "T_min": round(float(r["T"].min()), 4)}))


if __name__ == "__main__":
    main()
