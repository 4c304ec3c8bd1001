"""Physically motivated low-light degradation (reproducible from a numpy Generator).

clean sRGB -> linear (IEC 61966-2-1 inverse transfer) -> exposure x s, s log-uniform in [0.02, 0.3]
-> per-channel colour cast (white-balance gains) -> Poisson-Gaussian sensor noise (shot noise with Q
photo-electrons at full scale, Gaussian read noise) -> clip -> sRGB transfer -> JPEG (OpenCV, q 70-95).
"""

import cv2
import numpy as np

EXPOSURE = (0.02, 0.3)
CAST_SIGMA = 0.12  # log-gain std per channel
FULL_WELL = (1000.0, 20000.0)  # photo-electrons at linear 1.0, log-uniform
READ_NOISE = (2e-4, 2e-3)  # std in linear units, log-uniform
JPEG_Q = (70, 95)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_params(rng: np.random.Generator) -> dict:
    return {
        "exposure": loguniform(rng, *EXPOSURE),
        "gains": np.exp(rng.normal(0.0, CAST_SIGMA, 3)).astype(np.float32),
        "full_well": loguniform(rng, *FULL_WELL),
        "read_noise": loguniform(rng, *READ_NOISE),
        "jpeg_q": int(rng.integers(JPEG_Q[0], JPEG_Q[1] + 1)),
    }


def degrade(clean: np.ndarray, rng: np.random.Generator, params: dict | None = None) -> np.ndarray:
    """clean: HxWx3 float32 RGB in [0,1]. Returns the dark, noisy, JPEG-compressed HxWx3 float32."""
    p = params or sample_params(rng)
    lin = srgb_to_linear(clean.astype(np.float32)) * p["exposure"] * p["gains"][None, None, :]
    electrons = rng.poisson(np.clip(lin, 0, None) * p["full_well"]).astype(np.float32)
    noisy = electrons / p["full_well"] + rng.normal(0.0, p["read_noise"], lin.shape).astype(np.float32)
    srgb = linear_to_srgb(noisy)
    u8 = np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, p["jpeg_q"]])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
