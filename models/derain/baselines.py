"""Classical derain baselines (numpy/OpenCV, no training), written from the published formulas.

input          the rainy image itself
decomp_derain  low/high decomposition (after Kang, Lin, Fu, "Automatic single-image-based rain streaks removal via
               image decomposition", TIP 2012, with a morphological split and a directional rain test in place of
               their bilateral filter and learned dictionaries): the streak direction is the peak of a
               structure-tensor orientation histogram of the bright top-hat; the low layer is a grey opening with a
               short line across that direction (it removes bright structures thinner than the line); the high
               layer is the rest; where the high layer's brightness averaged along the streak direction, less its
               average across it, exceeds a threshold, it is rain, and there the low layer replaces the image.
               (A guided-filter low layer, after Xu et al., "Removing rain and snow in a single image using guided
               filter", CSAE 2012, lost 0.4 dB to the input on training renders: it blurs the texture it puts back.)
dcp            dark-channel-prior dehazing: He, Sun, Tang, "Single image haze removal using dark channel prior"
               (CVPR 2009 / TPAMI 2011), with the transmission refined by the guided filter (He, Sun, Tang,
               "Guided image filtering", ECCV 2010 / TPAMI 2013) instead of soft matting
dcp_decomp     dcp, then decomp_derain: under the heavy-rain model I = T(J + S) + (1 - T)A, inverting the veil
               leaves J + S, whose streaks the decomposition then removes

Parameters were chosen on renders of TRAIN photos (`/usr/bin/python3 -m models.derain.baselines --tune`), never
on the held-out evaluation pairs.
"""

import argparse
import itertools
import json

import cv2
import numpy as np

from .filters import gray, guided_filter, min_filter
from .render import line_kernel

DECOMP = {"line": 3, "length": 31, "tau": 0.005, "cross": 2.0}  # --tune on the 24 train photos
DCP = {"omega": 0.95, "t0": 0.2, "patch": 15, "eps": 1e-3}  # --tune (t0 0.2 where He et al. use 0.1)
REF_SIDE = 600.0  # He et al. give the 15x15 patch for images of about 600 px
MAX_TILT = 60.0  # rain is searched within 60 deg of vertical (it falls; strong horizontal scene lines are not rain)


def tophat(y: np.ndarray, se: np.ndarray) -> np.ndarray:
    return y - cv2.morphologyEx(y, cv2.MORPH_OPEN, se, borderType=cv2.BORDER_REFLECT)


def streak_angle(img: np.ndarray) -> float:
    """Dominant streak direction (deg from vertical, the convention of render.py):
    the peak of an orientation histogram of local structure tensors (Bigun and Granlund 1987) of the bright
    top-hat, each pixel weighted by its coherence squared times its top-hat, so thin bright lines vote and
    smooth texture does not."""
    th = tophat(gray(img), np.ones((3, 3), np.uint8))
    gx, gy = cv2.Sobel(th, cv2.CV_32F, 1, 0), cv2.Sobel(th, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gy * gy, gx * gy))
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-8)
    # The gradient orientation phi is perpendicular to the line; a line at angle a from vertical has phi = -a.
    a = (-0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy)) + 90.0) % 180.0 - 90.0
    w = coherence**2 * th
    hist, edges = np.histogram(a.ravel(), bins=36, range=(-90, 90), weights=w.ravel())
    hist = np.convolve(np.r_[hist[-1], hist, hist[0]], [0.25, 0.5, 0.25], "valid")
    centres = (edges[:-1] + edges[1:]) / 2
    hist[np.abs(centres) > MAX_TILT] = -1.0
    return float(centres[int(np.argmax(hist))])


def cross_element(line: int, angle: float) -> np.ndarray:
    """A 1-px line of `line` pixels perpendicular to the streaks: an opening with it removes bright structures
    thinner than the line across the streak direction and keeps everything wider."""
    size = line + 2 if line % 2 else line + 3  # odd, so that the anchor is the centre
    c = size // 2
    k = np.zeros((size, size), np.uint8)
    th = np.radians(angle)
    for t in np.linspace(-(line - 1) / 2, (line - 1) / 2, 4 * line):
        # The streak runs along (sin a, cos a) in (x, y); the element along (cos a, -sin a).
        k[int(round(c - t * np.sin(th))), int(round(c + t * np.cos(th)))] = 1
    return k


