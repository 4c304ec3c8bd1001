#!/usr/bin/python3
"""Face-swap simulator: replaces the face of one person by another's, aligned on 68 landmarks.

Pipeline (a classical "cheap-fake" swap, the weakest attacker the identity check must still catch):
 1. similarity transform (rotation, uniform scale, translation) fitted by least squares from the
    source's 68 landmarks to the target's (cv2.estimateAffinePartial2D, RANSAC off);
 2. warp the whole source photo into the target's frame;
 3. mask = convex hull of the target's landmarks (jaw line + eyebrows), slightly eroded and feathered;
 4. colour match: per-channel mean/std transfer in CIELAB of the warped face onto the target's face
    region (Reinhard et al. 2001);
 5. blend: Poisson seamless cloning (cv2.seamlessClone, Perez et al. 2003), or an alpha blend with
    the feathered mask.

Usable as a function (swap_face) or a CLI:
  /usr/bin/python3 models/identity/swap.py jobs.json
where jobs.json is a list of {"target", "target_landmarks", "source", "source_landmarks", "out",
optional "blend": "seamless"|"feather", optional "mirror_source": true to flip the source
left-right first}; landmarks are 68 [x, y] pairs in each image's pixels.
Use Debian's /usr/bin/python3 (it has python3-opencv).
"""
import json
import sys

import cv2
import numpy as np


def _hull_mask(shape, landmarks, erode_frac=0.04):
    """Filled convex hull of the landmarks, eroded a little so the seam falls inside the face edge."""
    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(landmarks).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    x, y, w, h = cv2.boundingRect(hull)
    k = max(1, int(round(min(w, h) * erode_frac)))
    return cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8)), (x, y, w, h)


def _colour_match(src, dst, mask):
    """Moves src's LAB mean/std inside mask onto dst's, so skin tone and lighting follow the target."""
    m = mask > 0
    s = cv2.cvtColor(src, cv2.COLOR_BGR2LAB).astype(np.float32)
    d = cv2.cvtColor(dst, cv2.COLOR_BGR2LAB).astype(np.float32)
    for c in range(3):
        sm, ss = s[..., c][m].mean(), s[..., c][m].std() + 1e-6
        dm, ds = d[..., c][m].mean(), d[..., c][m].std() + 1e-6
        s[..., c] = (s[..., c] - sm) * (ds / ss) + dm
    return cv2.cvtColor(np.clip(s, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def swap_face(target, target_lm, source, source_lm, blend="seamless"):
    """Returns a copy of target (BGR uint8) whose face is source's face. Landmarks: (68, 2) arrays."""
    target_lm = np.asarray(target_lm, np.float32).reshape(-1, 2)
    source_lm = np.asarray(source_lm, np.float32).reshape(-1, 2)
    if target_lm.shape != (68, 2) or source_lm.shape != (68, 2):
        raise ValueError("need 68 landmarks for target and source")
    matrix, _ = cv2.estimateAffinePartial2D(source_lm, target_lm, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("could not fit a similarity transform between the landmark sets")
    h, w = target.shape[:2]
    warped = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask, (x, y, bw, bh) = _hull_mask(target.shape, target_lm)
    # The source's own hull, warped, must cover the target hull, or the blend pulls in background.
    src_mask, _ = _hull_mask(source.shape, source_lm, erode_frac=0.0)
    mask = cv2.bitwise_and(mask, cv2.warpAffine(src_mask, matrix, (w, h), flags=cv2.INTER_NEAREST))
    if cv2.countNonZero(mask) < 100:
        raise ValueError("face region too small to swap")
    warped = _colour_match(warped, target, mask)
    if blend == "seamless":
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
        return cv2.seamlessClone(warped, target, mask, centre, cv2.NORMAL_CLONE)
    if blend == "feather":
        k = max(3, int(round(min(bw, bh) * 0.08)) | 1)
        alpha = cv2.GaussianBlur(mask, (k, k), 0).astype(np.float32)[..., None] / 255.0
        return np.clip(alpha * warped + (1 - alpha) * target, 0, 255).astype(np.uint8)
    raise ValueError(f"unknown blend {blend!r}")


# iBUG-300W 68-point indices after a left-right flip (jaw, brows, nose, eyes, outer and inner lips).
MIRROR_68 = (
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


def mirror(image, landmarks):
    """Flips image and landmarks left-right, keeping each landmark index's meaning."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2).copy()
    lm[:, 0] = image.shape[1] - 1 - lm[:, 0]
    return cv2.flip(image, 1), lm[MIRROR_68]


def run_jobs(jobs):
    cache = {}

    def read(path):
        if path not in cache:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(path)
            cache[path] = img
        return cache[path]

    done = 0
    for job in jobs:
        source, source_lm = read(job["source"]), job["source_landmarks"]
        if job.get("mirror_source"):
            source, source_lm = mirror(source, source_lm)
        try:
            out = swap_face(read(job["target"]), job["target_landmarks"], source, source_lm, job.get("blend", "seamless"))
        except ValueError as err:
            print(f"skip {job['out']}: {err}", file=sys.stderr)
            continue
        cv2.imwrite(job["out"], out)
        done += 1
    return done


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        n = run_jobs(json.load(f))
    print(f"{n} swaps written")
