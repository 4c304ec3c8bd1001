"""Small image filters shared by the renderer and the classical baselines (numpy + OpenCV only)."""

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, the weights JPEG's Y channel uses


def gray(img: np.ndarray) -> np.ndarray:
    return (img[..., :3] @ LUMA).astype(np.float32) if img.ndim == 3 else img.astype(np.float32)


def box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window; reflected borders so that means near the edge stay unbiased."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He, Sun, Tang, "Guided Image Filtering" (ECCV 2010 / TPAMI 2013), grey guide, Algorithm 1:
    q = mean(a) * I + mean(b) with a = cov(I, p) / (var(I) + eps), b = mean(p) - a * mean(I) per window.
    p may have channels (each filtered with the same guide)."""
    guide = guide.astype(np.float32)
    p = p.astype(np.float32)
    g = guide[..., None] if p.ndim == 3 else guide
    mean_i = box(guide, r)
    var_i = box(guide * guide, r) - mean_i * mean_i
    mean_p = box(p, r)
    mi = mean_i[..., None] if p.ndim == 3 else mean_i
    vi = var_i[..., None] if p.ndim == 3 else var_i
    cov_ip = box(g * p, r) - mi * mean_p
    a = cov_ip / (vi + eps)
    b = mean_p - a * mi
    return box(a, r) * g + box(b, r)


def min_filter(x: np.ndarray, r: int) -> np.ndarray:
    """Minimum over a (2r+1)^2 square (grey erosion)."""
    return cv2.erode(x, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_REFLECT)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 inverse transfer."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)