def decomp_derain(img: np.ndarray, line: int = DECOMP["line"], length: float = DECOMP["length"],
                  tau: float = DECOMP["tau"], cross: float = DECOMP["cross"]) -> np.ndarray:
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    angle = streak_angle(img)
    se = cross_element(line, angle)
    low = cv2.morphologyEx(img, cv2.MORPH_OPEN, se, borderType=cv2.BORDER_REFLECT)  # the streak-free layer
    high = gray(img) - gray(low)  # bright residual, streaks among it
    along, across = line_kernel(length, angle), line_kernel(length, angle + 90.0)
    # Evidence: the residual averaged along the streak direction, less `cross` times its average across it. A
    # streak keeps its value along and vanishes across; isotropic texture (foliage, gravel) scores alike both ways.
    evidence = cv2.filter2D(high, -1, along / along.sum(), borderType=cv2.BORDER_REFLECT)
    if cross:
        evidence -= cross * cv2.filter2D(high, -1, across / across.sum(), borderType=cv2.BORDER_REFLECT)
    # Soft rain mask: rain above tau, fully so at 2 tau (a hard cut leaves streak fringes).
    m = np.clip((evidence - tau) / max(tau, 1e-6), 0.0, 1.0)[..., None]
    return img * (1.0 - m) + low * m


def atmospheric_light(img: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """He et al.: among the 0.1 % pixels with the brightest dark channel. The mean colour there rather than the
    single brightest pixel, because a rain streak is often the brightest pixel."""
    n = max(1, int(0.001 * dark.size))
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    return np.maximum(img.reshape(-1, 3)[idx].mean(axis=0), 1e-3).astype(np.float32)


def dcp_estimate(img: np.ndarray, omega: float = DCP["omega"], patch: int = DCP["patch"],
                 eps: float = DCP["eps"]) -> tuple[np.ndarray, np.ndarray]:
    """(refined transmission t, atmospheric light A)."""
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    h, w = img.shape[:2]
    s = max(h, w) / REF_SIDE
    pr = max(1, round((patch // 2) * s))
    dark = min_filter(img.min(axis=2), pr)
    A = atmospheric_light(img, dark)
    t = 1.0 - omega * min_filter((img / A).min(axis=2), pr)  # eq. 12 of the CVPR paper
    t = guided_filter(gray(img), t.astype(np.float32), max(4, 4 * pr), eps)
    return np.clip(t, 0.0, 1.0), A


def dcp(img: np.ndarray, omega: float = DCP["omega"], t0: float = DCP["t0"], patch: int = DCP["patch"],
        eps: float = DCP["eps"]) -> np.ndarray:
    t, A = dcp_estimate(img, omega, patch, eps)
    J = (np.clip(img, 0, 1) - A) / np.maximum(t, t0)[..., None] + A  # eq. 22: t bounded below by t0
    return np.clip(J, 0.0, 1.0).astype(np.float32)


def dcp_decomp(img: np.ndarray) -> np.ndarray:
    return decomp_derain(dcp(img))


METHODS = {
    "input": lambda x: np.clip(x, 0.0, 1.0).astype(np.float32),
    "decomp_derain": decomp_derain,
    "dcp": dcp,
    "dcp_decomp": dcp_decomp,
}


def tune(n_photos: int, out: str | None) -> None:
    """Grid search on renders of TRAIN photos at the evaluation scale (held-out photos never enter)."""
    from . import data
    from .render import render

    names = data.photo_names("train")[:n_photos]
    clean = [data.resize_long(data.read_rgb(data.photo_path(n)), data.EVAL_LONG_SIDE) for n in names]

    def pairs(fams):
        return [(render(J, 90_000 + i, fams[i % len(fams)])["I"], J) for i, J in enumerate(clean)]

    def mean_psnr(fn, ps):
        return float(np.mean([-10 * np.log10(np.mean((fn(I) - J) ** 2) + 1e-12) for I, J in ps]))

    light = pairs(("light",))
    heavy = pairs(("heavy", "streak_vapor"))
    res = {"photos": names, "decomp_derain": [], "dcp": []}
    for line, length, tau, cross in itertools.product([3, 5], [15, 31], [0.005, 0.01, 0.02, 0.03], [0.0, 1.0, 2.0, 3.0]):
        p = {"line": line, "length": length, "tau": tau, "cross": cross}
        res["decomp_derain"].append({**p, "light_psnr": round(mean_psnr(lambda x: decomp_derain(x, **p), light), 3)})
    for omega, t0, eps in itertools.product([0.8, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4, 0.5], [1e-3, 1e-2]):
        p = {"omega": omega, "t0": t0, "eps": eps}
        res["dcp"].append({**p, "heavy_psnr": round(mean_psnr(lambda x: dcp(x, **p), heavy), 3)})
    res["input"] = {"light_psnr": round(mean_psnr(METHODS["input"], light), 3),
                    "heavy_psnr": round(mean_psnr(METHODS["input"], heavy), 3)}
    best_gf = max(res["decomp_derain"], key=lambda e: e["light_psnr"])
    best_dcp = max(res["dcp"], key=lambda e: e["heavy_psnr"])
    res["best"] = {"decomp_derain": best_gf, "dcp": best_dcp}
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps({"input": res["input"], **res["best"]}, indent=1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Tune the classical baselines on TRAIN-photo renders.")
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--photos", type=int, default=24, help="the first N train photos (24: all)")
    ap.add_argument("--out", help="write the whole grid as JSON")
    a = ap.parse_args(argv)
    if a.tune:
        tune(a.photos, a.out)


if __name__ == "__main__":
    main()
